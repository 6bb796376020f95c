"""Benchmark ``--dask local:2`` against ``--jobs 1`` and ``--jobs 2`` on this machine.

    python bench/scale.py [--pairs 200] [--frames 100] [--repeat 3] [--skip-predict]

1. ``segtools metrics`` on N CamVid (pred, gt) pairs (../shared/data/camvid valannot, the
   pairs repeated under new names; predictions: the ground truth shifted and speckled):
   whole commands, so ``--dask local:2`` pays for starting and stopping its cluster. The
   reports must be byte-identical. Targets: dask ≥ 1.7× ``--jobs 1``, within 1.15× of
   ``--jobs 2``.
2. ``segtools predict`` with the default model (its ONNX twin in ONNX Runtime, as a plain
   ``predict`` runs it) on M CamVid frames: one process (ONNX Runtime's own threads, the
   local run) against ``--dask local:2`` (one model per worker, one thread each). Label PNGs
   must be byte-identical.
0. Start-up: ``metrics`` on 2 pairs, ``--jobs 1`` against ``--dask local:2`` with the workers
   forked (the default where the system can) and spawned (Dask's own default), so the
   difference is what a command pays for its cluster.
Both also run against an already started LocalCluster of 2 workers by its address
(``--dask tcp://…``, the way a team's running cluster is used): the command then pays only
for connecting and the per-item cost, and (predict) the workers keep the model they loaded
in an earlier repeat, as a long-lived cluster does.
3. The task graph's cost per item: :func:`segtools.io.parallel.pmap` of a trivial function
   over 1k and 10k items on an already started LocalCluster of 2 workers, against local
   ``--jobs 2`` processes: the per-item cost should stay flat as items grow.
"""

from __future__ import annotations

import argparse
import operator
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _timing import best_seconds

CAMVID = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"


def _segtools(*args: str) -> bytes:
    done = subprocess.run([sys.executable, "-m", "segtools", *map(str, args)], capture_output=True)
    if done.returncode != 0:
        raise SystemExit(f"segtools {' '.join(map(str, args))}: {done.stderr.decode()[-400:]}")
    return done.stdout


def _pairs(root: Path, count: int) -> None:
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    files = sorted((CAMVID / "valannot").glob("*.png"))
    for number in range(count):
        gt = cv2.imread(str(files[number % len(files)]), cv2.IMREAD_UNCHANGED)
        pred = np.roll(gt, 1 + number % 7, axis=1)
        flip = rng.random(gt.shape) < 0.03
        pred[flip] = rng.integers(0, 11, int(flip.sum()))
        name = f"{number:04d}_{files[number % len(files)].name}"
        for side, labels in (("gt", gt), ("pred", pred)):
            (root / side).mkdir(exist_ok=True)
            cv2.imwrite(str(root / side / name), labels)


def _row(name: str, secs: float, base: float, jobs2: float | None = None) -> None:
    extra = f"  {secs / jobs2:6.2f}× of --jobs 2" if jobs2 else ""
    print(f"  {name:<22} {secs:8.2f} s  {base / secs:6.2f}× --jobs 1{extra}")


def bench_metrics(root: Path, pairs: int, repeat: int, address: str | None = None) -> None:
    _pairs(root, pairs)
    args = ("metrics", root / "pred", root / "gt", "--classes", "camvid", "-f", "json")
    outputs = {}

    def run(*extra: str):
        return lambda: outputs.__setitem__(extra, _segtools(*args, *extra))

    print(f"metrics, {pairs} CamVid pairs (360×480), whole commands, best of {repeat}")
    one = best_seconds(run("--jobs", "1"), repeat)
    two = best_seconds(run("--jobs", "2"), repeat)
    dask = best_seconds(run("--dask", "local:2"), repeat)
    started = best_seconds(run("--dask", address), repeat) if address else None
    _row("--jobs 1", one, one)
    _row("--jobs 2", two, one)
    _row("--dask local:2", dask, one, two)
    if started is not None:
        _row("--dask ADDRESS (running)", started, one, two)
    same = len(set(outputs.values())) == 1
    print(f"  reports byte-identical: {same}")


def bench_predict(root: Path, frames: int, repeat: int, address: str | None = None) -> None:
    files = sorted((CAMVID / "val").glob("*.png"))
    folder = root / "frames"
    folder.mkdir()
    for number in range(frames):
        shutil.copy(files[number % len(files)], folder / f"{number:04d}.png")
    print(f"predict, default model (ONNX Runtime), {frames} CamVid frames, whole commands, best of {repeat}")
    results = {}

    def run(name: str, *extra: str):
        def go():
            out = root / f"out-{name}"
            shutil.rmtree(out, ignore_errors=True)
            _segtools("predict", folder, "-o", out, *extra)
            results[name] = {p.name: p.read_bytes() for p in out.iterdir()}
        return go

    one = best_seconds(run("one"), repeat)
    dask = best_seconds(run("dask", "--dask", "local:2"), repeat)
    started = best_seconds(run("running", "--dask", address), repeat) if address else None
    _row("one process", one, one)
    _row("--dask local:2", dask, one)
    if started is not None:
        _row("--dask ADDRESS (running)", started, one)
    same = all(results.get(name) == results.get("one") for name in ("dask", "running") if name in results)
    print(f"  label PNGs byte-identical: {same}")


def bench_startup(root: Path, repeat: int) -> None:
    (root / "two").mkdir()
    _pairs(root / "two", 2)
    args = ("metrics", root / "two" / "pred", root / "two" / "gt", "--classes", "camvid", "-f", "json")
    method = "DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD"

    def run(env: dict, *extra: str):
        def go():
            saved = {key: os.environ.get(key) for key in env}
            os.environ.update(env)
            try:
                _segtools(*args, *extra)
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
        return go

    print(f"start-up: metrics on 2 pairs, whole commands, best of {repeat}")
    one = best_seconds(run({}, "--jobs", "1"), repeat)
    forked = best_seconds(run({method: "fork"}, "--dask", "local:2"), repeat)
    spawned = best_seconds(run({method: "spawn"}, "--dask", "local:2"), repeat)
    print(f"  --jobs 1                  {one:8.2f} s")
    print(f"  --dask local:2, forked    {forked:8.2f} s  (cluster: +{forked - one:.2f} s)")
    print(f"  --dask local:2, spawned   {spawned:8.2f} s  (cluster: +{spawned - one:.2f} s)")


def bench_overhead(repeat: int) -> None:
    import logging

    from distributed import Client, LocalCluster

    from segtools.io.cluster import use_dask
    from segtools.io.parallel import pmap

    print(f"per-item cost of a trivial task (operator.neg), best of {repeat}")
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, silence_logs=logging.ERROR)
    try:
        with Client(cluster, set_as_default=False):
            pass
        for count in (1_000, 10_000):
            items = list(range(count))
            local = best_seconds(lambda: list(pmap(operator.neg, items, 2, chunk=8)), repeat)
            with use_dask(cluster.scheduler_address):
                remote = best_seconds(lambda: list(pmap(operator.neg, items)), repeat)
            print(f"  {count:>6} items: --dask {remote / count * 1e6:7.1f} µs/item   "
                  f"--jobs 2 {local / count * 1e6:7.1f} µs/item")
    finally:
        cluster.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-predict", action="store_true")
    parser.add_argument("--only", choices=("startup", "metrics", "predict", "overhead"))
    options = parser.parse_args()
    if not (CAMVID / "valannot").is_dir():
        raise SystemExit(f"{CAMVID} is not present")
    print(f"CPUs available: {len(os.sched_getaffinity(0))}; load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        if options.only in (None, "startup"):
            bench_startup(root, options.repeat)
        cluster = None
        if options.only in (None, "metrics", "predict"):
            from segtools.io.cluster import _local_cluster

            cluster = _local_cluster(2)  # the running cluster of the "--dask ADDRESS" rows
        try:
            address = cluster.scheduler_address if cluster is not None else None
            if options.only in (None, "metrics"):
                bench_metrics(root, options.pairs, options.repeat, address)
            if options.only in (None, "predict") and not options.skip_predict:
                bench_predict(root, options.frames, options.repeat, address)
        finally:
            if cluster is not None:
                cluster.close()
        if options.only in (None, "overhead"):
            bench_overhead(options.repeat)
        print(f"({time.perf_counter() - started:.0f} s in all; load average now {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
