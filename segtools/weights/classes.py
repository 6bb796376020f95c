"""Class-balancing weights for training losses, from pixel counts of label masks.

Four schemes:

* ``inverse`` — inverse frequency, ``w_c = N / (C · n_c)`` (scikit-learn's "balanced"): the
  weights times the counts sum to ``N``, a class at the mean frequency gets 1.
* ``sqrt`` — the square root of ``inverse``: rare classes still count more, with far fewer
  false positives traded for their recall.
* ``median`` — median frequency balancing (Eigen & Fergus, ICCV 2015):
  ``w_c = median(f) / f_c`` where ``f_c = n_c / P_c`` and ``P_c`` is the number of (valid)
  pixels in the images where class ``c`` is present. Without per-image presence, ``P_c`` is the
  total pixel count (plain median frequency).
* ``effective`` — effective number of samples (Cui et al., CVPR 2019):
  ``w_c ∝ (1 − β) / (1 − β^{n_c})``, normalised so the weights sum to ``C``. With pixel counts
  in the millions ``β^{n_c}`` vanishes and the weights flatten out; use β close to 1
  (e.g. 0.99999) or counts of images rather than pixels to make it bite.

Classes with no pixels get weight 0 (they cannot contribute to a loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from segtools.errors import InputError, UsageError

METHODS = ("inverse", "sqrt", "median", "effective")


@dataclass
class PixelCounts:
    """Per-class pixel counts over a set of masks.

    Attributes
    ----------
    pixels : int64 (C,), pixels of each class.
    present_pixels : int64 (C,), valid pixels of the images in which each class occurs
        (the denominator of Eigen & Fergus' class frequency).
    images : number of masks counted.
    ignored : pixels skipped (ignore index).
    """

    pixels: np.ndarray
    present_pixels: np.ndarray
    images: int
    ignored: int


def count_pixels(masks: Iterable[np.ndarray], num_classes: int,
                 ignore_index: int | Sequence[int] | None = 255) -> PixelCounts:
    """Count the pixels of each class over ``masks`` (H×W integer label arrays), one
    :func:`segtools.labels.class_counts` per mask.

    Raises
    ------
    InputError
        A label that is neither a class in ``[0, num_classes)`` nor ignored.
    """
    from segtools.labels import class_counts

    if num_classes < 1:
        raise UsageError(f"num_classes must be at least 1, not {num_classes}")
    pixels = np.zeros(num_classes, np.int64)
    present = np.zeros(num_classes, np.int64)
    images = ignored = 0
    for number, mask in enumerate(masks):
        mask = np.asarray(mask)
        counts = class_counts(mask, num_classes, ignore_index, name=f"mask {number}")
        valid = int(counts.sum())
        ignored += int(mask.size - valid)
        pixels += counts
        present += np.where(counts > 0, valid, 0)
        images += 1
    return PixelCounts(pixels, present, images, ignored)


def class_weights(pixel_counts: np.ndarray | PixelCounts, method: str = "median", beta: float = 0.999,
                  present_pixels: np.ndarray | None = None) -> np.ndarray:
    """Per-class loss weights (float64, shape (C,)) from pixel counts.

    Parameters
    ----------
    pixel_counts : (C,) pixels per class, or a :class:`PixelCounts` (which also supplies
        ``present_pixels``).
    method : ``inverse``, ``sqrt`` (its square root), ``median`` or ``effective`` (see the
        module docstring).
    beta : the effective-number hyper-parameter in [0, 1).
    present_pixels : (C,) pixels of the images where each class occurs, for ``median``.

    Examples
    --------
    >>> class_weights(np.array([100, 300]), "inverse").tolist()
    [2.0, 0.6666666666666666]
    >>> class_weights(np.array([100, 400]), "sqrt").round(4).tolist()
    [1.5811, 0.7906]
    >>> class_weights(np.array([100, 300, 0]), "median").tolist()
    [2.0, 0.6666666666666666, 0.0]
    """
    if isinstance(pixel_counts, PixelCounts):
        present_pixels = pixel_counts.present_pixels if present_pixels is None else present_pixels
        pixel_counts = pixel_counts.pixels
    counts = np.asarray(pixel_counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0 or (counts < 0).any():
        raise InputError("pixel counts must be a non-empty 1-D array of non-negative numbers")
    seen = counts > 0
    weights = np.zeros_like(counts)
    if not seen.any():
        raise InputError("no class has any pixel: nothing to balance")
    if method == "inverse":
        weights[seen] = counts.sum() / (counts.size * counts[seen])
    elif method == "sqrt":  # square root of the inverse frequency: a milder re-balancing
        weights[seen] = np.sqrt(counts.sum() / (counts.size * counts[seen]))
    elif method == "median":
        denominator = counts.sum() if present_pixels is None else np.asarray(present_pixels, np.float64)[seen]
        frequency = counts[seen] / denominator
        weights[seen] = np.median(frequency) / frequency
    elif method == "effective":
        if not 0.0 <= beta < 1.0:
            raise UsageError(f"beta must be in [0, 1), not {beta}")
        effective_number = -np.expm1(counts[seen] * np.log(beta)) if beta > 0 else np.ones(seen.sum())
        raw = (1.0 - beta) / effective_number
        weights[seen] = raw * counts.size / raw.sum()
    else:
        raise UsageError(f"unknown class-weight method {method!r}; use one of {', '.join(METHODS)}")
    return weights


#: ``ignore_index`` of :func:`weights_from_masks` when not given: the classes' own, else 255
FROM_CLASSES = "from-classes"


def weights_from_masks(paths: Sequence[str], method: str = "median", *, num_classes: int | None = None,
                       classes=None, ignore_index: int | None | str = FROM_CLASSES, beta: float = 0.999,
                       jobs: int = 1) -> dict:
    """Class-balancing weights from the pixel counts of the label masks at ``paths``, as the
    report ``segtools weights classes`` prints.

    Parameters
    ----------
    paths : label mask files.
    method : ``inverse``, ``sqrt`` (its square root), ``median`` or ``effective`` (see the
        module docstring).
    num_classes : default: the number of class names, else the largest label + 1.
    classes : a :class:`~segtools.io.meta.ClassMeta`; default: the first mask's metadata.
    ignore_index : the void label, ``None`` for none; default: the classes' own, else 255.
    beta : the effective-number β in [0, 1).
    jobs : parallel readers (0 = all CPUs).

    Returns
    -------
    dict
        ``method``, ``num_classes``, ``class_names``, ``ignore_index``, ``images``,
        ``ignored_pixels``, ``pixels`` and ``weights`` per class (and ``beta`` for ``effective``).
    """
    from segtools.io.parallel import pmap

    if method not in METHODS:
        raise UsageError(f"class-weight method {method!r}: choose one of {', '.join(METHODS)}")
    loaded = list(pmap(_read_labels, list(paths), jobs))
    meta = classes if classes is not None else next((m for _, m in loaded if m is not None), None)
    if ignore_index == FROM_CLASSES:
        ignore_index = meta.ignore_index if meta is not None else 255
    names = list(meta.names) if meta is not None and meta.names else None
    if num_classes is None:
        num_classes = len(names) if names else _largest_label((labels for labels, _ in loaded), ignore_index) + 1
    counts = count_pixels((labels for labels, _ in loaded), num_classes, ignore_index)
    weights = class_weights(counts, method, beta=beta)
    report = {
        "method": method, "num_classes": num_classes,
        "class_names": names[:num_classes] if names else None,
        "ignore_index": ignore_index, "images": counts.images, "ignored_pixels": counts.ignored,
        "pixels": counts.pixels.tolist(), "weights": [round(float(w), 6) for w in weights],
    }
    if method == "effective":
        report["beta"] = beta
    return report


def _read_labels(path: str):
    from segtools.io.masks import read_label_mask

    mask = read_label_mask(path)
    return mask.labels, mask.meta


def _largest_label(masks: Iterable[np.ndarray], ignore_index: int | None) -> int:
    """The largest label of ``masks`` that is not ``ignore_index`` (0 when there is none)."""
    top = -1
    for labels in masks:
        values = np.unique(labels)
        values = values[values != ignore_index] if ignore_index is not None else values
        if values.size:
            top = max(top, int(values.max()))
    return max(top, 0)
