"""One picture from files: read a mask (or score map), image and ground truth, draw, encode.

This is what ``segtools visualize`` runs per item, in a worker process for batches, so the
job description (:class:`~segtools.viz.draw_options.DrawOptions`, :class:`DrawJob`) is plain
picklable data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from segtools.errors import InputError
from segtools.io.meta import ClassMeta
from segtools.labels import argmax_scores
from segtools.viz import draw_modes
from segtools.viz.draw_options import DrawOptions, Inputs


@dataclass(frozen=True)
class DrawJob:
    """One item of a batch: where to read from and where the picture goes (``-`` = stdout)."""

    mask: str
    image: str | None
    gt: str | None
    output: str | None
    options: DrawOptions
    fmt: str = "png"
    allow_overwrite: bool = False


def read_inputs(mask: str, image: str | None, gt: str | None, options: DrawOptions) -> Inputs:
    """Read one item's mask or score map, image and ground truth, and settle its class metadata."""
    from segtools.io.images import read_image
    from segtools.io.limits import label_table_size
    from segtools.io.masks import LabelMask, read_label_mask, read_mask_or_scores
    from segtools.viz.palette import resolve_meta

    read = read_mask_or_scores(mask, options.colours)
    gt_mask = read_label_mask(gt, options.colours) if gt is not None else None
    if gt_mask is not None:
        label_table_size(gt_mask.labels, gt_mask.name)
    picture = read_image(image) if image is not None else None
    own_meta = read.meta or (gt_mask.meta if gt_mask is not None else None)
    if isinstance(read, LabelMask):
        labels, scores = read.labels, None
        wide = label_table_size(labels, read.name) > 256 and not (own_meta or options.classes or ClassMeta()).names
        instances = options.instances if options.instances is not None else (
            (own_meta is not None and own_meta.kind == "instance") or wide)
    else:
        from segtools.morphology.scores import check_finite_scores

        check_finite_scores(read.scores, read.name)
        labels, scores, instances = None, read.scores, False
    meta = resolve_meta(own_meta, options.classes, options.ignore_index, options.ignore_given)
    if instances and own_meta is None and not options.ignore_given:
        meta = meta.with_(ignore_index=None, kind="instance")  # 255 is an id like any other
    return Inputs(labels, scores, meta, picture, gt_mask.labels if gt_mask is not None else None,
                  read.name or str(mask), instances)


def draw(inputs: Inputs, options: DrawOptions) -> np.ndarray:
    """The picture for one item (H×W×3, or ×4 for transparent ignore), as ``options`` say."""
    if options.mode == "heatmap" and inputs.scores is None:
        raise InputError(f"{inputs.name}: is a label mask; a heatmap draws a score map (.npz or float .npy)")
    if inputs.scores is not None and (options.class_name is not None or inputs.scores.ndim == 2
                                      or options.mode == "heatmap"):
        return draw_modes.draw_heatmap(inputs, options)
    if inputs.scores is not None:
        inputs.labels = argmax_scores(inputs.scores)
    if options.mode == "errors":
        return draw_modes.draw_errors(inputs, options)
    if options.mode == "panel":
        return draw_modes.draw_panel(inputs, options)
    return draw_modes.draw_mask(inputs, options)


def run_job(job: DrawJob) -> str | None:
    """Read, draw, encode and write one item (module level: runs in worker processes)."""
    from segtools.io.images import encode_image
    from segtools.io.streams import emit

    picture = draw(read_inputs(job.mask, job.image, job.gt, job.options), job.options)
    emit(encode_image(picture, job.fmt), job.output, f"a {job.fmt.upper()} image", job.allow_overwrite)
    return job.output


def format_for(output: str | None) -> str:
    """``jpg`` for a ``.jpg``/``.jpeg`` output, else ``png`` (also for stdout)."""
    if output and output != "-" and Path(output).suffix.lower() in (".jpg", ".jpeg"):
        return "jpg"
    return "png"


def pair_inputs(items: Sequence, over: str | None, gt: str | None,
                allow_missing: bool = False) -> tuple[list[tuple[object, str | None, str | None]], int]:
    """(mask item, image path or ``None``, ground-truth path or ``None``) for each mask item of
    :func:`segtools.io.batch.expand_inputs`, paired by file name with the images under
    ``over`` and the masks under ``gt``; and how many masks had no partner (skipped, with
    ``allow_missing``; otherwise an :class:`~segtools.errors.InputError`)."""
    from segtools.formats.cityscapes import semantic_frame_files
    from segtools.io.batch import expand_inputs, pair_items, without_labels, without_photos

    items = without_photos(items)  # a folder of photos and their x_mask.png: the masks
    partners = []
    for spec, what in ((over, "image"), (gt, "ground truth")):
        if spec is None:
            partners.append(None)
            continue
        found = expand_inputs([spec])
        # gtFine/: the labelTrainIds; photos beside their masks: the photos
        found = semantic_frame_files(found) if what == "ground truth" else without_labels(found)
        pairing = pair_items(items, found, allow_missing=allow_missing, names=("mask", what))
        partners.append({left.path: right.path for left, right in pairing.pairs})
    images, gts = partners
    triples = [(item, images[item.path] if images is not None else None, gts[item.path] if gts is not None else None)
               for item in items
               if (images is None or item.path in images) and (gts is None or item.path in gts)]
    return triples, len(items) - len(triples)


def draw_files(triples: Sequence[tuple[object, str | None, str | None]], outputs: Sequence[Optional[str]],
               options: DrawOptions, jobs: int = 1, allow_overwrite: bool = False,
               on_done: Optional[Callable[[int], None]] = None) -> int:
    """Draw each (mask item, image, gt) of :func:`pair_inputs` to ``outputs[i]`` (``None`` =
    stdout; JPEG for a ``.jpg`` name, else PNG), by up to ``jobs`` worker processes; returns
    the number of pictures written."""
    from segtools.io.parallel import pmap

    work = [DrawJob(item.path, image, gt, output, options, format_for(output), allow_overwrite)
            for (item, image, gt), output in zip(triples, outputs)]
    return sum(1 for _ in pmap(run_job, work, jobs, on_done=on_done))
