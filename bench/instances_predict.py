"""Benchmark instance prediction (Mask R-CNN): segtools' runner vs its bare module vs torchvision.

    python bench/instances_predict.py [--images 4] [--batch 2] [--repeat 3] [--min-size 800]
                                      [--arch maskrcnn-resnet50-fpn] [--refenv /work/refenv/bin/python]

1. :class:`segtools.inference.instances.InstanceRunner` over N CamVid frames (uint8 in,
   conversion, batching, forward, masks pasted and thresholded, numpy out) against the bare
   forward of segtools' own module on the same batches of pre-made float tensors plus the
   mask paste (what the runner cannot avoid). Target: ratio ≤ 1.10.
2. torchvision's model (the same architecture, the same keyed weights) on the same images,
   timed in a separate environment that has torchvision (``--refenv``, never a project
   dependency) with the same thread count; its forward includes its own mask pasting.
3. With CUDA (``--device cuda``): fp32 vs ``--amp`` fp16, and batch sizes 1/2/4.

Weights are random, keyed by state-dict key (``tests/golden_detection.py``), with the class
logits scaled so about 100 detections survive per image, as with trained weights.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import torch

from _timing import best_seconds

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import golden_detection  # noqa: E402

from segtools.inference.instances import InstanceRunner  # noqa: E402
from segtools.io.images import read_image  # noqa: E402
from segtools.models.detection import build_detector  # noqa: E402
from segtools.models.detection.transform import paste_masks  # noqa: E402

CAMVID = ROOT.parent / "shared" / "data" / "camvid" / "val"


def model_for(arch: str, min_size: int, max_size: int):
    with torch.device("meta"):
        model = build_detector(arch, 91, min_size=min_size, max_size=max_size)
    golden_detection.fill_detector(model)
    return model.eval()


def bare(model, tensors: list[torch.Tensor], batch: int, device) -> None:
    with torch.inference_mode():
        for start in range(0, len(tensors), batch):
            chunk = tensors[start:start + batch]
            for out, image in zip(model(chunk), chunk):
                if "masks" in out:
                    paste_masks(out["masks"], out["boxes"], tuple(image.shape[-2:]), 0.5)
        if device.type == "cuda":
            torch.cuda.synchronize()


TORCHVISION = textwrap.dedent("""
    import json, sys, time
    import numpy as np, torch
    from PIL import Image
    sys.path.insert(0, {tests!r}); sys.path.insert(0, {tools!r})
    import golden_detection, make_detection_golden as tool
    torch.set_num_threads({threads})
    case = golden_detection.DetectionCase("bench", {arch!r}, (), {min_size}, {max_size})
    model = tool.reference_model(case); golden_detection.fill_detector(model); model.eval()
    images = [np.asarray(Image.open(p).convert("RGB")) for p in {paths!r}]
    tensors = [torch.from_numpy(np.ascontiguousarray(i.transpose(2, 0, 1))).float() / 255 for i in images]
    def run():
        with torch.inference_mode():
            for s in range(0, len(tensors), {batch}):
                model(tensors[s:s + {batch}])
    if {repeat} > 1:
        run()
    times = []
    for _ in range({repeat}):
        t = time.perf_counter(); run(); times.append(time.perf_counter() - t)
    print(json.dumps({{"seconds": min(times), "torchvision": __import__("torchvision").__version__}}))
""")


def torchvision_seconds(python: str, arch: str, paths: list[str], args) -> dict | None:
    if not Path(python).exists():
        return None
    code = TORCHVISION.format(tests=str(ROOT / "tests"), tools=str(ROOT / "tools"), threads=torch.get_num_threads(),
                              arch=arch, min_size=args.min_size, max_size=args.max_size, paths=paths,
                              batch=args.batch, repeat=args.repeat)
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        print("torchvision run failed:", done.stderr.strip().splitlines()[-1:], file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--min-size", type=int, default=800)
    parser.add_argument("--max-size", type=int, default=1333)
    parser.add_argument("--arch", default="maskrcnn-resnet50-fpn")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--refenv", default="/work/refenv/bin/python")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths = sorted(str(p) for p in CAMVID.glob("*.png"))[: args.images]
    if not paths:
        sys.exit(f"no CamVid frames under {CAMVID}")
    images = [read_image(p) for p in paths]
    device = torch.device(args.device)
    model = model_for(args.arch, args.min_size, args.max_size).to(device)
    tensors = [torch.from_numpy(np.ascontiguousarray(i.transpose(2, 0, 1))).to(device).float() / 255 for i in images]
    runner = InstanceRunner(model, device=args.device, batch=args.batch)
    warm = args.repeat > 1  # one repeat: no untimed first run (a loaded machine's budget)
    bare_s = best_seconds(lambda: bare(model, tensors, args.batch, device), args.repeat, warmup=warm)
    runner_s = best_seconds(lambda: list(runner.predict_many(images)), args.repeat, warmup=warm)
    h, w = images[0].shape[:2]
    print(f"{args.arch}, {len(images)} CamVid frames {h}×{w}, resize {args.min_size}/{args.max_size}, "
          f"batch {args.batch}, {args.threads} threads, {args.device}, best of {args.repeat}")
    print(f"| what | seconds | per image |\n| --- | --- | --- |")
    print(f"| segtools InstanceRunner (uint8 in, numpy masks out) | {runner_s:.2f} | {runner_s / len(images):.2f} |")
    print(f"| segtools bare module forward + paste | {bare_s:.2f} | {bare_s / len(images):.2f} |")
    if device.type == "cpu":
        reference = torchvision_seconds(args.refenv, args.arch, paths, args)
        if reference:
            tv = reference["seconds"]
            print(f"| torchvision {reference['torchvision']} forward (its own paste) | {tv:.2f} | {tv / len(images):.2f} |")
            print(f"\nsegtools module / torchvision: {bare_s / tv:.2f}×")
    print(f"runner / bare module: {runner_s / bare_s:.3f}× (target ≤ 1.10)")
    if device.type == "cuda":
        for amp in (False, "fp16"):
            for batch in (1, 2, 4):
                gpu = InstanceRunner(model, device=args.device, batch=batch, amp=amp)
                s = best_seconds(lambda: list(gpu.predict_many(images)), args.repeat, warmup=True)
                print(f"| cuda {'fp16 amp' if amp else 'fp32'} batch {batch} | {s:.3f} | {s / len(images):.3f} |")


if __name__ == "__main__":
    main()
