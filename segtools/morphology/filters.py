"""Morphology on label masks, class by class: opening, closing, erosion, dilation, majority.

Each class is processed as a binary mask on its bounding box (grown by the kernel reach),
with OpenCV's morphology; outside the image counts as neither foreground nor background
(scikit-image's ``mode='ignore'``).

* ``open`` and ``erode`` only *remove* pixels from a class; the caller gives them a new
  label (:mod:`segtools.morphology.refill`).
* ``close`` and ``dilate`` only *grow* the selected classes, into pixels of classes that are
  not selected (never into the ignore label): with every class selected they change nothing,
  since each pixel already belongs to a selected class. A pixel claimed by several classes
  goes to the lower one.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from segtools.errors import UsageError
from segtools.morphology.components import class_box

KERNELS = ("square", "ellipse", "cross")


def structuring_element(size: int, shape: str = "square") -> np.ndarray:
    """A ``size``×``size`` uint8 kernel: ``square``, ``ellipse`` (OpenCV's) or ``cross``.

    ``size`` is a positive odd number of pixels, so the kernel has a centre.

    >>> structuring_element(3, "cross").tolist()
    [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    """
    import cv2

    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1 or size % 2 == 0:
        raise UsageError(f"a kernel size must be a positive odd number of pixels (1, 3, 5, ...), not {size}")
    shapes = {"square": cv2.MORPH_RECT, "ellipse": cv2.MORPH_ELLIPSE, "cross": cv2.MORPH_CROSS}
    if shape not in shapes:
        raise UsageError(f"kernel={shape!r}: unknown; choose one of {', '.join(KERNELS)}")
    return cv2.getStructuringElement(shapes[shape], (int(size), int(size)))


def _binary(class_mask: np.ndarray, operation: int, kernel: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.morphologyEx(class_mask, operation, kernel)


def shrunk_pixels(labels: np.ndarray, classes: Iterable[int], kernel: np.ndarray, operation: str) -> np.ndarray:
    """Pixels that ``operation`` (``open`` or ``erode``) takes away from their class (bool H×W)."""
    import cv2

    op = {"open": cv2.MORPH_OPEN, "erode": cv2.MORPH_ERODE}[operation]
    reach = 2 * (kernel.shape[0] // 2)
    removed = np.zeros(labels.shape, bool)
    for k in classes:
        class_mask = (labels == k).view(np.uint8)
        box = class_box(class_mask, reach)
        if box is None:
            continue
        crop = class_mask[box]
        removed[box] |= (crop > _binary(crop, op, kernel))
    return removed


def grown_labels(labels: np.ndarray, classes: Iterable[int], kernel: np.ndarray, operation: str,
                 ignore_index: int | None = None) -> np.ndarray:
    """Labels after ``operation`` (``close`` or ``dilate``) grows each selected class.

    Only pixels of unselected classes can change; ignore pixels never do.
    """
    import cv2

    op = {"close": cv2.MORPH_CLOSE, "dilate": cv2.MORPH_DILATE}[operation]
    classes = [int(k) for k in classes]
    reach = 2 * (kernel.shape[0] // 2)
    open_to_growth = ~np.isin(labels, classes)
    if ignore_index is not None:
        open_to_growth &= labels != ignore_index
    out = labels.copy()
    claimed = np.zeros(labels.shape, bool)
    for k in sorted(classes):
        class_mask = (labels == k).view(np.uint8)
        box = class_box(class_mask, reach)
        if box is None:
            continue
        grown = _binary(class_mask[box], op, kernel).view(bool) & open_to_growth[box] & ~claimed[box]
        out[box][grown] = k
        claimed[box] |= grown
    return out


def majority_filter(labels: np.ndarray, size: int, classes: Iterable[int],
                    ignore_index: int | None = None) -> np.ndarray:
    """Mode filter: each pixel of a selected class takes the most frequent label around it.

    Parameters
    ----------
    labels : H×W integer label mask.
    size : odd window side (pixels).
    classes : the classes whose pixels may change; every non-ignore label votes.
    ignore_index : never votes and never changes.

    A pixel whose own label ties for the most votes keeps it; other ties go to the lower
    label. Outside the image does not vote.
    """
    import cv2

    structuring_element(size)
    reach = size // 2
    voters = [int(v) for v in np.unique(labels) if ignore_index is None or v != ignore_index]
    best_count = np.zeros(labels.shape, np.int32)
    best_label = labels.astype(np.int64)
    own_count = np.zeros(labels.shape, np.int32)
    for k in voters:
        class_mask = (labels == k).view(np.uint8)
        box = class_box(class_mask, reach)
        if box is None:
            continue
        votes = cv2.boxFilter(class_mask[box], cv2.CV_32S, (size, size), normalize=False,
                              borderType=cv2.BORDER_CONSTANT)
        region_best = best_count[box]
        more = votes > region_best
        region_best[more] = votes[more]
        best_label[box][more] = k
        own = class_mask[box].view(bool)
        own_count[box][own] = votes[own]
    keep_own = own_count >= best_count
    changeable = np.isin(labels, [int(k) for k in classes])
    if ignore_index is not None:
        changeable &= labels != ignore_index
    out = labels.copy()
    change = changeable & ~keep_own
    out[change] = best_label[change].astype(out.dtype, copy=False)
    return out
