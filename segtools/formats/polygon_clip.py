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
    if len(points) == 0:
        return points
    value = points[:, axis]
    inside = value <= limit if keep_below else value >= limit
    following = np.roll(points, -1, axis=0)
    inside_next = np.roll(inside, -1)
    delta = following[:, axis] - value
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(delta != 0, (limit - value) / delta, 0.0)
    crossing = points + t[:, None] * (following - points)
    crossing[:, axis] = limit
    # per edge i → i+1: up to two output points, [crossing, next vertex]
    emit_cross = inside != inside_next
    emit_next = inside_next
    out = np.stack([crossing, following], axis=1).reshape(-1, 2)
    keep = np.stack([emit_cross, emit_next], axis=1).reshape(-1)
    return out[keep]


def clip_to_image(points: np.ndarray, width: float, height: float) -> np.ndarray:
    """``points`` (N×2, x y pixels) clipped to ``[0, width] × [0, height]``; may come back
    with fewer than 3 points (the polygon lay outside)."""
    ring = np.asarray(points, np.float64).reshape(-1, 2)
    for axis, limit, below in ((0, 0.0, False), (0, float(width), True), (1, 0.0, False), (1, float(height), True)):
        ring = _clip_side(ring, axis, limit, below)
    if len(ring):
        moved = np.any(ring != np.roll(ring, 1, axis=0), axis=1)  # drop repeated vertices
        ring = ring[moved] if moved.any() else ring[:1]
    return ring


def outside(points: np.ndarray, width: float, height: float) -> bool:
    points = np.asarray(points, np.float64).reshape(-1, 2)
    return bool((points < 0).any() or (points[:, 0] > width).any() or (points[:, 1] > height).any())


def parts_overlap(parts: Sequence[np.ndarray], height: int, width: int) -> bool:
    """Whether two of ``parts`` share a pixel (COCO rasterisation)."""
    which, starts, ends = polylib.polygon_runs_each(parts, height, width)
    if starts.size == 0:
        return False
    united_starts, united_ends = rlelib.union_runs(starts, ends)
    return int((ends - starts).sum()) != int((united_ends - united_starts).sum())


def unite_parts(parts: Sequence[np.ndarray], height: int, width: int, holes: str = "bridge"
                ) -> tuple[list[np.ndarray], bool]:
    """``(parts, united)``: the parts unchanged when no two overlap, else the exact outlines
    of their union (``united`` True)."""
    if len(parts) < 2 or not parts_overlap(parts, height, width):
        return list(parts), False
    mask = polylib.polygons_to_mask(parts, height, width)
    return polylib.mask_to_polygons(mask, holes=holes).polygons, True
