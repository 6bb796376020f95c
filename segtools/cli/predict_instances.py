"""``segtools predict`` with an instance model (Mask / Faster R-CNN): options and the run.

``predict`` hands over here when its model is an instance architecture (``--arch
maskrcnn-resnet50-fpn`` …, or a registry entry of one). Output: an instance-id mask per
image (16-bit PNG, ``kind=instance`` with ``instance_class`` and ``instance_score``), or
with ``--format coco`` one COCO results JSON for all inputs (RLE masks).
"""

from __future__ import annotations

from typing import List, Optional

import typer
from typing_extensions import Annotated

InstanceFormatOpt = Annotated[Optional[str], typer.Option(
    "--format", metavar="mask|coco", help="Instance models: mask (an instance-id PNG per image, the default) or coco "
                     "(one COCO results JSON with RLE masks for all inputs).")]
MinScoreOpt = Annotated[Optional[float], typer.Option(
    "--min-score", metavar="SCORE", help="Instance models: keep detections scoring above this, in [0, 1] (default 0.5; "
                        "use 0.05 for COCO evaluation, as published AP is measured).")]
MaxDetsOpt = Annotated[Optional[int], typer.Option(
    "--max-dets", metavar="N", min=1, help="Instance models: at most this many detections per image (default 100).")]
MaskThresholdOpt = Annotated[Optional[float], typer.Option(
    "--mask-threshold", metavar="P", help="Instance models: mask probability above which a pixel is the instance's (default 0.5).")]

FLAGS = {"min_score": "--min-score", "max_dets": "--max-dets", "mask_threshold": "--mask-threshold",
         "box_score_thresh": "--min-score", "box_detections_per_img": "--max-dets", "batch": "--batch",
         "model": "--model", "weights": "--weights", "arch": "--arch", "amp": "--amp"}
_INSTANCE_ONLY = ("--format", "--min-score", "--max-dets", "--mask-threshold")


def wants_instances(model: Optional[str], weights: Optional[str], arch: Optional[str]) -> bool:
    """Whether ``predict``'s model options name an instance model."""
    from segtools.inference.instances import wants_instances as library_check

    return library_check(model, weights, arch)


def refuse_instance_options(fmt: Optional[str], min_score: Optional[float], max_dets: Optional[int],
                            mask_threshold: Optional[float]) -> None:
    """A semantic model given an instance-only option: a usage error naming it."""
    from segtools.errors import UsageError

    for flag, value in zip(_INSTANCE_ONLY, (fmt, min_score, max_dets, mask_threshold)):
        if value is not None:
            raise UsageError(f"{flag} is for instance models (Mask / Faster R-CNN: --arch maskrcnn-resnet50-fpn, "
                             "--model maskrcnn-resnet50-fpn-v2-coco, …); this model is semantic")


def predict_instances(inputs: List[str], *, model: Optional[str], weights: Optional[str], arch: Optional[str],
                      output: Optional[str], fmt: Optional[str], min_score: Optional[float],
                      max_dets: Optional[int], mask_threshold: Optional[float], device: str, batch: int,
                      amp: bool, amp_dtype: Optional[str], overwrite: bool, refused: dict,
                      dask: Optional[str] = None, shard: Optional[str] = None, video=None) -> None:
    """Run an instance model over ``inputs`` and write masks or COCO results.

    ``refused`` maps semantic-only flags to their values; any that is set is a usage error.
    ``video`` (a :class:`segtools.cli.video_opts.VideoRequest`): the frames of a video instead.
    """
    import json
    import sys

    from segtools.cli.common import info, progress
    from segtools.cli.options import output_targets, parameters_as_flags
    from segtools.errors import UsageError
    from segtools.io.batch import photo_inputs
    from segtools.io.images import read_image
    from segtools.io.streams import check_output_path, emit

    for flag, value in refused.items():
        if value:
            raise UsageError(f"{flag} is for semantic models; an instance model predicts whole images")
    fmt = fmt or "mask"
    if fmt not in ("mask", "coco"):
        raise UsageError(f"--format {fmt!r}: choose mask or coco")
    min_score = 0.5 if min_score is None else float(min_score)
    if not 0.0 <= min_score <= 1.0:
        raise UsageError(f"--min-score {min_score:g}: give a score in [0, 1]")
    threshold = 0.5 if mask_threshold is None else float(mask_threshold)
    if not 0.0 <= threshold <= 1.0:
        raise UsageError(f"--mask-threshold {threshold:g}: give a probability in [0, 1]")
    if video is not None:  # the frames of a video, camera or stream
        from segtools.cli import predict_cluster
        from segtools.cli.video_predict import predict_detector_video

        predict_cluster.refuse(dask, "a video")
        predict_detector_video(video, fmt, model=model, weights=weights, arch=arch, min_score=min_score,
                               max_dets=int(max_dets or 100), mask_threshold=threshold, device=device,
                               amp=(amp_dtype or True) if amp else False, batch=batch)
        return
    specs = inputs or ["-"]
    if specs == ["-"] and sys.stdin.isatty():
        raise UsageError("no input: give image files or a folder, or pipe an image into stdin")
    from segtools.cli import predict_cluster

    items, ids = predict_cluster.shard_ids(photo_inputs(specs), shard)
    if fmt == "coco":
        target = None if output in (None, "-") else str(check_output_path(output, overwrite))
        targets = [None] * len(items)
    else:
        targets = output_targets(items, specs, output, ".png", overwrite)
    with parameters_as_flags(FLAGS):
        from segtools.inference.instances import InstanceRunner, coco_results, load_detector

        if predict_cluster.wanted(dask):  # each worker loads the model once and writes its items
            return predict_cluster.instances_on_cluster(
                dask, items, targets, fmt, target if fmt == "coco" else None, ids, model=model, weights=weights, arch=arch,
                min_score=min_score, max_dets=int(max_dets or 100), mask_threshold=threshold, device=device,
                amp=(amp_dtype or True) if amp else False, batch=batch, overwrite=overwrite)
        options = {"box_score_thresh": min_score, "box_detections_per_img": int(max_dets or 100)}
        loaded = load_detector(model=model, weights=weights, arch=arch, **options)
        runner = InstanceRunner(loaded.model, device=device, amp=(amp_dtype or True) if amp else False,
                                batch=batch, mask_threshold=threshold)
        from segtools.io.remote import read_ahead

        images = (read_image(source, name=None if source is path else str(path))  # storage objects: fetched ahead
                  for path, source in read_ahead([item.path for item in items]))
        results: list = []
        with progress(len(items), "predict") as advance:
            for index, found in enumerate(runner.predict_many(images)):
                if fmt == "coco":
                    results.extend(coco_results(found, ids[index]))
                else:
                    _write_mask(found, targets[index], loaded.label_names, overwrite)
                advance(index)
    if fmt == "coco":
        emit((json.dumps(results, separators=(",", ":")) + "\n").encode(), target, "COCO results", overwrite)
    if len(items) > 1:
        info(f"predicted {len(items)} images")


def _write_mask(found, target: Optional[str], label_names: list[str], overwrite: bool) -> None:
    from segtools.formats.instances import encode_instance_png, instance_meta
    from segtools.inference.instances import instance_id_mask
    from segtools.io.streams import emit

    ids, instance_class, instance_score = instance_id_mask(found)
    meta = instance_meta(instance_class, label_names[1:])
    meta.extra["instance_score"] = instance_score
    if target is not None and str(target).lower().endswith(".npy"):
        from segtools.io.masks import write_label_mask

        write_label_mask(ids, target, meta, overwrite)
        return
    emit(encode_instance_png(ids, meta), target, "a PNG mask", overwrite)
