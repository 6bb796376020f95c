"""Bounding boxes between the COCO, Pascal VOC and YOLO conventions (vectorised, N×4).

Conventions (pixel ``(i, j)`` is the square ``[i, i+1] × [j, j+1]``, as in COCO):

* **COCO** ``[x, y, width, height]``: top-left corner and size, continuous pixels.
* **VOC** ``[xmin, ymin, xmax, ymax]``: 1-based *pixel indices*, both ends inclusive (the
  devkit's convention), so a box over pixels 0..9 is ``xmin=1, xmax=10``:
  ``xmin = x + 1``, ``xmax = x + width``.
* **YOLO** ``[cx, cy, w, h]``: centre and size divided by the image width/height, in [0, 1].
* **xyxy** ``[x0, y0, x1, y1]``: corners, continuous pixels (torchvision's ``boxes``).

Every conversion is exact arithmetic on float64 (round trips agree to ~1e-12 pixels).
"""

from __future__ import annotations

import numpy as np

from segtools.errors import InputError


def _as_boxes(boxes, what: str) -> np.ndarray:
    array = np.asarray(boxes, dtype=np.float64)
    if array.ndim == 1:
        array = array.reshape(1, -1) if array.size else array.reshape(0, 4)
    if array.ndim != 2 or array.shape[1] != 4:
        raise InputError(f"{what} boxes must be N×4, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise InputError(f"{what} boxes hold NaN or infinite values")
    return array


def coco_to_xyxy(boxes) -> np.ndarray:
    b = _as_boxes(boxes, "COCO")
    return np.stack([b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]], axis=1)


def xyxy_to_coco(boxes) -> np.ndarray:
    b = _as_boxes(boxes, "xyxy")
    return np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)


def coco_to_voc(boxes) -> np.ndarray:
    """COCO ``[x, y, w, h]`` → VOC ``[xmin, ymin, xmax, ymax]`` (1-based, inclusive)."""
    b = _as_boxes(boxes, "COCO")
    return np.stack([b[:, 0] + 1, b[:, 1] + 1, b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]], axis=1)


def voc_to_coco(boxes) -> np.ndarray:
    """VOC ``[xmin, ymin, xmax, ymax]`` (1-based, inclusive) → COCO ``[x, y, w, h]``."""
    b = _as_boxes(boxes, "VOC")
    return np.stack([b[:, 0] - 1, b[:, 1] - 1, b[:, 2] - b[:, 0] + 1, b[:, 3] - b[:, 1] + 1], axis=1)


def coco_to_yolo(boxes, width: int, height: int) -> np.ndarray:
    """COCO ``[x, y, w, h]`` (pixels) → YOLO ``[cx, cy, w, h]`` (fractions of the image)."""
    _check_size(width, height)
    b = _as_boxes(boxes, "COCO")
    return np.stack([(b[:, 0] + b[:, 2] / 2) / width, (b[:, 1] + b[:, 3] / 2) / height,
                     b[:, 2] / width, b[:, 3] / height], axis=1)


def yolo_to_coco(boxes, width: int, height: int) -> np.ndarray:
    """YOLO ``[cx, cy, w, h]`` (fractions) → COCO ``[x, y, w, h]`` (pixels)."""
    _check_size(width, height)
    b = _as_boxes(boxes, "YOLO")
    w, h = b[:, 2] * width, b[:, 3] * height
    return np.stack([b[:, 0] * width - w / 2, b[:, 1] * height - h / 2, w, h], axis=1)


def voc_to_yolo(boxes, width: int, height: int) -> np.ndarray:
    return coco_to_yolo(voc_to_coco(boxes), width, height)


def yolo_to_voc(boxes, width: int, height: int) -> np.ndarray:
    return coco_to_voc(yolo_to_coco(boxes, width, height))


def clip_coco(boxes, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Clip COCO boxes to the image; returns the boxes and a mask of those that changed."""
    xyxy = coco_to_xyxy(boxes)
    clipped = xyxy.copy()
    clipped[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, width)
    clipped[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, height)
    changed = np.any(np.abs(clipped - xyxy) > 1e-9, axis=1)
    return xyxy_to_coco(clipped), changed


def _check_size(width: int, height: int) -> None:
    if not (width > 0 and height > 0):
        raise InputError(f"image size {width}×{height} is not positive; YOLO boxes need the image size")
