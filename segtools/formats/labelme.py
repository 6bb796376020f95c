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

import numpy as np

from segtools.errors import InputError
from segtools.formats import Summary
from segtools.formats import polygons as polylib

LINE_WIDTH = 10
POINT_SIZE = 5
SHAPES = ("polygon", "rectangle", "circle", "line", "linestrip", "point")


@dataclass
class LabelmeObject:
    label: str
    mask: np.ndarray          # H×W uint8
    polygons: list            # N×2 arrays when the shapes were areas, else traced outlines


def load(source, name: str | None = None) -> dict:
    from segtools.formats import load_json
    from segtools.io.streams import describe

    name = name or describe(source)
    data = load_json(source, name)
    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
        raise InputError(f"{name}: not a labelme file (no 'shapes' list)")
    return data


def image_size(data: dict, name: str) -> tuple[int, int]:
    try:
        return int(data["imageHeight"]), int(data["imageWidth"])
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{name}: no imageHeight/imageWidth; give the image (--image) to read its size") from None


def shape_polygon(shape: dict, name: str) -> np.ndarray | None:
    """The polygon of an area shape, or None for line/point shapes."""
    kind = shape.get("shape_type") or "polygon"
    points = np.asarray(shape.get("points", []), np.float64).reshape(-1, 2)
    where = f"{name}: shape {shape.get('label')!r} ({kind})"
    if kind not in SHAPES:
        raise InputError(f"{where}: unknown shape_type (known: {', '.join(SHAPES)})")
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
        return points[0] + radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    if len(points) == 0:
        raise InputError(f"{where}: no points")
    return None


def _draw(shape: dict, height: int, width: int) -> np.ndarray:
    import cv2

    kind = shape.get("shape_type")
    points = np.asarray(shape["points"], np.float64).reshape(-1, 2)
    mask = np.zeros((height, width), np.uint8)
    # cv2 draws at pixel centres: shift COCO corner coordinates by -0.5, fixed-point 1/16 px
    pts = np.round((points - 0.5) * 16).astype(np.int32)
    if kind == "point":
        cv2.circle(mask, tuple(int(v) for v in pts[0]), POINT_SIZE * 16, 1, -1, cv2.LINE_8, 4)
    else:
        cv2.polylines(mask, [pts.reshape(-1, 1, 2)], False, 1, LINE_WIDTH, cv2.LINE_8, 4)
    return mask


def objects(data: dict, name: str = "labelme", summary: Summary | None = None,
            skip: tuple[str, ...] = ("_background_",), strict: bool = False) -> tuple[tuple[int, int], list[LabelmeObject]]:
    """Image size and the objects of a labelme file, in file order."""
    height, width = image_size(data, name)
    groups: dict = {}
    order = []
    for index, shape in enumerate(data["shapes"]):
        label = str(shape.get("label", "")).strip()
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
    result = []
    for key in order:
        polygons, mask = [], np.zeros((height, width), np.uint8)
        for shape in groups[key]:
            polygon = shape_polygon(shape, name)
            if polygon is not None:
                _check_inside(polygon, height, width, name, summary, strict)
                polygons.append(polygon)
                mask |= polylib.polygons_to_mask([polygon], height, width)
            else:
                if summary is not None:
                    summary.add(f"{shape.get('shape_type')} shapes drawn {LINE_WIDTH if shape.get('shape_type') != 'point' else 2 * POINT_SIZE} px wide")
                drawn = _draw(shape, height, width)
                mask |= drawn
                polygons += polylib.mask_to_polygons(drawn).polygons
        result.append(LabelmeObject(key[0], mask, polygons))
    return (height, width), result


def _check_inside(polygon: np.ndarray, height: int, width: int, name: str, summary: Summary | None,
                  strict: bool = False) -> None:
    outside = (polygon < 0).any() or (polygon[:, 0] > width).any() or (polygon[:, 1] > height).any()
    if outside and strict:
        raise InputError(f"{name}: a shape reaches outside the {width}×{height} image (pass without --strict to clip)")
    if outside and summary is not None:
        summary.add("shapes reaching outside the image (clipped when rasterised)", lossy=True)
