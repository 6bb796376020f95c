"""Batch inputs: files, folders, globs, ``@list.txt`` and ``-``; pairing two sets; output names.

An :class:`Item` keeps the path to read and the relative name (``rel``) that identifies it
inside its batch: the path below the folder given, below a glob's fixed prefix, or as written
in a list file. Outputs under ``-o DIR`` reuse ``rel``, and pairing matches on it.
"""

from __future__ import annotations

import glob as globlib
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Sequence

from segtools.errors import InputError, OutputError, UsageError
from segtools.io.remote import is_url
from segtools.io.streams import check_file_name, mark_input

DATA_EXTENSIONS = (".png", ".npy", ".npz", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")

# Dataset file-name suffixes stripped before pairing (longest first wins).
PAIRING_SUFFIXES = (
    "_gtFine_labelTrainIds", "_gtFine_labelIds", "_gtFine_trainIds", "_gtFine_instanceIds",
    "_gtFine_color", "_gtCoarse_labelIds", "_gtCoarse_trainIds", "_leftImg8bit",
    "_labelTrainIds", "_labelIds", "_trainIds",
    "_prediction", "_pred", "_mask", "_label", "_labels", "_gt", "_seg", "_L",
)
#: Of those, the suffixes that name a photo rather than its labels.
PHOTO_SUFFIXES = ("_leftImg8bit",)


@dataclass(frozen=True)
class Item:
    """One input of a batch: ``path`` to read (``-`` for stdin), ``rel`` its name in the batch."""

    path: str
    rel: str

    @property
    def key(self) -> str:
        """``rel`` without extension and dataset suffix: what pairing compares."""
        return pairing_key(self.rel)


def pairing_key(rel: str, suffixes: Sequence[str] = PAIRING_SUFFIXES) -> str:
    """Strip the extension and one known dataset suffix from a relative name.

    >>> pairing_key("frankfurt/frankfurt_000000_000294_gtFine_labelIds.png")
    'frankfurt/frankfurt_000000_000294'
    >>> pairing_key("a/b_leftImg8bit.png")
    'a/b'
    """
    posix = PurePosixPath(rel.replace(os.sep, "/"))
    stem = posix.name
    for ext in (".nii.gz",):
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
            break
    else:
        stem = posix.stem if posix.suffix else stem
    for suffix in sorted(suffixes, key=len, reverse=True):
        if stem.endswith(suffix) and len(stem) > len(suffix):
            stem = stem[: -len(suffix)]
            break
    parent = str(posix.parent)
    return stem if parent in ("", ".") else f"{parent}/{stem}"


def is_pattern(spec: str) -> bool:
    """Whether ``spec`` is a glob pattern (holds ``*``, ``?`` or ``[``)."""
    return any(ch in spec for ch in "*?[")


def _walk(root: Path, extensions: Sequence[str]) -> list[Item]:
    items = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            if filename.startswith(".") or not filename.lower().endswith(tuple(extensions)):
                continue
            path = Path(dirpath) / filename
            items.append(Item(str(path), path.relative_to(root).as_posix()))
    return sorted(items, key=lambda item: item.rel)


def expand_inputs(specs: Iterable[str], extensions: Sequence[str] = DATA_EXTENSIONS,
                  allow_stdin: bool = True) -> list[Item]:
    """Expand input specs into a sorted, de-duplicated list of :class:`Item`.

    Each spec is ``-`` (stdin), a file, a folder (searched recursively for ``extensions``),
    a glob (``'pred/**/*.png'``), a storage URL (an object, a prefix listed like a folder, or
    a glob: :func:`segtools.io.remote.list_objects`) or ``@list.txt`` (one path per line, the first
    whitespace-separated field; blank lines and ``#`` comments skipped; relative paths are
    relative to the list file's folder).

    Every file found is marked as an input of this run (:func:`~segtools.io.streams.mark_input`)
    before it is read, so no output may replace it without ``--overwrite``, even when the
    reading happens later or in a ``--jobs`` worker process.
    """
    items: list[Item] = []
    for spec in specs:
        spec = str(spec)
        check_file_name(spec)
        if spec == "-":
            if not allow_stdin:
                raise InputError("'-' (stdin) cannot be used here")
            items.append(Item("-", "stdin"))
        elif spec.startswith("@"):
            items.extend(_read_list(Path(spec[1:])))
        elif is_url(spec):  # a prefix lists like a folder; each object is read when its item runs
            from segtools.io.remote import list_objects

            items.extend(Item(url, rel) for url, rel in list_objects(spec, extensions))
        elif is_pattern(spec) and not os.path.exists(spec):
            matches = sorted(globlib.glob(spec, recursive=True))
            files = [m for m in matches if os.path.isfile(m)]
            if not files:
                raise InputError(f"{spec}: the pattern matches no file")
            root = _glob_root(spec)
            items.extend(Item(m, Path(m).relative_to(root).as_posix() if root else Path(m).name) for m in files)
        elif os.path.isdir(spec):
            found = _walk(Path(spec), extensions)
            if not found:
                raise InputError(f"{spec}: no {'/'.join(e.lstrip('.') for e in extensions[:4])} files in this folder")
            items.extend(found)
        elif os.path.isfile(spec):
            items.append(Item(spec, Path(spec).name))
        elif os.path.lexists(spec):
            raise InputError(f"{spec}: not a regular file or folder")
        else:
            raise InputError(f"{spec}: no such file or folder")
    seen: set[str] = set()
    unique = []
    for item in items:
        if item.path not in seen or item.path == "-":
            seen.add(item.path)
            unique.append(item)
            mark_input(item.path)
    return unique


def _glob_root(pattern: str) -> str:
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if is_pattern(part):
            break
        fixed.append(part)
    return str(Path(*fixed)) if fixed else ""


def _read_list(path: Path) -> list[Item]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"@{path}: no such list file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"@{path}: cannot read the list ({exc})") from None
    items = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        entry = line.split()[0]
        full = entry if os.path.isabs(entry) else str(path.parent / entry)
        if not os.path.isfile(full):
            raise InputError(f"@{path}:{number}: {entry}: no such file")
        items.append(Item(full, PurePosixPath(entry.replace(os.sep, "/")).as_posix().lstrip("/")))
    if not items:
        raise InputError(f"@{path}: the list names no file")
    return items


@dataclass
class Pairing:
    pairs: list[tuple[Item, Item]]
    only_left: list[Item]
    only_right: list[Item]


def pair_items(left: Sequence[Item], right: Sequence[Item], *, allow_missing: bool = False,
               names: tuple[str, str] = ("prediction", "ground truth"),
               suffixes: Sequence[str] = PAIRING_SUFFIXES) -> Pairing:
    """Match two batches by relative path, then by file stem, ignoring dataset suffixes.

    A single item on each side always pairs. An item without a partner raises
    :class:`InputError` listing the first few, unless ``allow_missing``.
    """
    if len(left) == 1 and len(right) == 1:
        return Pairing([(left[0], right[0])], [], [])
    right = without_photos(right, suffixes)
    by_key = _index(right, lambda it: pairing_key(it.rel, suffixes), names[1])
    by_stem = _index(right, lambda it: pairing_key(it.rel, suffixes).rsplit("/", 1)[-1], None)
    pairs, only_left, used = [], [], set()
    for item in left:
        key = pairing_key(item.rel, suffixes)
        match = by_key.get(key)
        if match is None:
            candidates = by_stem.get(key.rsplit("/", 1)[-1])
            match = candidates if isinstance(candidates, Item) else None
        if match is None or match.path in used:
            only_left.append(item)
        else:
            used.add(match.path)
            pairs.append((item, match))
    only_right = [it for it in right if it.path not in used]
    if not allow_missing and (only_left or only_right):
        parts = []
        if only_left:
            parts.append(f"{len(only_left)} {names[0]}(s) without {names[1]}: {_first(only_left)}")
        if only_right:
            parts.append(f"{len(only_right)} {names[1]}(s) without {names[0]}: {_first(only_right)}")
        raise InputError("; ".join(parts) + " (pass --allow-missing to skip them)")
    if not pairs:
        raise InputError(f"no {names[0]} matches any {names[1]} by file name")
    return Pairing(pairs, only_left, only_right)


#: Photo formats that are never label masks: ``x.jpg`` beside ``x_mask.png`` is the mask's photo.
PHOTO_ONLY = (".jpg", ".jpeg", ".webp")


def _photos_beside_labels(items: Sequence[Item], suffixes: Sequence[str]) -> tuple[set, set]:
    """Paths of the photos and of the labels among ``items`` that share a pairing key: a
    JPEG/WebP without a dataset suffix (``x.jpg``) and a file with a label suffix
    (``x_mask.png``) — Roboflow's semantic export writes both to one folder."""
    def bare(item: Item) -> bool:
        posix = PurePosixPath(item.rel)
        return posix.suffix.lower() in PHOTO_ONLY and pairing_key(item.rel, suffixes) == str(posix.with_suffix(""))

    def labelled(item: Item) -> bool:
        posix = PurePosixPath(item.rel)
        return (pairing_key(item.rel, suffixes) != str(posix.with_suffix(""))
                and not posix.stem.endswith(PHOTO_SUFFIXES))

    photos = {pairing_key(it.rel, suffixes): it.path for it in items if bare(it)}
    labels = {pairing_key(it.rel, suffixes): it.path for it in items if labelled(it)}
    both = photos.keys() & labels.keys()
    return {photos[k] for k in both}, {labels[k] for k in both}


def without_photos(items: Sequence[Item], suffixes: Sequence[str] = PAIRING_SUFFIXES) -> list[Item]:
    """``items`` less each photo that has its label file beside it (``x.jpg`` beside
    ``x_mask.png``, :func:`_photos_beside_labels`): the labels of a folder that holds both.

    >>> [it.rel for it in without_photos([Item("t/a.jpg", "a.jpg"), Item("t/a_mask.png", "a_mask.png"),
    ...                                   Item("t/b.jpg", "b.jpg")])]
    ['a_mask.png', 'b.jpg']
    """
    photos, _ = _photos_beside_labels(items, suffixes)
    return [it for it in items if it.path not in photos]


def without_labels(items: Sequence[Item], suffixes: Sequence[str] = PAIRING_SUFFIXES) -> list[Item]:
    """``items`` less each label file that has its photo beside it: the photos of a folder
    that holds both (``train --images export/train --masks export/train``).

    >>> [it.rel for it in without_labels([Item("t/a.jpg", "a.jpg"), Item("t/a_mask.png", "a_mask.png")])]
    ['a.jpg']
    """
    _, labels = _photos_beside_labels(items, suffixes)
    return [it for it in items if it.path not in labels]


#: What a model's input folder is searched for.
PHOTO_INPUTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


def photo_inputs(specs: Sequence[str], arrays: bool = False) -> list[Item]:
    """The photos a model runs on under ``specs`` (files, folders, globs, ``@lists``, ``-``):
    :data:`PHOTO_INPUTS` files (and ``.npy`` arrays with ``arrays``), less label files kept
    beside their photos (:func:`without_labels`)."""
    return without_labels(expand_inputs(specs, extensions=PHOTO_INPUTS + ((".npy",) if arrays else ())))


def _index(items: Sequence[Item], key, what: str | None) -> dict:
    index: dict = {}
    for item in items:
        k = key(item)
        if k in index:
            if what is not None:
                raise InputError(f"two {what} files pair as {k!r}: {index[k].path} and {item.path}")
            index[k] = None  # ambiguous stem: never match by stem alone
        else:
            index[k] = item
    return index


def _first(items: Sequence[Item], n: int = 3) -> str:
    shown = ", ".join(it.path for it in items[:n])
    return shown + (", ..." if len(items) > n else "")


def select_shard(items: Sequence, shard: tuple[int, int] | None, key=lambda item: item.rel) -> list:
    """The items of ``shard`` (I, N): after sorting by ``key`` (an item's relative name),
    item k belongs to shard k mod N. The split depends only on the items given, so N runs
    given the same inputs and I = 0..N-1 cover every item exactly once.

    >>> select_shard(["c", "a", "d", "b"], (1, 2), key=str)
    ['b', 'd']
    """
    if shard is None:
        return list(items)
    index, count = shard
    chosen = sorted(items, key=key)[index::count]
    if not chosen:
        raise UsageError(f"shard={index}/{count}: no items for this shard ({len(items)} item(s) in all)")
    return chosen


def output_path(item: Item, out_dir: str | os.PathLike, extension: str | None = None) -> Path:
    """Where ``item``'s result goes under ``out_dir``: same relative name, optional new extension
    (below a storage URL prefix: the object's URL, a ``str``).

    Refuses names that would escape ``out_dir``.
    """
    rel = PurePosixPath(item.rel)
    if rel.is_absolute() or ".." in rel.parts:
        raise OutputError(f"{item.rel}: refusing an output name outside {out_dir}")
    if extension is not None:
        rel = rel.with_suffix(extension) if rel.suffix else rel.with_name(rel.name + extension)
    if is_url(str(out_dir)):
        from segtools.io.remote import join

        return join(str(out_dir), rel.as_posix())  # type: ignore[return-value]
    return Path(out_dir) / Path(*rel.parts)


def check_output_dir(out_dir: str | os.PathLike) -> Path:
    """Validate (and create) a batch output folder (a storage URL: a prefix, whose store is
    checked; it is created by the objects written below it)."""
    if is_url(str(out_dir)):
        from segtools.io.remote import check_store

        return check_store(str(out_dir))  # type: ignore[return-value]
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: exists and is not a directory; -o takes a folder for a batch")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path}: cannot create the output folder ({exc.strerror or exc})") from None
    return path
