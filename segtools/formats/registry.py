"""Any annotation format to any other in three calls: :func:`detect`, :func:`read`, :func:`write`.

Each source format registers how it is recognised (a folder layout, a parsed JSON
document, or the first bytes) and a reader that turns the inputs into one
:class:`~segtools.formats.records.Dataset` — categories plus a stream of :class:`~segtools.formats.records.Record` —
and each target registers a writer that takes that dataset. What a conversion may be told
travels as one :class:`~segtools.formats.records.ConvertOptions`. ::

    detected = detect(["annotations.json"])
    dataset = read(detected, ["annotations.json"], ConvertOptions(), summary)
    write(dataset, "yolo-seg", "dataset/", ConvertOptions(), summary)

Three conversions do not go through records, and say so in their dataset: COCO panoptic →
masks (``Dataset.document`` is the panoptic JSON), semantic masks → COCO panoptic, and the
per-mask value maps (``trainids``, ``labelids``, ``colour``), which read ``Dataset.items``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional, Sequence

from segtools.errors import InputError, UsageError
from segtools.formats import Summary
from segtools.formats.readers import READERS
from segtools.formats.records import MASK_SOURCES, TARGETS, ConvertOptions, Dataset, Detected, Tick
from segtools.formats.writers import WRITERS

__all__ = ["ConvertOptions", "Dataset", "Detected", "TARGETS", "detect", "read", "write"]

# ---------------------------------------------------------------- detection


def _has(root: Path, ext: str) -> bool:
    return next(root.rglob(f"*{ext}"), None) is not None


def _yolo_root(root: Path) -> bool:
    from segtools.formats import yolo_layouts

    return yolo_layouts.is_darknet(root) or yolo_layouts.is_roboflow(root)


def _coco_root(root: Path) -> bool:
    from segtools.formats import coco_layouts

    return coco_layouts.is_coco_folder(root)


FOLDER_LAYOUTS: list[tuple[str, Callable[[Path], bool]]] = [
    ("yolo", _yolo_root),  # Darknet obj.data/obj.names + train.txt; Roboflow train/labels, valid/labels
    ("coco", _coco_root),  # Roboflow train/_annotations.coco.json…; COCO annotations/instances_*.json
    ("yolo", lambda root: (root / "labels").is_dir() or any(root.glob("*.yaml"))),
    ("cvat", lambda root: (root / "annotations.xml").is_file()),
    ("sa1b", lambda root: next(root.glob("sa_*.json"), None) is not None),
    ("cityscapes-polygons", lambda root: next(root.rglob("*_polygons.json"), None) is not None
     and not _has(root, ".png")),
    ("voc", lambda root: _has(root, ".xml") and not _has(root, ".png")),
    ("labelme", lambda root: _has(root, ".json") and not _has(root, ".png")),
    ("yolo", lambda root: _has(root, ".txt") and not _has(root, ".png")),
    ("voc-seg", lambda root: (root / "SegmentationObject").is_dir() or root.name == "SegmentationObject"),
]
DOCUMENTS: list[tuple[str, Callable[[object], bool]]] = [
    ("cityscapes-polygons", lambda doc: isinstance(doc, dict) and "objects" in doc and "imgHeight" in doc),
    ("sa1b", lambda doc: isinstance(doc, dict) and isinstance(doc.get("image"), dict)
     and isinstance(doc.get("annotations"), list)),
    ("labelme", lambda doc: isinstance(doc, dict) and "shapes" in doc),
    ("panoptic", lambda doc: isinstance(doc, dict) and isinstance(doc.get("annotations"), list)
     and any(isinstance(a, dict) and "segments_info" in a for a in doc["annotations"][:5])),
    ("coco", lambda doc: isinstance(doc, dict) and isinstance(doc.get("annotations"), list)),
    ("coco-results", lambda doc: isinstance(doc, list) and bool(doc) and all(
        isinstance(d, dict) and "image_id" in d and "category_id" in d for d in doc[:5])),
    ("rle", lambda doc: isinstance(doc, list) or isinstance(doc, dict) and {"size", "counts"} <= set(doc)),
]


#: Folder names that make a prefix of PNGs a dataset layout rather than a plain mask folder.
_LAYOUT_PARTS = {"labels", "images", "segmentationobject", "segmentationclass", "jpegimages", "annotations"}


def store_holds_masks(url: str) -> bool:
    """Whether the prefix (or object) ``url`` on a store is a plain folder of masks — every
    object a ``.png`` or ``.npy``, none in a dataset layout's folders — which :func:`detect`
    recognises from the listing alone; any other layout is read from a local folder (the
    CLI stages it). One listing, nothing read."""
    from segtools.io.remote import list_objects

    try:
        names = [rel.lower() for _, rel in list_objects(url, ("",))]
    except InputError:
        return False
    return bool(names) and all(name.endswith((".png", ".npy")) and not _LAYOUT_PARTS & set(name.split("/")[:-1])
                               for name in names)


def detect(specs: Sequence[str], source: str = "auto") -> Detected:
    """The format of the inputs, from the bytes and folder layouts, not the names.

    ``source`` other than ``auto`` names the format (``mask``, ``instances`` and
    ``cityscapes-instances`` are all the ``mask`` format, read differently). A prefix on a
    store is a folder of masks (:func:`store_holds_masks`), or named by ``source``.
    """
    from segtools.io.jsondata import parse_json
    from segtools.io.sniff import sniff
    from segtools.io.streams import read_bytes

    as_mask = lambda kind: "mask" if kind in MASK_SOURCES else kind  # noqa: E731
    if source == "voc-seg":
        return Detected(source)  # a folder pair, checked when paired
    from segtools.io.remote import is_prefix, is_url, redact

    if len(specs) == 1 and is_url(specs[0]) and not any(ch in specs[0] for ch in "*?[") and is_prefix(specs[0]):
        if (source != "auto" and source in MASK_SOURCES) or (source == "auto" and store_holds_masks(specs[0])):
            return Detected(as_mask(source))
        raise InputError(f"{redact(specs[0])}: not a plain folder of masks; other dataset layouts are read from "
                         "a local copy of the prefix")
    if len(specs) == 1 and os.path.isdir(specs[0]):
        if source != "auto":
            return Detected(as_mask(source))
        root = Path(specs[0])
        return Detected(next((kind for kind, matches in FOLDER_LAYOUTS if matches(root)), "mask"))
    if len(specs) > 1 or any(ch in specs[0] for ch in "*?[") or specs[0].startswith("@"):
        return Detected(as_mask(source))
    if specs[0] != "-" and source in ("auto", "coco"):
        from segtools.formats.coco import is_streamed

        if is_streamed(specs[0]):
            return Detected("coco-stream")
    data = read_bytes(specs[0])
    head = sniff(data[:512])
    if head.format in ("png", "npy") and source in MASK_SOURCES:
        return Detected("mask", data)
    if head.format == "json" or data.lstrip()[:1] in (b"{", b"["):
        parsed = parse_json(data, "<stdin>" if specs[0] == "-" else specs[0])
        if source != "auto":
            return Detected(as_mask(source), parsed)
        kind = next((kind for kind, matches in DOCUMENTS if matches(parsed)), None)
        if kind is None:
            raise InputError(f"{specs[0]}: JSON that is neither COCO, COCO panoptic, labelme nor an RLE")
        return Detected(kind, parsed)
    if data.lstrip()[:1] == b"<":
        return Detected("cvat" if b"<annotations" in data[:4096] else "voc", data)
    if head.format in ("text", "empty"):
        return Detected("yolo", data)
    raise InputError(f"{specs[0]}: not a mask or an annotation file (recognised: {head.format})")


# ---------------------------------------------------------------- reading


def read(detected: Detected, specs: Sequence[str], options: ConvertOptions, summary: Summary) -> Dataset:
    """The dataset of the inputs (records are read lazily, when a writer asks)."""
    from segtools.formats import splits

    reader = READERS.get(detected.format)
    if reader is None:
        raise UsageError(f"cannot convert {detected.format} files")
    return splits.prepare(splits.shard(reader(specs, detected.payload, options, summary), options), options.skip,
                          splits.parse_filters(options.filters), summary)


# ---------------------------------------------------------------- writing


#: Targets that write polygons, where how holes were kept is worth saying.
POLYGON_TARGETS = ("coco", "yolo-seg")
KEYHOLES = "holes kept as keyhole bridges"


def write(dataset: Dataset, target: str, output: Optional[str], options: ConvertOptions, summary: Summary,
          single: bool = False, tick: Optional[Tick] = None, targets: Sequence = ()) -> None:
    """Write ``dataset`` as ``target`` to ``output`` (a file, a folder, or None for stdout).

    ``single``: the mask targets write one mask to ``output`` instead of a folder of them.
    ``targets``: for the per-mask value maps, where each of ``dataset.items`` goes.
    """
    if target not in WRITERS:
        raise UsageError(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    from segtools.formats import splits

    dataset = splits.counting_dropped(dataset, target, summary)
    if options.split:  # each split in the target's own layout
        from dataclasses import replace

        def write_one(records, name, where):
            part = replace(dataset, records=lambda _tick: iter(records), ticks_itself=False, total=len(records))
            WRITERS[target](part, target, where, replace(options, split_name=name), summary, False, None, ())

        splits.write_split(dataset, target, output, options.split, options.seed, write_one, summary)
    else:
        WRITERS[target](dataset, target, output, options, summary, single, tick, targets)
    if target not in POLYGON_TARGETS:
        summary.counts.pop(KEYHOLES, None)  # traced while reading, but no polygon was written
