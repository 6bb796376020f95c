"""Polygons made fit for one-ring targets (YOLO-seg): clipped to the image, parts united.

* :func:`clip_to_image` cuts a polygon at the image border (Sutherland–Hodgman against the
  four sides, vectorised per side). Against a convex window it keeps the crossing number of
  every point inside the window, so each in-image pixel is covered exactly as before —
  what clamping vertices to the border does not (a vertex pulled in drags its edges, and
  pixels next to the border are lost or gained).
* :func:`unite_parts` gives the parts of one object as disjoint rings: when two parts
  overlap, joining them into one ring would make the overlap a hole under the even-odd
  rule, so the object's pixels are united and traced again (exact outlines).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from segtools.formats import polygons as polylib
from segtools.formats import rle as rlelib


def _clip_side(points: np.ndarray, axis: int, limit: float, keep_below: bool) -> np.ndarray:
    """One Sutherland–Hodgman pass: the ring ``points`` cut by ``x[axis] <= limit`` (or >=)."""
    value = points[:, axis]
    inside = value <= limit if keep_below else value >= limit
    if inside.all():
        return points
    if not inside.any():
        return points[:0]
    following = np.concatenate([points[1:], points[:1]])
    inside_next = np.concatenate([inside[1:], inside[:1]])
    crossing = points.copy()  # per edge i → i+1 that crosses: where it meets the line
    cuts = inside != inside_next
    start, end = points[cuts], following[cuts]
    t = (limit - start[:, axis]) / (end[:, axis] - start[:, axis])
    crossing[cuts] = start + t[:, None] * (end - start)
    crossing[cuts, axis] = limit
    out = np.empty((2 * len(points), 2))
    out[0::2], out[1::2] = crossing, following  # per edge: [its crossing], [the next vertex]
    keep = np.empty(2 * len(points), bool)
    keep[0::2], keep[1::2] = cuts, inside_next
    return out[keep]


def clip_to_image(points: np.ndarray, width: float, height: float) -> np.ndarray:
    """``points`` (N×2, x y pixels) clipped to ``[0, width] × [0, height]``; may come back
    with fewer than 3 points (the polygon lay outside)."""
    ring = np.asarray(points, np.float64).reshape(-1, 2)
    for axis, limit, below in ((0, 0.0, False), (0, float(width), True), (1, 0.0, False), (1, float(height), True)):
        if len(ring):
            ring = _clip_side(ring, axis, limit, below)
    if len(ring):
        moved = np.any(ring != np.concatenate([ring[-1:], ring[:-1]]), axis=1)  # drop repeated vertices
        ring = ring[moved] if moved.any() else ring[:1]
    return ring


def outside(points: np.ndarray, width: float, height: float) -> bool:
    points = np.asarray(points, np.float64).reshape(-1, 2)
    return bool((points < 0).any() or (points[:, 0] > width).any() or (points[:, 1] > height).any())


def _boxes_apart(parts: Sequence[np.ndarray]) -> bool:
    """True when no two parts' boxes meet (then they share no pixel)."""
    boxes = np.array([[*np.min(p, 0), *np.max(p, 0)] for p in (np.asarray(q, np.float64).reshape(-1, 2) for q in parts)])
    apart = ((boxes[:, None, 2] < boxes[None, :, 0]) | (boxes[None, :, 2] < boxes[:, None, 0]) |
             (boxes[:, None, 3] < boxes[None, :, 1]) | (boxes[None, :, 3] < boxes[:, None, 1]))
    np.fill_diagonal(apart, True)
    return bool(apart.all())


def overlapping(objects: Sequence[Sequence[np.ndarray]], height: int, width: int) -> np.ndarray:
    """For each object (a list of parts), whether two of its parts share a pixel (COCO
    rasterisation). All candidates of an image are rasterised in one pass; objects whose
    parts' boxes are apart are not rasterised at all."""
    result = np.zeros(len(objects), bool)
    candidates = [i for i, parts in enumerate(objects) if len(parts) > 1 and not _boxes_apart(parts)]
    if not candidates:
        return result
    polygons = [p for i in candidates for p in objects[i]]
    owner_of_polygon = np.repeat(np.arange(len(candidates)), [len(objects[i]) for i in candidates])
    which, starts, ends = polylib.polygon_runs_each(polygons, height, width)
    if starts.size == 0:
        return result
    owner = owner_of_polygon[which]
    shift = owner * (height * width + 1)  # objects apart, then one union for all
    united_starts, united_ends = rlelib.union_runs(starts + shift, ends + shift)
    united_owner = united_starts // (height * width + 1)
    total = np.bincount(owner, weights=ends - starts, minlength=len(candidates))
    united = np.bincount(united_owner, weights=united_ends - united_starts, minlength=len(candidates))
    result[np.asarray(candidates)] = total != united
    return result


def parts_overlap(parts: Sequence[np.ndarray], height: int, width: int) -> bool:
    """Whether two of ``parts`` share a pixel (COCO rasterisation)."""
    return bool(overlapping([parts], height, width)[0])


def unite_parts(parts: Sequence[np.ndarray], height: int, width: int, holes: str = "bridge",
                overlap: bool | None = None) -> tuple[list[np.ndarray], bool]:
    """``(parts, united)``: the parts unchanged when no two overlap, else the exact outlines
    of their union (``united`` True). ``overlap``: :func:`overlapping`'s answer, if known."""
    if overlap is None:
        overlap = len(parts) > 1 and parts_overlap(parts, height, width)
    if len(parts) < 2 or not overlap:
        return list(parts), False
    # rasterised in image coordinates (as runs: shifting the vertices would move float
    # roundings on pycocotools' 1/5 px grid), painted and traced inside the object's box
    starts, ends = polylib.polygon_runs(parts, height, width)
    flat = polylib.runs_to_indices(*rlelib.union_runs(starts, ends))
    if flat.size == 0:
        return [], True
    columns, rows = np.divmod(flat, height)
    x0, y0 = int(columns.min()), int(rows.min())
    mask = np.zeros((int(rows.max()) - y0 + 1, int(columns.max()) - x0 + 1), np.uint8)
    mask[rows - y0, columns - x0] = 1
    offset = np.array([x0, y0], np.float64)
    return [p + offset for p in polylib.mask_to_polygons(mask, holes=holes).polygons], True
