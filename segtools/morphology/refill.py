"""Give removed pixels a new label: the nearest kept pixel of another class, or background.

The nearest pixel is found with exact Euclidean distance transforms, one per donor class
(OpenCV's ``DIST_MASK_PRECISE``), keeping the best and second-best class per removed
pixel: a pixel removed from class ``k`` takes the nearest kept class other than ``k``, and
equal distances go to the lower class. The loop is over classes, never over pixels.

The distance transforms of the classes run on threads (OpenCV releases the GIL) from one
pool kept for the process, as many as :func:`segtools.io.parallel.kernel_threads` allows
(and at most :data:`MAX_THREADS`, each holding a float32 distance image): inside a
``--jobs`` worker that is one, and they run one after another on the calling thread.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from segtools.io.parallel import kernel_threads
from segtools.labels import value_counts

MAX_THREADS = 4  # distance images in flight at once

_pool: ThreadPoolExecutor | None = None
_pool_pid = 0
_pool_lock = threading.Lock()


def _shared_pool() -> ThreadPoolExecutor:
    """The process's pool (made again in a forked child, whose copy has no threads)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(max_workers=MAX_THREADS, thread_name_prefix="segtools-refill")
            _pool_pid = os.getpid()
        return _pool


def present_labels(labels: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
    """The sorted distinct values of ``labels`` (optionally only where ``where`` is true)."""
    values = labels[where] if where is not None else labels.ravel()
    if values.size == 0:
        return np.zeros(0, np.int64)
    if values.dtype.kind == "u" and values.dtype.itemsize <= 2:
        return np.flatnonzero(value_counts(values))
    return np.unique(values)


def refill_nearest(labels: np.ndarray, removed: np.ndarray, ignore_index: int | None = None) -> np.ndarray:
    """Relabel ``removed`` pixels with the class of the nearest kept pixel of another class.

    Parameters
    ----------
    labels : H×W integer label mask (the labels before removal).
    removed : H×W bool, the pixels taken away from their class.
    ignore_index : the void label: never a donor (void does not grow).

    Returns
    -------
    A new label array. A removed pixel with no kept pixel of another class anywhere in the
    image keeps its label (there is nothing to give it).

    Examples
    --------
    >>> lab = np.array([[0, 0, 1, 2, 2]]); gone = lab == 1
    >>> refill_nearest(lab, gone).tolist()  # equidistant from 0 and 2: the lower class wins
    [[0, 0, 0, 2, 2]]
    """
    import cv2

    out = labels.copy()
    flat_removed = np.flatnonzero(removed)
    if flat_removed.size == 0:
        return out
    donors = ~removed
    if ignore_index is not None:
        donors &= labels != ignore_index
    former = labels.ravel()[flat_removed]
    inf = np.float32(np.inf)
    best_d = np.full(flat_removed.size, inf, np.float32)
    best_l = np.full(flat_removed.size, -1, np.int64)
    second_d = best_d.copy()
    second_l = best_l.copy()

    def distances(k: int) -> np.ndarray:  # OpenCV releases the GIL: classes run in parallel
        not_donor = np.where(donors & (labels == k), np.uint8(0), np.uint8(1))
        return cv2.distanceTransform(not_donor, cv2.DIST_L2, cv2.DIST_MASK_PRECISE).ravel()[flat_removed]

    classes = [int(k) for k in present_labels(labels, donors)]
    threads = min(MAX_THREADS, kernel_threads(len(classes)))
    if threads == 1:
        per_class = map(distances, classes)
    else:  # at most `threads` classes in flight: memory stays bounded by the threads
        per_class = _bounded_map(_shared_pool(), distances, classes, threads)
    for k, distance in zip(classes, per_class):  # merged in class order
        first = distance < best_d
        runner_up = ~first & (distance < second_d)
        second_d[first], second_l[first] = best_d[first], best_l[first]
        best_d[first], best_l[first] = distance[first], k
        second_d[runner_up], second_l[runner_up] = distance[runner_up], k
    new = np.where(best_l != former, best_l, second_l)
    new = np.where(new < 0, former, new)
    out.ravel()[flat_removed] = new.astype(out.dtype, copy=False)
    return out


def _bounded_map(pool: ThreadPoolExecutor, fn, items: list, window: int):
    """``map(fn, items)`` on ``pool``, in order, with at most ``window`` items submitted ahead."""
    pending = [pool.submit(fn, item) for item in items[:window]]
    for i in range(len(items)):
        result = pending[i].result()
        pending[i] = None  # drop the finished result
        if i + window < len(items):
            pending.append(pool.submit(fn, items[i + window]))
        yield result


def refill_background(labels: np.ndarray, removed: np.ndarray, background: int) -> np.ndarray:
    """Relabel ``removed`` pixels with ``background``."""
    out = labels.copy()
    out[removed] = background
    return out
