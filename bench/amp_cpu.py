"""Benchmark ``predict --amp`` on this CPU: what the fallback decision saves.

    python bench/amp_cpu.py [--repeat 3] [--size 360x480]

The bundled default model (LR-ASPP MobileNetV3, CamVid) on one frame, side by side in one run:
fp32, bf16 autocast forced (what ``--amp`` ran before issue 22 whatever the CPU), and
``Predictor(amp=True)`` as it is now (fp32 with a warning on a CPU without native bf16, bf16
where the CPU has it). Prints the CPU features the decision reads.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import torch

from _timing import best_seconds
from segtools.inference import device as device_module
from segtools.inference.device import cpu_capabilities, cpu_runs_natively
from segtools.inference.predictor import Predictor
from segtools.weights.loader import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size", default="360x480")
    args = parser.parse_args()
    height, width = map(int, args.size.split("x"))
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    loaded = load_model()
    caps = cpu_capabilities()
    print(f"CPU {caps.get('cpu_name')} ({caps.get('architecture')}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; native bf16: {cpu_runs_natively('bf16', caps)}")
    logging.getLogger("segtools").addHandler(logging.StreamHandler())

    fp32 = Predictor(loaded.model, loaded.preprocessing, device="cpu", amp=False, batch=1)
    real = device_module.cpu_capabilities
    device_module.cpu_capabilities = lambda: {"avx512_bf16": True}  # pretend: the old, unconditional bf16
    forced = Predictor(loaded.model, loaded.preprocessing, device="cpu", amp="bf16", batch=1)
    device_module.cpu_capabilities = real
    now = Predictor(loaded.model, loaded.preprocessing, device="cpu", amp=True, batch=1)
    runs = (("fp32", fp32), ("bf16 autocast (before)", forced), ("--amp now", now))
    for _, predictor in runs:  # warm up all three first (oneDNN primitives, allocator)
        for _ in range(2):
            predictor.predict_labels(image)
    times = {label: float("inf") for label, _ in runs}
    for _ in range(args.repeat):  # interleaved rounds: the shared machine's load hits all three alike
        for label, predictor in runs:
            times[label] = min(times[label], best_seconds(lambda: predictor.predict_labels(image), 1))
    base = times["fp32"]
    for label, value in times.items():
        print(f"{label:24s} {value * 1000:8.0f} ms/frame  ({value / base:.2f}× fp32)")


if __name__ == "__main__":
    main()
