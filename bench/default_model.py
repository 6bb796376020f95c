#!/usr/bin/env python
"""The default model's budget: milliseconds per 480×360 frame through ``segtools predict``.

    python bench/default_model.py [--frames ../shared/data/camvid/val] [--repeat 3] [--archs]

Times whole ``segtools predict FOLDER -o OUT`` commands (start-up, decoding, the model,
writing the label PNGs) over the CamVid val frames and prints milliseconds per frame, best
of ``--repeat``, side by side in one run:

* the shipped ``camvid`` model on its default path (ONNX Runtime), on the torch path, and
  with ``--tta flip``;
* with ``--archs``, the candidate architectures of the model's levers (bench/RESULTS.md) with
  random weights (the cost does not depend on them): LR-ASPP at output stride 16 and 32 and
  with the 1/4 low branch, and Fast-SCNN, each on torch and exported to ONNX (float32; the
  shipped model's ONNX file also stores most weights int8).

The issue's budget is 60 ms per frame on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _timing import best_seconds

ROOT = Path(__file__).resolve().parents[1]
BUDGET_MS = 60.0
CANDIDATES = [  # (label, arch, options)
    ("lraspp-mnv3, output stride 16 (the shipped architecture)", "lraspp-mnv3", {}),
    ("lraspp-mnv3, output stride 32", "lraspp-mnv3", {"output_stride": 32}),
    ("lraspp-mnv3, output stride 8", "lraspp-mnv3", {"output_stride": 8}),
    ("lraspp-mnv3, low branch at 1/4", "lraspp-mnv3", {"low_stride": 4}),
    ("fast-scnn", "fast-scnn", {}),
]


def segtools() -> list[str]:
    exe = shutil.which("segtools")
    return [exe] if exe else [sys.executable, "-m", "segtools"]


def best_command_seconds(args: list[str], frames: Path, repeat: int) -> float:
    out = tempfile.mkdtemp()

    def predict() -> None:
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run([*segtools(), "predict", str(frames), "-o", out, *args], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    try:
        return best_seconds(predict, repeat)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def random_checkpoints(folder: Path) -> list[tuple[str, Path, Path]]:
    import torch

    from segtools.models import build_model
    from segtools.weights.checkpoint import make_checkpoint, save_checkpoint
    from segtools.weights.export import export_model
    from segtools.weights.loader import load_model

    made = []
    for index, (label, arch, options) in enumerate(CANDIDATES):
        torch.manual_seed(index)
        model = build_model(arch, 11, **options).eval()
        pt = save_checkpoint(folder / f"m{index}.pt", make_checkpoint(arch, 11, model.state_dict(),
                                                                      arch_options=options))
        onnx = folder / f"m{index}.onnx"
        export_model(load_model(weights=pt), onnx, "onnx", (360, 480))
        made.append((label, pt, onnx))
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=Path, default=ROOT.parent / "shared/data/camvid/val")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--archs", action="store_true", help="also time the candidate architectures")
    args = parser.parse_args()
    if not args.frames.is_dir():
        sys.exit(f"no frames at {args.frames} (give --frames)")
    count = len(list(args.frames.glob("*.png")))
    print(f"{count} frames of {args.frames}, {os.cpu_count()} CPUs, best of {args.repeat}, "
          f"whole commands (start-up included); budget {BUDGET_MS:.0f} ms a frame\n")
    print(f"{'model':<58}{'path':<8}{'ms/frame':>10}{'× shipped':>11}")
    rows = [("camvid (shipped)", "onnx", []), ("camvid (shipped)", "torch", ["--backend", "torch"]),
            ("camvid (shipped), --tta flip", "onnx", ["--tta", "flip"])]
    with tempfile.TemporaryDirectory() as folder:
        if args.archs:
            for label, pt, onnx in random_checkpoints(Path(folder)):
                rows += [(label, "torch", ["--weights", str(pt)]), (label, "onnx", ["--model", str(onnx)])]
        shipped = None
        for label, path, extra in rows:
            ms = best_command_seconds(extra, args.frames, args.repeat) / count * 1000
            shipped = shipped or ms
            flag = "" if ms <= BUDGET_MS else "  over budget"
            print(f"{label:<58}{path:<8}{ms:>10.1f}{ms / shipped:>11.2f}{flag}")


if __name__ == "__main__":
    main()
