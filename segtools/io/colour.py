"""RGB colour masks ⇄ label masks through a colour→class map (a :class:`ClassMeta` palette)."""

from __future__ import annotations

import numpy as np

from segtools.errors import InputError
from segtools.io.meta import ClassMeta


def _pack(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32, copy=False)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def colours_to_labels(rgb: np.ndarray, cmap: ClassMeta, name: str = "colour mask") -> np.ndarray:
    """Map an H×W×3 (or ×4, alpha ignored) uint8 RGB mask to class indices.

    Colours are looked up in ``cmap.palette`` (class ``i`` has colour ``palette[i]``); the
    ignore colour, when the palette has an entry at ``ignore_index``, maps to it. A colour in
    no entry raises :class:`InputError` naming up to five of them — never silently dropped.

    >>> cmap = ClassMeta(names=("a", "b"), palette=((0, 0, 0), (255, 0, 0)))
    >>> colours_to_labels(np.array([[[255, 0, 0], [0, 0, 0]]], np.uint8), cmap).tolist()
    [[1, 0]]
    """
    if cmap.palette is None:
        raise InputError(f"{name}: the colour map has no palette")
    if rgb.ndim != 3 or rgb.shape[-1] not in (3, 4):
        raise InputError(f"{name}: expected an H×W×3 RGB image, got shape {rgb.shape}")
    keys = _pack(rgb[..., :3])
    table = _pack(np.asarray(cmap.palette, dtype=np.uint8))
    order = np.argsort(table, kind="stable")
    sorted_table = table[order]
    # the first class with a given colour wins when a palette repeats one
    unique_table, first = np.unique(sorted_table, return_index=True)
    classes = order[first]
    pos = np.searchsorted(unique_table, keys)
    pos = np.minimum(pos, len(unique_table) - 1)
    known = unique_table[pos] == keys
    if not known.all():
        bad = np.unique(keys[~known])[:5]
        shown = ", ".join(f"({k >> 16},{(k >> 8) & 255},{k & 255})" for k in bad.tolist())
        raise InputError(f"{name}: {int((~known).sum())} pixels have colours not in the colour map, e.g. {shown}")
    dtype = np.uint8 if len(cmap.palette) <= 256 else np.uint16
    return classes[pos].astype(dtype)


def labels_to_colours(labels: np.ndarray, palette) -> np.ndarray:
    """H×W labels → H×W×3 uint8 RGB through ``palette`` (values past its end become black)."""
    lut = np.zeros((max(int(labels.max(initial=0)) + 1, len(palette)), 3), np.uint8)
    lut[: len(palette)] = np.asarray(palette, np.uint8)
    return lut[labels]
