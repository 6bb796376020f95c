"""Score maps to label masks: argmax, a foreground threshold, per-class thresholds, confidence.

:func:`scores_to_labels` is the kernel over an array; :func:`decode_scores` is the step of
the cleanup pipeline that also settles the class metadata of the result (a thresholded
one-class map is binary: ``background`` and the class).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from segtools.errors import InputError, UsageError
from segtools.io.limits import check_class_count
from segtools.io.meta import ClassMeta
from segtools.labels import argmax_scores


def check_finite_scores(scores: np.ndarray, name: str = "the score map") -> None:
    """Refuse float scores holding NaN or ±inf (one vectorised pass; a second only to say which).

    >>> check_finite_scores(np.array([0.0, np.inf]))
    Traceback (most recent call last):
    ...
    segtools.errors.InputError: the score map holds infinite values; fix the model output or replace them first
    """
    if scores.dtype.kind != "f":
        raise InputError(f"{name}: a score map holds floats, not {scores.dtype}")
    if not np.isfinite(scores).all():
        kind = "NaN" if np.isnan(scores).any() else "infinite"
        raise InputError(f"{name} holds {kind} values; fix the model output or replace them first")


def scores_to_labels(scores: np.ndarray, threshold: float | Mapping[int, float] | None = None,
                     min_confidence: float | None = None, below: int = 255,
                     name: str = "the score map") -> np.ndarray:
    """Turn float scores into class labels.

    Parameters
    ----------
    scores : C×H×W probabilities (or H×W / 1×H×W for one foreground class), in [0, 1].
    threshold :
        * one number with one foreground class (H×W or 1×H×W): label 1 where the score is
          at least the threshold, else 0;
        * one number with two classes (2×H×W): label 1 where the class-1 score is at least
          the threshold, else 0 (a softmax over background and foreground);
        * one number with more classes, or a ``{class: threshold}`` mapping: a class can
          win the argmax only where its score reaches its threshold (classes missing from
          the mapping always can); pixels no class can win get ``below``.
    min_confidence : pixels whose winning score is under this get ``below``.
    below : the label for low-confidence pixels (the ignore index, or background).
    name : what to call the score map in messages (its file).

    Returns
    -------
    H×W uint8 labels (uint16 when there are more than 255 classes).

    Raises
    ------
    InputError
        One-class score map without a threshold, NaN or infinite scores, a class in ``threshold``
        outside the score map.

    Examples
    --------
    >>> s = np.array([[[0.9, 0.2]], [[0.1, 0.8]]], np.float32)
    >>> scores_to_labels(s).tolist()
    [[0, 1]]
    >>> scores_to_labels(s, {0: 0.95, 1: 0.5}, below=255).tolist()
    [[255, 1]]
    """
    scores = np.asarray(scores)
    if scores.ndim == 2:
        scores = scores[None]
    if scores.ndim != 3 or scores.shape[0] == 0:
        raise InputError(f"a score map is C×H×W or H×W, not {scores.shape}")
    check_finite_scores(scores, name)
    num_classes = check_class_count(scores.shape[0], "score map channels")
    if num_classes == 1 or (num_classes == 2 and isinstance(threshold, (int, float))):
        if threshold is None:
            raise InputError("a one-class score map (H×W) needs a threshold: give threshold=T, e.g. 0.5")
        if isinstance(threshold, Mapping):
            raise UsageError("per-class thresholds need a C×H×W score map with several classes; "
                             "give one number for a one-class map")
        labels = (scores[-1] >= threshold).astype(np.uint8 if below <= 255 else np.uint16)
        if min_confidence is not None:
            confidence = np.where(labels == 1, scores[-1], 1 - scores[-1]) if num_classes == 1 else \
                np.where(labels == 1, scores[1], scores[0])
            labels[confidence < min_confidence] = below
        return labels
    dtype = np.uint8 if max(num_classes - 1, below) <= 255 else np.uint16
    if below < num_classes:
        raise UsageError(f"the low-confidence label {below} is a class of this {num_classes}-class score map; "
                         "choose another ignore index")
    eligible = None
    if threshold is not None:
        per_class = _per_class_thresholds(threshold, num_classes)
        eligible_scores = np.where(scores >= per_class[:, None, None], scores, -np.inf)
        winner = argmax_scores(eligible_scores)
        eligible = np.take_along_axis(eligible_scores, winner[None], 0)[0] > -np.inf
    else:
        winner = argmax_scores(scores)
    best = np.take_along_axis(scores, winner[None], 0)[0]
    labels = winner.astype(dtype)
    low = np.zeros(labels.shape, bool) if eligible is None else ~eligible
    if min_confidence is not None:
        low |= best < min_confidence
    labels[low] = below
    return labels


def _per_class_thresholds(threshold: float | Mapping[int, float], num_classes: int) -> np.ndarray:
    if not isinstance(threshold, Mapping):
        return np.full(num_classes, float(threshold), np.float32)
    per_class = np.full(num_classes, -np.inf, np.float32)
    for k, value in threshold.items():
        if not 0 <= k < num_classes:
            raise InputError(f"threshold: class {k} is not in the score map, whose classes are 0..{num_classes - 1}")
        per_class[k] = value
    return per_class


def is_binary(num_classes: int, threshold: float | Mapping[int, float] | None) -> bool:
    """Whether a score map of ``num_classes`` channels thresholded this way gives a 0/1 mask."""
    return num_classes == 1 or (num_classes == 2 and threshold is not None and not isinstance(threshold, Mapping))


def decode_scores(scores: np.ndarray, meta: ClassMeta | None, below: int,
                  threshold: float | Mapping[int, float] | None = None, min_confidence: float | None = None,
                  name: str = "the score map") -> tuple[np.ndarray, ClassMeta]:
    """A score map → (labels, their class metadata), by :func:`scores_to_labels`.

    A binary result (see :func:`is_binary`) is named ``background`` and the class (from one
    name in ``meta``, or ``foreground``); otherwise ``meta`` is kept. The ignore index of the
    result is ``meta``'s (255 without metadata).

    >>> labels, meta = decode_scores(np.array([[0.2, 0.7]], np.float32), ClassMeta(names=("car",)), 255, 0.5)
    >>> labels.tolist(), meta.names
    ([[0, 1]], ('background', 'car'))
    """
    num_classes = 1 if np.ndim(scores) == 2 else np.shape(scores)[0]
    ignore = meta.ignore_index if meta is not None else 255
    labels = scores_to_labels(scores, threshold, min_confidence, below, name)
    if is_binary(num_classes, threshold):
        names: tuple[str, ...] = ("background", "foreground")
        if meta is not None and meta.names and len(meta.names) in (1, 2):
            names = ("background", meta.names[0]) if len(meta.names) == 1 else tuple(meta.names)
        return labels, ClassMeta(names=names, ignore_index=ignore)
    return labels, meta if meta is not None else ClassMeta(ignore_index=ignore)
