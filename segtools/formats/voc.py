"""Pascal VOC: XML box annotations, and SegmentationObject masks with their 255 borders.

Boxes in the XML are 1-based, inclusive pixel indices (see :mod:`segtools.formats.boxes`).
``SegmentationClass`` PNGs are ordinary palette label masks (read them with
:func:`segtools.io.masks.read_label_mask`); ``SegmentationObject`` PNGs hold instance numbers
1..N, 0 for background and 255 for the "void" border, and pair with the class mask: an
object's class is the majority class under it (:func:`object_classes`, one vote for all).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence
from xml.sax.saxutils import escape

import numpy as np

from segtools.errors import InputError
from segtools.formats import Summary
from segtools.formats import boxes as boxlib
from segtools.formats.records import Categories, Record, Tick, stem_path


@dataclass
class VocObject:
    name: str
    box: tuple[float, float, float, float]  # VOC xmin, ymin, xmax, ymax
    difficult: bool = False
    truncated: bool = False
    pose: str = "Unspecified"


@dataclass
class VocAnnotation:
    filename: str
    width: int | None  # None: the file has no <size>
    height: int | None
    depth: int = 3
    objects: list[VocObject] = field(default_factory=list)
    parts: int = 0  # <part> boxes (head, hand, foot of a person): not read


def parse(text: str | bytes, name: str = "VOC XML") -> VocAnnotation:
    """Read one VOC XML annotation; every malformed field is an :class:`InputError`.

    Sizes are checked against the pixel budget (:func:`segtools.io.limits.check_size`)
    and coordinates must be finite numbers.
    """
    from segtools.io.limits import check_size

    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise InputError(f"{name}: not valid XML ({exc})") from None
    except (LookupError, ValueError) as exc:  # an unknown or unsupported encoding declaration
        raise InputError(f"{name}: not readable XML ({exc})") from None
    except RecursionError:
        raise InputError(f"{name}: not valid XML (nested too deeply)") from None
    if root.tag != "annotation":
        raise InputError(f"{name}: not a Pascal VOC annotation (root <{root.tag}>, expected <annotation>)")

    def number(node, tag, integer: bool = False, default=None):
        text_value = node.findtext(tag)
        if text_value is None and default is not None:
            return default
        try:
            value = float(text_value)
        except (TypeError, ValueError):
            raise InputError(f"{name}: <{tag}> missing or not a number") from None
        if not math.isfinite(value):
            raise InputError(f"{name}: <{tag}> {text_value.strip()[:40]} is not a finite number")
        if integer:
            if not value.is_integer():
                raise InputError(f"{name}: <{tag}> must be an integer, got {text_value.strip()[:40]}")
            return int(value)
        return value

    size = root.find("size")
    width = height = None
    if size is not None and size.findtext("width") is not None and size.findtext("height") is not None:
        width, height = number(size, "width", True), number(size, "height", True)
    if width == 0 and height == 0:  # some exporters write 0 × 0 for "unknown"
        width = height = None
    if width is not None:
        width, height = check_size(width, height, name)
    filename = root.findtext("filename", "").strip()
    if filename:
        from segtools.formats.paths import check_name

        check_name(filename, f"{name}: <filename>")
    ann = VocAnnotation(filename, width, height, number(size, "depth", True, 3) if size is not None else 3)
    for obj in root.findall("object"):
        ann.parts += len(obj.findall("part"))
        box = obj.find("bndbox")
        label = (obj.findtext("name") or "").strip()
        if box is None or not label:
            raise InputError(f"{name}: an <object> without <name> or <bndbox>")
        coords = tuple(number(box, t) for t in ("xmin", "ymin", "xmax", "ymax"))
        ann.objects.append(VocObject(label, coords, (obj.findtext("difficult") or "0").strip() == "1",
                                     (obj.findtext("truncated") or "0").strip() == "1",
                                     obj.findtext("pose") or "Unspecified"))
    return ann


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def to_xml(ann: VocAnnotation, folder: str = "") -> str:
    """VOC XML text (as the devkit writes it; non-integer coordinates keep their decimals)."""
    parts = ["<annotation>", f"\t<folder>{escape(folder)}</folder>", f"\t<filename>{escape(ann.filename)}</filename>",
             "\t<size>", f"\t\t<width>{ann.width}</width>", f"\t\t<height>{ann.height}</height>",
             f"\t\t<depth>{ann.depth}</depth>", "\t</size>", "\t<segmented>0</segmented>"]
    for obj in ann.objects:
        parts += ["\t<object>", f"\t\t<name>{escape(obj.name)}</name>", f"\t\t<pose>{escape(obj.pose)}</pose>",
                  f"\t\t<truncated>{int(obj.truncated)}</truncated>", f"\t\t<difficult>{int(obj.difficult)}</difficult>",
                  "\t\t<bndbox>"]
        parts += [f"\t\t\t<{t}>{_fmt(v)}</{t}>" for t, v in zip(("xmin", "ymin", "xmax", "ymax"), obj.box)]
        parts += ["\t\t</bndbox>", "\t</object>"]
    parts.append("</annotation>")
    return "\n".join(parts) + "\n"


ORIGINS = (0, 1)


def boxes_to_coco(boxes, origin: int = 1) -> np.ndarray:
    """VOC boxes → COCO: ``origin`` 1 is the devkit's 1-based inclusive pixel indices; 0 is
    corner coordinates from 0 (``xmin = x``, ``xmax = x + w``), as Roboflow and labelme write."""
    if origin == 1:
        return boxlib.voc_to_coco(boxes)
    return boxlib.xyxy_to_coco(boxes)


def boxes_from_coco(boxes, origin: int = 1) -> np.ndarray:
    return boxlib.coco_to_voc(boxes) if origin == 1 else boxlib.coco_to_xyxy(boxes)


def from_coco(image: dict, annotations, names_by_id: dict[int, str], origin: int = 1,
              summary: Summary | None = None, strict: bool = False) -> VocAnnotation:
    """VOC annotation of one COCO image's boxes (clipped to the image, counted)."""
    width, height = int(image["width"]), int(image["height"])
    ann = VocAnnotation(str(image.get("file_name", "")), width, height)
    missing = [a.get("id") for a in annotations if "bbox" not in a]
    if missing:
        raise InputError(f"{image.get('file_name')}: annotation {missing[0]} has no 'bbox' for the VOC box")
    if annotations:
        clipped, changed = boxlib.clip_coco([a["bbox"] for a in annotations], width, height)
        if changed.any():
            if strict:
                raise InputError(f"{image.get('file_name')}: a box reaches outside the image ({width}×{height}; "
                                 "pass without --strict to clip it)")
            if summary is not None:
                summary.add("boxes outside the image (clipped)", int(changed.sum()), lossy=True)
        for a, box in zip(annotations, boxes_from_coco(clipped, origin)):
            if a["category_id"] not in names_by_id:
                raise InputError(f"annotation {a.get('id')}: unknown category_id {a['category_id']!r}")
            ann.objects.append(VocObject(names_by_id[a["category_id"]], tuple(float(v) for v in box),
                                         difficult=bool(a.get("iscrowd", 0))))
    return ann


def guess_origin(annotations: Iterable[VocAnnotation]) -> int:
    """0 when a box coordinate below 1 occurs (impossible in the devkit's 1-based indices), else 1."""
    for ann in annotations:
        for obj in ann.objects:
            if min(obj.box[0], obj.box[1]) < 1:
                return 0
    return 1


def read_voc(xml_items, categories: Categories, summary: Summary, data: bytes | None = None,
             origin: int | None = None, sizes: dict | None = None, image_size: tuple[int, int] | None = None,
             strict: bool = False, skip: Sequence[str] = ()) -> Iterator[Record]:
    """Records from VOC XML files; ``data``: the bytes of a single input already read (stdin).

    ``origin``: 1 (the devkit), 0 (corner coordinates) or None: 0 when any box of the set has a
    coordinate below 1 (the files are read twice, once to decide). A file without ``<size>``
    takes its size from ``sizes`` (``stem → (rel, height, width)`` of the photos) or
    ``image_size``. Boxes reaching outside the image are clipped and counted (``strict``: an
    error). Objects whose name is in ``skip`` are left out (counted).
    """
    from pathlib import PurePosixPath

    from segtools.io.streams import read_bytes

    def parsed():
        for item in xml_items:
            yield item, parse(data if data is not None and len(xml_items) == 1 else read_bytes(item.path), item.path)

    if origin is None:
        origin = guess_origin(ann for _, ann in parsed())
        summary.add(f"VOC boxes read as {'0-based corner coordinates (a coordinate below 1 found)' if origin == 0 else '1-based (the devkit)'}")
    next_id = 1
    for index, (item, ann) in enumerate(parsed()):
        if ann.width is None:
            stem = str(PurePosixPath(ann.filename or item.rel).with_suffix(""))
            found = (sizes or {}).get(stem) or (sizes or {}).get(PurePosixPath(stem).name)
            if found is not None:
                ann.height, ann.width = found[1], found[2]
            elif image_size is not None:
                ann.height, ann.width = image_size
            else:
                raise InputError(f"{item.path}: no <size> (width, height); give the photos' folder (images) "
                                 "or image_size=HEIGHTxWIDTH")
            summary.add("VOC files without <size> (size from the photo or the size given)")
        summary.add("VOC <part> boxes left out (head, hand, foot: parts of an object)", ann.parts, lossy=True)
        kept = [obj for obj in ann.objects if obj.name not in skip]
        summary.add("objects of skipped classes left out", len(ann.objects) - len(kept))
        annotations = []
        if kept:
            boxes = boxes_to_coco([obj.box for obj in kept], origin)
            clipped, changed = boxlib.clip_coco(boxes, ann.width, ann.height)
            if changed.any():
                if strict:
                    raise InputError(f"{item.path}: a box reaches outside the image ({ann.width}×{ann.height}; "
                                     "pass without --strict to clip it)")
                summary.add("boxes outside the image (clipped)", int(changed.sum()), lossy=True)
            for obj, box in zip(kept, clipped):
                annotations.append({"id": next_id, "image_id": index + 1,
                                    "category_id": categories.id_of_name(obj.name, f"{item.path}: "),
                                    "segmentation": [], "area": float(box[2] * box[3]),
                                    "bbox": [float(v) for v in box], "iscrowd": 0})
                summary.add("VOC 'difficult' flags dropped", int(obj.difficult), lossy=True)
                next_id += 1
        yield Record({"id": index + 1, "file_name": ann.filename or item.rel, "height": ann.height,
                      "width": ann.width}, annotations)


def write_voc(records: Iterable[Record], categories: Categories, out_dir, summary: Summary, tick: Tick | None = None,
              origin: int = 1, strict: bool = False) -> None:
    """``Annotations/<name>.xml`` (boxes) under ``out_dir``."""
    from segtools.io.batch import check_output_dir
    from segtools.io.streams import write_bytes

    root = check_output_dir(out_dir)
    for i, record in enumerate(records):
        masks = sum(1 for a in record.annotations if a.get("segmentation"))
        summary.add("masks/polygons reduced to boxes (VOC XML)", masks, lossy=True)
        xml = to_xml(from_coco(record.image, record.annotations, categories.by_id, origin, summary, strict))
        write_bytes(stem_path(root / "Annotations", record.image["file_name"], ".xml"), xml.encode())
        tick and tick(i)


# ---------------------------------------------------------------- SegmentationObject + SegmentationClass


def object_classes(class_mask: np.ndarray, object_mask: np.ndarray, void: int = 255) -> dict[int, int]:
    """``object number → majority class`` of a VOC SegmentationObject/SegmentationClass pair."""
    class_mask, object_mask = np.asarray(class_mask), np.asarray(object_mask)
    if class_mask.shape != object_mask.shape:
        raise InputError(f"SegmentationClass {class_mask.shape} and SegmentationObject {object_mask.shape} sizes differ")
    valid = (object_mask != 0) & (object_mask != void) & (class_mask != void)
    objects, classes = object_mask[valid].astype(np.int64), class_mask[valid].astype(np.int64)
    if objects.size == 0:
        return {}
    width = int(classes.max()) + 1
    votes = np.bincount(objects * width + classes, minlength=(int(objects.max()) + 1) * width).reshape(-1, width)
    present = np.flatnonzero(votes.sum(1))
    return dict(zip(present.tolist(), votes[present].argmax(1).tolist()))


def segmentation_annotations(class_mask: np.ndarray, object_mask: np.ndarray, mode: str = "polygon", epsilon: float = 0.0,
                    summary: Summary | None = None, holes: str = "bridge", void: int = 255) -> list[dict]:
    """Annotations (``category_id = class + 1``) of a VOC object/class pair; void and 0 are no object."""
    from segtools.formats.instances import regions_to_annotations

    classes = object_classes(class_mask, object_mask, void)
    index = np.where(np.asarray(object_mask) == void, 0, object_mask)
    return regions_to_annotations(index, [(n, c + 1, 0) for n, c in classes.items()], mode, epsilon, summary, holes)


def class_names() -> tuple[str, ...]:
    """The 21 Pascal VOC class names (label = index; 0 background)."""
    from segtools.io.presets import get_preset

    return tuple(get_preset("voc").names)


def segmentation_pairs(specs: Sequence[str]) -> list:
    """(SegmentationObject item, SegmentationClass item) pairs of a VOC root or its SegmentationObject folder."""
    from segtools.io.batch import expand_inputs, pair_items
    from segtools.io.remote import below, is_folder, is_url

    root = str(specs[0]) if is_url(str(specs[0])) else str(Path(specs[0]))
    objects = below(root, "SegmentationObject") if is_folder(below(root, "SegmentationObject")) else root.rstrip("/")
    parent = objects.rsplit("/", 1)[0] if is_url(objects) else str(Path(objects).parent)
    classes = below(parent, "SegmentationClass")
    if len(specs) != 1 or not is_folder(objects) or not is_folder(classes):
        raise InputError(f"{specs[0]}: VOC segmentation needs a folder with SegmentationObject/ and SegmentationClass/")
    return pair_items(expand_inputs([objects], extensions=(".png",)), expand_inputs([classes], extensions=(".png",)),
                      names=("SegmentationObject mask", "SegmentationClass mask")).pairs


def labelmap_beside(specs: Sequence[str]) -> Path | None:
    """The ``labelmap.txt`` of a VOC segmentation folder (CVAT's and Datumaro's "Segmentation
    mask" exports write one at the root), or None; storage URLs have none."""
    from segtools.io.remote import is_url

    if len(specs) != 1 or is_url(str(specs[0])):
        return None
    root = Path(specs[0])
    for folder in (root, root.parent) if root.name == "SegmentationObject" else (root,):
        if (folder / "labelmap.txt").is_file():
            return folder / "labelmap.txt"
    return None


def object_colours():
    """The colour map of RGB ``SegmentationObject`` PNGs: object ``i`` in VOC colour ``i``, the
    255 border in (224, 224, 192) — the devkit's 256-entry map, whatever the class palette."""
    from segtools.io.meta import ClassMeta
    from segtools.io.presets import voc_colormap

    return ClassMeta(palette=tuple(voc_colormap(256)), ignore_index=255)


def read_segmentation(pairs, categories: Categories, summary: Summary, mode: str = "polygon", epsilon: float = 0.0,
                      holes: str = "bridge", image_names: dict[str, str] | None = None, tick: Tick | None = None,
                      colours=None) -> Iterator[Record]:
    """Records from ``(SegmentationObject item, SegmentationClass item)`` pairs.

    ``colours``: the class palette (``ClassMeta``) for RGB ``SegmentationClass`` PNGs; with
    it, RGB ``SegmentationObject`` PNGs are read through :func:`object_colours`.
    """
    from segtools.io.batch import pairing_key
    from segtools.io.masks import read_label_mask

    next_id = 1
    for index, (object_item, class_item) in enumerate(pairs):
        objects = read_label_mask(object_item.path, object_colours() if colours is not None else None).labels
        classes = read_label_mask(class_item.path, colours).labels
        annotations = segmentation_annotations(classes, objects, mode, epsilon, summary, holes)
        for ann in annotations:
            categories.see(ann["category_id"], f"{class_item.path}: ")
            ann["id"], ann["image_id"] = next_id, index + 1
            next_id += 1
        summary.add("VOC objects", len(annotations))
        key = pairing_key(object_item.rel)
        file_name = image_names.get(key) if image_names is not None else key + ".jpg"
        if file_name is None:
            raise InputError(f"{object_item.path}: no photo with a matching name in the images folder")
        height, width = objects.shape
        tick and tick(index)
        yield Record({"id": index + 1, "file_name": file_name, "height": int(height), "width": int(width)}, annotations)
