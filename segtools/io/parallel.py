"""Parallelism, in one place: the order-preserving map over batch items (``--jobs N``, or a
Dask cluster with ``--dask``: :mod:`segtools.io.cluster`) and the one thread policy of
segtools' threaded kernels (:func:`kernel_threads`)."""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator, Sequence, TypeVar

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
         on_done: Callable[[int], None] | None = None, chunk: int = 1,
         preload: Sequence[str] = ()) -> Iterator[R]:
    """Yield ``fn(item)`` for each item, in input order, computed by up to ``jobs`` workers.

    Processes (default) sidestep the GIL for pure-Python parts; ``fn`` must then be a
    module-level function and its arguments and results picklable. A worker's exception is
    re-raised in the caller, for the first failing item in input order. ``on_done(i)`` is
    called as each item finishes (for progress bars). At most ``2*jobs`` items are in flight,
    so memory stays bounded by the workers, not the batch. In the workers (processes or
    threads) :func:`in_worker` is true, and :func:`kernel_threads` is 1 there, since the
    workers themselves fill the cores.

    ``chunk`` items travel to a worker as one task (see :func:`small_batch_chunk`): for
    items of a few milliseconds each, the round trip of a task through the pool's queues
    and its pickling cost a noticeable share, and fewer, larger tasks cut it. ``on_done``
    is then called for each item of a task as it returns, still in input order; at most
    ``2*jobs`` tasks are in flight.

    ``preload`` names the modules ``fn`` imports as it runs (a decoder, say). When a local
    process pool starts, they are imported here first, so that each forked worker inherits
    them instead of importing its own copy on its first item (with N workers, N imports of
    the same modules racing for the cores); no pool, nothing is imported ahead.

    Inside :func:`segtools.io.cluster.use_dask` (``--dask``), items of a process map go to
    the Dask cluster's workers instead, with the same contract (``jobs`` is then the
    cluster's business); thread maps (``processes=False``) stay in this process.
    """
    reuse_freed_memory()  # before any fork: the workers inherit it
    if processes:
        from segtools.io import cluster

        client = cluster.active_client()
        if client is not None:
            yield from cluster.cluster_map(client, fn, items, on_done, chunk)
            return
    jobs = resolve_jobs(jobs)
    if jobs == 1 or len(items) <= 1:
        yield from in_order(fn, items, on_done)
        return
    # imported here: concurrent.futures.process pulls in multiprocessing (~10 ms of start-up)
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    executor: Executor
    if processes:
        import importlib
        import multiprocessing

        for module in preload:
            importlib.import_module(module)
        context = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
        executor = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_mark_worker)
    else:
        executor = ThreadPoolExecutor(max_workers=jobs, initializer=_mark_worker_thread)
    chunk = max(1, int(chunk))
    with executor:
        window = 2 * jobs
        futures = {}
        starts = range(0, len(items), chunk)
        submitted = 0
        for task, start in enumerate(starts):
            while submitted < len(starts) and submitted < task + window:
                first = starts[submitted]
                part = items[first:first + chunk]
                futures[submitted] = (executor.submit(fn, part[0]) if chunk == 1
                                      else executor.submit(_run_chunk, fn, list(part)))
                submitted += 1
            results, error = ([futures.pop(task).result()], None) if chunk == 1 else futures.pop(task).result()
            for offset, result in enumerate(results):
                if on_done:
                    on_done(start + offset)
                yield result
            if error is not None:
                raise error


def in_order(fn: Callable[[T], R], items: Sequence[T], on_done: Callable[[int], None] | None = None) -> Iterator[R]:
    """``fn(item)`` for each item, in this process and in order (``pmap``'s one-worker case)."""
    for i, item in enumerate(items):
        result = fn(item)
        if on_done:
            on_done(i)
        yield result


def _run_chunk(fn: Callable[[T], R], part: list[T]) -> tuple[list[R], BaseException | None]:
    """``fn`` over a task's items, in order: the results up to the first failing item, and
    its exception (so the items before it still reach the caller)."""
    results = []
    for item in part:
        try:
            results.append(fn(item))
        except Exception as exc:  # re-raised by the caller, after the results before it
            return results, exc
    return results, None


#: glibc malloc settings of :func:`reuse_freed_memory`: blocks below this come from the heap
#: (glibc's own ceiling for its dynamic threshold) …
HEAP_BLOCK_LIMIT = 32 << 20
#: … and up to this much freed memory stays at the heap's top for the next item.
KEEP_FREED_BYTES = 64 << 20
_MALLOC_SET = False


def reuse_freed_memory() -> bool:
    """Tell glibc's malloc to keep the memory of one item for the next: once per process,
    by the CLI as it starts and by :func:`pmap` (so a library user's batch gets it too;
    forked workers inherit it, Dask workers call it). Whether the setting is in force.

    By default glibc maps a large buffer fresh and unmaps it on free, or trims the heap's
    top after an item whose buffers exceed its dynamic threshold, so each next image of a
    batch touches fresh pages, a minor page fault per 4 KiB: a quarter of the time of
    decoding 1024×2048 PNG masks, and 430–560 faults per 480×360 panoptic pair in a library
    user's loop. With blocks under :data:`HEAP_BLOCK_LIMIT` taken from the heap and up to
    :data:`KEEP_FREED_BYTES` of freed memory kept there, the batch reuses its pages. Left
    as it is when malloc settings are in the environment (``MALLOC_*_``, ``GLIBC_TUNABLES``:
    the user's, or those Dask's LocalCluster sets for its workers) and off glibc.
    """
    global _MALLOC_SET
    if _MALLOC_SET:
        return True
    if any(name.startswith("MALLOC_") or name == "GLIBC_TUNABLES" for name in os.environ):
        return False
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
            return False
    except (ValueError, OSError, AttributeError):  # not glibc (musl, macOS), or not POSIX
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    _MALLOC_SET = bool(mallopt(m_mmap_threshold, HEAP_BLOCK_LIMIT)) and bool(mallopt(m_trim_threshold, KEEP_FREED_BYTES))
    return _MALLOC_SET


def small_batch_chunk(count: int, jobs: int, *, per_worker: int = 4, most: int = 8) -> int:
    """Items per :func:`pmap` task for ``count`` quick items over ``jobs`` workers: about
    ``per_worker`` tasks for each worker (enough for the load to even out at the end),
    never more than ``most`` items per task (results held per task stay small).

    >>> small_batch_chunk(40, 2), small_batch_chunk(3, 2), small_batch_chunk(10_000, 2)
    (5, 1, 8)
    """
    return max(1, min(most, count // max(1, resolve_jobs(jobs) * per_worker)))


_IN_WORKER = False
_WORKER_THREAD = threading.local()


def _mark_worker() -> None:
    # Not cv2.setNumThreads(1): in a child forked from a parent whose OpenCV pool has run,
    # reconfiguring that pool waits forever on condition variables of threads that did not
    # survive the fork.
    global _IN_WORKER
    _IN_WORKER = True


def _mark_worker_thread() -> None:
    _WORKER_THREAD.active = True


def in_worker() -> bool:
    """True inside a :func:`pmap` worker (a process, or a thread of ``processes=False``):
    other workers share the cores."""
    return _IN_WORKER or getattr(_WORKER_THREAD, "active", False)


_kernel_threads: int | None = None


def set_kernel_threads(count: int | None) -> None:
    """Set the threads :func:`kernel_threads` allows outside workers (``None``: the default)."""
    global _kernel_threads
    if count is not None and count < 1:
        raise ValueError(f"set_kernel_threads: count must be at least 1, not {count}")
    _kernel_threads = count


def kernel_threads(tasks: int | None = None) -> int:
    """How many threads one of segtools' threaded kernels may use: THE thread policy.

    1 inside a :func:`pmap` worker (:func:`in_worker`: the ``--jobs`` workers already fill
    the cores, and threads inside each would only oversubscribe them). Elsewhere the
    configured count: :func:`set_kernel_threads`, else ``$SEGTOOLS_THREADS``, else the CPUs
    this process may run on (:func:`resolve_jobs`). ``tasks`` (the pieces of work the
    kernel can split into) caps it, so no thread is started with nothing to do.

    Every threaded kernel asks this rather than counting CPUs itself, e.g.::

        with ThreadPoolExecutor(max_workers=kernel_threads(len(classes))) as pool: ...

    and has a test that it runs single-threaded inside workers.

    >>> kernel_threads(1)
    1
    """
    if in_worker():
        return 1
    count = _kernel_threads
    if count is None:
        env = os.environ.get("SEGTOOLS_THREADS", "").strip()
        count = int(env) if env.isdigit() and int(env) > 0 else resolve_jobs(None)
    if tasks is not None:
        count = min(count, tasks)
    return max(1, count)



@contextmanager
def one_opencv_thread() -> Iterator[None]:
    """A block in which OpenCV's own thread pool is off (one thread), restored after.

    For loops over many small images in one process (a panoptic PNG of 480×360 decodes in
    about a millisecond): OpenCV splits each colour conversion over its pool, and the pool's
    threads spin between calls, which costs more CPU than it saves. Inside a forked
    :func:`pmap` worker nothing is changed (reconfiguring a pool inherited over ``fork`` can
    wait forever; see :func:`_mark_worker`).
    """
    if in_worker():
        yield
        return
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)
