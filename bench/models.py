#!/usr/bin/env python
"""Forward-pass speed of our native models beside their references, same weights, same run.

torchvision is not a segtools dependency; run this in the venv that ``tools/make_golden.py``
uses (torch 2.14.1 + torchvision 0.29.1)::

    PYTHONPATH=. /tmp/tvenv/bin/python bench/models.py [--size 256] [--repeat 3] [--threads 2]

For each architecture both models get the same deterministic weights (``tests/golden_util``);
the table gives the best eval-mode forward time of a 1×3×S×S batch, the ratio ours /
reference, and the largest absolute difference of the logits. Without torchvision only our
timings are printed.
"""

from __future__ import annotations

import argparse
import copy
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tools")]

import golden_util  # noqa: E402

from segtools.models import build_model  # noqa: E402

CASES = [  # (our arch, options, reference factory name in tools/make_golden.py terms)
    ("lraspp-mnv3", {}),
    ("deeplabv3-mnv3", {}),
    ("fcn-resnet50", {}),
    ("deeplabv3-resnet50", {}),
    ("deeplabv3-resnet101", {}),
    ("deeplabv3plus-resnet50", {}),
    ("unet", {}),
]


def reference(arch: str, options: dict, num_classes: int):
    """The reference model (torchvision or the transcripts in tools/make_golden.py), or None."""
    try:
        import make_golden
    except ImportError:
        return None
    case = golden_util.GoldenCase(arch, arch, num_classes, options)
    model = make_golden.reference_model(case)
    if arch in {"deeplabv3-mnv3", "deeplabv3-resnet50", "deeplabv3-resnet101", "fcn-resnet50"}:
        model.aux_classifier = None  # make_golden builds the aux head; time the main head only
    return model


def _logits(output) -> torch.Tensor:
    return output["out"] if isinstance(output, dict) else output


def interleaved(models: dict[str, tuple[torch.nn.Module, torch.Tensor]], repeat: int) -> dict:
    """Best (minimum) forward seconds per model, runs interleaved so load drifts hit all alike.

    The minimum, as ``timeit`` advises, because on a shared machine the other runs measure
    the neighbours' load rather than the model.

    Returns ``{name: (seconds, logits)}``; one warm-up forward each is not timed.
    """
    times: dict[str, list[float]] = {name: [] for name in models}
    outputs = {}
    with torch.inference_mode():
        for name, (model, x) in models.items():
            outputs[name] = _logits(model(x))
        order = list(models.items())
        for round_index in range(repeat):  # alternate the order: no model always runs first
            for name, (model, x) in order if round_index % 2 else order[::-1]:
                start = time.perf_counter()
                model(x)
                times[name].append(time.perf_counter() - start)
    return {name: (min(times[name]), outputs[name]) for name in models}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="input side in pixels")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--num-classes", type=int, default=21)
    parser.add_argument("--arch", nargs="*", help="only these architectures")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)) * 4 - 2
    print(f"# models bench: torch {torch.__version__}, {platform.machine()}, {args.threads} threads, "
          f"input 1x3x{args.size}x{args.size}, best of {args.repeat}")
    print(f"| {'arch':24s} | ours (s) | ours channels_last (s) | reference (s) | ours/ref | max abs diff |")
    print("|---|---|---|---|---|---|")
    x_cl = x.contiguous(memory_format=torch.channels_last)
    for arch, options in CASES:
        if args.arch and arch not in args.arch:
            continue
        with torch.device("meta"):
            ours = build_model(arch, args.num_classes, **options)
        golden_util.fill_deterministic(ours)
        ours_cl = copy.deepcopy(ours).to(memory_format=torch.channels_last).eval()
        runs = {"ours": (ours.eval(), x), "ours_cl": (ours_cl, x_cl)}
        ref = reference(arch, options, args.num_classes)
        if ref is not None:
            golden_util.fill_deterministic(ref)
            runs["ref"] = (ref.eval(), x)
        result = interleaved(runs, args.repeat)
        ours_s, ours_out = result["ours"]
        row = f"| {arch:24s} | {ours_s:8.3f} | {result['ours_cl'][0]:8.3f} |"
        if ref is None:
            print(row + " n/a | n/a | n/a |")
            continue
        ref_s, ref_out = result["ref"]
        diff = float((ours_out - ref_out).abs().max())
        print(row + f" {ref_s:8.3f} | {ours_s / ref_s:5.2f} | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
