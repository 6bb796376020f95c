"""Instance masks: where each instance is (centroids) and its id written there."""

from __future__ import annotations

import numpy as np

from segtools.io.limits import label_table_size
from segtools.viz.text import draw_text


def instance_centroids(instance_ids: np.ndarray, background: int = 0, ignore_index: int | None = None,
                       min_area: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Ids present (not background or ignore, at least ``min_area`` px) and their centroids as
    (N, 2) float (x, y) in pixels.

    One pass of ``np.bincount`` per coordinate, whatever the number of instances.

    >>> ids, xy = instance_centroids(np.array([[0, 3, 3], [0, 3, 3]]))
    >>> ids.tolist(), xy.tolist()
    ([3], [[1.5, 0.5]])
    """
    size = label_table_size(instance_ids, "instance mask")
    flat = instance_ids.ravel().astype(np.int64)
    height, width = instance_ids.shape
    area = np.bincount(flat, minlength=size)
    ys, xs = np.divmod(np.arange(flat.size), width)
    sum_x = np.bincount(flat, weights=xs)
    sum_y = np.bincount(flat, weights=ys)
    present = area >= max(1, min_area)
    if 0 <= background < len(present):
        present[background] = False
    if ignore_index is not None and 0 <= ignore_index < len(present):
        present[ignore_index] = False
    ids = np.flatnonzero(present)
    centroids = np.stack([sum_x[ids] / area[ids], sum_y[ids] / area[ids]], axis=1)
    return ids, centroids


def draw_instance_ids(picture: np.ndarray, instance_ids: np.ndarray, size: int,
                      ignore_index: int | None = None) -> np.ndarray:
    """Write each instance's id at its centroid (white text, black outline): H×W×3 RGB out.

    Instances smaller than a quarter of a text line's square (``size²/4`` px) get no id: their
    numbers would only cover their neighbours'.
    """
    from PIL import Image

    ids, centroids = instance_centroids(instance_ids, ignore_index=ignore_index, min_area=size * size // 4)
    canvas = Image.fromarray(np.ascontiguousarray(picture[..., :3]))
    for instance, (x, y) in zip(ids.tolist(), centroids.tolist()):
        draw_text(canvas, (int(round(x)), int(round(y))), str(instance), size, (255, 255, 255),
                  stroke=(0, 0, 0), anchor="mm")
    out = np.asarray(canvas)
    if picture.shape[2] == 4:  # text stays visible over transparent background
        alpha = picture[..., 3:].copy()
        alpha[(out != picture[..., :3]).any(axis=2)] = 255
        out = np.concatenate([out, alpha], axis=2)
    return out
