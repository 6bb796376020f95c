"""Cleanup of predicted instances: score threshold, per-instance minimum area, class-agnostic
NMS by mask IoU, and overlap resolution.

Two inputs, the two instance kinds of the pipe:

* **COCO results** (``predict --format coco``): a list of detections with RLE masks,
  overlaps kept. :func:`clean_results` filters per image, suppresses by mask IoU across
  classes (greedy, by decreasing score), and with ``resolve_overlaps`` gives every pixel to
  the best-scoring instance covering it (areas re-measured, then filtered again).
* **Instance-id masks** (``kind="instance"`` with ``instance_score``): instances never
  overlap there, so :func:`clean_id_mask` applies the score threshold and the minimum area
  and renumbers the kept ids 1…K in their order.

numpy only: no torch here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from segtools.errors import InputError, UsageError


@dataclass(frozen=True)
class InstanceCleanup:
    """What to do to instances (all off by default).

    Attributes
    ----------
    min_score : drop instances scoring below this (in [0, 1]).
    min_area : drop instances of fewer pixels.
    nms : class-agnostic NMS: drop an instance whose mask IoU with a better one is above this.
    resolve_overlaps : give each pixel to the best instance covering it (COCO results).
    """

    min_score: float | None = None
    min_area: int = 0
    nms: float | None = None
    resolve_overlaps: bool = False

    def validate(self) -> "InstanceCleanup":
        if self.min_score is not None and not 0.0 <= self.min_score <= 1.0:
            raise UsageError(f"min_score={self.min_score:g}: give a score in [0, 1]")
        if self.nms is not None and not 0.0 <= self.nms <= 1.0:
            raise UsageError(f"nms={self.nms:g}: give an IoU in [0, 1]")
        if self.min_area < 0:
            raise UsageError(f"min_area={self.min_area}: give a number of pixels ≥ 0")
        return self

    @property
    def active(self) -> bool:
        return self.min_score is not None or self.min_area > 0 or self.nms is not None or self.resolve_overlaps


def greedy_suppression(iou: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean keep-mask of greedy NMS over a K×K IoU matrix whose rows/columns run by
    decreasing score: a box is dropped when a kept better one overlaps it above
    ``threshold``. Resolved in rounds over all boxes at once (no loop over boxes)."""
    count = iou.shape[0]
    sources, targets = np.nonzero(np.triu(iou > threshold, k=1))
    state = np.zeros(count, np.int8)  # 0 undecided, 1 kept, 2 dropped
    while (state == 0).any():
        undecided = state == 0
        pending = undecided[targets]
        sources, targets = sources[pending], targets[pending]
        blocked = np.zeros(count, bool)
        blocked[targets[state[sources] != 2]] = True
        state[undecided & ~blocked] = 1
        killed = np.zeros(count, bool)
        killed[targets[state[sources] == 1]] = True
        state[(state == 0) & killed] = 2
    return state == 1


def _clean_image(detections: list[dict], options: InstanceCleanup) -> list[dict]:
    from segtools.formats import rle as rlelib

    order = sorted(range(len(detections)), key=lambda k: -float(detections[k]["score"]))  # stable on ties
    dets = [detections[k] for k in order]
    keep = np.ones(len(dets), bool)
    if options.min_score is not None:
        keep &= np.array([float(d["score"]) >= options.min_score for d in dets], bool)
    masks = [d.get("segmentation") for d in dets]
    has_masks = all(isinstance(m, dict) for m in masks)
    if options.min_area and has_masks:
        keep &= np.array([rlelib.area(m) >= options.min_area for m in masks], bool)
    elif options.min_area:
        keep &= np.array([float(d["bbox"][2]) * float(d["bbox"][3]) >= options.min_area for d in dets], bool)
    dets = [d for d, k in zip(dets, keep) if k]
    if options.nms is not None and dets:
        if not has_masks:
            raise InputError("nms: the detections have no masks (a box-only model); nothing to compare")
        rles = [d["segmentation"] for d in dets]
        dets = [d for d, k in zip(dets, greedy_suppression(rlelib.iou(rles, rles), options.nms)) if k]
    if options.resolve_overlaps and dets and has_masks:
        dets = _resolve(dets, options.min_area)
    return dets


def _resolve(dets: list[dict], min_area: int) -> list[dict]:
    """Every pixel to the best instance covering it; instances left empty (or under
    ``min_area``) dropped, masks, boxes and areas re-measured."""
    from segtools.formats import rle as rlelib

    height, width = dets[0]["segmentation"]["size"]
    stack = np.stack([rlelib.decode(d["segmentation"]).astype(bool) for d in dets])
    owner = np.where(stack.any(axis=0), np.argmax(stack, axis=0), -1)  # best first: the lowest index
    out = []
    for k, det in enumerate(dets):
        mine = owner == k
        area = int(mine.sum())
        if area == 0 or area < min_area:
            continue
        rle = rlelib.encode(mine)
        out.append({**det, "segmentation": rle, "bbox": [float(v) for v in rlelib.to_bbox(rle)], "area": area})
    return out


def clean_results(results: Sequence[dict], options: InstanceCleanup) -> list[dict]:
    """Cleaned COCO results, image by image in the order images first appear, each image's
    detections by decreasing score."""
    options.validate()
    grouped: dict[Any, list[dict]] = {}
    for k, det in enumerate(results):
        if not isinstance(det, dict) or "image_id" not in det or "score" not in det:
            raise InputError(f"detection [{k}]: a COCO result needs 'image_id' and 'score'")
        if not isinstance(det["score"], (int, float)) or isinstance(det["score"], bool):
            raise InputError(f"detection [{k}]: 'score' must be a number")
        grouped.setdefault(det["image_id"], []).append(det)
    out: list[dict] = []
    for dets in grouped.values():
        out.extend(_clean_image(dets, options))
    return out


def clean_id_mask(ids: np.ndarray, instance_class: Sequence[int], instance_score: Sequence[float] | None,
                  options: InstanceCleanup) -> tuple[np.ndarray, list[int], list[float] | None]:
    """Apply the score threshold and minimum area to an instance-id mask; kept ids renumbered
    1…K in their order. Returns ``(ids, instance_class, instance_score)``.

    >>> ids = np.array([[1, 1, 2], [0, 3, 3]], np.uint16)
    >>> out, cls, sc = clean_id_mask(ids, [-1, 4, 5, 6], [0, 0.9, 0.3, 0.8], InstanceCleanup(min_score=0.5))
    >>> out.tolist(), cls, sc
    ([[1, 1, 0], [0, 2, 2]], [-1, 4, 6], [0, 0.9, 0.8])
    """
    options.validate()
    if options.nms is not None:
        raise UsageError("nms: the instances of an id mask never overlap; give COCO results "
                         "(predict --format coco) for NMS")
    count = int(ids.max()) + 1 if ids.size else 1
    if len(instance_class) < count:
        raise InputError(f"instance id {count - 1} has no instance_class ({len(instance_class) - 1} classes)")
    keep = np.ones(count, bool)
    if options.min_score is not None:
        if instance_score is None or len(instance_score) < count:
            raise InputError("min_score: the mask has no instance_score for every id (one score per instance)")
        keep &= np.asarray(instance_score[:count], np.float64) >= options.min_score
    if options.min_area:
        keep &= np.bincount(ids.ravel(), minlength=count) >= options.min_area
    keep[0] = True
    new_ids = np.cumsum(keep) - 1  # id → its new number (0 stays 0)
    table = np.where(keep, new_ids, 0).astype(np.uint16)
    kept = np.nonzero(keep)[0]
    classes = [int(instance_class[i]) for i in kept]
    scores = [instance_score[i] for i in kept] if instance_score is not None else None
    return table[ids], classes, scores
