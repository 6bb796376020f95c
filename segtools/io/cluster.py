"""Batches on a Dask distributed cluster: the other back-end of :func:`segtools.io.parallel.pmap`.

A command given ``--dask ADDRESS`` (or ``$DASK_SCHEDULER_ADDRESS``) runs its batch inside
:func:`use_dask`; while that client is active, ``pmap`` sends its items to the cluster's
workers instead of local processes, and keeps its contract: results in input order, the
first failing item's error re-raised (after the other items have finished), a bounded
number of tasks in flight, ``on_done`` called in input order. ``local:N`` starts a
``LocalCluster`` of N single-threaded worker processes on 127.0.0.1 for the command's
lifetime.

Faults: a worker that dies mid-task has its tasks re-run elsewhere by the scheduler; a
task that raises anything but a :class:`~segtools.errors.SegtoolsError` (a bad input, which
would fail again) is retried ``RETRIES`` times. Outputs are written by the workers with the
same atomic writers as a local run, so a killed worker leaves no partial file.

``dask.distributed`` is imported only here, and only when a cluster is asked for.
"""

from __future__ import annotations

import os
import re
from collections import deque
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, Sequence

from segtools.errors import InputError, SegtoolsError, UsageError

ENV = "DASK_SCHEDULER_ADDRESS"
#: Re-runs of a task that raised an unexpected exception (a lost connection, a full disk).
RETRIES = 2
#: How long to wait for the scheduler before giving up (seconds).
CONNECT_TIMEOUT = 10


def resolve_address(spec: Optional[str]) -> Optional[str]:
    """``--dask`` as given, else ``$DASK_SCHEDULER_ADDRESS``, else ``None`` (run locally).

    >>> resolve_address("local:2"), resolve_address("tcp://10.0.0.5:8786")
    ('local:2', 'tcp://10.0.0.5:8786')
    """
    spec = (spec if spec is not None else os.environ.get(ENV, "")).strip()
    return spec or None


def local_workers(spec: str) -> Optional[int]:
    """N for ``local:N`` (``local`` alone: 2), else ``None``."""
    match = re.fullmatch(r"local(?::(\d+))?", spec.strip().lower())
    if not match:
        return None
    count = int(match.group(1) or 2)
    if count < 1:
        raise UsageError(f"--dask {spec}: local:N needs at least 1 worker")
    return count


def redact(address: str) -> str:
    """``address`` without a user name, password or query (credentials never reach a log).

    >>> redact("tls://alice:s3cret@sched.example:8786?token=x")
    'tls://sched.example:8786'
    """
    return re.sub(r"^([a-z0-9+.-]+://)[^/@]*@", r"\1", address.split("?")[0], flags=re.I)


_client: Any = None


def active_client() -> Any:
    """The client of the innermost :func:`use_dask`, or ``None``."""
    return _client


@contextmanager
def use_dask(spec: Optional[str]) -> Iterator[Any]:
    """Run the ``pmap`` calls inside on the Dask cluster ``spec`` names (see
    :func:`resolve_address`); with neither a spec nor the variable, a no-op yielding ``None``.

    The scheduler is reached (or the local cluster started) before the body runs, so an
    unreachable address fails before anything is written.
    """
    global _client
    address = resolve_address(spec)
    if address is None:
        yield None
        return
    from segtools.errors import require

    require("distributed", "dask")
    import logging

    from distributed import Client

    for name in ("distributed", "tornado"):  # a worker stopped at the end is no news: stderr stays quiet
        logging.getLogger(name).setLevel(logging.CRITICAL)
    cluster = None
    count = local_workers(address)
    try:
        if count is not None:
            cluster = _local_cluster(count)
            client = Client(cluster, set_as_default=False)
        else:
            client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        if cluster is not None:
            cluster.close()
        where = f"local:{count}" if count is not None else redact(address)
        raise InputError(f"--dask {where}: cannot reach the Dask scheduler ({type(exc).__name__})") from None
    previous, _client = _client, client
    try:
        yield client
    finally:
        _client = previous
        client.close()
        if cluster is not None:
            cluster.close()


def _local_cluster(count: int) -> Any:
    """``local:N``: a LocalCluster of ``count`` single-threaded worker processes on 127.0.0.1.

    Start-up is most of a short command's time on a cluster of its own: spawned workers
    (Dask's default) each start a fresh interpreter that imports distributed, numpy, OpenCV
    and segtools again — seconds each, tens of seconds on a loaded machine. Where the
    system can fork, the workers are forked from this process instead, which has imported
    all of it already (see bench/scale.py for the figures). ``$DASK_DISTRIBUTED__WORKER__
    MULTIPROCESSING_METHOD`` (``spawn``, ``forkserver``, ``fork``) still chooses. No
    dashboard, logs only for what is critical.
    """
    import logging
    import multiprocessing

    import dask
    from distributed import LocalCluster

    method = os.environ.get("DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD", "").strip().lower() or (
        "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    with dask.config.set({"distributed.worker.multiprocessing-method": method}):
        return LocalCluster(n_workers=count, threads_per_worker=1, processes=True, host="127.0.0.1",
                            dashboard_address=None, silence_logs=logging.CRITICAL)


def _threads(client: Any) -> int:
    try:
        return max(1, sum(client.nthreads().values()))
    except Exception:  # a scheduler without workers yet: tasks wait for them
        return 1


def workers_here(client: Any) -> bool:
    """Whether every worker of ``client``'s cluster runs on this machine (its host is a
    loopback address or one of this machine's names); unknown or none yet: no."""
    import socket

    try:
        hosts = {str(info.get("host")) for info in client.scheduler_info(n_workers=-1)["workers"].values()}
    except Exception:
        return False
    names = {"localhost", "::1", socket.gethostname(), socket.getfqdn()}
    try:
        names |= {str(entry[4][0]) for entry in socket.getaddrinfo(socket.gethostname(), None)}
    except OSError:
        pass
    return bool(hosts) and all(host in names or host.startswith("127.") for host in hosts)


def _marks() -> tuple[frozenset, frozenset]:
    from segtools.io import streams

    return frozenset(streams._inputs_read), frozenset(streams._input_files)


def _run_task(fn: Callable, part: list, marks: tuple[frozenset, frozenset]) -> tuple[list, Optional[int], Any]:
    """On a worker: ``fn`` over ``part`` in order, every item run even after one fails.

    Returns the results before the first failing item, its offset and its error. A
    :class:`SegtoolsError` (a bad input) is returned, not raised, so the scheduler does not
    retry it; anything else is raised, to be retried. The inputs the command read are
    marked here too, so a worker refuses to overwrite them as a local run would.
    """
    from segtools.io import parallel, streams

    streams._inputs_read.clear()
    streams._inputs_read.update(marks[0])
    streams._input_files.clear()
    streams._input_files.update(marks[1])
    parallel._WORKER_THREAD.active = True  # kernel_threads() is 1: the cluster fills the cores
    parallel.reuse_freed_memory()  # once per worker process (a spawned one inherits nothing)
    try:
        results: list = []
        failed: Optional[int] = None
        error: Any = None
        for offset, item in enumerate(part):
            try:
                result = fn(item)
            except SegtoolsError as exc:
                if failed is None:
                    failed, error = offset, exc
                continue
            if failed is None:
                results.append(result)
        return results, failed, error
    finally:
        parallel._WORKER_THREAD.active = False


def cluster_map(client: Any, fn: Callable, items: Sequence, on_done: Optional[Callable[[int], None]] = None,
                chunk: int = 1) -> Iterator:
    """``fn`` over ``items`` on the cluster of ``client``, with the contract of ``pmap``.

    While this process holds staged copies of storage inputs or outputs (local files a
    worker on another machine could neither read nor write) and some worker runs
    elsewhere, the items run here instead, in order, with a warning: the same results,
    without the cluster.
    """
    from segtools.io.parallel import small_batch_chunk
    from segtools.io.remote import staged_here

    if staged_here() and not workers_here(client):
        yield from _here(fn, items, on_done)
        return

    threads = _threads(client)
    # a task's round trip through the scheduler costs milliseconds: many quick items travel
    # together (up to 64), still about 4 tasks per worker thread so the load evens out
    chunk = max(1, int(chunk), small_batch_chunk(len(items), threads, most=64))
    starts = range(0, len(items), chunk)
    window = max(8, 8 * threads)
    # once, not with every task; a key of its own (hash=False): the same marks scattered by an
    # earlier map share a content-hashed key, which that map's end releases under this one
    marks = client.scatter(_marks(), broadcast=True, hash=False)
    pending: deque = deque()
    first_error: Optional[BaseException] = None
    submitted = 0
    try:
        for start in starts:
            while submitted < len(starts) and len(pending) < window:
                first = starts[submitted]
                pending.append(client.submit(_run_task, fn, list(items[first:first + chunk]), marks,
                                             pure=False, retries=RETRIES))
                submitted += 1
            future = pending.popleft()
            try:
                results, failed, error = future.result()
            except Exception as exc:  # raised on the worker after the retries, or the worker kept dying
                results, failed, error = [], 0, exc
            if first_error is not None:
                continue
            for offset, result in enumerate(results):
                if on_done:
                    on_done(start + offset)
                yield result
            if failed is not None:
                first_error = error
        if first_error is not None:
            raise first_error
    finally:
        for future in pending:
            future.cancel()


def _here(fn: Callable, items: Sequence, on_done: Optional[Callable[[int], None]]) -> Iterator:
    import logging

    from segtools.io.parallel import in_order

    logging.getLogger("segtools").warning(
        "--dask: this command's storage inputs or outputs are staged on this machine, which the "
        "cluster's other machines cannot reach: its items run here")
    yield from in_order(fn, items, on_done)


# ---- per-worker state: what a worker loads once and reuses for every item it runs

_cache: dict = {}


def worker_cached(key: Any, make: Callable[[], Any]) -> Any:
    """``make()`` once per process for ``key`` (e.g. a model by path or registry name),
    then the same object: a worker loads a model for its first item and reuses it, and the
    model itself never travels with a task."""
    if key not in _cache:
        _cache[key] = make()
    return _cache[key]
