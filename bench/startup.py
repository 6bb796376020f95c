#!/usr/bin/env python3
"""Start-up cost of the CLI against bare imports, measured in the same run.

    python bench/startup.py [--repeat 7]

Prints median and best wall time of fresh processes. Target (issue 2): `segtools --help`
≤ 0.35 s and ≤ 1/4 of `import torch`; no command that needs no model imports torch.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = [
    ("python -c pass", [sys.executable, "-c", "pass"]),
    ("import numpy, cv2, PIL", [sys.executable, "-c", "import numpy, cv2, PIL.Image"]),
    ("import torch", [sys.executable, "-c", "import torch"]),
    ("segtools --help", [sys.executable, "-m", "segtools", "--help"]),
    ("segtools --version", [sys.executable, "-m", "segtools", "--version"]),
]


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
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
