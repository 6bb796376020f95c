"""``segtools predict`` with Segment Anything: prompt options, segment-everything options, the run.

``predict`` hands over here when its model is a SAM model (``--model sam-vit-b``,
``mobile-sam``, ``--arch sam-vit-h``, a ``sam_vit_*.pth``/``mobile_sam.pt`` file) or when a
prompt option is given. Each image is encoded once; every prompt is decoded on that
embedding (``--embeddings DIR`` keeps it for the next run).
"""

from __future__ import annotations

from typing import List, Optional

import typer
from typing_extensions import Annotated

PointOpt = Annotated[Optional[List[str]], typer.Option(
    "--point", metavar="X,Y[:LABEL]", help="SAM: a point prompt in image pixels; label 1 foreground (default), 0 "
                                           "background. Repeat for several points of one object.")]
BoxOpt = Annotated[Optional[List[str]], typer.Option(
    "--box", metavar="X0,Y0,X1,Y1", help="SAM: a box prompt in image pixels. Repeat for several objects (one mask each).")]
PromptsOpt = Annotated[Optional[str], typer.Option(
    "--prompts", metavar="FILE", help="SAM: a JSON of points/boxes ({\"points\": [[x, y, label]], \"boxes\": [[x0, y0, "
                                      "x1, y1]]}), or box annotations (COCO, VOC XML, YOLO): one mask per box.")]
MultimaskOpt = Annotated[Optional[bool], typer.Option(
    "--multimask/--no-multimask", help="SAM: predict three candidates and keep the best (default: on for one point, "
                                       "off for boxes and several points).")]
EverythingOpt = Annotated[bool, typer.Option(
    "--everything", help="SAM: segment everything, prompting with a grid of points.")]
PointsPerSideOpt = Annotated[Optional[int], typer.Option(
    "--points-per-side", help="--everything: points along each side of the grid (default 32: 1024 points).")]
PointsPerBatchOpt = Annotated[Optional[int], typer.Option(
    "--points-per-batch", help="--everything: points decoded together; more is faster and needs more memory (default 64).")]
PredIouOpt = Annotated[Optional[float], typer.Option(
    "--pred-iou-thresh", help="--everything: drop masks whose predicted quality (IoU) is at or below this (default 0.88).")]
StabilityOpt = Annotated[Optional[float], typer.Option(
    "--stability-thresh", help="--everything: drop masks that change more than this when the cut-off moves (stability "
                               "score, default 0.95).")]
BoxNmsOpt = Annotated[Optional[float], typer.Option(
    "--box-nms", help="--everything: drop a mask whose box overlaps a better one's by more than this IoU (default 0.7).")]
CropLayersOpt = Annotated[Optional[int], typer.Option(
    "--crop-layers", help="--everything: also run on 2x2, 4x4… crops of the image, this many levels (default 0).")]
MinRegionOpt = Annotated[Optional[int], typer.Option(
    "--min-region", help="--everything: fill holes and drop islands smaller than this many pixels (default 0: keep).")]
EmbeddingsOpt = Annotated[Optional[str], typer.Option(
    "--embeddings", metavar="DIR", help="SAM: keep each image's encoder output here (float16) and reuse it next time.")]
ClipOpt = Annotated[bool, typer.Option(
    "--clip", help="SAM: move points and boxes outside the image to its edge instead of refusing them.")]

FLAGS = {"point": "--point", "box": "--box", "clip": "--clip", "model": "--model", "weights": "--weights",
         "arch": "--arch", "points_per_side": "--points-per-side", "points_per_batch": "--points-per-batch",
         "pred_iou_thresh": "--pred-iou-thresh", "stability_thresh": "--stability-thresh", "box_nms": "--box-nms",
         "crop_layers": "--crop-layers", "min_region": "--min-region", "labels": "--point", "boxes": "--box"}


EVERYTHING_OPTIONS = ("points_per_side", "points_per_batch", "pred_iou_thresh", "stability_thresh", "box_nms",
                      "crop_layers", "min_region")
PROMPT_OPTIONS = ("point", "box", "prompts", "multimask", "everything", "embeddings", "clip", *EVERYTHING_OPTIONS)
#: predict's options that mean nothing to SAM (refused when set)
REFUSED = {"tta": "--tta", "tile": "--tile", "classes": "--classes", "temporal": "--temporal",
           "amp": "--amp", "min_score": "--min-score", "max_dets": "--max-dets", "mask_threshold": "--mask-threshold"}


def wants_sam(options: dict) -> bool:
    """Whether ``predict`` (its options, by parameter name) runs SAM: a SAM model, or any
    SAM-only option given."""
    from segtools.inference.sam2 import is_sam2_model
    from segtools.inference.sam_io import is_sam_model

    named = (options.get("model"), options.get("weights"), options.get("arch"))
    return is_sam_model(*named) or is_sam2_model(*named) or any(
        options.get(name) not in (None, False, []) for name in PROMPT_OPTIONS)


def refuse_jobs(options: dict) -> None:
    """``--jobs`` other than 1 is for SAM's boxes → masks dataset job (``--prompts`` with box
    annotations); refused for every other kind of run."""
    from segtools.errors import UsageError

    if not (wants_sam(options) and options.get("prompts")):
        raise UsageError("--jobs is for SAM boxes → masks (--model sam-… --prompts DETECTIONS); "
                         "other predict runs batch with --batch")


def parse_point(text: str) -> tuple[float, float, int]:
    """``X,Y`` or ``X,Y:LABEL`` → (x, y, label)."""
    from segtools.errors import UsageError

    coords, _, label = text.partition(":")
    parts = coords.split(",")
    try:
        x, y = (float(p) for p in parts)
        value = 1 if label == "" else int(label)
    except ValueError:
        raise UsageError(f"--point {text!r}: expected X,Y or X,Y:LABEL (pixels; label 1 or 0)") from None
    if value not in (0, 1):
        raise UsageError(f"--point {text!r}: the label is 1 (foreground) or 0 (background)")
    return x, y, value


def parse_box(text: str) -> tuple[float, float, float, float]:
    from segtools.errors import UsageError

    try:
        x0, y0, x1, y1 = (float(p) for p in text.split(","))
    except ValueError:
        raise UsageError(f"--box {text!r}: expected X0,Y0,X1,Y1 (pixels)") from None
    if x1 < x0 or y1 < y0:
        raise UsageError(f"--box {text!r}: needs X0 <= X1 and Y0 <= Y1")
    return x0, y0, x1, y1


def _prompt_json(path: str):
    """(points, boxes) of a points/boxes JSON, or None when the file is box annotations."""
    from segtools.errors import InputError
    from segtools.io.jsondata import parse_json
    from segtools.io.streams import read_bytes

    data = read_bytes(path)
    if data.lstrip()[:1] != b"{":
        return None
    doc = parse_json(data, path)
    if not isinstance(doc, dict) or not ({"points", "boxes"} & set(doc)) or "annotations" in doc:
        return None
    try:
        points = [(float(p[0]), float(p[1]), int(p[2]) if len(p) > 2 else 1) for p in doc.get("points", [])]
        boxes = [tuple(float(v) for v in b) for b in doc.get("boxes", [])]
    except (TypeError, ValueError, IndexError):
        raise InputError(f"{path}: points are [x, y] or [x, y, label], boxes [x0, y0, x1, y1]") from None
    if any(len(b) != 4 for b in boxes) or any(p[2] not in (0, 1) for p in points):
        raise InputError(f"{path}: points are [x, y] or [x, y, label] (label 1 or 0), boxes [x0, y0, x1, y1]")
    return points, boxes


def predict_sam(options: dict) -> None:
    """Run SAM over ``predict``'s inputs (its options, by parameter name): prompts → masks,
    or ``everything`` → all masks."""
    import sys

    from segtools.cli.common import info
    from segtools.cli.options import parameters_as_flags
    from segtools.errors import UsageError

    for name, flag in REFUSED.items():
        if options.get(name) not in (None, False):
            raise UsageError(f"{flag} is not for SAM models")
    o = options
    model, weights, arch, output, probs, device = o["model"], o["weights"], o["arch"], o["output"], o["probs"], o["device"]
    overwrite, point, box, prompts, multimask = o["overwrite"], o["point"], o["box"], o["prompts"], o["multimask"]
    everything, embeddings, clip, fmt = o["everything"], o["embeddings"], o["clip"], o.get("fmt")
    everything_options = {name: o[name] for name in EVERYTHING_OPTIONS}
    inputs = o["inputs"] or []
    fmt = fmt or "mask"
    if fmt not in ("mask", "coco"):
        raise UsageError(f"--format {fmt!r}: choose mask or coco")
    points = [parse_point(p) for p in point or []]
    boxes = [parse_box(b) for b in box or []]
    dataset_file = None
    if prompts:
        found = _prompt_json(prompts)
        if found is None:
            dataset_file = prompts
        else:
            points, boxes = points + found[0], boxes + found[1]
    given = [f for f, v in (("--point", points), ("--box", boxes)) if v]
    if everything and (given or prompts):
        raise UsageError("--everything prompts with a grid of points; give it without --point, --box or --prompts")
    if not everything:
        unused = [f"--{k.replace('_', '-')}" for k, v in everything_options.items() if v is not None]
        if unused:
            raise UsageError(f"{unused[0]} is an --everything option")
    if not (everything or given or dataset_file):
        raise UsageError("a SAM model needs prompts: --point X,Y, --box X0,Y0,X1,Y1, --prompts FILE, or --everything")
    if options.get("jobs", 1) != 1 and not dataset_file:
        raise UsageError("--jobs is for --prompts with box annotations (one worker process per share of the images)")
    if dataset_file and (given or probs):
        raise UsageError("--prompts with box annotations labels a dataset; give no --point/--box/--probs with it")
    if probs and (everything or fmt == "coco"):
        raise UsageError("--probs writes prompt mask probabilities; not with --everything or --format coco")
    specs = inputs or ["-"]
    from segtools.cli.video_opts import predict_options_request

    video = predict_options_request(options)  # the frames of a video, camera or stream (None: images)
    if video is not None:
        from segtools.cli import predict_cluster

        predict_cluster.refuse(options.get("dask"), "a video (it is read by one process)")
        if options.get("shard") is not None:
            raise UsageError("--shard: not for a video (it is read by one process)")
        from segtools.cli.video_predict import predict_sam_options_video

        with parameters_as_flags(FLAGS):
            predict_sam_options_video(video, options, points, boxes, dataset_file)
        return
    if specs == ["-"] and sys.stdin.isatty():
        raise UsageError("no input: give image files or a folder, or pipe an image into stdin")
    with parameters_as_flags(FLAGS):
        from segtools.cli import predict_sam_run as run

        if dataset_file:
            if options.get("shard") is not None:
                raise UsageError("--shard: not for --prompts with box annotations, which writes one resumable "
                                 "dataset (use --dask or --jobs to share its images)")
            return run.label_boxes(specs, dataset_file, model=model, weights=weights, arch=arch, output=output,
                                   device=device, overwrite=overwrite, embeddings=embeddings, clip=clip,
                                   multimask=multimask, fmt=fmt, jobs=options.get("jobs", 1),
                                   dask=options.get("dask"))
        count = run.predict_images(specs, model=model, weights=weights, arch=arch, output=output, fmt=fmt,
                                   probs=probs, device=device, overwrite=overwrite, points=points, boxes=boxes,
                                   multimask=multimask, everything=everything, everything_options=everything_options,
                                   embeddings=embeddings, clip=clip, dask=options.get("dask"),
                                   shard=options.get("shard"))
    if count > 1:
        info(f"predicted {count} images")
