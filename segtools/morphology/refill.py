"""Give removed pixels a new label: the nearest kept pixel of another class, or background.

A pixel removed from class ``k`` takes the class of the nearest kept pixel (Euclidean
distance) of a class other than ``k``; equal distances go to the lower class.

Removed pixels first look around themselves, ring by ring (all offsets of one squared
distance at once, vectorised over the pixels), :data:`WINDOW_RADIUS` pixels away and
then farther: speckle and thin slivers find their donor within a pixel or two. Those left
when the search would cost more than the transforms (large removed regions) go to exact
distance transforms, one per donor class (OpenCV's
``DIST_MASK_PRECISE``), keeping the best and second-best class per pixel; both give the
same answer. The loops are over rings and classes, never over pixels.

The distance transforms of the classes run on threads (OpenCV releases the GIL) from one
pool kept for the process, as many as :func:`segtools.io.parallel.kernel_threads` allows
(and at most :data:`MAX_THREADS`, each holding a float32 distance image): inside a
``--jobs`` worker that is one, and they run one after another on the calling thread.
"""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from segtools.io.parallel import kernel_threads
from segtools.labels import value_counts

MAX_THREADS = 4  # distance images in flight at once
WINDOW_RADIUS = 8  # pixels: removed pixels search their neighbourhood this far first,
MAX_RADIUS = 256  # then twice as far, and again, up to this

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
    out = labels.copy()
    flat_removed = np.flatnonzero(removed)
    if flat_removed.size == 0:
        return out
    donors = ~removed
    if ignore_index is not None:
        donors &= labels != ignore_index
    former = labels.ravel()[flat_removed].astype(np.int64)
    new, pending = _nearest_in_window(labels, donors, flat_removed, former)
    if pending.size:  # pixels with no donor close by: one distance transform per donor class
        new[pending] = _nearest_by_transforms(labels, donors, flat_removed[pending], former[pending])
    out.ravel()[flat_removed] = new.astype(out.dtype, copy=False)
    return out


@functools.lru_cache(maxsize=None)
def _offset_groups(inner: int, radius: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Offsets ``(dy, dx)`` with ``inner² < dy² + dx² <= radius²``, grouped by ``dy² + dx²``
    in ascending order: ``((dys, dxs), ...)``."""
    dy, dx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    squared = (dy * dy + dx * dx).ravel()
    ring = (squared > inner * inner) & (squared <= radius * radius)
    squared, dy, dx = squared[ring], dy.ravel()[ring], dx.ravel()[ring]
    order = np.argsort(squared, kind="stable")
    squared, dy, dx = squared[order], dy[order], dx[order]
    starts = np.flatnonzero(np.diff(squared, prepend=-1))
    ends = np.append(starts[1:], squared.size)
    return tuple((dy[a:b], dx[a:b]) for a, b in zip(starts, ends))


def _nearest_in_window(labels: np.ndarray, donors: np.ndarray, flat_removed: np.ndarray,
                       former: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The nearest donor of another class for each removed pixel, searched ring by ring
    (all offsets of one squared distance at once), :data:`WINDOW_RADIUS` pixels away at
    first, then twice as far for the pixels still without one, up to :data:`MAX_RADIUS`.

    Returns ``(new, pending)``: the new labels (``former`` where unresolved) and the indices
    (into ``flat_removed``) of the pixels with no such donor within reach, or left once the
    search has cost about as much as the distance transforms would.
    The same rule as the transforms: least squared distance, then the lower class.
    """
    height, width = labels.shape
    donor_labels = np.where(donors, labels.astype(np.int32), -1)
    rows, cols = np.divmod(flat_removed, width)
    new = former.copy()
    pending = np.arange(flat_removed.size)
    budget = labels.size * max(1, len(present_labels(labels, donors)))  # pixels the transforms visit
    none = np.int64(np.iinfo(np.int32).max)
    inner, radius = 0, WINDOW_RADIUS
    while pending.size and budget > 0 and inner < MAX_RADIUS:
        for dys, dxs in _offset_groups(inner, radius):
            if pending.size == 0 or budget <= 0:
                break
            budget -= 4 * pending.size * dys.size  # a few passes per offset looked at
            ys = rows[pending, None] + dys
            xs = cols[pending, None] + dxs
            outside = (ys < 0) | (ys >= height) | (xs < 0) | (xs >= width)
            found = donor_labels[np.clip(ys, 0, height - 1), np.clip(xs, 0, width - 1)].astype(np.int64)
            found[outside | (found < 0) | (found == former[pending, None])] = none
            best = found.min(axis=1)
            hit = best < none
            new[pending[hit]] = best[hit]
            pending = pending[~hit]
        inner, radius = radius, min(2 * radius, MAX_RADIUS)
    return new, pending


def _nearest_by_transforms(labels: np.ndarray, donors: np.ndarray, flat_removed: np.ndarray,
                           former: np.ndarray) -> np.ndarray:
    """The nearest donor of another class for each pixel of ``flat_removed``, by one exact
    distance transform per donor class (``former`` where there is none)."""
    import cv2

    inf = np.float64(np.inf)
    best_d = np.full(flat_removed.size, inf, np.float64)
    best_l = np.full(flat_removed.size, -1, np.int64)
    second_d = best_d.copy()
    second_l = best_l.copy()

    def distances(k: int) -> np.ndarray:  # OpenCV releases the GIL: classes run in parallel
        not_donor = np.where(donors & (labels == k), np.uint8(0), np.uint8(1))
        found = cv2.distanceTransform(not_donor, cv2.DIST_L2, cv2.DIST_MASK_PRECISE).ravel()[flat_removed]
        # As whole squared distances: the float32 square roots differ in their last bit with
        # the buffer's alignment (OpenCV 5's vector and scalar paths), which would decide
        # ties of equal distance by chance; rounded squares are exact below ~1,400 pixels.
        return np.rint(np.square(found, dtype=np.float64))

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
    return np.where(new < 0, former, new)


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
