"""Paths named inside annotation files, resolved against the folder they belong to.

An annotation file names other files: COCO ``file_name``, panoptic PNG ``file_name``,
labelme ``imagePath``, VOC ``<filename>``. Such a name comes from the file, not from the
user, so it may be hostile or corrupt: absolute (``/etc/passwd``), climbing out
(``../../x``), empty, holding a NUL, or leading through a symbolic link out of the folder.
:func:`inside` is the one place that turns such a name into a path: it joins the name to
its base folder, resolves every symbolic link, and refuses a result outside the base.
:func:`output_name` maps a name to an output path under ``-o``, keeping it inside too.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from segtools.errors import InputError

MAX_NAME_CHARS = 4096  # PATH_MAX on Linux


def check_name(name, where: str) -> str:
    """``name`` when it is a usable relative file name from a file (a non-empty string
    without NUL or control characters), else :class:`InputError` naming ``where``."""
    if not isinstance(name, str):
        raise InputError(f"{where} must be a string, got {type(name).__name__}")
    if not name.strip():
        raise InputError(f"{where} is empty")
    if len(name) > MAX_NAME_CHARS:
        raise InputError(f"{where} is {len(name):,} characters long (at most {MAX_NAME_CHARS:,})")
    if any(ord(ch) < 32 for ch in name):
        raise InputError(f"{where} {name[:60]!r} holds a NUL or control character")
    return name


def _parts(name: str) -> PurePosixPath:
    return PurePosixPath(name.replace("\\", "/"))


def inside(base: str | os.PathLike, name, where: str, *, resolved: str | None = None) -> Path:
    """The file ``name`` (read from a file) under the folder ``base``, symbolic links resolved.

    Raises :class:`InputError` when ``name`` is absolute, climbs out with ``..``, or
    resolves (through links) to a place outside ``base``. For many names under one base,
    pass ``resolved=resolve_base(base)`` so the base is resolved once, not per name.
    A ``base`` on a store (a URL prefix, which has no links) gives the object's URL, a ``str``.

    >>> import tempfile; root = tempfile.mkdtemp()
    >>> inside(root, "a/b.png", "file_name") == Path(root).resolve() / "a" / "b.png"
    True
    >>> inside(root, "a/b.png", "file_name", resolved=resolve_base(root)) == Path(root).resolve() / "a" / "b.png"
    True
    """
    name = check_name(name, where)
    rel = _parts(name)
    if rel.is_absolute() or ".." in rel.parts or (len(name) > 1 and name[1] == ":"):
        raise InputError(f"{where} {name[:200]!r} leaves its folder {base} (absolute or '..'); "
                         "names in annotation files must be relative to it")
    from segtools.io.remote import is_url, join

    if is_url(str(base)):
        return join(str(base), "/".join(part for part in rel.parts if part != "."))  # type: ignore[return-value]
    root = resolved if resolved is not None else resolve_base(base)
    target = _below_resolved(root, rel.parts)
    prefix = root if root.endswith(os.sep) else root + os.sep
    if target != root and not target.startswith(prefix):
        raise InputError(f"{where} {name[:200]!r} leads out of {base} (through a symbolic link)")
    return Path(target)


def _below_resolved(root: str, parts: tuple[str, ...]) -> str:
    """``realpath(root/parts…)`` for a ``root`` already resolved: when no part is a symbolic
    link (one ``lstat`` each, not one for every folder above), the joined path is the answer."""
    import stat

    path = root
    for part in parts:
        path = os.path.join(path, part)
        try:
            if stat.S_ISLNK(os.lstat(path).st_mode):
                return os.path.realpath(os.path.join(root, *parts))
        except OSError:  # missing (or unreadable): realpath says what it leads to
            return os.path.realpath(os.path.join(root, *parts))
    return path


def resolve_base(base: str | os.PathLike) -> str:
    """``base`` with every symbolic link resolved, as :func:`inside` compares names against it.

    >>> resolve_base("/") == os.path.realpath("/")
    True
    """
    from segtools.io.remote import is_url

    return str(base) if is_url(str(base)) else os.path.realpath(base)


def _last_part_if_outside(name, where: str) -> PurePosixPath:
    """``name`` as a relative path; an absolute one or one with ``..`` keeps only its last
    part (``/data/upload/1/x.jpg`` → ``x.jpg``), as files written with absolute paths mean."""
    rel = _parts(check_name(name, where))
    if rel.is_absolute() or ".." in rel.parts or (len(rel.parts) and ":" in rel.parts[0]):
        rel = PurePosixPath(rel.name)
    if rel.name in ("", ".", ".."):
        raise InputError(f"{where} {name[:200]!r} names no file")
    return rel


def source_in(base: str | os.PathLike, name, where: str) -> Path:
    """The photo ``name`` (read from a file) looked up in the user's folder ``base``
    (``--images``): a relative name as it stands, an absolute or climbing one by its last
    part (Label Studio and CVAT write ``/data/upload/1/x.jpg``); either way it is checked
    with :func:`inside`, so nothing outside ``base`` is ever linked or copied."""
    return inside(base, str(_last_part_if_outside(name, where)), where)


def output_name(root: str | os.PathLike, name, extension: str, where: str = "file_name") -> Path:
    """Output path under ``root`` for the image ``name`` with its extension replaced.

    An absolute name or one with ``..`` keeps only its last part (``/data/x.jpg`` →
    ``root/x.png``, as COCO files written with absolute paths expect); the result is then
    checked with :func:`inside`, so no name (or link under ``root``) writes outside it.
    """
    rel = _last_part_if_outside(name, where).with_suffix(extension)
    inside(root, str(rel), where)
    return Path(root).joinpath(*rel.parts)
