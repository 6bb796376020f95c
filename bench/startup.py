#!/usr/bin/env python3
"""Start-up cost of the CLI against bare imports, measured in the same run.

    python bench/startup.py [--repeat 7]

Prints median and best wall time of fresh processes, the cases interleaved round by round
so that other load hits them alike. Targets: (issue 2) `segtools --help` ≤ 0.35 s and ≤ 1/4
of `import torch`, no command that needs no model imports torch; (issue 22) against
`python -c "import numpy, cv2, PIL.Image"` in the same run, `segtools --help` ≤ 1.5× and a
one-file command (`info mask.png`, `--version`) ≤ 1.3×.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = [
    ("python -c pass", [sys.executable, "-c", "pass"]),
    ("import numpy, cv2, PIL", [sys.executable, "-c", "import numpy, cv2, PIL.Image"]),
    ("import torch", [sys.executable, "-c", "import torch"]),
    ("segtools --help", [sys.executable, "-m", "segtools", "--help"]),
    ("segtools --version", [sys.executable, "-m", "segtools", "--version"]),
]


def _mask() -> str:
    """A small label PNG for ``segtools info`` (under $TMPDIR, never in the repo)."""
    path = Path(tempfile.gettempdir()) / "segtools-bench-startup-mask.png"
    if not path.exists():
        import cv2
        import numpy as np

        cv2.imwrite(str(path), (np.arange(64 * 64).reshape(64, 64) % 5).astype(np.uint8))
    return str(path)


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def interleaved(cases: list[tuple[str, list[str], str | None]], repeat: int) -> dict[str, tuple[float, float, float]]:
    """Median and best wall seconds and median CPU seconds (what other load disturbs least)
    of each case, one run of every case per round."""
    import os

    times: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    cpu: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    for _ in range(repeat):
        for name, cmd, cwd in cases:  # python -m finds the package of its working folder first
            start, start_cpu = time.perf_counter(), _children_cpu()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, cwd=cwd,
                           env={**os.environ, **({"PYTHONPATH": cwd} if cwd else {})})
            times[name].append(time.perf_counter() - start)
            cpu[name].append(_children_cpu() - start_cpu)
    return {name: (statistics.median(values), min(values), statistics.median(cpu[name]))
            for name, values in times.items()}


def wall(cmd: list[str], repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def commands() -> list[str]:
    import typer

    from segtools.cli.app import app

    root = typer.main.get_command(app)
    return root.list_commands(root.context_class(root, info_name="segtools"))


def imports_torch(args: list[str]) -> bool:
    code = ("import sys; from segtools.cli.app import run; run(%r); "
            "sys.stderr.write('TORCH=%%s' %% ('torch' in sys.modules))" % (args,))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return "TORCH=True" in out.stderr


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--issue22", action="store_true", help="only issue 22's rows")
    parser.add_argument("--before", metavar="DIR", help="also run the commands from another checkout "
                        "(e.g. `git worktree add /tmp/before HEAD~3`), side by side")
    args = parser.parse_args()
    issue22(args.repeat * 2, args.before)
    if args.issue22:
        return
    results = {name: wall(cmd, args.repeat) for name, cmd in CASES}
    torch_median = results["import torch"][0]
    print(f"{'case':<28}{'median s':>10}{'best s':>10}{'vs torch':>10}")
    for name, (median, best) in results.items():
        print(f"{name:<28}{median:>10.3f}{best:>10.3f}{median / torch_median:>10.2f}")
    for name in commands():
        median, best = wall([sys.executable, "-m", "segtools", name, "--help"], max(3, args.repeat // 2))
        print(f"{'segtools ' + name + ' --help':<28}{median:>10.3f}{best:>10.3f}{median / torch_median:>10.2f}"
              f"   torch imported: {imports_torch([name, '--help'])}")
    help_median = results["segtools --help"][0]
    verdict = "PASS" if help_median <= 0.35 and help_median <= torch_median / 4 else "FAIL"
    print(f"\ntarget: segtools --help <= 0.35 s and <= 1/4 of import torch: {verdict}")


def issue22(repeat: int, before: str | None = None) -> None:
    reference = "import numpy, cv2, PIL"
    commands = [("segtools --help", ["--help"]), ("segtools --version", ["--version"]),
                ("segtools info mask.png", ["info", _mask()]), ("segtools info --help (rich help)", ["info", "--help"])]
    here = str(Path(__file__).resolve().parents[1])
    cases = [(reference, [sys.executable, "-c", "import numpy, cv2, PIL.Image"], None)]
    for name, args in commands:
        cases.append((name, [sys.executable, "-m", "segtools", *args], here))
        if before:
            cases.append((f"{name} (before)", [sys.executable, "-m", "segtools", *args], before))
    # what the quick exit (cli.app.quick_exit) is worth: the same run, ended by a normal exit
    cases.append(("segtools info mask.png, normal exit", [sys.executable, "-c", "import sys; from segtools.cli.app "
                  "import run; sys.exit(run(sys.argv[1:]))", "info", _mask()], here))
    results = interleaved(cases, repeat)
    goals = {"segtools --help": 1.5, "segtools --version": 1.3, "segtools info mask.png": 1.3}
    ref_median, ref_best, ref_cpu = results[reference]
    import os

    finder = subprocess.run([sys.executable, "-c", "import sys; print(any('__editable__' in m for m in sys.modules))"],
                            capture_output=True, text=True).stdout.strip() == "True"
    print(f"## issue 22: start-up against the reference, {repeat} interleaved rounds; load average "
          f"{os.getloadavg()[0]:.2f}; .pyc files {'not ' * bool(os.environ.get('PYTHONDONTWRITEBYTECODE'))}written; "
          f"segtools {'editable (its finder runs in every process of this environment, the reference too)' if finder else 'installed normally'}")
    print(f"{'case':<40}{'median s':>9}{'best s':>8}{'CPU s':>7}{'median/ref':>11}{'best/ref':>9}"
          f"{'CPU/ref':>8}  goal (on the median)")
    for name, (median, best, cpu) in results.items():
        goal = goals.get(name)
        verdict = "" if goal is None else f"<= {goal}x: {'PASS' if median / ref_median <= goal else 'FAIL'}"
        print(f"{name:<40}{median:>9.3f}{best:>8.3f}{cpu:>7.3f}{median / ref_median:>11.2f}"
              f"{best / ref_best:>9.2f}{cpu / ref_cpu:>8.2f}  {verdict}")
    print()


if __name__ == "__main__":
    main()
