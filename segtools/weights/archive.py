"""What a torch zip archive is, judged from its member names and sizes before anything in it
is read; and a context that keeps torch quiet while a file loads.

torch writes three zip layouts, each under one root folder (``<root>/``):

* :func:`torch.save` — ``data.pkl``, ``data/<storage>``, ``version``, ``byteorder``;
* TorchScript (``torch.jit.save``) — the same plus ``code/…`` (TorchScript source) and
  ``constants.pkl``;
* ``torch.export.save`` (``.pt2``) — ``archive_format`` (``pt2``), ``archive_version``,
  ``models/<name>.json``, ``data/weights/…``, ``data/constants/…``, ``data/sample_inputs/…``.

A zip that mixes them, has members outside one root, or declares far more bytes than it
holds is none of them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
import zipfile
from typing import Iterator

from segtools.errors import InputError

#: what a torch archive may expand to, relative to its size on disk: torch stores members
#: uncompressed, so a legitimate archive is about ×1; a zip bomb is ×1000 and more.
MAX_EXPANSION = 4
#: slack for small archives (headers, a few compressed text members)
EXPANSION_SLACK = 64 << 20
#: most members a torch archive may list (a large model has a few thousand storages)
MAX_MEMBERS = 200_000

TORCH_ZIP, TORCHSCRIPT, TORCH_EXPORT = "torch-zip", "torchscript", "torch-export"


def zip_members(path: str | os.PathLike) -> dict[str, zipfile.ZipInfo]:
    """The members of the zip at ``path`` by name, after the bomb checks.

    Raises
    ------
    InputError
        Not a readable zip, too many members, duplicate names, or declared sizes that
        the file cannot hold (a zip bomb).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: corrupt or truncated zip archive ({str(exc)[:120] or type(exc).__name__})") from None
    if len(infos) > MAX_MEMBERS:
        raise InputError(f"{path}: the archive lists {len(infos):,} members (at most {MAX_MEMBERS:,})")
    members = {info.filename: info for info in infos}
    if len(members) != len(infos):
        raise InputError(f"{path}: the archive lists a member name twice; refusing an ambiguous archive")
    size = os.path.getsize(path)
    declared = sum(info.file_size for info in infos)
    if declared > MAX_EXPANSION * size + EXPANSION_SLACK:
        raise InputError(f"{path}: the archive declares {declared:,} bytes of content in a {size:,}-byte "
                         "file (a zip bomb?); refusing to expand it")
    return members


def classify_zip(path: str | os.PathLike, members: dict[str, zipfile.ZipInfo]) -> str:
    """``torch-zip``, ``torchscript``, ``torch-export`` or ``unknown`` from member names."""
    roots = {name.split("/", 1)[0] for name in members}
    if len(roots) != 1 or any("/" not in name for name in members):
        return "unknown"
    root = roots.pop()
    rel = {name[len(root) + 1:] for name in members}
    is_export = "archive_format" in rel or any(n.startswith("models/") for n in rel)
    has_code = any(n.startswith("code/") for n in rel)
    is_pickle_zip = "data.pkl" in rel
    if is_export:
        if has_code or is_pickle_zip or "constants.pkl" in rel:
            return "unknown"
        return TORCH_EXPORT
    if has_code or "constants.pkl" in rel:
        return TORCHSCRIPT if is_pickle_zip and has_code and "constants.pkl" in rel else "unknown"
    return TORCH_ZIP if is_pickle_zip else "unknown"


@contextlib.contextmanager
def quiet_torch() -> Iterator[None]:
    """Silence what torch prints while it loads a file: Python warnings (TorchScript's
    deprecation, C++ ``TORCH_WARN`` turned into warnings) and the ``torch`` loggers (the
    ``W…`` lines torch.export writes with a traceback). Errors still raise."""
    loggers = [logging.getLogger("torch")] + [
        logger for name, logger in list(logging.root.manager.loggerDict.items())
        if name.startswith("torch.") and isinstance(logger, logging.Logger)]
    saved = [(logger, logger.disabled) for logger in loggers]
    level = loggers[0].level
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loggers[0].setLevel(logging.CRITICAL + 1)  # loggers made during the load inherit it
        for logger in loggers:
            logger.disabled = True
        try:
            yield
        finally:
            loggers[0].setLevel(level)
            for logger, disabled in saved:
                logger.disabled = disabled


@contextlib.contextmanager
def forced_weights_only() -> Iterator[None]:
    """Make every :func:`torch.load` inside weights-only, even one that asks for
    ``weights_only=False`` (torch honours ``TORCH_FORCE_WEIGHTS_ONLY_LOAD``). Belt and braces
    for loaders inside torch that fall back to a full unpickle."""
    key = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"
    previous = os.environ.get(key)
    os.environ[key] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = previous
