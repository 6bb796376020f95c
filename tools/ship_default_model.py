#!/usr/bin/env python3
"""Turn a training run's best checkpoint into the bundled default model.

    python tools/ship_default_model.py runs/camvid/best.pt --miou 0.612

Writes ``segtools/data/weights/camvid.pt``: the state dict in float16 (half the size; the
model runs in float32, loading converts), with architecture, classes, preprocessing, the
training recipe and the validation metrics — no optimizer state. Loaded like any checkpoint
with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET = ROOT / "segtools" / "data" / "weights" / "camvid.pt"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="best.pt of a `segtools train` run")
    parser.add_argument("--miou", type=float, required=True,
                        help="val mIoU measured by `segtools metrics` on the full val split")
    parser.add_argument("-o", "--output", default=str(TARGET))
    args = parser.parse_args()

    import torch

    from segtools.weights.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint

    source = load_checkpoint(args.checkpoint)
    state = {key: (value.half() if value.is_floating_point() else value)
             for key, value in source["state_dict"].items()}
    recipe = dict(source.get("train_args") or {})
    for private in ("output", "images", "masks", "val_images", "val_masks", "classes"):
        recipe.pop(private, None)
    payload = make_checkpoint(
        source["arch"], source["num_classes"], state, classes=source.get("classes"),
        preprocessing=source.get("preprocessing"), arch_options=source.get("arch_options"),
        epoch=source.get("epoch"), metrics={"val_miou": args.miou, **(source.get("metrics") or {})},
        train_args=recipe, dataset="CamVid (SegNet split): train 367 frames, selected on val 101 frames",
        torch_version=str(torch.__version__))
    out = save_checkpoint(args.output, payload)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.2f} MiB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
