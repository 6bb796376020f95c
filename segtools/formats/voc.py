"""Pascal VOC: XML box annotations, and SegmentationObject masks with their 255 borders.

Boxes in the XML are 1-based, inclusive pixel indices (see :mod:`segtools.formats.boxes`).
``SegmentationClass`` PNGs are ordinary palette label masks (read them with
:func:`segtools.io.masks.read_label_mask`); ``SegmentationObject`` PNGs hold instance numbers
1..N, 0 for background and 255 for the "void" border, and pair with the class mask.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

import numpy as np

from segtools.errors import InputError
from segtools.formats import boxes as boxlib


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
    width: int
    height: int
    depth: int = 3
    objects: list[VocObject] = field(default_factory=list)


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
    if size is None:
        raise InputError(f"{name}: no <size> (width, height)")
    width, height = check_size(number(size, "width", True), number(size, "height", True), name)
    filename = root.findtext("filename", "").strip()
    if filename:
        from segtools.formats.paths import check_name

        check_name(filename, f"{name}: <filename>")
    ann = VocAnnotation(filename, width, height, number(size, "depth", True, 3))
    for obj in root.findall("object"):
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


def from_coco(image: dict, annotations, names_by_id: dict[int, str]) -> VocAnnotation:
    """VOC annotation of one COCO image's boxes."""
    ann = VocAnnotation(str(image.get("file_name", "")), int(image["width"]), int(image["height"]))
    missing = [a.get("id") for a in annotations if "bbox" not in a]
    if missing:
        raise InputError(f"{image.get('file_name')}: annotation {missing[0]} has no 'bbox' for the VOC box")
    if annotations:
        voc_boxes = boxlib.coco_to_voc([a["bbox"] for a in annotations])
        for a, box in zip(annotations, voc_boxes):
            if a["category_id"] not in names_by_id:
                raise InputError(f"annotation {a.get('id')}: unknown category_id {a['category_id']!r}")
            ann.objects.append(VocObject(names_by_id[a["category_id"]], tuple(float(v) for v in box),
                                         difficult=bool(a.get("iscrowd", 0))))
    return ann


def objects_to_instances(class_mask: np.ndarray, object_mask: np.ndarray, void: int = 255) -> list[tuple[int, np.ndarray]]:
    """``(class, binary mask)`` per object of a SegmentationObject/SegmentationClass pair.

    Each object's class is the majority class under it (VOC masks agree exactly; the 255
    border is excluded).
    """
    if class_mask.shape != object_mask.shape:
        raise InputError(f"SegmentationClass {class_mask.shape} and SegmentationObject {object_mask.shape} sizes differ")
    objects = []
    for number in np.unique(object_mask):
        if number in (0, void):
            continue
        inside = object_mask == number
        classes = class_mask[inside]
        classes = classes[classes != void]
        if classes.size == 0:
            continue
        objects.append((int(np.bincount(classes).argmax()), inside.astype(np.uint8)))
    return objects
