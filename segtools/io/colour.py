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
    ignore colour, when the palette has an entry at ``ignore_index``, maps to it, and so do
    the dataset's void colours (:func:`void_colours`). A colour in no entry raises :class:`InputError` naming up to five of them — never silently dropped.

    >>> cmap = ClassMeta(names=("a", "b"), palette=((0, 0, 0), (255, 0, 0)))
    >>> colours_to_labels(np.array([[[255, 0, 0], [0, 0, 0]]], np.uint8), cmap).tolist()
    [[1, 0]]
    """
    if cmap.palette is None:
        raise InputError(f"{name}: the colour map has no palette")
    if rgb.ndim != 3 or rgb.shape[-1] not in (3, 4):
        raise InputError(f"{name}: expected an H×W×3 RGB image, got shape {rgb.shape}")
    keys = _pack(rgb[..., :3])
    palette = list(cmap.palette)
    index = np.arange(len(palette))
    voids = void_colours(cmap)
    if voids and cmap.ignore_index is not None:  # after the classes: a class colour wins
        palette += voids
        index = np.concatenate([index, np.full(len(voids), cmap.ignore_index)])
    table = _pack(np.asarray(palette, dtype=np.uint8))
    order = np.argsort(table, kind="stable")
    sorted_table = table[order]
    # the first class with a given colour wins when a palette repeats one
    unique_table, first = np.unique(sorted_table, return_index=True)
    classes = index[order[first]]
    pos = np.searchsorted(unique_table, keys)
    pos = np.minimum(pos, len(unique_table) - 1)
    known = unique_table[pos] == keys
    if not known.all():
        bad = np.unique(keys[~known])[:5]
        shown = ", ".join(f"({k >> 16},{(k >> 8) & 255},{k & 255})" for k in bad.tolist())
        raise InputError(f"{name}: {int((~known).sum())} pixels have colours not in the colour map, e.g. {shown}")
    dtype = np.uint8 if max(len(cmap.palette), int(index.max(initial=0)) + 1) <= 256 else np.uint16
    return classes[pos].astype(dtype)


def labels_to_colours(labels: np.ndarray, palette, void_of: ClassMeta | None = None) -> np.ndarray:
    """H×W labels → H×W×3 uint8 RGB through ``palette`` (values past its end become black).

    ``void_of``: class metadata whose ignore index is drawn in its dataset's void colour
    (VOC's 255 as (224, 224, 192)), so colour → labels → colour comes back the same.
    """
    lut = np.zeros((max(int(labels.max(initial=0)) + 1, len(palette)), 3), np.uint8)
    lut[: len(palette)] = np.asarray(palette, np.uint8)
    ignore = void_of.ignore_index if void_of is not None else None
    if ignore is not None and len(palette) <= ignore < len(lut):
        voids = void_colours(void_of)
        if voids:
            lut[ignore] = voids[0]
    return lut[labels]


def void_colours(cmap: ClassMeta) -> tuple[tuple[int, int, int], ...]:
    """Colours read as the ignore index: a class file's ``void_colours``, else those of the
    built-in preset whose palette this is (VOC (224, 224, 192), CamVid and Cityscapes black, …).

    >>> from segtools.io.meta import load_classes
    >>> void_colours(load_classes("voc"))
    ((224, 224, 192),)
    """
    from segtools.io.presets import void_colours_of

    listed = cmap.extra.get("void_colours") if isinstance(cmap.extra, dict) else None
    if isinstance(listed, list) and all(isinstance(c, list) and len(c) == 3 and
                                        all(isinstance(v, int) and 0 <= v <= 255 for v in c) for c in listed):
        return tuple(tuple(c) for c in listed)
    return void_colours_of(cmap.palette) if cmap.palette is not None else ()
