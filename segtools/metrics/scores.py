"""Scores derived from a confusion matrix (rows ground truth, columns prediction).

Conventions (the libraries disagree here, so they are spelled out):

- A class *present* in the ground truth or the prediction gets a number for every ratio;
  a ratio whose denominator is empty is 0 (a class predicted but absent from the ground
  truth has IoU 0, recall 0; a class never predicted has precision 0) — as torchmetrics
  and scikit-learn (``zero_division=0``) do.
- A class absent from both is NaN for every ratio and left out of every mean.
  (mmsegmentation differs: its mAcc also leaves out classes absent from the ground truth.)
- Per-class ``accuracy`` is the class accuracy of segmentation papers, TP / GT pixels
  (the same number as recall); ``mean_class_accuracy`` is its mean (mAcc).
- Misses (a prediction equal to an ignore value at a scored pixel) count as false
  negatives of the ground-truth class and as wrong pixels for pixel accuracy.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from segtools.errors import InputError

PER_CLASS_KEYS = ("iou", "dice", "precision", "recall", "accuracy")
SUMMARY_KEYS = ("miou", "pixel_accuracy", "mean_class_accuracy", "mean_dice", "fw_iou", "kappa")


def _ratio(numerator: np.ndarray, denominator: np.ndarray, present: np.ndarray) -> np.ndarray:
    """numerator / denominator; 0 where the denominator is 0 but the class is present, NaN where absent."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = numerator / np.where(denominator > 0, denominator, 1)
    out = np.where(denominator > 0, out, 0.0)
    return np.where(present, out, np.nan)


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


def class_scores(confusion: np.ndarray, missed: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-class arrays: ``tp``, ``gt_pixels``, ``pred_pixels`` (int64) and the ratios (float64).

    Parameters
    ----------
    confusion : (C, C) counts, rows ground truth, columns prediction.
    missed : (C,) ground-truth pixels per class predicted as an ignore value, or ``None``.
    """
    confusion = np.asarray(confusion, np.int64)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise InputError(f"a confusion matrix is square (C×C), not {confusion.shape}")
    tp = np.diagonal(confusion).copy()
    gt_pixels = confusion.sum(axis=1)
    if missed is not None:
        gt_pixels = gt_pixels + np.asarray(missed, np.int64)
    pred_pixels = confusion.sum(axis=0)
    present = (gt_pixels > 0) | (pred_pixels > 0)
    union = gt_pixels + pred_pixels - tp
    recall = _ratio(tp, gt_pixels, present)
    return {
        "tp": tp,
        "gt_pixels": gt_pixels,
        "pred_pixels": pred_pixels,
        "present": present,
        "iou": _ratio(tp, union, present),
        "dice": _ratio(2 * tp, gt_pixels + pred_pixels, present),
        "precision": _ratio(tp, pred_pixels, present),
        "recall": recall,
        "accuracy": recall,
    }


def summary_scores(per_class: dict[str, np.ndarray]) -> dict[str, float]:
    """Overall scores from :func:`class_scores` output (NaN when nothing was scored)."""
    tp, gt_pixels, pred_pixels = per_class["tp"], per_class["gt_pixels"], per_class["pred_pixels"]
    total = int(gt_pixels.sum())
    if total == 0:
        return {key: math.nan for key in SUMMARY_KEYS}
    observed = tp.sum() / total
    expected = float((gt_pixels.astype(np.float64) * pred_pixels).sum()) / (float(total) ** 2)
    kappa = (observed - expected) / (1.0 - expected) if expected < 1.0 else (1.0 if observed == 1.0 else 0.0)
    iou = per_class["iou"]
    frequency = gt_pixels / total
    return {
        "miou": _nanmean(iou),
        "pixel_accuracy": float(observed),
        "mean_class_accuracy": _nanmean(per_class["accuracy"]),
        "mean_dice": _nanmean(per_class["dice"]),
        "fw_iou": float(np.nansum(frequency * np.where(gt_pixels > 0, iou, 0.0))),
        "kappa": float(kappa),
    }


def scores(confusion: np.ndarray, class_names: Sequence[str] | None = None,
           missed: np.ndarray | None = None) -> dict:
    """The metrics report fields for a confusion matrix.

    Parameters
    ----------
    confusion : (C, C) int counts, rows ground truth, columns prediction.
    class_names : C names, or ``None`` (then ``"class_<i>"``).
    missed : (C,) misses per ground-truth class (see :mod:`segtools.metrics.confusion`).

    Returns
    -------
    dict
        ``num_classes``, ``class_names``, ``miou``, ``pixel_accuracy``,
        ``mean_class_accuracy``, ``mean_dice``, ``fw_iou``, ``kappa`` (floats in [0, 1],
        kappa in [-1, 1], NaN when undefined), ``per_class`` (list of dicts with ``index``,
        ``name``, ``iou``, ``dice``, ``precision``, ``recall``, ``accuracy``, ``gt_pixels``,
        ``pred_pixels``), ``confusion`` (list of lists) and ``missed`` (list).

    Examples
    --------
    >>> report = scores(np.array([[3, 1], [0, 4]]), ["bg", "fg"])
    >>> round(report["miou"], 4), report["per_class"][1]["iou"]
    (0.775, 0.8)
    """
    confusion = np.asarray(confusion, np.int64)
    per_class = class_scores(confusion, missed)
    num_classes = confusion.shape[0]
    if class_names is None:
        names = [f"class_{i}" for i in range(num_classes)]
    else:
        names = [str(n) for n in class_names]
        if len(names) != num_classes:
            raise InputError(f"{len(names)} class names for a {num_classes}-class confusion matrix")
    rows = []
    for i in range(num_classes):
        row: dict = {"index": i, "name": names[i]}
        row.update({key: float(per_class[key][i]) for key in PER_CLASS_KEYS})
        row["gt_pixels"] = int(per_class["gt_pixels"][i])
        row["pred_pixels"] = int(per_class["pred_pixels"][i])
        rows.append(row)
    report: dict = {"num_classes": num_classes, "class_names": names}
    report.update(summary_scores(per_class))
    report["per_class"] = rows
    report["confusion"] = confusion.tolist()
    report["missed"] = (np.zeros(num_classes, np.int64) if missed is None else np.asarray(missed, np.int64)).tolist()
    return report
