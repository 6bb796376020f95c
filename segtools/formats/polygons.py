"""Polygons ⇄ masks with COCO's pixel convention, matching pycocotools exactly.

Pixel convention (COCO's, and pycocotools'): pixel ``(column i, row j)`` is the unit square
``[i, i+1] × [j, j+1]``; polygon coordinates are continuous ``x, y`` in pixels with the
image's top-left *corner* at ``(0, 0)``. A pixel belongs to a polygon when its **centre**
``(i + 0.5, j + 0.5)`` is inside it (even-odd rule within one polygon; the polygons of one
object are united).

:func:`polygon_to_counts` is a vectorised re-implementation of pycocotools' ``rleFrPoly``
(what ``frPyObjects`` calls): vertices are scaled by 5 and rounded, every edge is walked
densely on that fine grid, the points where the walk changes column become column
boundaries, and those are sampled back at pixel centres. It reproduces pycocotools' RLE
counts exactly, rounding included (pinned by tests against pycocotools).

:func:`mask_to_polygons` traces the exact outline of the pixel squares (vertices on pixel
corners), so rasterising its polygons gives the mask back pixel for pixel; ``epsilon``
(pixels, Douglas-Peucker) trades exactness for fewer vertices. Holes are kept by cutting a
zero-width "keyhole" bridge from the outer ring to each hole: the bridge is walked once in
each direction, so under the even-odd rule it covers nothing, and pycocotools, OpenCV's
``fillPoly`` and every even-odd rasteriser recover the hole. ``holes="fill"`` drops holes
instead (for YOLO, whose tools rasterise polygons one by one) and reports how many.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from segtools.errors import InputError
from segtools.formats import rle as rlelib

_SCALE = 5.0


def _trunc_int(values: np.ndarray) -> np.ndarray:
    """C's ``(int)`` cast of doubles (towards zero); NaN → INT_MIN as x86 does."""
    out = np.full(values.shape, np.iinfo(np.int32).min, np.int64)
    finite = np.isfinite(values)
    out[finite] = np.trunc(values[finite]).astype(np.int64)
    return out


#: How far outside the image a coordinate may lie, in image sizes (and at least 64 px):
#: annotation tools let vertices stray a little past the border (clipped, counted), while
#: 1e30 is corruption, and the rasteriser walks every edge pixel by pixel.
OUTSIDE_MARGIN = 1.0


def check_bounds(points: np.ndarray, height: int, width: int, what: str = "polygon") -> np.ndarray:
    """``points`` (N×2, x y in pixels) when every coordinate is finite and within
    :data:`OUTSIDE_MARGIN` image sizes of the ``width``×``height`` image, else InputError."""
    margin = OUTSIDE_MARGIN * max(height, width, 64)
    low, high = -margin, np.array([width, height], np.float64) + margin
    bad = ~np.isfinite(points) | (points < low) | (points > high)
    if bad.any():
        value = points[np.nonzero(bad)][0]
        raise InputError(f"{what}: coordinate {float(value):g} is not finite or lies far outside the {width}×{height} image")
    return points


def as_points(polygon: Sequence[float] | np.ndarray, what: str = "polygon", height: int | None = None,
              width: int | None = None) -> np.ndarray:
    """A flat ``[x1, y1, x2, y2, …]`` list or an N×2 array → N×2 float64, checked.

    Coordinates must be JSON numbers (not booleans or strings); with ``height`` and
    ``width`` they must also pass :func:`check_bounds`.
    """
    if isinstance(polygon, np.ndarray):
        points = polygon
    else:
        try:
            points = np.asarray(polygon)
        except (ValueError, TypeError):
            raise InputError(f"{what}: expected a list of x, y numbers") from None
        if points.dtype.kind in "iuf" and points.ndim in (1, 2) and _holds_bool(polygon, points.ndim):
            raise InputError(f"{what}: coordinates must be numbers, not true/false")
    if points.dtype.kind not in "iuf" or points.ndim not in (1, 2):
        raise InputError(f"{what}: expected a list of x, y numbers")
    points = points.astype(np.float64, copy=False)
    if points.ndim == 1:
        if points.size % 2:
            raise InputError(f"{what}: odd number of coordinates ({points.size}); expected x, y pairs")
        points = points.reshape(-1, 2)
    if points.shape[1] != 2:
        raise InputError(f"{what}: expected x, y pairs, got shape {points.shape}")
    if len(points) < 3:
        raise InputError(f"{what}: has {len(points)} point(s); a polygon needs at least 3")
    if not np.isfinite(points).all():
        raise InputError(f"{what}: has NaN or infinite coordinates")
    if height is not None and width is not None:
        check_bounds(points, height, width, what)
    return points


def _holds_bool(values, ndim: int) -> bool:
    """True when a list (of lists, for ``ndim`` 2) from JSON holds a boolean (numpy coerces them)."""
    if ndim == 1:
        return any(v.__class__ is bool for v in values)
    return any(v.__class__ is bool for row in values for v in row)


def _toggles(polygons: Sequence[np.ndarray], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Column-major positions where each polygon's rasterisation toggles, all polygons at once.

    Returns ``(polygon index, position)`` sorted by polygon then position; positions below
    ``height * width`` only (the final toggle at the end of the image is implicit).
    """
    lengths = np.array([len(p) for p in polygons], np.int64)
    points = check_bounds(np.concatenate([np.asarray(p, np.float64).reshape(-1, 2) for p in polygons]), height, width)
    owner = np.repeat(np.arange(lengths.size), lengths)
    x = _trunc_int(_SCALE * points[:, 0] + 0.5)
    y = _trunc_int(_SCALE * points[:, 1] + 0.5)
    _, after = _neighbours(lengths)  # each vertex starts the edge to the next one (ring closed)
    xs, xe, ys, ye = x, x[after], y, y[after]
    dx, dy = np.abs(xe - xs), np.abs(ys - ye)
    along_x = dx >= dy
    flip = (along_x & (xs > xe)) | (~along_x & (ys > ye))
    xs, xe = np.where(flip, xe, xs), np.where(flip, xs, xe)
    ys, ye = np.where(flip, ye, ys), np.where(flip, ys, ye)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where(along_x, (ye - ys) / dx.astype(np.float64), (xe - xs) / dy.astype(np.float64))
    steps = np.maximum(dx, dy)
    n = steps + 1
    edge = np.repeat(np.arange(len(points)), n)
    d = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    t = np.where(flip[edge], steps[edge] - d, d)
    on_x = along_x[edge]
    with np.errstate(invalid="ignore"):
        along = t + np.where(on_x, xs[edge], ys[edge])
        across = _trunc_int(np.where(on_x, ys[edge], xs[edge]) + slope[edge] * t + 0.5)
    u = np.where(on_x, along, across)
    v = np.where(on_x, across, along)
    polygon = owner[edge]
    # column boundaries between consecutive points of one polygon, sampled at pixel centres
    moved = np.flatnonzero((u[1:] != u[:-1]) & (polygon[1:] == polygon[:-1])) + 1
    u_now, u_before = u[moved], u[moved - 1]
    xd = np.where(u_now < u_before, u_now, u_now - 1).astype(np.float64)
    xd = (xd + 0.5) / _SCALE - 0.5
    keep = (np.floor(xd) == xd) & (xd >= 0) & (xd <= width - 1)
    yd = np.minimum(v[moved], v[moved - 1]).astype(np.float64)
    yd = np.ceil(np.clip((yd + 0.5) / _SCALE - 0.5, 0, height))
    total = height * width
    positions = xd[keep].astype(np.int64) * height + yd[keep].astype(np.int64)
    which = polygon[moved][keep]
    inside = positions < total
    # a boundary met an even number of times cancels (what rleFrPoly's zero-run merge does)
    key, multiplicity = np.unique(which[inside] * (total + 1) + positions[inside], return_counts=True)
    key = key[(multiplicity & 1) == 1]
    return key // (total + 1), key % (total + 1)


def polygon_to_counts(polygon: Sequence[float] | np.ndarray, height: int, width: int) -> np.ndarray:
    """RLE run lengths of one polygon rasterised exactly as pycocotools ``frPyObjects``.

    Parameters
    ----------
    polygon : flat ``[x1, y1, …]`` or N×2, in pixels (COCO convention, see module doc).
    height, width : image size in pixels.
    """
    _, positions = _toggles([np.asarray(polygon, np.float64).reshape(-1, 2)], height, width)
    return np.diff(positions, prepend=0, append=height * width).astype(np.uint32)


def polygon_to_rle(polygon: Sequence[float] | np.ndarray, height: int, width: int) -> dict:
    """Compressed COCO RLE of one polygon (pycocotools ``frPyObjects([poly], h, w)[0]``)."""
    points = as_points(polygon, "polygon", height, width)
    return {"size": [int(height), int(width)], "counts": rlelib.counts_to_string(polygon_to_counts(points, height, width))}


def polygon_runs(polygons: Sequence[Sequence[float] | np.ndarray], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Column-major ``[start, end)`` runs of set pixels of each polygon (all polygons together).

    Runs of different polygons may overlap (their union is the object).
    """
    _, starts, ends = polygon_runs_each(polygons, height, width)
    return starts, ends


def polygon_runs_each(polygons: Sequence[Sequence[float] | np.ndarray], height: int, width: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(polygon index, start, end)`` of the runs of many polygons, rasterised in one pass."""
    total = height * width
    empty = np.zeros(0, np.int64)
    if not len(polygons) or total == 0:
        return empty, empty, empty
    owner, positions = _toggles([as_points(p, "polygon", height, width) for p in polygons], height, width)
    if owner.size == 0:
        return empty, empty, empty
    last = np.append(np.flatnonzero(owner[1:] != owner[:-1]), owner.size - 1)
    sizes = np.diff(np.append(-1, last))
    odd = last[sizes % 2 == 1]  # a polygon left "inside" runs to the end of the image
    positions = np.insert(positions, odd + 1, total)
    owner = np.insert(owner, odd + 1, owner[odd])
    return owner[0::2], positions[0::2], positions[1::2]


def runs_to_indices(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Every flat index covered by the runs (O(covered pixels), not O(image))."""
    lengths = (ends - starts).astype(np.int64)
    keep = lengths > 0
    starts, lengths = starts[keep], lengths[keep]
    if starts.size == 0:
        return np.zeros(0, np.int64)
    offsets = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return np.arange(int(lengths.sum()), dtype=np.int64) + offsets


def polygons_to_mask(polygons: Sequence[Sequence[float] | np.ndarray], height: int, width: int) -> np.ndarray:
    """H×W uint8 union of polygons, as COCO's ``annToMask`` (frPyObjects + merge + decode).

    All polygons are rasterised in one vectorised pass into column-major runs, which are
    then painted (cost proportional to the pixels covered).
    """
    flat_mask = np.zeros(height * width, np.uint8)
    flat_mask[runs_to_indices(*polygon_runs(polygons, height, width))] = 1
    return flat_mask.reshape(width, height).T


# ---------------------------------------------------------------- mask → polygons


@dataclass
class Traced:
    """Polygons of one object: ``polygons`` (N×2 float arrays, pixels), ``holes`` seen, ``holes_filled``."""

    polygons: list[np.ndarray] = field(default_factory=list)
    holes: int = 0
    holes_filled: int = 0
    parts: int = 0


def _contours(mask: np.ndarray):
    """Outer rings and holes (cv2 RETR_CCOMP) of the pixel-square outline, corner coordinates."""
    import cv2

    binary = (np.asarray(mask) != 0).astype(np.uint8)
    rows, cols = np.flatnonzero(binary.any(1)), np.flatnonzero(binary.any(0))
    if rows.size == 0:
        return [], np.zeros((0, 4), np.int64)
    y0, x0 = int(rows[0]), int(cols[0])
    crop = binary[y0: rows[-1] + 1, x0: cols[-1] + 1]
    # on a 2×-upsampled grid, contour pixel c (fine) lies in coarse pixel c//2; (c+1)//2 is
    # then the corner of that pixel on the outline, so the rings run along pixel edges
    fine = cv2.resize(crop, (2 * crop.shape[1], 2 * crop.shape[0]), interpolation=cv2.INTER_NEAREST)
    contours, hierarchy = cv2.findContours(fine, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return [], np.zeros((0, 4), np.int64)
    lengths = np.array([len(c) for c in contours])
    points = (np.concatenate(contours).reshape(-1, 2) + 1) // 2 + np.array([x0, y0])
    return _clean(points.astype(np.float64), lengths), hierarchy.reshape(-1, 4)


def _neighbours(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of each vertex's previous and next vertex within its own ring (rings concatenated)."""
    starts = np.cumsum(lengths) - lengths
    index = np.arange(int(lengths.sum()))
    ring = np.repeat(np.arange(lengths.size), lengths)
    local = index - starts[ring]
    before = np.where(local == 0, index + lengths[ring] - 1, index - 1)
    after = np.where(local == lengths[ring] - 1, index - lengths[ring] + 1, index + 1)
    return before, after


def _clean(points: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """Drop repeated, then collinear vertices of all rings at once (the corner mapping makes both)."""
    before, _ = _neighbours(lengths)
    keep = np.any(points != points[before], axis=1) | (np.repeat(lengths, lengths) == 1)
    ring = np.repeat(np.arange(lengths.size), lengths)
    points, ring = points[keep], ring[keep]
    lengths = np.bincount(ring, minlength=lengths.size)
    before, after = _neighbours(lengths)
    p, q, r = points[before], points, points[after]
    cross = (q[:, 0] - p[:, 0]) * (r[:, 1] - q[:, 1]) - (q[:, 1] - p[:, 1]) * (r[:, 0] - q[:, 0])
    corner = cross != 0
    corners_per_ring = np.bincount(ring, weights=corner, minlength=lengths.size)
    keep = corner | (corners_per_ring[ring] < 3)
    return np.split(points[keep], np.cumsum(np.bincount(ring[keep], minlength=lengths.size))[:-1])


def simplify(ring: np.ndarray, epsilon: float) -> np.ndarray:
    """Douglas-Peucker simplification (cv2.approxPolyDP) with tolerance ``epsilon`` pixels."""
    if epsilon <= 0 or len(ring) <= 3:
        return ring
    import cv2

    out = cv2.approxPolyDP(ring.astype(np.float32).reshape(-1, 1, 2), float(epsilon), True).reshape(-1, 2)
    return out.astype(np.float64) if len(out) >= 3 else ring


def bridge(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """One ring that walks ``outer``, jumps to ``inner``, walks it and jumps back.

    The jump is walked once each way, so it has no area: under the even-odd rule ``inner``
    becomes a hole of ``outer`` (or, disjoint, an extra part of it). It joins a near pair
    of vertices — the outer vertex nearest the inner ring's first vertex, then the inner
    vertex nearest that one — in O(N + M) rather than the O(N·M) of the nearest pair.
    """
    i = int(np.argmin(((outer - inner[0]) ** 2).sum(1)))
    j = int(np.argmin(((inner - outer[i]) ** 2).sum(1)))
    inner_from_j = np.concatenate([inner[j:], inner[: j + 1]])
    return np.concatenate([outer[: i + 1], inner_from_j, outer[i:]])


def mask_to_polygons(mask: np.ndarray, epsilon: float = 0.0, holes: str = "bridge",
                     components: bool = False) -> list[Traced] | Traced:
    """Polygons whose rasterisation (:func:`polygons_to_mask`) gives ``mask`` back.

    Parameters
    ----------
    mask : H×W, non-zero = inside.
    epsilon : Douglas-Peucker tolerance in pixels; 0 keeps the exact outline.
    holes : ``"bridge"`` keeps holes with keyhole bridges; ``"fill"`` drops them (counted).
    components : True → one :class:`Traced` per 8-connected part; False → one for the mask.

    Returns
    -------
    Traced (or a list of them): ``polygons`` as N×2 float arrays in pixels.
    """
    if holes not in ("bridge", "fill"):
        raise InputError(f"holes must be 'bridge' or 'fill', not {holes!r}")
    rings, hierarchy = _contours(mask)
    objects: list[Traced] = []
    for index, ring in enumerate(rings):
        if hierarchy[index, 3] != -1:
            continue  # a hole: handled with its parent
        traced = Traced(parts=1)
        outer = simplify(ring, epsilon)
        child = hierarchy[index, 2]
        while child != -1:
            traced.holes += 1
            hole = simplify(rings[child], epsilon)
            if holes == "bridge" and len(hole) >= 3:
                outer = bridge(outer, hole)
            else:
                traced.holes_filled += 1
            child = hierarchy[child, 0]
        if len(outer) >= 3:
            traced.polygons.append(outer)
        objects.append(traced)
    if components:
        return objects
    merged = Traced()
    for part in objects:
        merged.polygons += part.polygons
        merged.holes += part.holes
        merged.holes_filled += part.holes_filled
        merged.parts += part.parts
    return merged


def join_parts(polygons: Sequence[np.ndarray]) -> np.ndarray:
    """One ring for several parts, joined by zero-width bridges (YOLO's one-line-per-object)."""
    joined = np.asarray(polygons[0], np.float64)
    for part in polygons[1:]:
        joined = bridge(joined, np.asarray(part, np.float64))
    return joined


def flat(polygon: np.ndarray, decimals: int | None = None) -> list[float]:
    """N×2 → ``[x1, y1, x2, y2, …]`` for JSON (ints when every value is whole, else rounded)."""
    values = np.asarray(polygon, np.float64).reshape(-1)
    if decimals is not None:
        values = np.round(values, decimals)
    if np.array_equal(values, np.round(values)) and np.abs(values).max(initial=0) < 2**53:
        return values.astype(np.int64).tolist()
    return values.tolist()
