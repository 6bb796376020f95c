"""One picture from files: read a mask (or score map), image and ground truth, draw, encode.

This is what ``segtools visualize`` runs per item, in a worker process for batches, so the
job description (:class:`DrawOptions`, :class:`DrawJob`) is plain picklable data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segtools.errors import UsageError
from segtools.io.meta import ClassMeta

MODES = ("mask", "errors", "panel")


@dataclass(frozen=True)
class DrawOptions:
    """How to draw (the options of ``segtools visualize``)."""

    mode: str = "mask"
    classes: ClassMeta | None = None
    colours: ClassMeta | None = None
    ignore_index: int | None = None
    ignore_given: bool = False
    alpha: float = 0.5
    contours: bool = False
    thickness: int | None = None
    legend: bool | None = None
    class_name: str | None = None
    instances: bool | None = None
    ids: bool = True
    transparent: bool = False
    colour_map: str = "viridis"
    text_size: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UsageError(f"unknown drawing mode {self.mode!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise UsageError(f"--alpha must be in [0, 1], not {self.alpha}")
        if self.thickness is not None and self.thickness < 1:
            raise UsageError(f"--thickness must be at least 1 px, not {self.thickness}")


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


@dataclass
class Inputs:
    """What was read for one item."""

    labels: np.ndarray | None
    scores: np.ndarray | None
    meta: ClassMeta
    image: np.ndarray | None
    gt: np.ndarray | None
    name: str
    instances: bool


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
    from segtools.viz import draw_modes

    if inputs.scores is not None and (options.class_name is not None or inputs.scores.ndim == 2):
        return draw_modes.draw_heatmap(inputs, options)
    if inputs.scores is not None:
        inputs.labels = argmax_labels(inputs.scores, inputs.meta)
    if options.mode == "errors":
        return draw_modes.draw_errors(inputs, options)
    if options.mode == "panel":
        return draw_modes.draw_panel(inputs, options)
    return draw_modes.draw_mask(inputs, options)


def argmax_labels(scores: np.ndarray, meta: ClassMeta) -> np.ndarray:
    """A C×H×W score map → H×W labels (the most probable class), uint8 when C ≤ 256."""
    labels = np.argmax(scores, axis=0)
    return labels.astype(np.uint8 if scores.shape[0] <= 256 else np.uint16)


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
