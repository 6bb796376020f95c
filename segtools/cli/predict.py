"""``segtools predict``: run a model on images; label PNGs (with legend) or score maps out."""

from __future__ import annotations

from typing import List, Optional

import typer
from typing_extensions import Annotated

from segtools.cli.common import ClassesOpt, OutputOpt, OverwriteOpt, info, progress

ModelOpt = Annotated[Optional[str], typer.Option(
    "--model", "-m", help="Registry name (see `segtools weights list`) or a checkpoint/TorchScript file.")]
WeightsOpt = Annotated[Optional[str], typer.Option("--weights", "-w", help="Checkpoint file (state dict, segtools checkpoint, .safetensors).")]
ArchOpt = Annotated[Optional[str], typer.Option("--arch", help="Architecture of a plain state dict, e.g. deeplabv3-resnet50, unet.")]


def predict(
    inputs: Annotated[Optional[List[str]], typer.Argument(help="Images: files, folders, globs, @list.txt, or - for stdin.")] = None,
    model: ModelOpt = None,
    weights: WeightsOpt = None,
    arch: ArchOpt = None,
    output: OutputOpt = None,
    probs: Annotated[bool, typer.Option("--probs", help="Write class probabilities (.npz score map) instead of labels.")] = False,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda[:N] or mps.")] = "auto",
    batch: Annotated[int, typer.Option("--batch", "-b", min=1, help="Images (or tiles) per forward pass.")] = 4,
    amp: Annotated[bool, typer.Option("--amp", help="Mixed precision (fp16 on GPU, bf16 on CPU).")] = False,
    amp_dtype: Annotated[Optional[str], typer.Option("--amp-dtype", help="Precision for --amp: fp16 or bf16.")] = None,
    tta: Annotated[Optional[str], typer.Option("--tta", help="Test-time augmentation: flip[=h|v|hv][,scales=0.75,1,1.25].")] = None,
    tile: Annotated[Optional[str], typer.Option("--tile", help="Sliding window: tile size N or HxW in pixels.")] = None,
    overlap: Annotated[str, typer.Option("--overlap", help="Tile overlap in pixels (64) or a fraction (0.25).")] = "0",
    blend: Annotated[str, typer.Option("--blend", help="Tile blending: gaussian, linear or mean.")] = "gaussian",
    classes: ClassesOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Segment images with a model: a label PNG per image (class names and palette inside),
    or with --probs a score map (.npz). The original size is restored.

    One input goes to -o FILE or stdout; a batch (folder, glob, list) needs -o DIR and keeps
    the relative names. Same-size images are batched.

    Example: segtools predict street.jpg --model deeplabv3-mnv3-voc | segtools visualize --over street.jpg -o overlay.png
    """
    import os
    import sys

    from segtools.errors import UsageError
    from segtools.io.batch import check_output_dir, expand_inputs, output_path
    from segtools.io.streams import check_output_path

    if tile is None and overlap != "0":
        raise UsageError("--overlap needs --tile")
    specs = inputs or ["-"]
    if specs == ["-"] and sys.stdin.isatty():
        raise UsageError("no input: give image files or a folder, or pipe an image into stdin")
    items = expand_inputs(specs, extensions=(".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".npy"))
    is_batch = len(items) > 1 or any(os.path.isdir(s) or s.startswith("@") for s in specs)
    extension = ".npz" if probs else ".png"
    if is_batch:
        if output is None or output == "-":
            raise UsageError(f"{len(items)} images need -o DIR (one output file each)")
        out_dir = check_output_dir(output)
        targets = [output_path(item, out_dir, extension) for item in items]
    else:
        targets = [None if output in (None, "-") else check_output_path(output, overwrite)]

    predictor, meta = _make_predictor(model, weights, arch, classes, device, batch, amp, amp_dtype, tta,
                                      tile, overlap, blend)
    _run(predictor, meta, items, targets, probs, overwrite)


def _make_predictor(model, weights, arch, classes, device, batch, amp, amp_dtype, tta, tile, overlap, blend):
    from segtools.errors import UsageError
    from segtools.inference.predictor import Predictor, Tiling
    from segtools.inference.tta import parse_tta
    from segtools.io.meta import ClassMeta, default_palette
    from segtools.tiling.grid import parse_overlap, parse_size
    from segtools.weights.loader import load_model

    if amp_dtype is not None and amp_dtype not in ("fp16", "bf16"):
        raise UsageError(f"--amp-dtype {amp_dtype!r}: choose fp16 or bf16")
    tiling = Tiling(parse_size(tile, "--tile"), parse_overlap(overlap), blend) if tile else None
    if tiling is not None and blend not in ("gaussian", "linear", "mean"):
        raise UsageError(f"--blend {blend!r}: choose gaussian, linear or mean")
    augment = parse_tta(tta)
    loaded = load_model(model=model, weights=weights, arch=arch, classes=classes,
                        device="cpu")
    precision = (amp_dtype or True) if amp else False
    predictor = Predictor(loaded.model, loaded.preprocessing, device=device, amp=precision, batch=batch,
                          tiling=tiling, tta=augment)
    meta = loaded.classes
    if meta is None:
        count = loaded.num_classes or 256
        meta = ClassMeta(names=None, palette=default_palette(max(count, 2))[:max(count, 2)], ignore_index=None)
    if meta.palette is None and meta.names is not None:
        meta = meta.with_(palette=default_palette(len(meta.names))[: len(meta.names)])
    return predictor, meta


def _run(predictor, meta, items, targets, probs: bool, overwrite: bool) -> None:
    from segtools.io.images import read_image
    from segtools.io.masks import write_label_mask, write_score_map

    images = (read_image(item.path) for item in items)
    with progress(len(items), "predict") as advance:
        for index, result in enumerate(predictor.predict_many(images, labels=not probs)):
            if probs:  # .npz with class metadata (a plain .npy when -o ends in .npy)
                write_score_map(result, targets[index], meta, overwrite)
            else:
                write_label_mask(result, targets[index], meta, overwrite)
            advance(index)
    if len(items) > 1:
        info(f"predicted {len(items)} images")


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
