"""The confusion matrix: exact int64 counts of (ground truth, prediction) pixel pairs.

Rows are ground-truth classes, columns predicted classes. Pixels whose ground truth is an
ignore value are skipped. A prediction equal to an ignore value at a non-ignored
ground-truth pixel is a *miss*: it lands in no column of the matrix, and is counted apart
(``missed``, per ground-truth class) so the scores can still count it as a false negative.
Any other value outside ``[0, num_classes)`` is an error that names the value: labels are
never dropped silently.

Speed: for 8-bit labels the counts come from a 2-D 256×256 ``cv2.calcHist`` over the
(ground truth, prediction) pair, which sees every value (so validation needs no extra pass
over the pixels). The pixels are fed in an interleaved order that keeps real masks' long
runs from slowing the counting, through reused scratch buffers (see
:func:`_pair_histogram_u8`). One thread: splitting an image between threads gained 1.5× on
the kernel and nothing end to end (bench/RESULTS.md, "metrics, evening"); ``--jobs N``
workers are what fill the cores. ``calcHist`` counts in float32, exact only up to 2**24 per
bin, so counts move to int64 before that: exact at any size. Wider labels (16-bit, int32)
use a validated ``np.bincount``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from segtools.errors import InputError
from segtools.io.limits import MAX_CONFUSION_CLASSES, check_class_count

#: Largest number of pixels a float32 ``cv2.calcHist`` histogram may count and stay exact
#: (float32 represents every integer up to 2**24).
EXACT_CHUNK = 1 << 24

#: Pixel pairs per ``cv2.calcHist`` call: the interleaved copies of one block stay in a
#: core's L2 cache, and the reused scratch buffers stay small (2 × 1 MiB per calling thread).
BLOCK = 1 << 19


def normalise_ignore(ignore_index: int | Sequence[int] | None) -> tuple[int, ...]:
    """Ignore values as a sorted tuple of ints (``None`` → no value is ignored).

    >>> normalise_ignore(255), normalise_ignore([11, 255]), normalise_ignore(None)
    ((255,), (11, 255), ())
    """
    if ignore_index is None:
        return ()
    if isinstance(ignore_index, (int, np.integer)):
        return (int(ignore_index),)
    return tuple(sorted({int(v) for v in ignore_index}))


def _as_labels(array: np.ndarray, what: str, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype == bool:
        return array.view(np.uint8)
    if array.dtype.kind not in "iu":
        raise InputError(f"{name}{what} holds {array.dtype} values, not integer labels")
    return array


def _fits_uint8(array: np.ndarray) -> np.ndarray | None:
    """``array`` as uint8 when every value is in 0..255 (no copy for uint8), else ``None``."""
    if array.dtype == np.uint8:
        return array
    if array.size == 0:
        return array.astype(np.uint8)
    low, high = int(array.min()), int(array.max())
    if low >= 0 and high <= 255:
        return array.astype(np.uint8)
    return None


def _pair_histogram_u8(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """256×256 int64 counts of (gt value, pred value) pairs; exact for any pixel count.

    Label masks are made of long runs broken by noise, so neighbouring pixels keep hitting
    the same histogram bin and the CPU's guesses about which loads depend on which stores
    keep failing: counting a real mask in pixel order is ~1.6× slower than counting random
    labels. So the pixels are fed in another order: pixel ``k`` of the first half of the
    image alternates with pixel ``k`` of the second half, two regions far apart that rarely
    share a class (see :func:`_count_pairs`).
    """
    gt_flat = np.ascontiguousarray(gt).reshape(-1)
    pred_flat = np.ascontiguousarray(pred).reshape(-1)
    half = gt_flat.size // 2
    if half < 4096:  # small images: not worth the copy
        return _count_pairs(gt_flat, pred_flat, 0)
    counts = _count_pairs(gt_flat, pred_flat, half)
    if gt_flat.size % 2:
        counts[gt_flat[-1], pred_flat[-1]] += 1
    return counts


def _count_pairs(gt_flat: np.ndarray, pred_flat: np.ndarray, half: int) -> np.ndarray:
    """Counts of pixels ``k`` and ``half + k`` for ``0 <= k < half`` (all pixels if ``half == 0``).

    The interleaved copies are made block by block (:data:`BLOCK` pairs) into scratch
    buffers reused across calls (one pair per calling thread, so concurrent callers never
    share them): fresh output arrays would cost a page fault per 4 KiB, as much as the
    counting itself. ``calcHist`` counts in float32, so the histogram
    is flushed into int64 before any bin could pass 2**24.
    """
    import cv2

    if half == 0:
        blocks: Iterable[tuple[np.ndarray, np.ndarray]] = [(gt_flat, pred_flat)]
    else:
        gt_buf, pred_buf = _scratch(2 * min(half, BLOCK))
        blocks = ((_interleave(gt_flat, start, min(start + BLOCK, half), half, gt_buf),
                   _interleave(pred_flat, start, min(start + BLOCK, half), half, pred_buf))
                  for start in range(0, half, BLOCK))
    counts = np.zeros((256, 256), np.int64)
    hist = np.zeros((256, 256), np.float32)
    counted = 0
    for gt_part, pred_part in blocks:
        if counted + gt_part.size > EXACT_CHUNK:
            counts += hist.astype(np.int64)
            counted = 0
        cv2.calcHist([gt_part, pred_part], [0, 1], None, [256, 256], [0, 256, 0, 256],
                     hist=hist, accumulate=counted > 0)
        counted += gt_part.size
    if counted:
        counts += hist.astype(np.int64)
    return counts


def _interleave(flat: np.ndarray, start: int, stop: int, half: int, out: np.ndarray) -> np.ndarray:
    """``flat[k]`` and ``flat[half + k]`` alternating, for ``start <= k < stop``, in ``out``."""
    import cv2

    size = stop - start
    paired = out[:2 * size].reshape(size, 1, 2)
    cv2.merge([flat[start:stop].reshape(size, 1), flat[half + start:half + stop].reshape(size, 1)], dst=paired)
    return paired.reshape(-1)


_SCRATCH = threading.local()


def _scratch(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Two uint8 buffers of at least ``size`` bytes for the calling thread, kept between calls."""
    buffers = getattr(_SCRATCH, "buffers", None)
    if buffers is None or buffers[0].size < size:
        buffers = (np.empty(size, np.uint8), np.empty(size, np.uint8))
        _SCRATCH.buffers = buffers
    return buffers


def _bad_value(kind: str, value: int, count: int, num_classes: int, name: str) -> InputError:
    return InputError(
        f"{name}{kind} holds label value {value} ({count} pixels), which is neither a class "
        f"(0..{num_classes - 1}) nor ignored; ignore it (ignore index {value}), give more classes, "
        "or remap it with a label map" + (" (ADE20K's 0..150 annotations: label map ade20k)"
                                          if value == num_classes == 150 else "")
    )


def _from_pair_histogram(pairs: np.ndarray, num_classes: int, ignore: tuple[int, ...],
                         name: str) -> tuple[np.ndarray, np.ndarray]:
    """Confusion (C×C) and misses (C) from a 256×256 pair histogram, validating values."""
    pairs = pairs.copy()
    ignored = [v for v in ignore if 0 <= v < 256]
    pairs[ignored, :] = 0
    extent = min(num_classes, 256)
    gt_out = pairs[extent:, :].sum(axis=1)
    if gt_out.any():
        value = extent + int(np.flatnonzero(gt_out)[0])
        raise _bad_value("ground truth", value, int(gt_out[value - extent]), num_classes, name)
    missed_small = pairs[:extent, ignored].sum(axis=1)
    pairs[:, ignored] = 0
    pred_out = pairs[:extent, extent:].sum(axis=0)
    if pred_out.any():
        value = extent + int(np.flatnonzero(pred_out)[0])
        raise _bad_value("prediction", value, int(pred_out[value - extent]), num_classes, name)
    confusion = np.zeros((num_classes, num_classes), np.int64)
    confusion[:extent, :extent] = pairs[:extent, :extent]
    missed = np.zeros(num_classes, np.int64)
    missed[:extent] = missed_small
    return confusion, missed


def _confusion_general(gt: np.ndarray, pred: np.ndarray, num_classes: int, ignore: tuple[int, ...],
                       name: str) -> tuple[np.ndarray, np.ndarray]:
    gt_flat, pred_flat = gt.reshape(-1), pred.reshape(-1)
    ignore_arr = np.asarray(ignore, dtype=np.int64)
    if ignore:
        keep = ~np.isin(gt_flat, ignore_arr)
        gt_flat, pred_flat = gt_flat[keep], pred_flat[keep]
    for kind, values, allowed in (("ground truth", gt_flat, None), ("prediction", pred_flat, ignore_arr)):
        bad = (values < 0) | (values >= num_classes)
        if allowed is not None and allowed.size:
            bad &= ~np.isin(values, allowed)
        if bad.any():
            offending = values[bad]
            value = int(offending[0])
            raise _bad_value(kind, value, int(np.count_nonzero(offending == value)), num_classes, name)
    pred_ignored = np.isin(pred_flat, ignore_arr) if ignore else np.zeros(pred_flat.shape, bool)
    missed = np.bincount(gt_flat[pred_ignored].astype(np.int64), minlength=num_classes)[:num_classes]
    scored = ~pred_ignored
    index = gt_flat[scored].astype(np.int64) * num_classes + pred_flat[scored].astype(np.int64)
    confusion = np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    return confusion.astype(np.int64, copy=False), missed.astype(np.int64, copy=False)


def confusion_and_missed(pred: np.ndarray, gt: np.ndarray, num_classes: int,
                         ignore_index: int | Sequence[int] | None = 255,
                         name: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Confusion matrix and per-class misses of one prediction against its ground truth.

    Parameters
    ----------
    pred, gt : H×W integer (or bool) label masks of the same shape.
    num_classes : number of classes C; valid labels are 0..C-1.
    ignore_index : value(s) to skip in the ground truth (and to count as a miss in the
        prediction), or ``None``.
    name : prefix for error messages (e.g. ``"frame_001.png: "``).

    Returns
    -------
    confusion : int64 (C, C), rows ground truth, columns prediction.
    missed : int64 (C,), ground-truth pixels of each class whose prediction was an ignore value.

    Raises
    ------
    InputError
        Different shapes, non-integer arrays, or a value that is neither a class nor ignored.
    """
    if check_class_count(num_classes, "number of classes", MAX_CONFUSION_CLASSES) < 1:
        raise InputError(f"the number of classes must be at least 1, not {num_classes}")
    pred = _as_labels(pred, "prediction", name)
    gt = _as_labels(gt, "ground truth", name)
    if pred.shape != gt.shape:
        raise InputError(
            f"{name}prediction is {'×'.join(map(str, pred.shape))} but ground truth is "
            f"{'×'.join(map(str, gt.shape))} pixels; they must be the same size"
        )
    ignore = normalise_ignore(ignore_index)
    gt8, pred8 = _fits_uint8(gt), _fits_uint8(pred)
    if gt8 is not None and pred8 is not None:
        return _from_pair_histogram(_pair_histogram_u8(gt8, pred8), num_classes, ignore, name)
    return _confusion_general(gt, pred, num_classes, ignore, name)


def confusion_matrix(pred: np.ndarray, gt: np.ndarray, num_classes: int,
                     ignore_index: int | Sequence[int] | None = 255) -> np.ndarray:
    """Exact int64 confusion matrix (C, C): rows ground truth, columns prediction.

    Ground-truth pixels equal to an ignore value are skipped. A prediction equal to an
    ignore value at a scored pixel is a miss and appears in no column (see
    :func:`confusion_and_missed` to get those counts). A value outside ``[0, C)`` that is
    not ignored raises :class:`~segtools.errors.InputError` naming it.

    Examples
    --------
    >>> gt = np.array([[0, 0, 1, 255]], np.uint8)
    >>> pred = np.array([[0, 1, 1, 0]], np.uint8)
    >>> confusion_matrix(pred, gt, num_classes=2)
    array([[1, 1],
           [0, 1]])
    """
    return confusion_and_missed(pred, gt, num_classes, ignore_index)[0]


@dataclass
class ConfusionAccumulator:
    """Running sums over a dataset: memory O(C²), whatever the number of images.

    Examples
    --------
    >>> acc = ConfusionAccumulator(2)
    >>> acc.update(np.array([[0, 1]]), np.array([[0, 0]]))
    >>> acc.confusion.tolist(), acc.images
    ([[1, 1], [0, 0]], 1)
    """

    num_classes: int
    ignore_index: int | Sequence[int] | None = 255
    confusion: np.ndarray = field(init=False)
    missed: np.ndarray = field(init=False)
    images: int = 0

    def __post_init__(self) -> None:
        self.confusion = np.zeros((self.num_classes, self.num_classes), np.int64)
        self.missed = np.zeros(self.num_classes, np.int64)

    def update(self, pred: np.ndarray, gt: np.ndarray, name: str = "") -> None:
        """Add one image pair."""
        confusion, missed = confusion_and_missed(pred, gt, self.num_classes, self.ignore_index, name)
        self.add(confusion, missed)

    def add(self, confusion: np.ndarray, missed: np.ndarray | None = None, images: int = 1) -> None:
        """Add counts computed elsewhere (another worker, a partial report)."""
        self.confusion += np.asarray(confusion, np.int64)
        if missed is not None:
            self.missed += np.asarray(missed, np.int64)
        self.images += images
