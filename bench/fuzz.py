"""Fuzz every reader with 1,000 cases each (``tests/test_fuzz.py --fuzz-long``) and print a
table: cases, how they ended, contract failures, time per case and peak memory.

    python bench/fuzz.py                  # all readers, 1,000 cases each
    python bench/fuzz.py -k coco          # a pytest -k expression picks readers
    python bench/fuzz.py --short          # the 200 cases per reader that CI runs

Each case runs in a worker process under an address-space limit (its start-up size plus
1.5 GiB) with a 10 s alarm; peak memory is the worker's resident peak during the case
(VmHWM, reset before each case), start-up included.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default=None, help="pytest -k expression (reader names)")
    parser.add_argument("--short", action="store_true", help="200 cases per reader instead of 1,000")
    args = parser.parse_args()
    report = Path(tempfile.mkstemp(suffix=".jsonl")[1])
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests" / "test_fuzz.py")]
    if not args.short:
        command.append("--fuzz-long")
    if args.k:
        command += ["-k", args.k]
    proc = subprocess.run(command, cwd=ROOT, env=dict(os.environ, SEGTOOLS_FUZZ_REPORT=str(report)),
                          capture_output=True, text=True)
    rows = defaultdict(list)
    for line in report.read_text().splitlines():
        row = json.loads(line)
        rows[row["reader"]].append(row)
    report.unlink()
    print(f"{'reader':<16}{'cases':>7}{'exit 0':>8}{'exit 1/2':>9}{'broken':>8}"
          f"{'median ms':>11}{'max s':>8}{'peak MiB':>10}")
    for reader in sorted(rows):
        cases = rows[reader]
        seconds = [c["seconds"] for c in cases]
        print(f"{reader:<16}{len(cases):>7}{sum(c['code'] == 0 for c in cases):>8}"
              f"{sum(c['code'] in (1, 2) for c in cases):>9}{sum(not c['ok'] for c in cases):>8}"
              f"{1000 * statistics.median(seconds):>11.1f}{max(seconds):>8.2f}"
              f"{max(c['peak_mb'] for c in cases):>10.0f}")
    tail = [line for line in proc.stdout.splitlines() if line.strip()][-15:]
    print("\n".join(["", "pytest:"] + tail))
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
