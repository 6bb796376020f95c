"""labelme JSON (read): shapes → label masks, instance masks and COCO annotations.

A labelme file has ``imageHeight``, ``imageWidth``, ``imagePath`` and ``shapes``, each with
``label``, ``points`` (pixel coordinates, image corner at 0,0 — the COCO convention),
``shape_type`` and an optional ``group_id``. Shapes with the same label and ``group_id``
are one object (labelme's convention); shapes without a group id are objects on their own.

* ``polygon`` (≥ 3 points), ``rectangle`` (2 corners) and ``circle`` (centre, a point on the
  rim; written as a polygon of max(12, π/acos(1 − 1/r)) points, as labelme's COCO exporter
  does) become polygons, rasterised like pycocotools.
* ``line``/``linestrip`` (drawn ``line_width`` = 10 px wide) and ``point`` (a disk of radius
  ``point_size`` = 5 px) have no area of their own: they are drawn with labelme's widths and
  counted in the summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Iterator

import numpy as np

from segtools.errors import InputError
from segtools.formats import Summary
from segtools.formats import polygons as polylib
from segtools.formats import rle as rlelib
from segtools.formats import rle_regions
from segtools.formats.records import Categories, Record
from segtools.io.jsondata import check_type, get_field, get_int

LINE_WIDTH = 10
POINT_SIZE = 5
SHAPES = ("polygon", "rectangle", "circle", "line", "linestrip", "point", "mask")


@dataclass
class LabelmeObject:
    """One object: its pixels as sorted, disjoint column-major ``[start, end)`` runs in the
    H×W image, their COCO ``rle``/``area``/``bbox``, and its polygons."""

    label: str
    starts: np.ndarray
    ends: np.ndarray
    size: tuple[int, int]     # (height, width)
    polygons: list            # N×2 arrays when the shapes were areas, else traced outlines
    rle: dict
    area: int
    bbox: list

    @property
    def mask(self) -> np.ndarray:
        """H×W uint8 of the object (made on demand: a file may hold thousands of objects)."""
        height, width = self.size
        flat = np.zeros(height * width, np.uint8)
        flat[polylib.runs_to_indices(self.starts, self.ends)] = 1
        return flat.reshape(width, height).T


def load(source, name: str | None = None) -> dict:
    """Parse a labelme JSON (path, ``-`` or bytes) and check its shape list."""
    from segtools.formats import load_json
    from segtools.io.streams import describe

    name = name or describe(source)
    return check(load_json(source, name), name)


def check(data, name: str) -> dict:
    """``data`` when it is a labelme document: ``shapes`` a list of objects, ``imagePath`` a name."""
    from segtools.formats.paths import check_name

    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
        raise InputError(f"{name}: not a labelme file (no 'shapes' list)")
    for index, shape in enumerate(data["shapes"]):
        where = f"{name}: shapes[{index}]"
        check_type(shape, dict, where)
        get_field(shape, "label", where, str)
        get_field(shape, "shape_type", where, str, None)
        get_field(shape, "points", where, list)
        get_field(shape, "group_id", where, (int, str), None)
    if data.get("imagePath") is not None:
        check_name(data["imagePath"], f"{name}: 'imagePath'")
    return data


def image_size(data: dict, name: str) -> tuple[int, int]:
    """``(height, width)`` the file declares, checked against the pixel budget."""
    from segtools.io.limits import check_size

    if data.get("imageHeight") is None or data.get("imageWidth") is None:
        raise InputError(f"{name}: no imageHeight/imageWidth; give the image (--image) to read its size")
    height, width = get_int(data, "imageHeight", name, 1), get_int(data, "imageWidth", name, 1)
    check_size(width, height, name)
    return height, width


def _points(shape: dict, where: str, height: int, width: int) -> np.ndarray:
    """The shape's points as K×2 floats, numbers only, near the image (K may be < 3)."""
    points = shape.get("points", [])
    if not points:
        return np.zeros((0, 2))
    if any(not isinstance(p, list) or len(p) != 2 for p in points):
        raise InputError(f"{where}: 'points' must be a list of [x, y] pairs")
    padded = points + [points[-1]] * max(0, 3 - len(points))  # as_points wants a polygon
    return polylib.as_points(padded, where, height, width)[: len(points)]


def shape_polygon(shape: dict, name: str, height: int, width: int) -> np.ndarray | None:
    """The polygon of an area shape, or None for line/point shapes."""
    kind = shape.get("shape_type") or "polygon"
    where = f"{name}: shape {shape.get('label')!r} ({kind})"
    if kind not in SHAPES:
        raise InputError(f"{where}: unknown shape_type (known: {', '.join(SHAPES)})")
    points = _points(shape, where, height, width)
    if kind == "polygon":
        return polylib.as_points(points, where)
    if kind == "rectangle":
        if len(points) != 2:
            raise InputError(f"{where}: a rectangle has 2 points, this one {len(points)}")
        (x0, y0), (x1, y1) = points.min(0), points.max(0)
        return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    if kind == "circle":
        if len(points) != 2:
            raise InputError(f"{where}: a circle has 2 points (centre, rim), this one {len(points)}")
        radius = float(np.hypot(*(points[1] - points[0])))
        n = max(int(np.pi / np.arccos(1 - 1 / radius)), 12) if radius > 1 else 12
        angle = 2 * np.pi * np.arange(n) / n
        return polylib.check_bounds(points[0] + radius * np.stack([np.cos(angle), np.sin(angle)], axis=1),
                                    height, width, where)
    if len(points) == 0:
        raise InputError(f"{where}: no points")
    return None


def _crop_box(points: np.ndarray, height: int, width: int, reach: int) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` of the points' box grown by ``reach`` px, inside the image."""
    x0, y0 = (max(0, int(np.floor(v)) - reach) for v in points.min(0))
    x1 = min(width, max(0, int(np.ceil(points[:, 0].max())) + reach))
    y1 = min(height, max(0, int(np.ceil(points[:, 1].max())) + reach))
    return y0, x0, max(y0, y1), max(x0, x1)


def _draw(shape: dict, points: np.ndarray, height: int, width: int) -> tuple[np.ndarray, int, int]:
    """(drawn crop, top, left): a line or point shape drawn inside its own bounding box.

    Drawn as labelme's ``shape_to_mask`` draws it — Pillow's ``ImageDraw.line`` of width
    :data:`LINE_WIDTH` through the points, or ``ImageDraw.ellipse`` of radius
    :data:`POINT_SIZE` around the point — on a crop shifted by whole pixels, so the pixels
    are labelme's own.
    """
    from PIL import Image, ImageDraw

    top, left, bottom, right = _crop_box(points, height, width, max(LINE_WIDTH, 2 * POINT_SIZE) + 2)
    if bottom <= top or right <= left:
        return np.zeros((0, 0), np.uint8), top, left
    canvas = Image.new("L", (right - left, bottom - top), 0)
    draw = ImageDraw.Draw(canvas)
    shifted = [(float(x) - left, float(y) - top) for x, y in points]
    if shape.get("shape_type") == "point":
        (cx, cy), r = shifted[0], POINT_SIZE
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=1, fill=1)
    else:
        draw.line(xy=shifted, fill=1, width=LINE_WIDTH)
    return np.asarray(canvas, np.uint8), top, left


#: Largest base64 text of one ``mask`` shape read (a 16k × 16k bitmap compresses far below it).
MAX_MASK_CHARS = 256 << 20


def _bitmap(shape: dict, points: np.ndarray, where: str, height: int, width: int) -> tuple[np.ndarray, int, int]:
    """(crop, top, left) of a labelme ≥ 5.3 ``mask`` shape: a PNG (base64) of the box between
    its two points, both ends included, as labelme pastes it (``mask[y1:y2+1, x1:x2+1]``)."""
    import base64
    import binascii

    from segtools.io.masks import read_label_mask

    encoded = shape.get("mask")
    if not isinstance(encoded, str) or not encoded:
        raise InputError(f"{where}: a mask shape needs its 'mask' (a base64 PNG)")
    if len(encoded) > MAX_MASK_CHARS:
        raise InputError(f"{where}: 'mask' is {len(encoded):,} characters (at most {MAX_MASK_CHARS:,})")
    if len(points) != 2:
        raise InputError(f"{where}: a mask shape has 2 points (its box corners), this one {len(points)}")
    try:
        png = base64.b64decode(encoded, validate=False)
    except (binascii.Error, ValueError):
        raise InputError(f"{where}: 'mask' is not base64") from None
    bits = read_label_mask(png, name=f"{where}: mask").labels != 0
    (x1, y1), (x2, y2) = np.asarray(points).astype(int)  # as labelme truncates them
    if bits.shape != (y2 - y1 + 1, x2 - x1 + 1):
        raise InputError(f"{where}: the mask is {bits.shape[1]}×{bits.shape[0]} but its box "
                         f"{x1},{y1}..{x2},{y2} is {x2 - x1 + 1}×{y2 - y1 + 1}")
    top, left = max(0, y1), max(0, x1)
    crop = bits[top - y1: max(top, min(height, y2 + 1)) - y1, left - x1: max(left, min(width, x2 + 1)) - x1]
    return crop.astype(np.uint8), top, left


def objects(data: dict, name: str = "labelme", summary: Summary | None = None,
            skip: tuple[str, ...] = ("_background_",), strict: bool = False) -> tuple[tuple[int, int], list[LabelmeObject]]:
    """Image size and the objects of a labelme file, in file order.

    Each shape is rasterised inside its own bounding box (as runs), so thousands of small
    shapes on a large image cost what their pixels cost, not thousands of full images.
    """
    check(data, name)
    height, width = image_size(data, name)
    groups: dict = {}
    order = []
    for index, shape in enumerate(data["shapes"]):
        label = shape["label"].strip()
        if not label:
            raise InputError(f"{name}: shape {index} has no label")
        if label in skip:
            continue
        gid = shape.get("group_id")
        key = (label, gid) if gid is not None else (label, f"#{index}")
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(shape)
    polygons: list[list] = [[] for _ in order]
    areas, area_owner, drawn = [], [], []  # area shapes rasterise together, in one pass
    for number, key in enumerate(order):
        for shape in groups[key]:
            polygon = shape_polygon(shape, name, height, width)
            if polygon is not None:
                _check_inside(polygon, height, width, name, summary, strict)
                polygons[number].append(polygon)
                areas.append(polygon)
                area_owner.append(number)
                continue
            kind = shape.get("shape_type")
            where = f"{name}: shape {shape['label']!r} ({kind})"
            points = _points(shape, where, height, width)
            if kind == "mask":
                crop, top, left = _bitmap(shape, points, where, height, width)
                if summary is not None:
                    summary.add("mask shapes (bitmaps) read")
            else:
                crop, top, left = _draw(shape, points, height, width)
                if summary is not None:
                    summary.add(f"{kind} shapes drawn as labelme draws them "
                                f"({LINE_WIDTH if kind != 'point' else 2 * POINT_SIZE} px wide)")
            run_starts, run_ends = rlelib.crop_runs(crop, top, left, height)
            drawn.append((np.full(run_starts.size, number), run_starts, run_ends))
            offset = np.array([left, top], np.float64)
            polygons[number] += [p + offset for p in polylib.mask_to_polygons(crop).polygons]
    which, starts, ends = polylib.polygon_runs_each(areas, height, width)
    owner = np.concatenate([np.asarray(area_owner, np.int64)[which]] + [d[0] for d in drawn]).astype(np.int64)
    starts = np.concatenate([starts] + [d[1] for d in drawn]).astype(np.int64)
    ends = np.concatenate([ends] + [d[2] for d in drawn]).astype(np.int64)
    # the union of each object's runs: shifted apart by object, merged, shifted back
    total = height * width
    shift = owner * (total + 1)
    starts, ends = rlelib.union_runs(starts + shift, ends + shift)
    owner = starts // (total + 1)
    starts, ends = starts - owner * (total + 1), ends - owner * (total + 1)
    numbers, rles, pixel_areas, boxes = rle_regions.encode_run_groups(owner, starts, ends, height, width)
    encoded = dict(zip(numbers.tolist(), zip(rles, pixel_areas.tolist(), boxes)))
    bounds = np.searchsorted(owner, np.arange(len(order) + 1))
    empty = ({"size": [height, width], "counts": rlelib.counts_to_string([total])}, 0, [0.0, 0.0, 0.0, 0.0])
    result = []
    for number, key in enumerate(order):
        rle, area, bbox = encoded.get(number, empty)
        a, b = bounds[number], bounds[number + 1]
        result.append(LabelmeObject(key[0], starts[a:b], ends[a:b], (height, width), polygons[number], rle, area, bbox))
    return (height, width), result


def _check_inside(polygon: np.ndarray, height: int, width: int, name: str, summary: Summary | None,
                  strict: bool = False) -> None:
    outside = (polygon < 0).any() or (polygon[:, 0] > width).any() or (polygon[:, 1] > height).any()
    if outside and strict:
        raise InputError(f"{name}: a shape reaches outside the {width}×{height} image (pass without --strict to clip)")
    if outside and summary is not None:
        summary.add("shapes reaching outside the image (clipped when rasterised)", lossy=True)


IGNORED_LABELS = ("_background_", "__ignore__")


def scan_labels(json_items, data: dict | None = None, skip: tuple[str, ...] = ()) -> list[str]:
    """Every label of a batch of labelme files, sorted (as labelme's ``labelme_json_to_dataset``
    numbers them), without ``_background_``/``__ignore__`` and ``skip``: one class list for the
    whole batch, fixed before any mask is written."""
    labels: set[str] = set()
    for item in json_items:
        document = check(data, item.path) if data is not None and len(json_items) == 1 else load(item.path)
        labels.update(shape["label"].strip() for shape in document["shapes"])
    return sorted(label for label in labels if label and label not in IGNORED_LABELS + tuple(skip))


def photo_name(image_path: str | None) -> str | None:
    r"""A labelme ``imagePath`` as a record's ``file_name``: Windows separators as ``/``, and
    a path that climbs out of the annotation folder (``..\\images\\x.jpg``, as labelme
    writes beside a sibling photo folder) or is absolute by its name alone.

    >>> photo_name("..\\images\\x.jpg"), photo_name("sub/x.jpg"), photo_name("C:\\data\\x.png")
    ('x.jpg', 'sub/x.jpg', 'x.png')
    """
    if not image_path:
        return None
    posix = PurePosixPath(image_path.replace("\\", "/"))
    if ".." in posix.parts or posix.is_absolute() or (posix.parts and posix.parts[0].endswith(":")):
        return posix.name
    return str(posix)


def read_labelme(json_items, categories: Categories, summary: Summary, strict: bool = False,
                 data: dict | None = None, skip: tuple[str, ...] = ()) -> Iterator[Record]:
    """Records from labelme files; ``data``: the parsed document of a single input already
    read (stdin can be read only once). Shapes labelled in ``skip`` are left out (counted)."""
    from segtools.formats import polygons as polylib

    next_id = 1
    for index, item in enumerate(json_items):
        document = data if data is not None and len(json_items) == 1 else load(item.path)
        if skip:
            skipped = sum(1 for shape in document["shapes"] if shape["label"].strip() in skip)
            summary.add("objects of skipped classes left out", skipped)
        (height, width), shapes = objects(document, item.path, summary, IGNORED_LABELS + tuple(skip), strict)
        annotations = []
        for obj in shapes:
            annotations.append({"id": next_id, "image_id": index + 1, "category_id": categories.id_of_name(obj.label, f"{item.path}: "),
                                "segmentation": [polylib.flat(p, 3) for p in obj.polygons],
                                "area": obj.area, "bbox": obj.bbox, "iscrowd": 0})
            next_id += 1
        file_name = photo_name(document.get("imagePath")) or str(PurePosixPath(item.rel).with_suffix(".jpg"))
        yield Record({"id": index + 1, "file_name": file_name, "height": height, "width": width}, annotations)
