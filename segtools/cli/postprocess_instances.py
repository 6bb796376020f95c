"""``segtools postprocess`` on predicted instances: options and the run.

``postprocess`` hands over here when one of these options is given. Inputs: COCO results
(``predict --format coco``; one JSON, a file or stdin) → cleaned results JSON; or
instance-id masks (``kind=instance`` with ``instance_score``) → cleaned id masks.
"""

from __future__ import annotations

from typing import List, Optional

import typer
from typing_extensions import Annotated

MinScoreOpt = Annotated[Optional[float], typer.Option(
    "--min-score", metavar="SCORE", help="Instances: drop those scoring below SCORE, in [0, 1].")]
MinInstanceAreaOpt = Annotated[Optional[int], typer.Option(
    "--min-instance-area", metavar="N", min=1, help="Instances: drop those of fewer than N pixels.")]
NmsOpt = Annotated[Optional[float], typer.Option(
    "--nms", metavar="IOU", help="Instances (COCO results): class-agnostic NMS, drop an instance whose mask "
                                 "IoU with a better-scoring one is above IOU.")]
ResolveOverlapsOpt = Annotated[bool, typer.Option(
    "--resolve-overlaps", help="Instances (COCO results): each pixel to the best-scoring instance covering it.")]

FLAGS = {"min_score": "--min-score", "min_area": "--min-instance-area", "nms": "--nms"}


def requested(min_score: Optional[float], min_instance_area: Optional[int], nms: Optional[float],
              resolve_overlaps: bool) -> bool:
    return min_score is not None or min_instance_area is not None or nms is not None or resolve_overlaps


def postprocess_instances(inputs: Optional[List[str]], output: Optional[str], *, min_score: Optional[float],
                          min_instance_area: Optional[int], nms: Optional[float], resolve_overlaps: bool,
                          overwrite: bool) -> None:
    """Clean COCO results or instance-id masks (see the module docstring)."""
    import json

    from segtools.cli.options import output_targets, parameters_as_flags
    from segtools.errors import UsageError
    from segtools.io.batch import expand_inputs
    from segtools.io.jsondata import parse_json
    from segtools.io.streams import check_output_path, emit, read_bytes
    from segtools.morphology.instances import InstanceCleanup, clean_results

    options = InstanceCleanup(min_score=min_score, min_area=int(min_instance_area or 0), nms=nms,
                              resolve_overlaps=resolve_overlaps)
    specs = inputs or ["-"]
    with parameters_as_flags(FLAGS):
        options.validate()
        if len(specs) == 1 and not _is_folder_or_pattern(specs[0]):
            data = read_bytes(specs[0])
            if data.lstrip()[:1] == b"[":
                name = "<stdin>" if specs[0] == "-" else specs[0]
                results = parse_json(data, name)
                if not isinstance(results, list):
                    raise UsageError(f"{name}: expected a COCO results list")
                target = None if output in (None, "-") else str(check_output_path(output, overwrite))
                cleaned = clean_results(results, options)
                emit((json.dumps(cleaned, separators=(",", ":")) + "\n").encode(), target, "COCO results", overwrite)
                return
            targets = output_targets([None], specs, output, ".png", overwrite)
            _clean_mask(data, specs[0], targets[0], options, overwrite)
            return
        items = expand_inputs(specs)
        targets = output_targets(items, specs, output, ".png", overwrite)
        for item, target in zip(items, targets):
            _clean_mask(read_bytes(item.path), str(item.path), target, options, overwrite)


def _is_folder_or_pattern(spec: str) -> bool:
    import os

    from segtools.io.batch import is_pattern

    return os.path.isdir(spec) or spec.startswith("@") or is_pattern(spec) and not os.path.exists(spec)


def _clean_mask(data: bytes, name: str, target: Optional[str], options, overwrite: bool) -> None:
    from segtools.errors import InputError
    from segtools.formats.instances import encode_instance_png, instance_meta
    from segtools.io.masks import read_label_mask
    from segtools.io.streams import emit
    from segtools.morphology.instances import clean_id_mask

    mask = read_label_mask(data, name=name)
    meta = mask.meta
    extra = meta.extra if meta is not None else {}
    if meta is None or meta.kind != "instance" or "instance_class" not in extra:
        raise InputError(f"{name}: not an instance mask (kind=instance with instance_class); the instance "
                         "options clean predicted instances (predict with an instance model)")
    # --resolve-overlaps has nothing to do on an id mask: its instances never overlap
    ids, classes, scores = clean_id_mask(mask.labels, extra["instance_class"], extra.get("instance_score"), options)
    out_meta = instance_meta(classes, extra.get("class_names") or [], extra.get("instance_crowd") or [])
    if scores is not None:
        out_meta.extra["instance_score"] = scores
    emit(encode_instance_png(ids, out_meta), target, "a PNG mask", overwrite)
