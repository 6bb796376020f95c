"""Seam-free stitching of integer tiles (label masks, images): nearest centre or majority.

**Nearest centre** (default): every pixel is taken from the tile whose centre is nearest to
it. On a regular grid the distance separates by axis, so the pixels a tile owns form a
rectangle bounded by the midpoints between neighbouring tile centres
(:func:`ownership_bounds`); stitching is one rectangular copy per tile. Ties (a pixel centre
exactly on a midpoint) go to the upper/left tile. The owned rectangle lies at least
``overlap / 2`` pixels inside the tile's own border, away from where a model sees no context.

**Majority**: every pixel takes the value most tiles covering it agree on; ties go to the
nearest-centre tile. Where two tiles overlap this equals nearest centre; it differs where
three or more do (large overlaps).

Missing tiles (skipped at split time, or not there at merge time): pixels they own are taken
from the nearest present tile covering them (decided per *cell*, the rectangles cut by all
tile edges and ownership bounds), and stay ``fill`` where no tile covers them.

Everything here works on one *band* of rows at a time, so the caller never holds more than
the tiles crossing that band.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from segtools.tiling.grid import Tile

Piece = tuple[Tile, np.ndarray]  # a tile and its pixels (h×w or h×w×C, may cover past the border)


def ownership_bounds(starts: Sequence[int], extent: int, length: int) -> list[int]:
    """Boundaries ``b`` along one axis: tile ``i`` owns pixels ``[b[i], b[i+1])``.

    Parameters
    ----------
    starts : sorted tile origins along the axis (pixels).
    extent : tile size along the axis (pixels).
    length : image size along the axis (pixels).

    Examples
    --------
    >>> ownership_bounds([0, 3, 6], 4, 10)     # centres 2, 5, 8
    [0, 4, 7, 10]
    >>> ownership_bounds([0], 4, 3)
    [0, 3]
    """
    bounds = [0]
    for previous, current in zip(starts[:-1], starts[1:]):
        midpoint = (previous + current + extent) / 2.0     # between the two centres
        bound = int(np.floor(midpoint + 0.5))               # pixels whose centre is <= midpoint go first
        bounds.append(min(max(bound, current, bounds[-1]), previous + extent, length))
    bounds.append(length)
    return bounds


def _paste(canvas: np.ndarray, top: int, tile: Tile, pixels: np.ndarray,
           rows: tuple[int, int], cols: tuple[int, int]) -> None:
    """Copy ``pixels`` of ``tile`` inside image rows/cols ``[r0, r1) × [c0, c1)`` to the band."""
    r0, r1 = max(rows[0], tile.y, top), min(rows[1], tile.y1, top + canvas.shape[0])
    c0, c1 = max(cols[0], tile.x, 0), min(cols[1], tile.x1, canvas.shape[1])
    if r1 > r0 and c1 > c0:
        canvas[r0 - top:r1 - top, c0:c1] = pixels[r0 - tile.y:r1 - tile.y, c0 - tile.x:c1 - tile.x]


def paint_owned(canvas: np.ndarray, top: int, pieces: Sequence[Piece],
                owned: dict[Tile, tuple[int, int, int, int]]) -> None:
    """Nearest-centre stitching of a band when every owner is present: one copy per tile.

    ``owned[tile] = (y0, y1, x0, x1)`` is the tile's ownership rectangle in image pixels.
    """
    for tile, pixels in pieces:
        y0, y1, x0, x1 = owned[tile]
        _paste(canvas, top, tile, pixels, (y0, y1), (x0, x1))


def _cell_breaks(low: int, high: int, edges: set[int]) -> list[int]:
    return sorted({low, high} | {e for e in edges if low < e < high})


def paint_cells(canvas: np.ndarray, top: int, pieces: Sequence[Piece], x_bounds: Sequence[int],
                rule: str = "nearest") -> None:
    """Stitch a band cell by cell: ``nearest`` present tile, or ``majority`` vote.

    Cells are the rectangles cut by every tile edge and every ownership bound in ``x_bounds``
    (the band itself lies inside one row of ownership), so within a cell the set of covering
    tiles and the nearest one are constant. Cells no tile covers are left as they are.
    """
    height, width = canvas.shape[:2]
    y_breaks = _cell_breaks(top, top + height, {e for t, _ in pieces for e in (t.y, t.y1)})
    x_breaks = _cell_breaks(0, width, {e for t, _ in pieces for e in (t.x, t.x1)} | set(x_bounds))
    for r0, r1 in zip(y_breaks[:-1], y_breaks[1:]):
        in_rows = [p for p in pieces if p[0].y <= r0 and p[0].y1 >= r1]
        for c0, c1 in zip(x_breaks[:-1], x_breaks[1:]):
            covering = [p for p in in_rows if p[0].x <= c0 and p[0].x1 >= c1]
            if not covering:
                continue
            cy, cx = (r0 + r1) / 2.0, (c0 + c1) / 2.0
            covering.sort(key=lambda p: ((p[0].centre[0] - cy) ** 2 + (p[0].centre[1] - cx) ** 2, p[0].y, p[0].x))
            target = canvas[r0 - top:r1 - top, c0:c1]
            if rule == "nearest" or len(covering) < 3:   # with two tiles a tie goes to the nearest anyway
                tile, pixels = covering[0]
                target[...] = pixels[r0 - tile.y:r1 - tile.y, c0 - tile.x:c1 - tile.x]
                continue
            target[...] = _majority([pixels[r0 - t.y:r1 - t.y, c0 - t.x:c1 - t.x] for t, pixels in covering])


def _majority(stack: list[np.ndarray]) -> np.ndarray:
    """Per pixel, the value most arrays agree on; ties go to the earliest array.

    For images (h×w×C) a pixel's whole colour votes as one value.
    """
    votes = np.stack(stack)                                   # k × h × w [× C]
    same = votes[:, None] == votes[None, :]                   # k × k × h × w [× C]
    if votes.ndim == 4:
        same = same.all(axis=-1)
    counts = same.sum(axis=1)                                 # k × h × w
    winner = counts.argmax(axis=0)                            # first maximum: nearest on ties
    index = winner[None, ..., None] if votes.ndim == 4 else winner[None]
    return np.take_along_axis(votes, index, axis=0)[0]
