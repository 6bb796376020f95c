"""Temp files of writers that were killed: recognised, and swept when no writer holds them.

:class:`~segtools.io.streams.AtomicFile` writes ``.NAME.XXXXXXXX.part`` beside a target and
renames it into place; an exception removes it, but a killed process (SIGKILL, power loss)
leaves it behind. :class:`~segtools.io.rasters.RasterWriter` (``tile merge``, whose
outputs are the largest and slowest to write) holds an exclusive ``flock`` on its temp file,
and sweeps the unheld temp files of its own target before it starts.
"""

from __future__ import annotations

import re
from glob import escape as glob_escape
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, so no sweeping of stale temp files
    fcntl = None

#: The temp name :class:`~segtools.io.streams.AtomicFile` gives a target (``tempfile.mkstemp``'s
#: eight random characters between the target's name and ``.part``).
_PART_PATTERN = "\\.{name}\\.[a-z0-9_]{{8}}\\.part"


def hold(handle) -> None:
    """Hold an exclusive lock on a temp file while it is written (released when it closes)."""
    if fcntl is not None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def sweep_stale_parts(target: Path) -> list[Path]:
    """Remove the temp files killed writers of ``target`` left behind, and return them.

    Only files named as segtools names the temp files of this exact target
    (``.NAME.XXXXXXXX.part`` beside it) are considered, and only those no live writer holds:
    :class:`RasterWriter` keeps an exclusive ``flock`` on its temp file until it is renamed
    or removed, and the lock dies with its process. Without ``fcntl`` (Windows) nothing is
    swept.
    """
    if fcntl is None:
        return []
    parent = target.parent if str(target.parent) else Path(".")
    pattern = re.compile(_PART_PATTERN.format(name=re.escape(target.name)))
    removed = []
    try:
        candidates = [p for p in parent.glob(f".{glob_escape(target.name)}.*.part") if pattern.fullmatch(p.name)]
    except OSError:
        return []
    for path in candidates:
        try:
            if path.is_symlink() or not path.is_file():
                continue
            with open(path, "rb") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                path.unlink()
                removed.append(path)
        except OSError:  # held by a live writer, gone meanwhile, or not ours to remove
            continue
    return removed
