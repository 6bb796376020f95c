#!/usr/bin/env python3
"""Turn a training run's best checkpoint into the bundled default model, and its ONNX twin.

    python tools/ship_default_model.py runs/camvid/best.pt --miou 0.612
    python tools/ship_default_model.py --onnx-only          # camvid.onnx from the shipped camvid.pt

Writes ``segtools/data/weights/camvid.pt``: the state dict in float16 (half the size; the
model runs in float32, loading converts), with architecture, classes, preprocessing, the
training recipe and the validation metrics — no optimizer state. Loaded like any checkpoint
with ``torch.load(weights_only=True)``.

Then writes ``segtools/data/weights/camvid.onnx`` from that file with segtools' own export
(``segtools.weights.export.export_model``, what ``segtools weights export --format onnx``
runs), so ``segtools predict`` runs the default model in ONNX Runtime without torch. Its
weights are stored as compactly as the budget for both files needs (``--budget-mib``,
default 10): float16 when that fits, else int8 per output channel for the largest tensors
(float16 for the rest), the largest int8 threshold that fits. When CamVid is present
(``--camvid``, default ``../shared/data/camvid``) the ONNX labels are compared with the torch
model's on the whole val split and the script fails below ``--min-agreement`` (99.9 %).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET = ROOT / "segtools" / "data" / "weights" / "camvid.pt"
CAMVID = ROOT.parent / "shared" / "data" / "camvid"
#: ONNX weight storage tried in order, (storage, int8 threshold in values): the first that fits
CANDIDATES = (("float16", 0), ("int8", 200_000), ("int8", 150_000), ("int8", 100_000), ("int8", 70_000),
              ("int8", 40_000), ("int8", 1024))


DATASET = "CamVid (SegNet split): train 367 frames, selected on val 101 frames"


def ship_checkpoint(checkpoint: str, miou: float, output: Path, dataset: str = DATASET,
                    pixel_accuracy: float | None = None, recipe_from: str | None = None) -> Path:
    import torch

    from segtools.weights.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint

    source = load_checkpoint(checkpoint)
    state = {key: (value.half() if value.is_floating_point() else value)
             for key, value in source["state_dict"].items()}
    # a weight average carries no training arguments: store those of the run it averages in
    recipe = dict((load_checkpoint(recipe_from) if recipe_from else source).get("train_args") or {})
    for private in ("output", "images", "masks", "val_images", "val_masks", "classes"):
        recipe.pop(private, None)
    payload = make_checkpoint(
        source["arch"], source["num_classes"], state, classes=source.get("classes"),
        preprocessing=source.get("preprocessing"), arch_options=source.get("arch_options"),
        epoch=source.get("epoch"), metrics={**(source.get("metrics") or {}), "val_miou": miou,
                 **({"val_pixel_accuracy": pixel_accuracy} if pixel_accuracy is not None else {})},
        train_args=recipe, dataset=dataset,
        torch_version=str(torch.__version__))
    out = save_checkpoint(output, payload)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.2f} MiB)", file=sys.stderr)
    return out


def ship_onnx(checkpoint: Path, output: Path, budget_mib: float, example_size=(360, 480)) -> tuple[str, int]:
    """Export ``checkpoint`` to ``output`` with the first weight storage that keeps both files
    within ``budget_mib``; returns (storage, int8 threshold). The graph is exported once (float32)
    and its weights stored by ``segtools.weights.export.compact_weights`` for each candidate."""
    import tempfile

    import onnx

    from segtools.io.streams import write_bytes
    from segtools.weights.export import compact_weights, export_model
    from segtools.weights.loader import load_model

    loaded = load_model(weights=str(checkpoint))
    room = budget_mib * 2**20 - checkpoint.stat().st_size
    with tempfile.TemporaryDirectory() as folder:
        full = export_model(loaded, Path(folder) / "full.onnx", "onnx", example_size)
        for storage, threshold in CANDIDATES:
            graph = onnx.load(str(full))
            compact_weights(graph, storage, threshold or 1024)
            data = graph.SerializeToString()
            if len(data) <= room:
                write_bytes(output, data, allow_overwrite=True)
                print(f"wrote {output} ({len(data) / 2**20:.2f} MiB, weights {storage}"
                      f"{f' from {threshold} values' if storage == 'int8' else ''})", file=sys.stderr)
                return storage, threshold
    raise SystemExit(f"no weight storage fits {output} into {room / 2**20:.2f} MiB")


def label_agreement(checkpoint: Path, onnx_file: Path, frames: list[Path]) -> float:
    """Share of pixels where the torch model and the ONNX graph give the same label."""
    from segtools.backends.onnx import open_onnx
    from segtools.backends.runner import RunnerPredictor
    from segtools.inference.predictor import Predictor
    from segtools.io.images import read_image
    from segtools.weights.loader import load_model

    loaded = load_model(weights=str(checkpoint))
    torch_path = Predictor(loaded.model, loaded.preprocessing, device="cpu", batch=1)
    onnx_path = RunnerPredictor(open_onnx(onnx_file, device="cpu"), batch=1)
    same = total = 0
    for frame in frames:
        image = read_image(frame)
        reference = torch_path.predict_labels(image)
        same += int((onnx_path.predict_labels(image) == reference).sum())
        total += reference.size
    return same / max(total, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", nargs="?", help="best.pt of a `segtools train` run")
    parser.add_argument("--miou", type=float, help="val mIoU measured by `segtools metrics` on the full val split")
    parser.add_argument("-o", "--output", default=str(TARGET))
    parser.add_argument("--pixel-accuracy", type=float, help="val pixel accuracy measured with --miou (stored)")
    parser.add_argument("--dataset", default=DATASET, help="what the model was trained and selected on (stored)")
    parser.add_argument("--recipe-from", help="store the training arguments of this checkpoint (a weight "
                        "average's fine-tune) instead of the shipped checkpoint's")
    parser.add_argument("--onnx-only", action="store_true", help="only write the ONNX twin of the shipped checkpoint")
    parser.add_argument("--budget-mib", type=float, default=10.0, help="both shipped files together, MiB")
    parser.add_argument("--camvid", default=str(CAMVID), help="CamVid root (val/) for the agreement check")
    parser.add_argument("--min-agreement", type=float, default=0.999)
    args = parser.parse_args()

    output = Path(args.output)
    if not args.onnx_only:
        if not args.checkpoint or args.miou is None:
            parser.error("give the checkpoint and --miou (or --onnx-only)")
        ship_checkpoint(args.checkpoint, args.miou, output, args.dataset, args.pixel_accuracy, args.recipe_from)
    onnx_file = output.with_suffix(".onnx")
    ship_onnx(output, onnx_file, args.budget_mib)
    frames = sorted((Path(args.camvid) / "val").glob("*.png"))
    if not frames:
        print(f"no CamVid val frames under {args.camvid}: label agreement not checked", file=sys.stderr)
        return 0
    agreement = label_agreement(output, onnx_file, frames)
    print(f"labels equal to the torch model on {agreement:.4%} of {len(frames)} CamVid val frames' pixels",
          file=sys.stderr)
    if agreement < args.min_agreement:
        print(f"below {args.min_agreement:.2%}: not shippable", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
