"""A small, order-preserving parallel map for batches (``--jobs N``)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence, TypeVar

if TYPE_CHECKING:
    from concurrent.futures import Executor

T = TypeVar("T")
R = TypeVar("R")


def resolve_jobs(jobs: int | None) -> int:
    """``None`` or 0 → the number of CPUs; otherwise at least 1."""
    if not jobs:
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    return max(1, int(jobs))


def pmap(fn: Callable[[T], R], items: Sequence[T], jobs: int = 1, *, processes: bool = True,
         on_done: Callable[[int], None] | None = None) -> Iterator[R]:
    """Yield ``fn(item)`` for each item, in input order, computed by up to ``jobs`` workers.

    Processes (default) sidestep the GIL for pure-Python parts; ``fn`` must then be a
    module-level function and its arguments and results picklable. A worker's exception is
    re-raised in the caller, for the first failing item in input order. ``on_done(i)`` is
    called as each item finishes (for progress bars). At most ``2*jobs`` items are in flight,
    so memory stays bounded by the workers, not the batch. In worker processes
    :func:`in_worker` is true, and segtools' own threaded kernels run single-threaded
    there, since the workers themselves fill the cores.
    """
    jobs = resolve_jobs(jobs)
    if jobs == 1 or len(items) <= 1:
        for i, item in enumerate(items):
            result = fn(item)
            if on_done:
                on_done(i)
            yield result
        return
    # imported here: concurrent.futures.process pulls in multiprocessing (~10 ms of start-up)
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    executor: Executor
    if processes:
        import multiprocessing

        context = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
        executor = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_mark_worker)
    else:
        executor = ThreadPoolExecutor(max_workers=jobs)
    with executor:
        window = 2 * jobs
        futures = {}
        submitted = 0
        for i in range(len(items)):
            while submitted < len(items) and submitted < i + window:
                futures[submitted] = executor.submit(fn, items[submitted])
                submitted += 1
            result = futures.pop(i).result()
            if on_done:
                on_done(i)
            yield result


_IN_WORKER = False


def _mark_worker() -> None:
    # Not cv2.setNumThreads(1): in a child forked from a parent whose OpenCV pool has run,
    # reconfiguring that pool waits forever on condition variables of threads that did not
    # survive the fork.
    global _IN_WORKER
    _IN_WORKER = True


def in_worker() -> bool:
    """True inside a :func:`pmap` worker process (other workers share the cores)."""
    return _IN_WORKER


def chunked(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
