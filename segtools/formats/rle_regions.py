"""Every region of an image to COCO RLE at once: one pass over the column-major runs.

Converting thousands of regions (the parts of a class, the instances of an id mask, the
shapes of a labelme file) one full-image :func:`segtools.formats.rle.encode` each costs
the image once per region; here every region's counts, counts string, area and box come
from its own runs, vectorised across regions, and agree exactly with ``encode``, ``area``
and ``to_bbox`` of each region's mask.
"""

from __future__ import annotations

import numpy as np

from segtools.errors import InputError
from segtools.formats.rle import RLE, counts_characters


def encode_regions(index: np.ndarray) -> tuple[np.ndarray, list[RLE], np.ndarray, list[list[float]]]:
    """RLE, area and bbox of every region of an H×W region-number image (0 = none), at once.

    One pass over the image's column-major runs, then every region's counts, counts string,
    area and box come from its own runs (vectorised across regions): the cost is the image
    plus the runs, not one full-image encode per region. Equal to :func:`encode`,
    :func:`area` and :func:`to_bbox` of each ``index == n``.

    Returns ``(region numbers, RLEs, areas, bboxes)``, in increasing region number.
    """
    index = np.asarray(index)
    if index.ndim != 2:
        raise InputError(f"a region image is 2-D, got shape {index.shape}")
    height, width = index.shape
    flat = index.T.ravel()
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    start = np.concatenate(([0], change))
    end = np.concatenate((change, [flat.size]))
    region = flat[start]
    keep = region != 0
    order = np.argsort(region[keep], kind="stable")
    return encode_run_groups(region[keep][order], start[keep][order], end[keep][order], height, width)


def encode_run_groups(region: np.ndarray, start: np.ndarray, end: np.ndarray, height: int, width: int
                      ) -> tuple[np.ndarray, list[RLE], np.ndarray, list[list[float]]]:
    """:func:`encode_regions` of runs already found: column-major ``[start, end)`` runs
    sorted by ``region`` then ``start``, disjoint and not touching within a region."""
    total = height * width
    if region.size == 0:
        return region, [], np.zeros(0, np.int64), []
    first = np.flatnonzero(np.concatenate(([True], region[1:] != region[:-1])))
    runs = np.diff(np.append(first, region.size))
    group = np.repeat(np.arange(first.size), runs)
    previous_end = np.concatenate(([0], end[:-1]))
    previous_end[first] = 0
    last_end = end[first + runs - 1]
    tail = total - last_end
    length = 2 * runs + (tail > 0)
    offset = np.cumsum(length) - length
    counts = np.empty(int(length.sum()), np.int64)
    slot = offset[group] + 2 * (np.arange(region.size) - first[group])
    counts[slot], counts[slot + 1] = start - previous_end, end - start
    counts[(offset + 2 * runs)[tail > 0]] = tail[tail > 0]
    owner = np.repeat(np.arange(first.size), length)
    local = np.arange(counts.size) - offset[owner]
    values = counts.copy()
    values[local >= 3] -= counts[np.flatnonzero(local >= 3) - 2]
    chars, n_chars = counts_characters(values)
    text = chars.tobytes().decode("ascii")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(owner, weights=n_chars, minlength=first.size)))).astype(np.int64)
    size = [int(height), int(width)]
    rles = [{"size": size, "counts": text[a:b]} for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist())]
    areas = np.add.reduceat(end - start, first)
    # toBbox: columns and rows of each run's first and last pixel; a run across a column
    # break spans the full height
    x_first, y_first = np.divmod(start, height)
    x_last, y_last = np.divmod(end - 1, height)
    x0, x1 = x_first[first], np.maximum.reduceat(x_last, first)
    y0 = np.minimum(np.minimum.reduceat(y_first, first), np.minimum.reduceat(y_last, first))
    y1 = np.maximum(np.maximum.reduceat(y_first, first), np.maximum.reduceat(y_last, first))
    wraps = np.maximum.reduceat((x_first < x_last).astype(np.int8), first) > 0
    y0, y1 = np.where(wraps, 0, y0), np.where(wraps, height - 1, y1)
    boxes = np.stack([x0, y0, x1 - x0 + 1, y1 - y0 + 1], axis=1).astype(np.float64).tolist()
    return region[first], rles, areas, boxes
