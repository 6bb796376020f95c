"""Panels: several pictures of the same scene side by side, each with a title."""

from __future__ import annotations

import numpy as np

from segtools.errors import InputError
from segtools.viz.text import text_size_for, title_bar


def panel_columns(count: int, height: int, width: int) -> int:
    """How many tiles per row: all in one row for portrait/square tiles, 2×2 for four landscape ones.

    >>> panel_columns(4, 360, 480), panel_columns(4, 512, 512), panel_columns(3, 360, 480)
    (2, 4, 3)
    """
    if count == 4 and width > height:
        return 2
    return max(1, count)


def compose_panel(tiles: list[tuple[str, np.ndarray]], columns: int | None = None,
                  text_size: int | None = None) -> np.ndarray:
    """Lay out titled tiles (all H×W×3 ``uint8``, the same size) in a grid on white: H'×W'×3 out.

    Parameters
    ----------
    tiles : (title, picture) pairs, left to right then top to bottom.
    columns : tiles per row (default :func:`panel_columns`).
    text_size : title size in pixels (default from the tile size, see :func:`text_size_for`).
    """
    if not tiles:
        raise InputError("a panel needs at least one picture")
    height, width = tiles[0][1].shape[:2]
    for title, tile in tiles:
        if tile.shape[:2] != (height, width):
            raise InputError(f"panel tile {title!r} is {tile.shape[1]}×{tile.shape[0]} px, "
                             f"the first is {width}×{height} px; all must match")
    columns = columns or panel_columns(len(tiles), height, width)
    size = text_size or text_size_for(height, width)
    gap = max(4, size // 2)
    titled = [np.concatenate([title_bar(width, title, size), tile[..., :3]], axis=0) for title, tile in tiles]
    cell_h = titled[0].shape[0]
    rows = -(-len(titled) // columns)
    out = np.full((rows * cell_h + (rows + 1) * gap, columns * width + (columns + 1) * gap, 3), 255, np.uint8)
    for i, picture in enumerate(titled):
        y = gap + (i // columns) * (cell_h + gap)
        x = gap + (i % columns) * (width + gap)
        out[y:y + cell_h, x:x + width] = picture
    return out
