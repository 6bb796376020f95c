"""Benchmark ``metrics`` over an S3 prefix: streamed (each worker reads its objects) against
staging the prefixes on local disk first (what the command did before), same run.

    python bench/storage.py [--pairs 200] [--repeat 2] [--task semantic|panoptic]

The store is moto's S3 server on 127.0.0.1 (the test extra ``moto[server]``), run in this
process, reached through s3fs by ``segtools metrics`` in a subprocess. Rows:

- staged: ``s3fs`` copies both prefixes to a temporary folder (concurrent GETs, as the
  staging code does), then ``metrics`` on the local folders — the sum of both is timed;
- streamed: ``metrics s3://…/pred/ s3://…/gt/`` with ``--jobs 1`` and ``--jobs 2``.

``--task panoptic``: the same rows over COCO panoptic pairs (``pred.json``, ``gt.json`` and
their PNG prefixes, as bench/panoptic.py builds them from CamVid): the JSONs are read by the
command, each image's two PNGs where it is measured.

Reports must be byte-identical. A local S3 emulator answers each GET in about a
millisecond of Python: these figures show the per-object cost of this code, not a real
store's latency (tens of milliseconds per GET on S3, where staging's concurrency and
``--jobs`` matter more).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from _timing import best_seconds
from scale import CAMVID, _pairs

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--task", choices=("semantic", "panoptic"), default="semantic")
    options = parser.parse_args()
    if not (CAMVID / "valannot").is_dir():
        raise SystemExit(f"{CAMVID} is not present")
    try:
        import s3fs
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        raise SystemExit(f"needs s3fs and moto[server] ({exc.name} missing)") from None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    os.environ.update(env)
    print(f"CPUs available: {len(os.sched_getaffinity(0))}; load average {os.getloadavg()[0]:.1f}")
    try:
        fs = s3fs.S3FileSystem()
        fs.mkdir("bench")
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "data").mkdir()
            if options.task == "panoptic":
                from panoptic import build

                build(root / "data", options.pairs)
                pred, gt, args = "pred.json", "gt.json", ("-f", "json")
            else:
                _pairs(root / "data", options.pairs)
                pred, gt, args = "pred/", "gt/", ("--classes", "camvid", "-f", "json")
            fs.put(str(root / "data") + "/", "bench/data/", recursive=True)
            reports = {}

            def segtools(name: str, *command) -> None:
                done = subprocess.run([sys.executable, "-m", "segtools", "metrics", *map(str, command), *args],
                                      capture_output=True, env=env)
                if done.returncode != 0:
                    raise SystemExit(f"{name}: {done.stderr.decode()[-400:]}")
                reports[name] = done.stdout

            def staged() -> None:
                local = root / "staged"
                shutil.rmtree(local, ignore_errors=True)
                fs.invalidate_cache()
                fs.get("bench/data/", str(local) + "/", recursive=True)
                segtools("staged", local / pred, local / gt)

            rows = [("staged: copy both prefixes, then metrics", best_seconds(staged, options.repeat))]
            for jobs in (1, 2):
                rows.append((f"streamed, --jobs {jobs}", best_seconds(
                    lambda: segtools(f"jobs{jobs}", f"s3://bench/data/{pred}", f"s3://bench/data/{gt}", "--jobs", str(jobs)),
                    options.repeat)))
            print(f"metrics over S3 (moto on 127.0.0.1), {options.pairs} CamVid {options.task} pairs, whole commands, "
                  f"best of {options.repeat}")
            for name, secs in rows:
                print(f"  {name:<42} {secs:7.2f} s  {rows[0][1] / secs:5.2f}× staged")
            print(f"  reports byte-identical: {len(set(reports.values())) == 1}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
