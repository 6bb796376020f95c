"""Measure one (prediction, ground truth) file pair: read, remap, count. Runs in workers.

:func:`measure_pair` is module-level and takes one picklable :class:`PairJob`, so
``segtools.io.parallel.pmap`` can run it in processes; it returns only O(C²) numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segtools.errors import InputError
from segtools.labels import remap_labels

LabelMap = tuple[tuple[int, ...], tuple[int, ...]]  # (from values, to values)


@dataclass(frozen=True)
class PairJob:
    """What a worker needs for one pair (paths, classes, options); cheap to pickle."""

    pred_path: str
    gt_path: str
    num_classes: int
    ignore_index: tuple[int, ...]
    palette: str | None = None
    gt_label_map: LabelMap | None = None
    pred_label_map: LabelMap | None = None
    boundary: tuple[float, float] | None = None  # (tolerance px, dilation ratio)
    distances: tuple[tuple[float, float], float] | None = None  # (spacing, tolerance)


def load_label_map(spec: str) -> LabelMap:
    """A value→value remapping from a preset, a file, or inline pairs.

    ``spec`` is ``cityscapes`` (labelIds → trainIds), inline ``"7:0,8:1,0:255"``, a JSON
    file (``{"7": 0, ...}`` or ``[[7, 0], ...]``) or a text file with ``FROM TO`` per line.
    Values not in the map are kept unchanged.

    >>> load_label_map("1:0,2:255")
    ((1, 2), (0, 255))
    """
    if spec.strip().lower() == "cityscapes":
        from segtools.io.presets import cityscapes_id_to_train_id

        pairs = sorted(cityscapes_id_to_train_id().items())
    elif ":" in spec and not Path(spec).is_file():
        try:
            pairs = [tuple(int(v) for v in part.split(":")) for part in spec.split(",") if part.strip()]
        except ValueError:
            raise InputError(f"--label-map {spec!r}: expected FROM:TO pairs like 7:0,8:1") from None
    else:
        path = Path(spec)
        if not path.is_file():
            raise InputError(f"--label-map {spec!r}: neither 'cityscapes', FROM:TO pairs, nor a readable file")
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
            raise InputError(f"--label-map {spec}: expected FROM TO integer pairs ({exc})") from None
    if any(len(p) != 2 for p in pairs) or not pairs:
        raise InputError(f"--label-map {spec!r}: expected FROM:TO integer pairs")
    sources = [a for a, _ in pairs]
    if len(set(sources)) != len(sources):
        raise InputError(f"--label-map {spec!r}: a value is mapped twice")
    return tuple(a for a, _ in pairs), tuple(b for _, b in pairs)


def _read(path: str, palette: str | None, label_map: LabelMap | None) -> np.ndarray:
    from segtools.io.masks import read_label_mask

    labels = read_label_mask(path, colours=palette).labels
    return remap_labels(labels, *label_map) if label_map is not None else labels


def measure_pair(job: PairJob) -> dict:
    """Confusion, misses and (optionally) boundary and distance sums for one pair of files."""
    from segtools.metrics.confusion import confusion_and_missed

    pred = _read(job.pred_path, job.palette, job.pred_label_map)
    gt = _read(job.gt_path, job.palette, job.gt_label_map)
    prefix = f"{job.pred_path} vs {job.gt_path}: " if pred.shape != gt.shape else ""
    try:
        confusion, missed = confusion_and_missed(pred, gt, job.num_classes, job.ignore_index, prefix)
    except InputError as exc:
        if prefix:
            raise
        text = str(exc)
        source = job.gt_path if text.startswith("ground truth") else job.pred_path
        raise InputError(f"{source}: {text}") from None
    result = {"confusion": confusion, "missed": missed, "shape": gt.shape}
    if job.boundary is not None:
        from segtools.metrics.boundary import boundary_counts

        result["boundary"] = boundary_counts(pred, gt, job.num_classes, job.ignore_index, *job.boundary)
    if job.distances is not None:
        from segtools.metrics.distances import distance_sums

        spacing, tolerance = job.distances
        result["distances"] = distance_sums(pred, gt, job.num_classes, job.ignore_index, spacing, tolerance)
    return result
