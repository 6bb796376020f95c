"""Boundary quality: boundary F1 (BF score) and Boundary IoU, per class, summable over images.

**Boundary IoU** (Cheng et al., CVPR 2021). For a class mask ``M``, the inner band ``M_d`` is
the pixels of ``M`` within ``d`` pixels (chessboard distance) of a pixel outside ``M`` — the
image border counts as outside, as in the reference ``mask_to_boundary``. ``d`` is
``round(dilation_ratio × image diagonal)``, at least 1. Boundary IoU =
``|G_d ∩ P_d| / |G_d ∪ P_d|``; intersections and unions are summed over the dataset before
dividing (like the confusion-matrix IoU).

**Boundary F1** (Csurka et al., BMVC 2013). The boundary of a class is its pixels that touch
(8-neighbourhood) a pixel of another label; the image border is not a boundary. A predicted
boundary pixel is a hit when a ground-truth boundary pixel of the same class lies within
``tolerance`` pixels (Euclidean), and the reverse for recall. Precision and recall counts are
summed over the dataset, then BF = 2PR/(P+R).

Pixels whose ground truth is ignored are left out of every count. All classes share one
pass over the label map for the bands (a min/max filter says where labels change); only the
BF matching loops over the classes present in the image.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

COUNT_KEYS = ("bf_pred_hits", "bf_pred_total", "bf_gt_hits", "bf_gt_total", "biou_intersection", "biou_union")


def band_width(height: int, width: int, dilation_ratio: float) -> int:
    """Boundary IoU band width in pixels: ``round(ratio × diagonal)``, at least 1.

    >>> band_width(360, 480, 0.02)
    12
    """
    return max(1, int(round(dilation_ratio * math.hypot(height, width))))


def _as_cv_labels(labels: np.ndarray) -> np.ndarray:
    if labels.dtype in (np.uint8, np.uint16):
        return np.ascontiguousarray(labels)
    return np.clip(labels, 0, 65535).astype(np.uint16)


def label_band(labels: np.ndarray, width: int, border_is_edge: bool = True) -> np.ndarray:
    """Pixels within ``width`` pixels (chessboard) of a pixel with another label: bool H×W.

    With ``border_is_edge`` the outside of the image counts as another label.
    """
    import cv2

    labels = _as_cv_labels(labels)
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    top = np.iinfo(labels.dtype).max
    if border_is_edge:
        low = cv2.erode(labels, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
        high = cv2.dilate(labels, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=int(top))
    else:
        low = cv2.erode(labels, kernel, borderType=cv2.BORDER_REPLICATE)
        high = cv2.dilate(labels, kernel, borderType=cv2.BORDER_REPLICATE)
    return low != high


def _class_histogram(labels: np.ndarray, where: np.ndarray, num_classes: int) -> np.ndarray:
    """Pixel counts per class value (0..C-1) of ``labels`` where ``where`` is true."""
    values = labels[where]
    values = values[values < num_classes]
    return np.bincount(values.astype(np.int64), minlength=num_classes)[:num_classes]


def boundary_counts(pred: np.ndarray, gt: np.ndarray, num_classes: int,
                    ignore_index: int | Sequence[int] | None = 255, tolerance: float = 2.0,
                    dilation_ratio: float = 0.02) -> dict[str, np.ndarray]:
    """Summable per-class counts for boundary F1 and Boundary IoU of one image pair.

    Parameters
    ----------
    pred, gt : H×W label masks, already validated (values are classes or ignore values).
    num_classes : C.
    ignore_index : ground-truth value(s) to leave out.
    tolerance : BF match distance in pixels (Euclidean).
    dilation_ratio : Boundary IoU band width as a fraction of the image diagonal.

    Returns
    -------
    dict of int64 (C,) arrays, keys :data:`COUNT_KEYS`.
    """
    import cv2

    from segtools.metrics.confusion import normalise_ignore

    ignore = normalise_ignore(ignore_index)
    scored = ~np.isin(gt, ignore) if ignore else np.ones(gt.shape, bool)
    height, width = gt.shape

    # Boundary IoU: inner bands of every class at once.
    band = band_width(height, width, dilation_ratio)
    gt_band = label_band(gt, band) & scored
    pred_band = label_band(pred, band) & scored
    both = gt_band & pred_band & (gt == pred)
    intersection = _class_histogram(gt, both, num_classes)
    union = _class_histogram(gt, gt_band, num_classes) + _class_histogram(pred, pred_band, num_classes) - intersection

    # Boundary F1: 1-pixel contours, matched within the tolerance disk, class by class.
    gt_edge = label_band(gt, 1, border_is_edge=False) & scored
    pred_edge = label_band(pred, 1, border_is_edge=False) & scored
    radius = max(0, int(math.floor(tolerance)))
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    disk = ((yy * yy + xx * xx) <= tolerance * tolerance).astype(np.uint8)
    gt_edge_labels = np.where(gt_edge, gt, num_classes).astype(np.int64)
    pred_edge_labels = np.where(pred_edge, pred, num_classes).astype(np.int64)
    gt_total = np.bincount(gt_edge_labels.ravel(), minlength=num_classes + 1)[:num_classes]
    pred_total = np.bincount(pred_edge_labels.ravel(), minlength=num_classes + 1)[:num_classes]
    gt_hits = np.zeros(num_classes, np.int64)
    pred_hits = np.zeros(num_classes, np.int64)
    for cls in np.flatnonzero((gt_total > 0) & (pred_total > 0)):
        gt_c = (gt_edge_labels == cls).view(np.uint8)
        pred_c = (pred_edge_labels == cls).view(np.uint8)
        near_gt = cv2.dilate(gt_c, disk)
        near_pred = cv2.dilate(pred_c, disk)
        pred_hits[cls] = np.count_nonzero(pred_c & near_gt)
        gt_hits[cls] = np.count_nonzero(gt_c & near_pred)
    return {
        "bf_pred_hits": pred_hits, "bf_pred_total": pred_total.astype(np.int64),
        "bf_gt_hits": gt_hits, "bf_gt_total": gt_total.astype(np.int64),
        "biou_intersection": intersection.astype(np.int64), "biou_union": union.astype(np.int64),
    }


def boundary_scores(counts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-class ``boundary_f1`` and ``boundary_iou`` (NaN where a class has no boundary at all).

    A class with boundary pixels on one side only scores 0.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = counts["bf_pred_hits"] / counts["bf_pred_total"]
        recall = counts["bf_gt_hits"] / counts["bf_gt_total"]
        f1 = 2 * precision * recall / (precision + recall)
        biou = counts["biou_intersection"] / counts["biou_union"]
    any_edge = (counts["bf_pred_total"] > 0) | (counts["bf_gt_total"] > 0)
    f1 = np.where(any_edge, np.nan_to_num(f1, nan=0.0), np.nan)
    biou = np.where(counts["biou_union"] > 0, biou, np.nan)
    return {"boundary_f1": f1, "boundary_iou": biou}
