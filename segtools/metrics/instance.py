"""Instance evaluation (COCO AP/AR), equal to pycocotools' COCOeval, streamed and mergeable.

:class:`InstanceEvaluation` takes one image at a time (its ground truth and detections as
COCO annotation dicts), buffers a few dozen images and evaluates them together: the IoUs of
every same-category pair from the RLE runs (:mod:`~segtools.metrics.instance_match`), the
greedy matching of all (image, category) groups at once, and keeps only the match records
(per detection: category, score, image, rank, matched/ignored per area range and IoU
threshold) and the ground-truth counts. :meth:`~InstanceEvaluation.summary` accumulates
them as COCOeval does (:mod:`~segtools.metrics.instance_accumulate`);
:meth:`~InstanceEvaluation.state` / :meth:`~InstanceEvaluation.from_state` /
:meth:`~InstanceEvaluation.merge` carry them between shards exactly.

COCOeval's conventions kept: crowd ground truths are ignored and may match any number of
detections, with IoU = intersection / detection area; area ranges use the ground truth's
``area`` field and the detection's ``area`` (both inclusive); detections are ranked by
score with a stable sort (file order on ties, then sorted image ids across images); a
category without ground truth is -1 and left out of the means; a match to a ground truth
whose ``id`` is 0 counts as no match (COCOeval stores matches by id, 0 meaning none).
"""

from __future__ import annotations

import base64
from typing import Any, Sequence

import numpy as np

from segtools.errors import InputError
from segtools.metrics import instance_accumulate as accumulate
from segtools.metrics.instance_match import decode_runs, greedy_match, pair_box_iou, pair_mask_iou
from segtools.metrics.instance_protocol import Protocol

__all__ = ["InstanceEvaluation", "Protocol"]

_FIELDS = ("category", "score", "image", "rank", "matched", "ignored")


def _image_sort_key(key: Any) -> tuple:
    return (1, key, 0) if isinstance(key, str) else (0, "", key)


class InstanceEvaluation:
    """COCO-style AP/AR accumulated image by image.

    Parameters
    ----------
    protocol : IoU type and thresholds, max detections, area ranges (default COCO's).
    categories : category id → name; the categories evaluated (COCOeval: the GT file's).

    >>> box = {"size": [4, 4], "counts": "52203"}  # a 2×2 square
    >>> ev = InstanceEvaluation(Protocol(), {1: "cell"})
    >>> ev.add_image([{"category_id": 1, "segmentation": box, "area": 4, "iscrowd": 0, "id": 1}],
    ...              [{"category_id": 1, "segmentation": box, "score": 0.9}])
    >>> round(ev.summary()["ap"], 9), ev.summary()["per_class"]["cell"]["ar100"]
    (1.0, 1.0)
    """

    batch_images = 64

    def __init__(self, protocol: Protocol | None = None, categories: dict[int, str] | None = None) -> None:
        self.protocol = protocol or Protocol()
        if not categories:
            raise InputError("categories: give at least one category id → name")
        self.categories = {int(k): str(v) for k, v in sorted(categories.items())}
        self._ids = np.array(list(self.categories), np.int64)
        self._labels = list(self.protocol.area_ranges)
        self._bounds = np.array(list(self.protocol.area_ranges.values()), np.float64)  # A×2
        self._thresholds = np.array(self.protocol.iou_thresholds)
        self.images: list = []
        self._pending: list[tuple[int, list, list, str]] = []
        self._chunks: list[dict] = []
        self._n_gt = np.zeros((self._ids.size, len(self._labels)), np.int64)

    # ------------------------------------------------------------------ input

    def add_image(self, gt: Sequence[dict], dt: Sequence[dict], image_id: Any = None, where: str | None = None) -> None:
        """Add one image: its ground-truth and detection annotation dicts.

        ``gt``: ``category_id``, ``segmentation`` (RLE dict; segm) or ``bbox`` (bbox),
        ``area`` (default: the mask's or box's), ``iscrowd``, optional ``id``. ``dt``:
        ``category_id``, ``segmentation``/``bbox``, ``score``, optional ``area``.
        ``image_id`` orders images on score ties as COCOeval's sorted image ids do
        (default: the order added); ``where`` names the image in messages.
        """
        index = len(self.images)
        self.images.append(index if image_id is None else image_id)
        self._pending.append((index, list(gt), list(dt), where or f"image {self.images[-1]!r}"))
        if len(self._pending) >= self.batch_images:
            self._flush()

    def _fields(self, anns: list, where: list[str], is_dt: bool) -> dict:
        """Arrays of one kind of annotation of the pending images (checked)."""
        iou_type = self.protocol.iou_type
        try:
            category = np.array([a["category_id"] for a in anns], np.int64)
            score = np.array([a["score"] for a in anns] if is_dt else np.zeros(len(anns)), np.float64)
            crowd = np.array([bool(a.get("iscrowd", 0)) for a in anns] if not is_dt else np.zeros(len(anns)), bool)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            bad = next((i for i, a in enumerate(anns) if not _valid(a, is_dt)), 0)
            raise InputError(f"{where[bad]}: needs an integer category_id" + (" and a numeric score" if is_dt else "")
                             + f" ({type(exc).__name__})") from None
        position = np.searchsorted(self._ids, category)
        unknown = (position >= self._ids.size) | (self._ids[np.minimum(position, self._ids.size - 1)] != category)
        if unknown.any():
            i = int(np.flatnonzero(unknown)[0])
            raise InputError(f"{where[i]}: category_id {int(category[i])} is not one of the categories "
                             f"({', '.join(map(str, self._ids[:8]))}{', ...' if self._ids.size > 8 else ''})")
        if not np.isfinite(score).all():
            raise InputError(f"{where[int(np.flatnonzero(~np.isfinite(score))[0])]}: score must be a finite number")
        out = {"category": position, "score": score, "crowd": crowd}
        if iou_type == "segm":
            segms = [a.get("segmentation") for a in anns]
            bad = next((i for i, s in enumerate(segms) if not isinstance(s, dict)), None)
            if bad is not None:
                raise InputError(f"{where[bad]}: segmentation must be an RLE dict for iou_type='segm' "
                                 f"(got {type(segms[bad]).__name__})")
            start, end, bounds, sizes = decode_runs(segms, where)
            out["runs"], out["sizes"] = (start, end, bounds), sizes
            own = np.add.reduceat(np.append(end - start, 0), bounds[:-1]) * (np.diff(bounds) > 0)
        else:
            try:
                boxes = np.array([a["bbox"] for a in anns], np.float64).reshape(len(anns), 4)
            except (KeyError, TypeError, ValueError):
                bad = next((i for i, a in enumerate(anns) if not _box(a.get("bbox"))), 0)
                raise InputError(f"{where[bad]}: bbox must be [x, y, width, height] for iou_type='bbox'") from None
            if not np.isfinite(boxes).all():
                raise InputError(f"{where[int(np.flatnonzero(~np.isfinite(boxes).all(1))[0])]}: bbox must be finite")
            out["boxes"] = boxes
            own = boxes[:, 2] * boxes[:, 3]
        try:
            given = [a.get("area") for a in anns]
            out["area"] = np.array([own[i] if v is None else float(v) for i, v in enumerate(given)], np.float64)
        except (TypeError, ValueError):
            bad = next(i for i, v in enumerate(given) if not isinstance(v, (int, float)))
            raise InputError(f"{where[bad]}: area must be a number") from None
        if is_dt is False:
            out["nonzero_id"] = np.array([a.get("id", 1) != 0 for a in anns], bool)
        return out

    def _flush(self) -> None:
        """Evaluate the buffered images together and keep their match records."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        images = np.array([p[0] for p in pending], np.int64)
        gts = [a for p in pending for a in p[1]]
        dts = [a for p in pending for a in p[2]]
        gt_image = np.repeat(np.arange(len(pending)), [len(p[1]) for p in pending])
        dt_image = np.repeat(np.arange(len(pending)), [len(p[2]) for p in pending])
        gt = self._fields(gts, [f"{p[3]}: ground truth {k}" for p in pending for k in range(len(p[1]))], False)
        dt = self._fields(dts, [f"{p[3]}: detection {k}" for p in pending for k in range(len(p[2]))], True)
        if self.protocol.iou_type == "segm":
            _check_sizes(gt["sizes"], gt_image, dt["sizes"], dt_image, [p[3] for p in pending])
        # detections: by image, category, score (stable: file order on ties); keep maxDets
        n_cat = self._ids.size
        order = np.lexsort((np.arange(len(dts)), -dt["score"], dt["category"], dt_image))
        dt_group = (dt_image * n_cat + dt["category"])[order]
        first = np.concatenate(([True], dt_group[1:] != dt_group[:-1])) if order.size else np.zeros(0, bool)
        rank = np.arange(order.size) - np.maximum.accumulate(np.where(first, np.arange(order.size), 0))
        keep = rank < self.protocol.max_dets[-1]
        order, dt_group, rank = order[keep], dt_group[keep], rank[keep]
        gt_order = np.lexsort((np.arange(len(gts)), gt["category"], gt_image))
        gt_group = (gt_image * n_cat + gt["category"])[gt_order]
        groups, where_group = np.unique(np.concatenate((dt_group, gt_group)), return_inverse=True)
        dt_slot_g, gt_slot_g = where_group[: dt_group.size], where_group[dt_group.size:]
        n_dt = np.bincount(dt_slot_g, minlength=groups.size)
        n_gt = np.bincount(gt_slot_g, minlength=groups.size)
        slot_of = np.empty(groups.size, np.int64)
        slot_of[np.argsort(-n_dt, kind="stable")] = np.arange(groups.size)  # most detections first
        dt_slot, gt_slot = slot_of[dt_slot_g], slot_of[gt_slot_g]
        n_dt_s, n_gt_s = np.zeros(groups.size, np.int64), np.zeros(groups.size, np.int64)
        n_dt_s[slot_of], n_gt_s[slot_of] = n_dt, n_gt
        gt_first = np.concatenate(([0], np.cumsum(n_gt_s)))[:-1]
        gt_by_slot = np.lexsort((np.arange(gt_order.size), gt_slot))
        gt_local = np.empty(gt_order.size, np.int64)
        gt_local[gt_by_slot] = np.arange(gt_order.size) - gt_first[gt_slot[gt_by_slot]]
        gt_index = gt_order[gt_by_slot]                  # annotation index at each slot-ordered place
        depth, width = int(n_dt_s.max(initial=0)), int(n_gt_s.max(initial=0))
        # every same-group (detection, ground truth) pair
        pairs_per = n_gt_s[dt_slot]
        pair_dt_pos = np.repeat(np.arange(order.size), pairs_per)
        pair_local = np.arange(int(pairs_per.sum())) - np.repeat(np.cumsum(pairs_per) - pairs_per, pairs_per)
        pair_gt_place = gt_first[dt_slot[pair_dt_pos]] + pair_local
        pair_dt, pair_gt = order[pair_dt_pos], gt_index[pair_gt_place]
        if self.protocol.iou_type == "segm":
            values = pair_mask_iou(dt["runs"], gt["runs"], pair_dt, pair_gt, gt["crowd"])
        else:
            values = pair_box_iou(dt["boxes"], gt["boxes"], pair_dt, pair_gt, gt["crowd"])
        iou = np.full((groups.size, depth, width), -1.0)
        iou[dt_slot[pair_dt_pos], rank[pair_dt_pos], pair_local] = values
        low, high = self._bounds[:, 0], self._bounds[:, 1]
        gt_area, gt_crowd = gt["area"][gt_index], gt["crowd"][gt_index]
        outside = (gt_area[None, :] < low[:, None]) | (gt_area[None, :] > high[:, None])  # A×G
        ignore = np.ones((low.size, groups.size, width), bool)
        place_slot = gt_slot[gt_by_slot]
        ignore[:, place_slot, gt_local[gt_by_slot]] = outside | gt_crowd[None, :]
        crowd = np.zeros((groups.size, width), bool)
        crowd[place_slot, gt_local[gt_by_slot]] = gt_crowd
        match = greedy_match(iou, n_dt_s, ignore, crowd, self._thresholds)     # A×T×N×D
        picked = match[:, :, dt_slot, rank].transpose(2, 0, 1)                  # D×A×T
        found = picked >= 0
        place = gt_first[dt_slot][:, None, None] + np.maximum(picked, 0)
        place = np.minimum(place, max(gt_index.size - 1, 0))
        if gt_index.size:
            matched = found & gt["nonzero_id"][gt_index][place]
            area_index = np.arange(low.size)[None, :, None]
            gt_ignored = ignore[area_index, dt_slot[:, None, None], np.maximum(picked, 0)]
        else:
            matched = gt_ignored = np.zeros_like(found)
        dt_area = dt["area"][order]
        dt_outside = (dt_area[:, None] < low[None, :]) | (dt_area[:, None] > high[None, :])   # D×A
        ignored = (found & gt_ignored) | (~matched & dt_outside[:, :, None])
        np.add.at(self._n_gt, gt["category"][gt_index], (~(outside | gt_crowd[None, :])).T.astype(np.int64))
        self._chunks.append({"category": dt["category"][order], "score": dt["score"][order],
                             "image": images[dt_image[order]], "rank": rank.astype(np.int64),
                             "matched": matched, "ignored": ignored})

    # ------------------------------------------------------------------ records

    def _records(self) -> dict:
        self._flush()
        if len(self._chunks) != 1:
            steps = (len(self._labels), self._thresholds.size)
            empty = {"category": np.zeros(0, np.int64), "score": np.zeros(0), "image": np.zeros(0, np.int64),
                     "rank": np.zeros(0, np.int64), "matched": np.zeros((0, *steps), bool),
                     "ignored": np.zeros((0, *steps), bool)}
            self._chunks = [{k: np.concatenate([c[k] for c in self._chunks] + [empty[k]]) for k in _FIELDS}]
        return self._chunks[0]

    def merge(self, other: "InstanceEvaluation") -> "InstanceEvaluation":
        """Add another evaluation's images (same protocol and categories); returns self."""
        if other.protocol != self.protocol:
            raise InputError("merge: the evaluations use different protocols (IoU type, thresholds, "
                             "max detections or area ranges)")
        if other.categories != self.categories:
            raise InputError("merge: the evaluations have different categories")
        theirs = dict(other._records())
        theirs["image"] = theirs["image"] + len(self.images)
        self._flush()
        self._chunks.append(theirs)
        self.images.extend(other.images)
        self._n_gt += other._n_gt
        return self

    def summary(self) -> dict:
        """``ap``, ``ap50``, ``ap75``, ``ap_small``, ``ap_medium``, ``ap_large``, ``ar1``,
        ``ar10``, ``ar100``, ``ar_small``, ``ar_medium``, ``ar_large`` (COCOeval's ``stats``;
        -1 where it gives -1) and ``per_class`` {name: {ap, ap50, ar100}}."""
        precision, recall = self.precision_recall()
        return accumulate.summarize(precision, recall, self.protocol.iou_thresholds, self._labels,
                                    self.protocol.max_dets, list(self.categories.values()))

    def precision_recall(self) -> tuple[np.ndarray, np.ndarray]:
        """COCOeval's ``eval["precision"]`` (T×R×K×A×M) and ``eval["recall"]`` (T×K×A×M)."""
        records = self._records()
        keys = sorted(range(len(self.images)), key=lambda i: (_image_sort_key(self.images[i]), i))
        position = np.empty(len(self.images), np.int64)
        position[keys] = np.arange(len(keys))
        return accumulate.precision_recall(records["category"], records["score"],
                                           position[records["image"]] if len(keys) else records["image"],
                                           records["rank"], records["matched"], records["ignored"], self._n_gt,
                                           np.array(self.protocol.recall_thresholds), self.protocol.max_dets)

    # ------------------------------------------------------------------ state

    def state(self) -> dict:
        """JSON-ready records: ``{"task": "instance", ...}`` (see :meth:`from_state`)."""
        records = self._records()
        return {"task": "instance", "version": 1, "protocol": self.protocol.to_dict(),
                "categories": [[k, v] for k, v in self.categories.items()], "images": list(self.images),
                "n_gt": self._n_gt.tolist(), "detections": int(records["score"].size),
                **{k: _pack(records[k]) for k in _FIELDS}}

    @classmethod
    def from_state(cls, state: dict, name: str = "state") -> "InstanceEvaluation":
        """An evaluation from :meth:`state` output (e.g. read back from a shard's JSON)."""
        try:
            if state.get("task") != "instance" or state.get("version") != 1:
                raise InputError(f"{name}: not an instance-evaluation state (task 'instance', version 1)")
            ev = cls(Protocol.from_dict(state["protocol"]), {int(k): str(v) for k, v in state["categories"]})
            ev.images = list(state["images"])
            ev._n_gt = np.array(state["n_gt"], np.int64).reshape(ev._n_gt.shape)
            count, steps = int(state["detections"]), (len(ev._labels), ev._thresholds.size)
            shapes = {"category": (count,), "score": (count,), "image": (count,), "rank": (count,),
                      "matched": (count, *steps), "ignored": (count, *steps)}
            ev._chunks = [{k: _unpack(state[k], shapes[k], "<f8" if k == "score" else "<i8") for k in _FIELDS}]
        except InputError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"{name}: malformed instance-evaluation state ({type(exc).__name__}: {exc})") from None
        chunk = ev._chunks[0]
        if (chunk["image"] < 0).any() or (chunk["image"] >= max(len(ev.images), 1)).any() and count or \
                (chunk["category"] < 0).any() or (chunk["category"] >= ev._ids.size).any():
            raise InputError(f"{name}: malformed instance-evaluation state (indices out of range)")
        return ev


def _valid(ann: Any, is_dt: bool) -> bool:
    if not isinstance(ann, dict) or ann.get("category_id").__class__ is not int:
        return False
    return not is_dt or (ann.get("score").__class__ in (int, float))


def _box(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 4 and all(v.__class__ in (int, float) for v in value)


def _check_sizes(gt_sizes: np.ndarray, gt_image: np.ndarray, dt_sizes: np.ndarray, dt_image: np.ndarray,
                 names: list[str]) -> None:
    """Every mask of one image has one size (the image's)."""
    sizes = np.concatenate((gt_sizes, dt_sizes)).reshape(-1, 2)
    image = np.concatenate((gt_image, dt_image))
    if image.size == 0:
        return
    reference = np.zeros((len(names), 2), np.int64)
    reference[image[::-1]] = sizes[::-1]  # the first mask of each image
    wrong = (sizes != reference[image]).any(axis=1)
    if wrong.any():
        i = int(np.flatnonzero(wrong)[0])
        kind = "ground truth" if i < gt_image.size else "detection"
        k = i if i < gt_image.size else i - gt_image.size
        k -= int(((gt_image if i < gt_image.size else dt_image) < image[i]).sum())
        raise InputError(f"{names[image[i]]}: {kind} {k} is {sizes[i, 0]}×{sizes[i, 1]} but the image's other masks "
                         f"are {reference[image[i], 0]}×{reference[image[i], 1]}")


def _pack(array: np.ndarray) -> str:
    if array.dtype == bool:
        array = np.packbits(array.ravel())
    return base64.b64encode(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()).decode("ascii")


def _unpack(text: str, shape: tuple, dtype: str = "<i8") -> np.ndarray:
    raw = base64.b64decode(text.encode("ascii"), validate=True)
    if len(shape) == 3:
        bits = np.unpackbits(np.frombuffer(raw, np.uint8))
        size = int(np.prod(shape))
        if bits.size < size or bits.size - size >= 8:
            raise ValueError("bit array of the wrong length")
        return bits[:size].astype(bool).reshape(shape)
    values = np.frombuffer(raw, dtype)
    if values.size != shape[0]:
        raise ValueError("array of the wrong length")
    return values
