"""One item of ``segtools postprocess``: a label mask or a score map in, a clean label mask out.

:class:`PostprocessOptions` says what to do, with classes by name or index (names are
looked up in each mask's own metadata, or in ``classes``); :func:`postprocess` runs it on
what :func:`segtools.io.masks.read_mask_or_scores` read, and :func:`run_job` reads, runs
and writes one file (module level and picklable, for ``--jobs`` workers), and
:func:`postprocess_files` a batch of them.

Order: score decoding (thresholds, confidence) → the :mod:`~segtools.morphology.pipeline`
steps → instance labelling (``instances=True``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Sequence, Union

import numpy as np

from segtools.errors import UsageError
from segtools.io.meta import ClassMeta
from segtools.morphology.classes import ClassKey, background_label, class_index, class_indices, class_mapping
from segtools.morphology.pipeline import DEFAULT_ORDER, Cleanup, clean_labels, selected_classes

BELOW = ("ignore", "background")


@dataclass(frozen=True)
class PostprocessOptions:
    """What ``segtools postprocess`` does to one item; sizes in pixels, 0 switches a step off.

    Attributes
    ----------
    threshold : score maps: the foreground threshold of a one- or two-class map, or the
        score every class needs to win the argmax of a C×H×W map.
    threshold_per_class : ``{class: threshold}``, overriding ``threshold`` for those classes.
    min_confidence : score maps: pixels whose best score is lower get the ``below`` label.
    below : ``ignore`` (the ignore index) or ``background`` (the background label).
    relabel : ``{old class: new class}``, the ``map`` step.
    smooth, open, close, erode, dilate, kernel, min_area, fill_holes, keep_largest,
    connectivity, fill, order : as :class:`~segtools.morphology.pipeline.Cleanup`.
    min_area_per_class : ``{class: pixels}``, overriding ``min_area`` for those classes.
    only : the classes to operate on (default: all but ignore and background).
    background : a class, ``"auto"`` (0 for binary masks and when class 0 is named
        background) or ``None`` (no background).
    ignore_index : the void label, or ``None`` for none; ``"auto"``: the mask's own, else 255.
    instances : last, write the connected components as an instance-id mask.
    classes : class names and palette to use instead of the mask's own metadata.
    palette : colour→class map for RGB colour masks (a preset name, a file, or metadata).
    """

    threshold: Optional[float] = None
    threshold_per_class: Mapping[ClassKey, float] = field(default_factory=dict)
    min_confidence: Optional[float] = None
    below: str = "ignore"
    relabel: Mapping[ClassKey, ClassKey] = field(default_factory=dict)
    smooth: int = 0
    open: int = 0
    close: int = 0
    erode: int = 0
    dilate: int = 0
    kernel: str = "square"
    min_area: int = 0
    min_area_per_class: Mapping[ClassKey, int] = field(default_factory=dict)
    fill_holes: int = 0
    keep_largest: int = 0
    connectivity: int = 8
    only: Optional[tuple[ClassKey, ...]] = None
    fill: str = "nearest"
    background: Optional[ClassKey] = "auto"
    ignore_index: Union[int, str, None] = "auto"
    order: Optional[tuple[str, ...]] = None
    instances: bool = False
    classes: Optional[ClassMeta] = None
    palette: Union[ClassMeta, str, None] = None

    def validate(self) -> None:
        """Check every value that does not depend on a mask (before any file is read)."""
        if self.below not in BELOW:
            raise UsageError(f"below={self.below!r}: must be ignore or background")
        if self.min_confidence is not None and not 0.0 <= self.min_confidence <= 1.0:
            raise UsageError(f"min_confidence={self.min_confidence}: must be in [0, 1]")
        if self.threshold is not None and self.threshold < 0:
            raise UsageError(f"threshold={self.threshold}: must be 0 or more")
        if any(value < 0 for value in self.threshold_per_class.values()):
            raise UsageError("threshold_per_class: thresholds must be 0 or more")
        if isinstance(self.ignore_index, str) and self.ignore_index != "auto":
            raise UsageError(f"ignore_index={self.ignore_index!r}: give a label, None or 'auto'")
        for step in self.order or ():
            if step not in DEFAULT_ORDER:
                raise UsageError(f"order: unknown step {step!r}; steps are {','.join(DEFAULT_ORDER)}")
        self._cleanup({}, {}, None, 0, 255).validate()

    @property
    def thresholded(self) -> bool:
        """Whether any score-map option is given."""
        return self.threshold is not None or bool(self.threshold_per_class) or self.min_confidence is not None

    def cleanup_for(self, meta: ClassMeta | None, binary: bool, ignore_index: int | None) -> Cleanup:
        """The :class:`Cleanup` for one mask: class names resolved against ``meta``."""
        relabel = {old: class_index(new, meta, "relabel") for old, new in
                   class_mapping(self.relabel, meta, "relabel").items()}
        areas = class_mapping(self.min_area_per_class, meta, "min_area_per_class")
        cleanup = self._cleanup(relabel, areas, class_indices(self.only, meta, "only") if self.only is not None
                                else None, background_label(self.background, meta, binary), ignore_index)
        cleanup.validate()
        return cleanup

    def _cleanup(self, relabel, areas, only, background, ignore_index) -> Cleanup:
        return Cleanup(relabel=relabel, smooth=self.smooth, open=self.open, close=self.close, erode=self.erode,
                       dilate=self.dilate, kernel=self.kernel, min_area=self.min_area, min_area_per_class=areas,
                       fill_holes=self.fill_holes, keep_largest=self.keep_largest, connectivity=self.connectivity,
                       only=only, fill=self.fill, background=background, ignore_index=ignore_index,
                       order=self.order)

    def thresholds_for(self, num_classes: int, meta: ClassMeta | None) -> float | dict[int, float] | None:
        """``threshold`` and ``threshold_per_class`` for a score map of ``num_classes`` channels:
        one number, a ``{class: threshold}`` mapping (classes left out can always win), or ``None``."""
        per_class = class_mapping(self.threshold_per_class, meta, "threshold")
        if not per_class:
            return self.threshold
        if self.threshold is None:
            return dict(per_class)
        return {**{k: self.threshold for k in range(num_classes)}, **per_class}


def postprocess(data, options: PostprocessOptions) -> tuple[np.ndarray, ClassMeta | None]:
    """Decode (score maps), clean and optionally label instances of one item.

    Parameters
    ----------
    data : a :class:`~segtools.io.masks.LabelMask` or :class:`~segtools.io.masks.ScoreMap`.
    options : what to do.

    Returns
    -------
    The label mask (H×W uint8/uint16; instance ids with ``instances``) and its class
    metadata (the input's, with the ignore index used; binary names for a thresholded
    one-class map; instance metadata with ``instances``).

    Examples
    --------
    >>> from segtools.io.masks import LabelMask
    >>> lab = np.zeros((5, 5), np.uint8); lab[1:3, 1:3] = 1; lab[4, 4] = 1
    >>> out, meta = postprocess(LabelMask(lab, None, "m"), PostprocessOptions(min_area=2))
    >>> int(out[4, 4]), int(out[1, 1]), meta
    (0, 1, None)
    """
    from segtools.io.limits import label_table_size
    from segtools.io.masks import ScoreMap
    from segtools.morphology.refill import present_labels
    from segtools.morphology.scores import decode_scores, is_binary

    meta = options.classes or data.meta
    if options.ignore_index == "auto":
        ignore = meta.ignore_index if meta is not None else 255
    else:
        ignore = options.ignore_index
    if meta is not None:
        meta = meta.with_(ignore_index=ignore)
    if isinstance(data, ScoreMap):
        num_classes = 1 if data.scores.ndim == 2 else data.scores.shape[0]
        threshold = options.thresholds_for(num_classes, meta)
        binary = is_binary(num_classes, threshold)
        below = _below_label(options, meta, ignore, binary)
        labels, meta = decode_scores(data.scores, meta if meta is not None else ClassMeta(ignore_index=ignore),
                                     below, threshold, options.min_confidence, data.name)
    else:
        if options.thresholded:
            raise UsageError(f"{data.name}: is a label mask; threshold and min_confidence apply to score maps")
        labels = data.labels
        label_table_size(labels, data.name)
        values = set(present_labels(labels).tolist()) - {ignore}
        binary = (meta is None or not meta.names) and values <= {0, 1}
    cleanup = options.cleanup_for(meta, binary, ignore)
    labels = clean_labels(labels, cleanup)
    if options.instances:
        from segtools.formats.instances import instance_meta
        from segtools.morphology.components import label_instances

        labels, instance_class = label_instances(labels, selected_classes(labels, cleanup), cleanup.connectivity)
        meta = instance_meta(instance_class, meta.names if meta is not None and meta.names else ())
    return labels, meta


def _below_label(options: PostprocessOptions, meta: ClassMeta | None, ignore: int | None, binary: bool) -> int:
    if options.below == "ignore":
        if ignore is None:
            raise UsageError("below='ignore' needs an ignore label: give ignore_index=N or below=background")
        return ignore
    below = background_label(options.background, meta, binary)
    if below is None:
        raise UsageError("below='background' needs a background label: give background=CLASS")
    return below


@dataclass(frozen=True)
class PostprocessJob:
    """One item of a batch: where to read, where to write (``None`` = stdout), what to do."""

    source: str
    output: Optional[str]
    options: PostprocessOptions
    allow_overwrite: bool = False


def run_job(job: PostprocessJob) -> Optional[str]:
    """Read one mask or score map, post-process it and write the label mask (PNG, or ``.npy``
    by extension); module level, so ``--jobs`` can run it in worker processes."""
    from segtools.io.masks import read_mask_or_scores, write_label_mask

    labels, meta = postprocess(read_mask_or_scores(job.source, job.options.palette), job.options)
    write_label_mask(labels, job.output, meta, allow_overwrite=job.allow_overwrite)
    return job.output


def postprocess_files(sources: Sequence[str], outputs: Sequence[Optional[str]], options: PostprocessOptions,
                      jobs: int = 1, allow_overwrite: bool = False,
                      on_done: Optional[Callable[[int], None]] = None) -> int:
    """:func:`run_job` for each ``sources[i]`` → ``outputs[i]``, by up to ``jobs`` worker
    processes (:func:`segtools.io.parallel.pmap`); returns the number written."""
    from segtools.io.parallel import pmap

    work = [PostprocessJob(source, output, options, allow_overwrite) for source, output in zip(sources, outputs)]
    return sum(1 for _ in pmap(run_job, work, jobs, on_done=on_done))
