"""Surface-distance metrics for medical and binary masks: HD95, ASSD, normalised surface Dice.

Per image and class, the *surface* of a mask is its pixels with a 4-neighbour outside the
mask (the mask minus its erosion by a cross, as MONAI's ``get_mask_edges``); outside the
image counts as outside the mask, so mask pixels on the image border are surface too. Distances are Euclidean between pixel centres, in physical
units given by ``spacing`` (row, column), via ``scipy.ndimage.distance_transform_edt``.

- **HD95**: the larger of the two directed 95th-percentile distances (GT surface → prediction
  surface and back), as MONAI's ``compute_hausdorff_distance(percentile=95)``.
- **ASSD**: the mean of all distances of both directions pooled together.
- **NSD** at tolerance τ (Nikolov et al. 2021): the fraction of both surfaces lying within τ
  of the other surface.

Empty masks: a class absent from both ground truth and prediction is NaN (left out of the
means). A class present on one side only has HD95 = ASSD = the image diagonal in physical
units (the largest distance the image allows, so a miss is penalised, not skipped) and
NSD = 0. Ignored ground-truth pixels are treated as background on both sides.

Scores are per image; the dataset value of a class is the mean over images where it is
defined, and the summary is the mean over classes. Sums and counts are kept so shards merge.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

DISTANCE_KEYS = ("hd95", "assd", "nsd")


def _surface(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    eroded = ndimage.binary_erosion(mask, border_value=0)
    return mask & ~eroded


def _directed(from_surface: np.ndarray, to_surface: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    from scipy import ndimage

    distance_to = ndimage.distance_transform_edt(~to_surface, sampling=spacing)
    return distance_to[from_surface]


def surface_scores(pred_mask: np.ndarray, gt_mask: np.ndarray, spacing: tuple[float, float] = (1.0, 1.0),
                   tolerance: float = 1.0) -> tuple[float, float, float]:
    """HD95, ASSD and NSD of one binary prediction against its ground truth.

    Parameters
    ----------
    pred_mask, gt_mask : H×W bool.
    spacing : pixel size (row, column) in physical units.
    tolerance : NSD tolerance τ in the same units.

    Returns
    -------
    (hd95, assd, nsd) : floats; NaN when both masks are empty (see the module conventions).

    Examples
    --------
    >>> gt = np.zeros((8, 8), bool); gt[2:6, 2:6] = True
    >>> surface_scores(gt, gt)
    (0.0, 0.0, 1.0)
    """
    pred_mask, gt_mask = np.asarray(pred_mask, bool), np.asarray(gt_mask, bool)
    pred_any, gt_any = bool(pred_mask.any()), bool(gt_mask.any())
    if not pred_any and not gt_any:
        return math.nan, math.nan, math.nan
    if pred_any != gt_any:
        diagonal = math.hypot(gt_mask.shape[0] * spacing[0], gt_mask.shape[1] * spacing[1])
        return diagonal, diagonal, 0.0
    gt_surface, pred_surface = _surface(gt_mask), _surface(pred_mask)
    gt_to_pred = _directed(gt_surface, pred_surface, spacing)
    pred_to_gt = _directed(pred_surface, gt_surface, spacing)
    hd95 = max(float(np.percentile(gt_to_pred, 95)), float(np.percentile(pred_to_gt, 95)))
    pooled = np.concatenate([gt_to_pred, pred_to_gt])
    assd = float(pooled.mean())
    nsd = float(np.count_nonzero(pooled <= tolerance)) / pooled.size
    return hd95, assd, nsd


def distance_sums(pred: np.ndarray, gt: np.ndarray, num_classes: int,
                  ignore_index: int | Sequence[int] | None = 255,
                  spacing: tuple[float, float] = (1.0, 1.0), tolerance: float = 1.0) -> dict[str, np.ndarray]:
    """Per-class sums and counts of HD95, ASSD and NSD for one image (summable over images).

    Returns
    -------
    dict with float64 (C,) ``hd95_sum``, ``assd_sum``, ``nsd_sum`` and int64 (C,) ``count``
    (1 where the class is present in this image, else 0).
    """
    from segtools.metrics.confusion import normalise_ignore

    ignore = normalise_ignore(ignore_index)
    scored = ~np.isin(gt, ignore) if ignore else np.ones(gt.shape, bool)
    present = np.zeros(num_classes, bool)
    for labels in (gt[scored], pred[scored]):
        values = labels[labels < num_classes].astype(np.int64)
        present |= np.bincount(values, minlength=num_classes)[:num_classes] > 0
    sums = {f"{key}_sum": np.zeros(num_classes) for key in DISTANCE_KEYS}
    count = np.zeros(num_classes, np.int64)
    for cls in np.flatnonzero(present):
        hd95, assd, nsd = surface_scores((pred == cls) & scored, (gt == cls) & scored, spacing, tolerance)
        sums["hd95_sum"][cls], sums["assd_sum"][cls], sums["nsd_sum"][cls] = hd95, assd, nsd
        count[cls] = 1
    return {**sums, "count": count}


def distance_means(sums: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-class mean HD95, ASSD and NSD over images (NaN for a class never present)."""
    count = np.asarray(sums["count"], np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {key: np.where(count > 0, np.asarray(sums[f"{key}_sum"]) / count, np.nan) for key in DISTANCE_KEYS}
