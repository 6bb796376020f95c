"""Kernels over label masks and score maps that every part shares.

One of each, vectorised, with no I/O: :func:`remap_labels` (a value→value lookup),
:func:`value_counts` (pixels of every value), :func:`class_counts` (pixels per class,
refusing values that are neither a class nor ignored) and :func:`argmax_scores` (a C×H×W
score map → H×W labels). ``metrics``, ``train``, ``viz``, ``morphology`` and ``inference``
call these instead of keeping their own.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from segtools.errors import InputError
from segtools.io.limits import MAX_CLASSES, label_table_size

__all__ = ["remap_labels", "value_counts", "class_counts", "argmax_scores"]

_CALCHIST_LIMIT = 1 << 24  # cv2.calcHist counts in float32: exact below 2**24 pixels


def remap_labels(labels: np.ndarray, sources: Sequence[int], targets: Sequence[int]) -> np.ndarray:
    """Replace every value ``sources[i]`` of an integer label array by ``targets[i]``.

    Values not in ``sources`` are kept. While every value (labels and map) lies in
    0..65535 this is one lookup table indexed by the labels; otherwise the map is sorted
    and searched (``np.searchsorted``), so negative or huge values cost no giant table.

    Parameters
    ----------
    labels : ndarray of int
        Label values, any shape.
    sources, targets : sequence of int
        The map, ``sources[i] → targets[i]``; equal lengths, each source once.

    Returns
    -------
    ndarray
        Same shape as ``labels``. The smallest of uint8, uint16 and int64 that holds every
        result when the table is used; int64 otherwise.

    Raises
    ------
    ValueError
        ``sources`` and ``targets`` differ in length, or ``labels`` are not integers.

    Examples
    --------
    >>> remap_labels(np.array([[1, 2, 3]], np.uint8), (1, 2), (0, 255)).tolist()
    [[0, 255, 3]]
    >>> remap_labels(np.array([-1, 0]), (-1,), (9,)).tolist()
    [9, 0]
    """
    labels = np.asarray(labels)
    if labels.dtype == bool:
        labels = labels.view(np.uint8)
    if labels.dtype.kind not in "iu":
        raise ValueError(f"remap_labels needs integer labels, not {labels.dtype}")
    sources, targets = np.asarray(sources, np.int64).ravel(), np.asarray(targets, np.int64).ravel()
    if sources.shape != targets.shape:
        raise ValueError(f"remap_labels: {sources.size} sources but {targets.size} targets")
    if sources.size == 0:
        return labels.copy()
    high = max(int(labels.max(initial=0)), int(sources.max()))
    low = min(int(labels.min(initial=0)), int(sources.min()))
    if low < 0 or high >= MAX_CLASSES:
        order = np.argsort(sources, kind="stable")
        sorted_sources, sorted_targets = sources[order], targets[order]
        pos = np.minimum(np.searchsorted(sorted_sources, labels), len(sorted_sources) - 1)
        return np.where(sorted_sources[pos] == labels, sorted_targets[pos], labels).astype(np.int64)
    table = np.arange(high + 1, dtype=np.int64)
    table[sources] = targets
    low, high = int(table.min()), int(table.max())
    if low >= 0 and high <= 255:
        out_dtype = np.uint8
    elif low >= 0 and high <= 65535:
        out_dtype = np.uint16
    else:
        out_dtype = np.int64
    return table.astype(out_dtype)[labels]


def value_counts(labels: np.ndarray, name: str = "label mask") -> np.ndarray:
    """Pixels of every value ``0..max`` of an integer label mask, as int64.

    A uint8 mask is histogrammed without widening it (OpenCV's ``calcHist``, below 2**24
    pixels where its float32 counts are exact); any other integer mask is one
    ``np.bincount``. The result has ``labels.max() + 1`` entries (0 for an empty mask).

    Parameters
    ----------
    labels : ndarray of int or bool
        Any shape.
    name : str
        Where the labels came from, for messages (a path).

    Raises
    ------
    InputError
        ``labels`` are not integers, or hold a value outside 0..65535 (the 16-bit PNG
        limit; checked before a table that long is made).

    Examples
    --------
    >>> value_counts(np.array([[0, 2, 2]], np.uint8)).tolist()
    [1, 0, 2]
    """
    labels = np.asarray(labels)
    if labels.dtype == bool:
        labels = labels.view(np.uint8)
    if labels.dtype.kind not in "iu":
        raise InputError(f"{name}: counting labels needs integer values, not {labels.dtype}")
    size = label_table_size(labels, name)
    if labels.dtype == np.uint8 and 0 < labels.size < _CALCHIST_LIMIT:
        import cv2

        flat = np.ascontiguousarray(labels).reshape(-1, 1)
        hist = cv2.calcHist([flat], [0], None, [256], [0, 256]).reshape(-1).astype(np.int64)
        return hist[:size]
    return np.bincount(labels.ravel(), minlength=size).astype(np.int64)


def _ignored(ignore_index: int | Sequence[int] | None) -> tuple[int, ...]:
    if ignore_index is None:
        return ()
    if isinstance(ignore_index, (int, np.integer)):
        return (int(ignore_index),)
    return tuple(int(v) for v in ignore_index)


def class_counts(labels: np.ndarray, num_classes: int, ignore_index: int | Sequence[int] | None = 255,
                 name: str = "label mask") -> np.ndarray:
    """Pixels per class ``0..num_classes-1`` of an integer label mask, as int64.

    Ignored pixels are not counted (an ignore value that is also a class counts 0). A value
    that is neither a class nor ignored is an error naming the first few such values.

    Parameters
    ----------
    labels : ndarray of int
        Any shape.
    num_classes : int
        The number of classes C.
    ignore_index : int, sequence of int or None
        The value(s) of void pixels; ``None`` for none.
    name : str
        Where the labels came from, for messages (a path).

    Returns
    -------
    ndarray of int64, shape (C,)

    Raises
    ------
    InputError
        A value outside ``0..C-1`` that is not ignored.

    Examples
    --------
    >>> class_counts(np.array([0, 2, 255]), 3, 255).tolist()
    [1, 0, 1]
    >>> class_counts(np.array([[0, 7]]), 3, None)
    Traceback (most recent call last):
    ...
    segtools.errors.InputError: label mask: holds label value(s) 7, which are not classes 0..2; check the number of classes and the ignore index
    """
    labels = np.asarray(labels)
    if labels.dtype == bool:
        labels = labels.view(np.uint8)
    if labels.dtype.kind not in "iu":
        raise InputError(f"{name}: counting labels needs integer values, not {labels.dtype}")
    ignored = _ignored(ignore_index)
    low = int(labels.min()) if labels.size else 0
    high = int(labels.max()) if labels.size else 0
    if low >= 0 and high < MAX_CLASSES:
        counts = value_counts(labels, name)
        counts = np.pad(counts, (0, max(0, num_classes - len(counts))))
        for value in ignored:
            if 0 <= value < len(counts):
                counts[value] = 0
        bad = np.flatnonzero(counts[num_classes:]) + num_classes
    else:  # negative or huge values: find them without a table indexed by them
        flat = labels.ravel()
        outside = (flat < 0) | (flat >= num_classes)
        if ignored:
            outside &= ~np.isin(flat, ignored)
        bad = np.unique(flat[outside])
        counts = None
    if bad.size:
        values = ", ".join(str(v) for v in bad[:5].tolist())
        shown = ", ".join(str(v) for v in ignored)
        also = f" nor the ignore index {shown}" if ignored else ""
        raise InputError(f"{name}: holds label value(s) {values}, which are not classes 0..{num_classes - 1}{also}; "
                         "check the number of classes and the ignore index")
    if counts is None:
        keep = labels.ravel()
        keep = keep[(keep >= 0) & (keep < num_classes)]
        counts = np.bincount(keep.astype(np.int64), minlength=num_classes)
        for value in ignored:
            if 0 <= value < num_classes:
                counts[value] = 0
    return counts[:num_classes].astype(np.int64)


def argmax_scores(scores: np.ndarray) -> np.ndarray:
    """The most probable class of every pixel of a C×H×W score map, as H×W labels.

    Equal to ``np.argmax(scores, axis=0)`` (ties and NaNs included: the lower class wins a
    tie, the first NaN wins a pixel that has one) but 2-6× faster on CPU: each class plane
    is compared whole against a running maximum, so every pass is one contiguous,
    vectorised sweep instead of a reduction across the strided class axis.

    Parameters
    ----------
    scores : ndarray, shape (C, H, W)
        Probabilities or logits, any real dtype; C ≥ 1.

    Returns
    -------
    ndarray, shape (H, W)
        uint8 when C ≤ 256, else uint16.

    Raises
    ------
    InputError
        ``scores`` is not 3-D with at least one class, or C > 65,536.

    Examples
    --------
    >>> argmax_scores(np.array([[[0.2, 0.5]], [[0.8, 0.5]]], np.float32)).tolist()
    [[1, 0]]
    """
    scores = np.asarray(scores)
    if scores.ndim != 3 or scores.shape[0] == 0:
        raise InputError(f"a score map is C×H×W with at least one class, not shape {scores.shape}")
    if scores.shape[0] > MAX_CLASSES:
        raise InputError(f"a score map of {scores.shape[0]:,} classes is more than {MAX_CLASSES:,} (the 16-bit limit)")
    dtype = np.uint8 if scores.shape[0] <= 256 else np.uint16
    best = scores[0].copy()
    labels = np.zeros(best.shape, dtype)
    wins = np.empty(best.shape, bool)
    for channel in range(1, scores.shape[0]):
        plane = scores[channel]
        np.greater(plane, best, out=wins)
        np.putmask(labels, wins, channel)
        np.maximum(best, plane, out=best)
    if best.dtype.kind in "fc":
        nan = np.isnan(best)  # np.maximum carries a NaN along: best is NaN where any plane is
        if nan.any():
            labels[nan] = np.argmax(np.isnan(scores[:, nan]), axis=0)
    return labels
