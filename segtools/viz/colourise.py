"""Label masks → colour pictures through a look-up table (one fancy-index, no loops)."""

from __future__ import annotations

import numpy as np

from segtools.errors import InputError
from segtools.io.limits import label_table_size
from segtools.io.meta import ClassMeta
from segtools.viz.palette import IGNORE_COLOUR, class_palette, instance_palette


def colour_table(labels: np.ndarray, meta: ClassMeta | None, *, instances: bool = False,
                 transparent_ignore: bool = False, ignore_colour=IGNORE_COLOUR) -> np.ndarray:
    """The (N, 3) or (N, 4) uint8 look-up table that covers every value in ``labels``.

    Parameters
    ----------
    labels : H×W non-negative integers.
    meta : palette and ignore index (``None``: automatic colours, ignore 255).
    instances : colour values as instance ids (:func:`instance_palette`, 0 = background, black).
    transparent_ignore : add an alpha column; ignored pixels (and instance background) get alpha 0.
    ignore_colour : RGB for ignored pixels when opaque.
    """
    size = label_table_size(labels, "label mask")
    ignore = meta.ignore_index if meta is not None else 255
    if instances:
        table = instance_palette(max(size, 1))
    else:
        table = class_palette(meta, max(size, len(meta.palette) if meta is not None and meta.palette else 0))
    if ignore is not None and 0 <= ignore < len(table):
        table[ignore] = ignore_colour
    if not transparent_ignore:
        return table
    alpha = np.full((len(table), 1), 255, np.uint8)
    if ignore is not None and 0 <= ignore < len(table):
        alpha[ignore] = 0
    if instances:
        alpha[0] = 0
    return np.concatenate([table, alpha], axis=1)


def colourise(labels: np.ndarray, meta: ClassMeta | None = None, *, instances: bool = False,
              transparent_ignore: bool = False, ignore_colour=IGNORE_COLOUR) -> np.ndarray:
    """Colour a label mask: H×W integers → H×W×3 RGB (or H×W×4 RGBA) ``uint8``.

    Class ``i`` is drawn in ``meta.palette[i]`` (automatic colours beyond it), the ignore
    value in ``ignore_colour`` (black) or fully transparent with ``transparent_ignore``.

    Examples
    --------
    >>> meta = ClassMeta(names=("a", "b"), palette=((10, 20, 30), (200, 0, 0)), ignore_index=255)
    >>> colourise(np.array([[0, 1, 255]], np.uint8), meta).tolist()
    [[[10, 20, 30], [200, 0, 0], [0, 0, 0]]]
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.dtype.kind not in "iub":
        raise InputError(f"a label mask is 2-D integers, not {labels.ndim}-D {labels.dtype}")
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    table = colour_table(labels, meta, instances=instances, transparent_ignore=transparent_ignore,
                         ignore_colour=ignore_colour)
    return table[labels]
