"""Tile grids: where the tiles of a large image go.

A grid is a row-major list of :class:`Tile` rectangles. Along each axis the tiles start every
``stride`` pixels; the last tile is shifted inward so that it ends at the border (every tile
is full size, every pixel is covered, no padding needed). With ``pad=True`` the last tile is
not shifted: it may extend past the border and the caller pads the image.

The grid is *regular*: the tile origins are the Cartesian product of the origins along y and
along x (:func:`axis_starts`), which is what makes nearest-centre stitching a matter of
rectangles (see :mod:`segtools.tiling.stitch`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Union

from segtools.errors import UsageError

SizeLike = Union[int, Sequence[int]]


@dataclass(frozen=True)
class Tile:
    """One tile: top-left corner ``(y, x)`` and size ``(h, w)``, all in pixels.

    A tile may extend past the image border when the grid was made with ``pad=True``.
    """

    y: int
    x: int
    h: int
    w: int

    @property
    def y1(self) -> int:
        """Row just below the tile (exclusive end)."""
        return self.y + self.h

    @property
    def x1(self) -> int:
        """Column just right of the tile (exclusive end)."""
        return self.x + self.w

    @property
    def centre(self) -> tuple[float, float]:
        """Centre ``(y, x)`` in pixel coordinates (pixel ``i`` spans ``[i, i+1)``)."""
        return self.y + self.h / 2.0, self.x + self.w / 2.0

    def slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices of the tile in image coordinates."""
        return slice(self.y, self.y1), slice(self.x, self.x1)

    def clipped(self, height: int, width: int) -> "Tile":
        """The part of the tile inside a ``height``×``width`` image."""
        return Tile(self.y, self.x, max(0, min(self.y1, height) - self.y), max(0, min(self.x1, width) - self.x))


def as_pair(value: SizeLike | float | None, name: str) -> tuple | None:
    """``7 -> (7, 7)``, ``(4, 8) -> (4, 8)``, ``None -> None``; anything else is a usage error."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return (value, value)
    pair = tuple(value)
    if len(pair) != 2:
        raise UsageError(f"{name} must be one number or two (height, width), got {value!r}")
    return pair


def _overlap_pixels(overlap: int | float, size: int, name: str) -> int:
    """Overlap in pixels: an int is pixels, a float in [0, 1) a fraction of ``size``."""
    if isinstance(overlap, float) and not overlap.is_integer():
        if not 0.0 <= overlap < 1.0:
            raise UsageError(f"{name}={overlap}: a fraction of the tile must be in [0, 1)")
        return int(round(overlap * size))
    pixels = int(overlap)
    if not 0 <= pixels < size:
        raise UsageError(f"{name}={pixels}: must be >= 0 pixels and smaller than the tile ({size} px)")
    return pixels


def axis_starts(length: int, size: int, stride: int, pad: bool = False) -> list[int]:
    """Tile origins along one axis of ``length`` pixels.

    Tiles of ``size`` pixels start every ``stride`` pixels. Without ``pad`` the last tile is
    shifted inward to end at ``length``; a ``length`` smaller than ``size`` gives one tile at 0
    (the caller clips it to the image, see :func:`tile_grid`).

    >>> axis_starts(10, 4, 3)
    [0, 3, 6]
    >>> axis_starts(10, 4, 4)
    [0, 4, 6]
    >>> axis_starts(10, 4, 4, pad=True)
    [0, 4, 8]
    """
    if length < 1 or size < 1 or stride < 1:
        raise UsageError(f"tile grid needs positive sizes (length {length}, tile {size}, stride {stride})")
    if stride > size:
        raise UsageError(f"stride={stride}: larger than the tile ({size} px), so pixels would be skipped")
    if length <= size:
        return [0]
    count = math.ceil((length - size) / stride) + 1
    starts = [i * stride for i in range(count)]
    if not pad:
        starts[-1] = length - size
    return starts


def tile_grid(height: int, width: int, size: SizeLike, overlap: int | float = 0,
              stride: SizeLike | None = None, pad: bool = False) -> list[Tile]:
    """The tiles covering a ``height``×``width`` image, row-major.

    Parameters
    ----------
    height, width : image size in pixels.
    size : tile size in pixels, one int or ``(h, w)``.
    overlap : overlap between neighbouring tiles, in pixels (int ≥ 0) or as a fraction of the
        tile size (float in [0, 1)); one value or ``(y, x)``. Ignored when ``stride`` is given.
    stride : distance between tile origins in pixels (≤ size), one int or ``(y, x)``.
    pad : ``False`` (default): edge tiles are shifted inward, every tile lies inside the image;
        an axis shorter than the tile gets one tile of the image's length. ``True``: tiles keep
        their stride and full size and may extend past the bottom/right border (the caller pads).

    Returns
    -------
    list of Tile, row-major (y outer, x inner). Shifted edge tiles overlap their neighbour
    by more than ``overlap``.

    Raises
    ------
    UsageError
        Non-positive sizes, overlap ≥ tile size, or stride > tile size.

    Examples
    --------
    >>> [(t.y, t.x) for t in tile_grid(6, 10, 4, overlap=1)]
    [(0, 0), (0, 3), (0, 6), (2, 0), (2, 3), (2, 6)]
    >>> tile_grid(3, 5, 8)
    [Tile(y=0, x=0, h=3, w=5)]
    """
    if height < 1 or width < 1:
        raise UsageError(f"cannot tile an empty image ({height}x{width} pixels)")
    tile_h, tile_w = (int(v) for v in as_pair(size, "tile size"))
    if tile_h < 1 or tile_w < 1:
        raise UsageError(f"tile size must be positive, got {tile_h}x{tile_w}")
    if stride is not None:
        stride_y, stride_x = (int(v) for v in as_pair(stride, "stride"))
    else:
        over_y, over_x = as_pair(overlap, "overlap")
        stride_y = tile_h - _overlap_pixels(over_y, tile_h, "overlap")
        stride_x = tile_w - _overlap_pixels(over_x, tile_w, "overlap")
    ys = axis_starts(height, tile_h, stride_y, pad)
    xs = axis_starts(width, tile_w, stride_x, pad)
    out_h = tile_h if pad else min(tile_h, height)
    out_w = tile_w if pad else min(tile_w, width)
    return [Tile(y, x, out_h, out_w) for y in ys for x in xs]

