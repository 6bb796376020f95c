"""Measure (prediction, ground truth) file pairs: read, remap, count, sum.

:func:`measure_pairs` runs a dataset: one picklable :class:`PairJob` per pair through
``segtools.io.parallel.pmap`` (worker processes with ``jobs > 1``), each returning only
O(C²) numbers (:class:`~segtools.metrics.report.PairResult`), summed in input order into a
:class:`~segtools.metrics.report.MetricsRun`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from segtools.errors import InputError, SegtoolsError
from segtools.labels import remap_labels
from segtools.metrics.report import PairResult

if TYPE_CHECKING:
    from segtools.metrics.report import MetricsRun

LabelMap = tuple[tuple[int, ...], tuple[int, ...]]  # (from values, to values)


@dataclass(frozen=True)
class MeasureOptions:
    """What is measured for every pair.

    ``ignore_index`` holds the ground-truth values to skip; ``palette`` is the colour→class
    map for RGB masks; the label maps remap values first (see :func:`load_label_map`);
    ``boundary`` is ``(tolerance px, dilation ratio)`` for boundary F1 / IoU and
    ``distances`` is ``((row, col) spacing, NSD tolerance)`` for HD95 / ASSD / NSD, each
    ``None`` to skip them.
    """

    num_classes: int
    ignore_index: tuple[int, ...] = (255,)
    palette: str | None = None
    gt_label_map: LabelMap | None = None
    pred_label_map: LabelMap | None = None
    boundary: tuple[float, float] | None = None
    distances: tuple[tuple[float, float], float] | None = None


@dataclass(frozen=True)
class PairJob:
    """What a worker needs for one pair: its two paths and the options; cheap to pickle.
    ``pred_data``/``gt_data``: the files' bytes when they were fetched ahead (storage
    objects in a one-process run), else ``None`` (read from the path)."""

    pred_path: str
    gt_path: str
    options: MeasureOptions
    pred_data: bytes | None = None
    gt_data: bytes | None = None


def load_label_map(spec: str, name: str = "label map") -> LabelMap:
    """A value→value remapping from a preset, a file, or inline pairs.

    ``spec`` is ``cityscapes`` (labelIds → trainIds), ``ade20k`` or ``reduce-zero-label``
    (0 → 255, ``k`` → ``k − 1``: ADEChallengeData2016's 0 "other" and 1..150 as the 150
    classes of the ``ade20k`` preset, mmsegmentation's ``reduce_zero_label``), inline
    ``"7:0,8:1,0:255"``, a JSON file (``{"7": 0, ...}`` or ``[[7, 0], ...]``) or a text file
    with ``FROM TO`` per line.
    Values not in the map are kept unchanged. ``name`` starts the error messages (the
    CLI passes its option, ``--label-map``).

    >>> load_label_map("1:0,2:255")
    ((1, 2), (0, 255))
    >>> sources, targets = load_label_map("ade20k"); sources[:3], targets[:3], sources[-1], targets[-1]
    ((0, 1, 2), (255, 0, 1), 255, 254)
    """
    if spec.strip().lower() == "cityscapes":
        from segtools.io.presets import cityscapes_id_to_train_id

        pairs = sorted(cityscapes_id_to_train_id().items())
    elif spec.strip().lower() in ("ade20k", "reduce-zero-label"):
        pairs = [(0, 255)] + [(k, k - 1) for k in range(1, 256)]
    elif ":" in spec and not Path(spec).is_file():
        try:
            pairs = [tuple(int(v) for v in part.split(":")) for part in spec.split(",") if part.strip()]
        except ValueError:
            raise InputError(f"{name} {spec!r}: expected FROM:TO pairs like 7:0,8:1") from None
    else:
        path = Path(spec)
        if not path.is_file():
            raise InputError(f"{name} {spec!r}: neither 'cityscapes', FROM:TO pairs, nor a readable file")
        text = path.read_text(encoding="utf-8")
        try:
            if text.lstrip().startswith(("{", "[")):
                data = json.loads(text)
                items = data.items() if isinstance(data, dict) else data
                pairs = [(int(a), int(b)) for a, b in items]
            else:
                pairs = [tuple(int(v) for v in line.split()[:2]) for line in text.splitlines()
                         if line.strip() and not line.lstrip().startswith("#")]
        except (ValueError, TypeError, json.JSONDecodeError) as exc:
            raise InputError(f"{name} {spec}: expected FROM TO integer pairs ({exc})") from None
    if any(len(p) != 2 for p in pairs) or not pairs:
        raise InputError(f"{name} {spec!r}: expected FROM:TO integer pairs")
    sources = [a for a, _ in pairs]
    if len(set(sources)) != len(sources):
        raise InputError(f"{name} {spec!r}: a value is mapped twice")
    return tuple(a for a, _ in pairs), tuple(b for _, b in pairs)


def _read(path: str, data: bytes | None, palette: str | None, label_map: LabelMap | None) -> np.ndarray:
    from segtools.io.masks import read_label_mask

    labels = (read_label_mask(path, colours=palette) if data is None else
              read_label_mask(data, colours=palette, name=path)).labels
    return remap_labels(labels, *label_map) if label_map is not None else labels


def measure_pair(job: PairJob) -> PairResult:
    """Confusion, misses and (optionally) boundary and distance sums for one pair of files
    (module level: runs in worker processes)."""
    from segtools.metrics.confusion import confusion_and_missed

    options = job.options
    pred = _read(job.pred_path, job.pred_data, options.palette, options.pred_label_map)
    gt = _read(job.gt_path, job.gt_data, options.palette, options.gt_label_map)
    prefix = f"{job.pred_path} vs {job.gt_path}: " if pred.shape != gt.shape else ""
    try:
        confusion, missed = confusion_and_missed(pred, gt, options.num_classes, options.ignore_index, prefix)
    except InputError as exc:
        if prefix:
            raise
        text = str(exc)
        source = job.gt_path if text.startswith("ground truth") else job.pred_path
        raise InputError(f"{source}: {text}") from None
    boundary = distances = None
    if options.boundary is not None:
        from segtools.metrics.boundary import boundary_counts

        boundary = boundary_counts(pred, gt, options.num_classes, options.ignore_index, *options.boundary)
    if options.distances is not None:
        from segtools.metrics.distances import distance_sums

        spacing, tolerance = options.distances
        distances = distance_sums(pred, gt, options.num_classes, options.ignore_index, spacing, tolerance)
    return PairResult(confusion, missed, gt.shape, boundary, distances)


def worker_modules(path: str, options: MeasureOptions) -> tuple[str, ...]:
    """The modules :func:`measure_pair` imports for masks like ``path`` (the decoder its
    first bytes call for, the counting kernels), which a local pool's workers then
    inherit from this process instead of each importing them (``pmap``'s ``preload``).
    Only the head of ``path`` is read; nothing is decoded here."""
    from segtools.io.sniff import PNG_PALETTE, sniff
    from segtools.io.streams import read_head

    try:
        kind = sniff(read_head(path, 64))
    except (OSError, SegtoolsError):  # unreadable: the worker that meets it says so
        return ()
    decoder = {"png": ("PIL.PngImagePlugin",) if kind.colour_type == PNG_PALETTE else ("cv2",),
               "npy": ("segtools.io.npy",)}.get(kind.format, ())
    extra = (("segtools.metrics.boundary", "cv2") if options.boundary is not None else ()) + (
        ("segtools.metrics.distances", "scipy.ndimage") if options.distances is not None else ())
    return ("segtools.io.masks", "segtools.metrics.confusion", *decoder, *extra)


def _measure_ahead(work: Sequence[PairJob], on_done: Callable[[int], None] | None):
    """:func:`measure_pair` of each job in order, its files fetched ahead by
    :func:`segtools.io.remote.fetch_ahead` (a store's latency hidden behind the decoding)."""
    from dataclasses import replace

    from segtools.io.remote import fetch_ahead

    fetched = fetch_ahead([(job.pred_path, job.gt_path) for job in work])
    for index, (job, data) in enumerate(zip(work, fetched)):
        yield measure_pair(replace(job, pred_data=data.get(job.pred_path), gt_data=data.get(job.gt_path)))
        if on_done is not None:
            on_done(index)


def measure_pairs(pairs: Sequence[tuple[str, str]], class_names: Sequence[str], options: MeasureOptions,
                  jobs: int = 1, *, on_done: Callable[[int], None] | None = None,
                  on_image: Callable[[dict], None] | None = None) -> "MetricsRun":
    """Measure ``(prediction path, ground-truth path)`` pairs into one summed run.

    ``jobs`` workers (0 = all CPUs) measure pairs in parallel; results are added in input
    order, so the report does not depend on ``jobs``. ``on_done(i)`` is called as pair
    ``i`` finishes (progress); ``on_image(row)`` receives each pair's per-image row
    (:func:`~segtools.metrics.report.image_row`) in input order.
    """
    from segtools.io.parallel import pmap, small_batch_chunk
    from segtools.metrics.report import MetricsRun, image_row

    if len(class_names) != options.num_classes:
        raise ValueError(f"measure_pairs: {len(class_names)} class names for {options.num_classes} classes")
    boundary = distances = None
    if options.boundary is not None:
        boundary = {"tolerance_px": options.boundary[0], "dilation_ratio": options.boundary[1]}
    if options.distances is not None:
        distances = {"spacing": list(options.distances[0]), "nsd_tolerance": options.distances[1]}
    run = MetricsRun(list(class_names), options.ignore_index, boundary, distances)
    work = [PairJob(pred, gt, options) for pred, gt in pairs]
    preload = worker_modules(pairs[0][1], options) if work else ()
    from segtools.io.remote import fetches_ahead

    results = (_measure_ahead(work, on_done) if fetches_ahead((path for pair in pairs for path in pair), jobs) else
               pmap(measure_pair, work, jobs, on_done=on_done, preload=preload, chunk=small_batch_chunk(len(work), jobs)))
    for (pred, gt), result in zip(pairs, results):
        image_scores = run.add_image(result)
        if on_image is not None:
            on_image(image_row(pred, gt, image_scores, class_names))
    return run
