"""Where the label files, photos and class names of a YOLO dataset are, in the layouts in use.

* **Ultralytics** ``images/…`` and ``labels/…`` mirrored (``images/train/x.jpg`` ↔
  ``labels/train/x.txt``), names in ``data.yaml``.
* **Roboflow** export root: ``data.yaml`` beside ``train/``, ``valid/`` (or ``val/``) and
  ``test/``, each holding ``images/`` and ``labels/``.
* **Darknet** (and CVAT's "YOLO 1.1"): ``obj.data`` (``classes``, ``train``, ``valid``,
  ``names``), ``obj.names`` (one class per line), ``train.txt`` listing the *photos*, each
  label file beside its photo (``obj_train_data/x.jpg`` + ``obj_train_data/x.txt``).
* A bare folder of label files, names in ``classes.txt`` (labelImg) or ``obj.names``.

:func:`layout` answers with :class:`YoloLayout`: the label files as batch items (``rel`` is
the image's name relative to the dataset root, without extension, so a record's
``file_name`` says where its photo is) and the image sizes keyed the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Optional

from segtools.errors import InputError
from segtools.io.batch import Item

SPLIT_FOLDERS = ("train", "valid", "val", "test")
NAME_FILES = ("obj.names", "classes.txt", "classes.names")
LIST_FILES = ("train.txt", "valid.txt", "val.txt", "test.txt")
MAX_LIST_BYTES = 64 << 20


@dataclass
class YoloLayout:
    """``items``: label files (``rel``: the image's path under the root, no extension);
    ``sizes``: ``rel → (file_name, height, width)`` of the photos found; ``names``: class
    names from the dataset's own files (None when it has none); ``kind``: which layout;
    ``splits``: ``rel → split`` where the layout says (Roboflow folders, Darknet lists)."""

    kind: str
    items: list[Item]
    sizes: dict = field(default_factory=dict)
    names: Optional[list[str]] = None
    names_from: Optional[str] = None
    splits: dict = field(default_factory=dict)


def read_names_file(path: Path) -> list[str]:
    """Class names of an ``obj.names``/``classes.txt``: one per line, blank lines skipped."""
    from segtools.io.limits import check_class_count
    from segtools.io.streams import read_head

    raw = read_head(path, MAX_LIST_BYTES + 1)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (at byte {exc.start})") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    check_class_count(len(names), f"{path}: names")
    return names


def read_obj_data(path: Path) -> dict[str, str]:
    """``key = value`` lines of a Darknet ``obj.data``."""
    from segtools.io.streams import read_head

    entries = {}
    for line in read_head(path, 1 << 20).decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            entries[key.strip().lower()] = value.strip()
    return entries


def _darknet_path(root: Path, named: str) -> Optional[Path]:
    """A path named in ``obj.data``/``train.txt`` (written relative to Darknet's working folder,
    usually ``data/…`` for a dataset at ``data/``), found under ``root``; None outside it."""
    from segtools.formats.paths import inside

    rel = PurePosixPath(named.strip().replace("\\", "/"))
    if rel.is_absolute():
        rel = PurePosixPath(*rel.parts[1:])
    candidates = [rel] + [PurePosixPath(*rel.parts[i:]) for i in range(1, len(rel.parts))]
    for candidate in candidates:
        try:
            path = inside(root, str(candidate), "a path in the Darknet lists")
        except InputError:
            continue
        if path.exists():
            return path
    return None


def _photo_sizes(photos: list[tuple[str, Path]]) -> dict:
    """``rel → (file_name, height, width)`` of the photos that exist (headers only)."""
    sizes = {}
    for rel, path in photos:
        size = _one_size(path)
        if size is not None:
            sizes[rel] = (str(PurePosixPath(rel).with_suffix(path.suffix)), *size)
    return sizes


def _one_size(path: Path) -> Optional[tuple[int, int]]:
    from segtools.io.sniff import sniff

    if not path.is_file():
        return None
    with open(path, "rb") as handle:
        head = sniff(handle.read(65536))
    if head.width is not None and head.height is not None:
        return int(head.height), int(head.width)
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:  # the header only
            width, height = image.size
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(f"{path}: cannot read the image size ({exc})") from None
    return int(height), int(width)


def _rekeyed(images_dir: Path, prefix: str) -> dict:
    from segtools.formats.records import image_sizes

    return {f"{prefix}{stem}": (f"{prefix}{rel}", h, w) for stem, (rel, h, w) in image_sizes(images_dir).items()}


def _items(labels_dir: Path, prefix: str) -> list[Item]:
    from segtools.io.batch import expand_inputs

    found = expand_inputs([str(labels_dir)], extensions=(".txt",))
    return [Item(it.path, f"{prefix}{it.rel}") for it in found if PurePosixPath(it.rel).name not in NAME_FILES]


def names_beside(root: Path) -> tuple[Optional[list[str]], Optional[str]]:
    """Class names from ``obj.names``/``classes.txt`` in ``root`` (or its ``labels/``)."""
    for folder in (root, root / "labels"):
        for name in NAME_FILES:
            if (folder / name).is_file():
                return read_names_file(folder / name), str(folder / name)
    return None, None


def is_darknet(root: Path) -> bool:
    return (root / "obj.data").is_file() or ((root / "obj.names").is_file()
                                             and any((root / n).is_file() for n in LIST_FILES))


def is_roboflow(root: Path) -> bool:
    return any((root / s / "labels").is_dir() for s in SPLIT_FOLDERS) and not (root / "labels").is_dir()


def layout(root: Path, images_root: Optional[Path] = None) -> YoloLayout:
    """The layout of the YOLO dataset folder ``root`` (see the module doc)."""
    if is_darknet(root):
        return _darknet(root)
    if is_roboflow(root):
        items, sizes, splits = [], {}, {}
        for split in SPLIT_FOLDERS:
            if (root / split / "labels").is_dir():
                found = _items(root / split / "labels", f"{split}/images/")
                items += found
                splits.update({str(PurePosixPath(it.rel).with_suffix("")): split for it in found})
                if images_root is None and (root / split / "images").is_dir():
                    sizes.update(_rekeyed(root / split / "images", f"{split}/images/"))
        if images_root is not None:
            sizes = _rekeyed(images_root, "")
        names, names_from = names_beside(root)
        return YoloLayout("roboflow", items, sizes, names, names_from, splits)
    labels = root / "labels" if (root / "labels").is_dir() else root
    images = images_root if images_root is not None else (root / "images" if (root / "images").is_dir() else None)
    sizes = _rekeyed(images, "") if images is not None else {}
    names, names_from = names_beside(root)
    return YoloLayout("ultralytics" if labels != root else "labels", _items(labels, ""), sizes, names, names_from)


def _darknet(root: Path) -> YoloLayout:
    """Darknet: the photo lists name the images; each label file lies beside its photo."""
    from segtools.io.streams import read_head

    config = read_obj_data(root / "obj.data") if (root / "obj.data").is_file() else {}
    names, names_from = None, None
    if config.get("names"):
        named = _darknet_path(root, config["names"])
        if named is None:
            raise InputError(f"{root / 'obj.data'}: names = {config['names']!r} is not under {root}")
        names, names_from = read_names_file(named), str(named)
    else:
        names, names_from = names_beside(root)
    lists = {}
    for split, key in (("train", "train"), ("val", "valid"), ("test", "test")):
        if config.get(key):
            found = _darknet_path(root, config[key])
            if found is None:
                raise InputError(f"{root / 'obj.data'}: {key} = {config[key]!r} is not under {root}")
            lists[split] = found
    for name in LIST_FILES:
        split = {"valid.txt": "val", "val.txt": "val"}.get(name, name[:-4])
        if split not in lists and (root / name).is_file():
            lists[split] = root / name
    if not lists:
        raise InputError(f"{root}: a Darknet dataset needs train.txt (or obj.data naming the lists)")
    items, photos, splits, seen = [], [], {}, set()
    for split, list_path in lists.items():
        raw = read_head(list_path, MAX_LIST_BYTES + 1)
        if len(raw) > MAX_LIST_BYTES:
            raise InputError(f"{list_path}: more than {MAX_LIST_BYTES >> 20} MiB; is it a list of photos?")
        text = raw.decode("utf-8", "replace")
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            photo = _darknet_path(root, line)
            label = _darknet_path(root, str(PurePosixPath(line.strip().replace("\\", "/")).with_suffix(".txt")))
            if label is None:
                raise InputError(f"{list_path}:{number}: no label file beside {line.strip()[:200]!r} under {root}")
            rel = label.resolve().relative_to(root.resolve()).with_suffix("").as_posix()
            if rel in seen:
                continue
            seen.add(rel)
            items.append(Item(str(label), rel + ".txt"))
            splits[rel] = split
            if photo is not None:
                photos.append((rel, photo))
    return YoloLayout("darknet", items, _photo_sizes(photos), names, names_from, splits)
