"""Panoptic quality (PQ, SQ, RQ) exactly as panopticapi's ``pq_compute`` counts it.

One image at a time, :meth:`PanopticEvaluation.add_image` turns a ground-truth and a predicted
segment-id image (H×W, 0 = VOID) with their ``segments_info`` into per-class sums — true
positives, false positives, false negatives and the sum of matched IoUs — that add exactly
across images and shards (:meth:`~PanopticEvaluation.merge`, :meth:`~PanopticEvaluation.state`).

The rules are panopticapi's (``evaluation.py``, ``pq_compute_single_core``):

- the intersection of every (ground-truth segment, predicted segment) pair comes from one
  count over the two id images;
- a ground-truth and a predicted segment of the same category match when
  ``IoU = inter / (area_gt + area_pred − inter − void_pred) > 0.5``, where ``void_pred`` is
  the predicted segment's overlap with VOID (so VOID pixels never count against a
  prediction); crowd ground truth (``iscrowd=1``) never matches;
- FN: unmatched non-crowd ground truth; FP: an unmatched prediction, unless more than half
  of it lies in VOID plus the crowd region of its category (panopticapi keeps one crowd
  segment per category: the last one listed);
- per class ``PQ = Σ IoU / (TP + ½FP + ½FN)``, ``SQ = Σ IoU / TP`` (0 without TP),
  ``RQ = TP / (TP + ½FP + ½FN)``; the averages are over the classes with any TP, FP or FN
  (panopticapi's ``n``), for all classes, things and stuff.

Where panopticapi would stop with a ``KeyError`` or divide by zero, this raises
:class:`~segtools.errors.InputError` naming the segment; it also refuses ground-truth ids
missing from ``segments_info``, and a ground-truth ``area`` that differs from the PNG's pixel
count (panopticapi uses the JSON ``area``; with both equal the two rules agree). An average
over no class is reported as 0.0 with ``n`` = 0 (panopticapi divides by zero there).
"""

from __future__ import annotations

import threading

import numpy as np

from segtools.errors import InputError

MAX_SEGMENT_ID = 256**3 - 1  # ids are RGB colours (R + 256·G + 256²·B)
_STATE_VERSION = 1


def _segment_table(segments, cat_ids: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list]:
    """(ids, category indices, iscrowd, JSON areas or -1) sorted by id, and the ids in listed order."""
    try:
        rows = np.array([(s["id"], s["category_id"], s.get("iscrowd", 0), -1 if s.get("area") is None else s["area"])
                         for s in segments], np.int64).reshape(-1, 4)
        ids, cats, crowd, areas = rows.T
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise InputError(f"{what}: every segment needs an integer id and category_id ({exc!r:.60})") from None
    if ids.size and (ids.min() < 1 or ids.max() > MAX_SEGMENT_ID):
        bad = int(ids[(ids < 1) | (ids > MAX_SEGMENT_ID)][0])
        raise InputError(f"{what}: segment id {bad} is out of range (1..{MAX_SEGMENT_ID}; 0 is VOID)")
    order = np.argsort(ids, kind="stable")
    ids_sorted = ids[order]
    if ids.size > 1 and (np.diff(ids_sorted) == 0).any():
        raise InputError(f"{what}: segment id {int(ids_sorted[1:][np.diff(ids_sorted) == 0][0])} is listed twice")
    index = np.searchsorted(cat_ids, cats)
    known = (index < cat_ids.size) & (cat_ids[np.minimum(index, cat_ids.size - 1)] == cats)
    if not known.all():
        k = int(np.flatnonzero(~known)[0])
        raise InputError(f"{what}: segment {int(ids[k])} has unknown category_id {int(cats[k])}")
    if ((crowd != 0) & (crowd != 1)).any():
        raise InputError(f"{what}: segment {int(ids[(crowd != 0) & (crowd != 1)][0])}: iscrowd must be 0 or 1")
    return ids_sorted, index[order], crowd[order].astype(bool), areas[order], ids.tolist()


def _pair_table(gt_ids: np.ndarray, g_ids: np.ndarray, pred_ids: np.ndarray, p_ids: np.ndarray,
                what: tuple[str, str] = ("ground truth", "prediction")) -> np.ndarray:
    """Pixel counts of every (ground-truth index, predicted index) pair, indices as in :func:`_dense_index`.

    Counted over runs, not pixels: segment images are long runs of one id, so the pixels
    where either image's id changes (in raster order) split them into a few thousand runs,
    and only each run's first pixel is looked up and counted, weighted by its length. The
    table is the same as a per-pixel count (the weights are whole numbers far below 2⁵³).
    Every id of an image is the id of some run's first pixel, so the range of the ids is
    checked on those (``what`` names the two sides in the message).
    """
    g, p = gt_ids.ravel(), pred_ids.ravel()
    ng, npred = g_ids.size + 2, p_ids.size + 2
    if not g.size:
        return np.zeros((ng, npred), np.int64)
    change = np.empty(g.size, bool)
    change[0] = True
    np.not_equal(g[1:], g[:-1], out=change[1:])
    change[1:] |= p[1:] != p[:-1]
    starts = np.flatnonzero(change)
    lengths = np.diff(starts, append=g.size)
    key = _dense_index(_check_range(g[starts], what[0]), g_ids)
    key *= npred
    key += _dense_index(_check_range(p[starts], what[1]), p_ids)
    table = np.bincount(key, weights=lengths, minlength=ng * npred)
    return table.astype(np.int64).reshape(ng, npred)


def _check_range(values: np.ndarray, what: str) -> np.ndarray:
    if values.dtype.kind == "i" and int(values.min()) < 0:
        raise InputError(f"{what}: negative segment id {int(values.min())}")
    if int(values.max()) > MAX_SEGMENT_ID:
        raise InputError(f"{what}: segment id {int(values.max())} is above {MAX_SEGMENT_ID}")
    return values


_tables = threading.local()


def _lookup_table() -> np.ndarray:
    """This thread's id → dense index table over every 24-bit id, 0 except id 0 (VOID → 1).

    Allocated zeroed once (the pages an image's few ids touch are the only ones the system
    ever maps); :func:`_dense_index` writes an image's ids, reads, and clears them again.
    """
    table = getattr(_tables, "table", None)
    if table is None:
        table = _tables.table = np.zeros(MAX_SEGMENT_ID + 1, np.uint16)
        table[0] = 1
    return table


def _dense_index(values: np.ndarray, segment_ids: np.ndarray) -> np.ndarray:
    """Per value (0..``MAX_SEGMENT_ID``): 0 for an id not among ``segment_ids`` (sorted, ≥ 1),
    1 for VOID (id 0), 2 + k for ``segment_ids[k]``."""
    if segment_ids.size + 2 > np.iinfo(np.uint16).max:
        known = np.concatenate([[0], segment_ids])
        index = np.searchsorted(known, values)
        found = known[np.minimum(index, known.size - 1)] == values
        return np.where(found, index + 1, 0)
    table = _lookup_table()
    table[segment_ids] = np.arange(2, segment_ids.size + 2, dtype=np.uint16)
    try:  # indices as intp: NumPy gathers with them 3× faster than with the images' uint32
        return table[values.astype(np.intp, copy=False)].astype(np.int64)
    finally:
        table[segment_ids] = 0


def _check_ids(ids, what: str) -> np.ndarray:
    """``ids`` as an H×W integer array (their range is checked by :func:`_pair_table`)."""
    ids = np.asarray(ids)
    if ids.ndim != 2 or ids.dtype.kind not in "ui":
        raise InputError(f"{what}: segment ids must be an H×W integer array, got {ids.dtype} {ids.shape}")
    return ids


def image_counts(gt_ids, gt_segments, pred_ids, pred_segments, cat_ids: np.ndarray,
                 name: str = "image") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-category ``(tp, fp, fn, iou sum)`` of one image, categories indexed as ``cat_ids`` (sorted).

    >>> gt = np.array([[1, 1, 2, 2]]); pred = np.array([[5, 5, 5, 0]])
    >>> tp, fp, fn, iou = image_counts(gt, [{"id": 1, "category_id": 7}, {"id": 2, "category_id": 8}],
    ...                                pred, [{"id": 5, "category_id": 7}], np.array([7, 8]))
    >>> tp.tolist(), fp.tolist(), fn.tolist(), iou.round(4).tolist()
    ([1, 0], [0, 0], [0, 1], [0.6667, 0.0])
    """
    gt_ids = _check_ids(gt_ids, f"{name}: ground truth")
    pred_ids = _check_ids(pred_ids, f"{name}: prediction")
    if gt_ids.shape != pred_ids.shape:
        raise InputError(f"{name}: prediction size {pred_ids.shape} differs from the ground truth's {gt_ids.shape}")
    g_ids, g_cat, g_crowd, g_area_json, g_listed = _segment_table(gt_segments, cat_ids, f"{name}: ground truth")
    p_ids, p_cat, _, _, _ = _segment_table(pred_segments, cat_ids, f"{name}: prediction")
    table = _pair_table(gt_ids, g_ids, pred_ids, p_ids, (f"{name}: ground truth", f"{name}: prediction"))
    for side, counts, ids in (("ground truth", table.sum(1), gt_ids), ("prediction", table.sum(0), pred_ids)):
        if counts[0]:
            listed = g_ids if side == "ground truth" else p_ids
            stray = np.setdiff1d(np.unique(ids), np.concatenate([[0], listed]))
            raise InputError(f"{name}: {side} segment id {int(stray[0])} is in the PNG but not in segments_info")
    inter = table[2:, 2:]
    p_area = table[:, 2:].sum(0)
    g_area = table[2:, :].sum(1)
    if (p_area == 0).any():
        raise InputError(f"{name}: prediction segment {int(p_ids[p_area == 0][0])} is in segments_info but not in the PNG")
    stated = g_area_json >= 0
    if (g_area_json[stated] != g_area[stated]).any():
        k = int(np.flatnonzero(stated & (g_area_json != g_area))[0])
        raise InputError(f"{name}: ground-truth segment {int(g_ids[k])}: area {int(g_area_json[k])} in segments_info, "
                         f"{int(g_area[k])} pixels in the PNG")
    void_p = table[1, 2:]
    candidate = (inter > 0) & (g_cat[:, None] == p_cat[None, :]) & ~g_crowd[:, None]
    rows, cols = np.nonzero(candidate)  # row-major: (gt id, pred id) order, as panopticapi visits them
    union = p_area[cols] + g_area[rows] - inter[rows, cols] - void_p[cols]
    iou = inter[rows, cols] / union
    hit = iou > 0.5
    rows, cols, iou = rows[hit], cols[hit], iou[hit]
    n = cat_ids.size
    tp = np.bincount(g_cat[rows], minlength=n)
    iou_sum = np.bincount(g_cat[rows], weights=iou, minlength=n).astype(np.float64)
    g_matched = np.zeros(g_ids.size, bool)
    g_matched[rows] = True
    p_matched = np.zeros(p_ids.size, bool)
    p_matched[cols] = True
    fn = np.bincount(g_cat[~g_matched & ~g_crowd], minlength=n)
    # panopticapi keeps, per category, the crowd segment listed last in segments_info
    crowd_row = np.full(n, -1, np.intp)
    if g_crowd.any():
        position = np.searchsorted(g_ids, np.asarray(g_listed, np.int64))  # listed order → sorted row
        listed_crowd = position[g_crowd[position]]
        crowd_row[g_cat[listed_crowd]] = listed_crowd  # later entries overwrite earlier ones
    ignored = void_p.astype(np.int64)
    has_crowd = crowd_row[p_cat] >= 0
    ignored[has_crowd] += inter[crowd_row[p_cat[has_crowd]], np.flatnonzero(has_crowd)]
    counted = ~p_matched & ~(ignored / p_area > 0.5)
    fp = np.bincount(p_cat[counted], minlength=n)
    return tp, fp, fn, iou_sum


class PanopticEvaluation:
    """Per-class PQ sums over images; exact to merge across shards.

    Parameters
    ----------
    categories : ``{category id: (name, isthing)}`` — the ground truth's categories (ids
        absent here are refused in segments, as panopticapi does).

    Examples
    --------
    >>> ev = PanopticEvaluation({1: ("road", False), 2: ("car", True)})
    >>> gt = np.array([[1, 1, 2, 2], [1, 1, 2, 2]])
    >>> ev.add_image(gt, [{"id": 1, "category_id": 1}, {"id": 2, "category_id": 2}],
    ...              gt, [{"id": 1, "category_id": 1}, {"id": 2, "category_id": 2}])
    >>> summary = ev.summary()
    >>> summary["pq"], summary["pq_things"], summary["n"]
    (1.0, 1.0, 2)
    """

    def __init__(self, categories: dict[int, tuple[str, bool]]):
        if not categories:
            raise InputError("categories: at least one category is needed")
        self.categories = {int(k): (str(v[0]), bool(v[1])) for k, v in categories.items()}
        self._ids = np.array(sorted(self.categories), np.int64)
        n = self._ids.size
        self.tp = np.zeros(n, np.int64)
        self.fp = np.zeros(n, np.int64)
        self.fn = np.zeros(n, np.int64)
        self.iou = np.zeros(n, np.float64)
        self.images = 0

    def add_image(self, gt_ids, gt_segments: list[dict], pred_ids, pred_segments: list[dict], name: str = "image") -> None:
        """Count one image: H×W segment-id arrays (0 = VOID) and their COCO ``segments_info``
        (``id``, ``category_id``, ``iscrowd``; a ground-truth ``area``, when given, must be its
        pixel count). ``name`` starts error messages."""
        self.add_counts(image_counts(gt_ids, gt_segments, pred_ids, pred_segments, self._ids, name))

    def add_counts(self, counts: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> None:
        """Add one image's :func:`image_counts` (computed elsewhere, e.g. in a worker)."""
        tp, fp, fn, iou = counts
        self.tp += tp
        self.fp += fp
        self.fn += fn
        self.iou += iou
        self.images += 1

    def merge(self, other: "PanopticEvaluation") -> "PanopticEvaluation":
        """Add another evaluation's sums (same categories) into this one; returns self."""
        if other.categories != self.categories:
            raise InputError("merge: the panoptic evaluations have different categories")
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.iou += other.iou
        self.images += other.images
        return self

    def state(self) -> dict:
        """JSON-serialisable sums (``{"task": "panoptic", ...}``); :meth:`from_state` restores them exactly."""
        return {"task": "panoptic", "version": _STATE_VERSION, "images": self.images,
                "categories": [[int(c), *self.categories[int(c)]] for c in self._ids],
                "tp": self.tp.tolist(), "fp": self.fp.tolist(), "fn": self.fn.tolist(),
                "iou": [float(v) for v in self.iou]}

    @classmethod
    def from_state(cls, state: dict, name: str = "state") -> "PanopticEvaluation":
        """The evaluation a :meth:`state` dict describes (checked: a state file comes from anywhere)."""
        from segtools.io.jsondata import check_int, check_type, get_field, get_int

        check_type(state, dict, name)
        if state.get("task") != "panoptic":
            raise InputError(f"{name}: not a panoptic state (task {state.get('task')!r})")
        if get_int(state, "version", name) != _STATE_VERSION:
            raise InputError(f"{name}: panoptic state version {state['version']} (this segtools reads {_STATE_VERSION})")
        entries = get_field(state, "categories", name, list)
        categories = {}
        for k, entry in enumerate(entries):
            check_type(entry, list, f"{name}: categories[{k}]")
            if len(entry) != 3 or not isinstance(entry[1], str) or not isinstance(entry[2], bool):
                raise InputError(f"{name}: categories[{k}] must be [id, name, isthing]")
            categories[check_int(entry[0], f"{name}: categories[{k}][0]")] = (entry[1], entry[2])
        evaluation = cls(categories)
        if [c[0] for c in entries] != evaluation._ids.tolist():
            raise InputError(f"{name}: categories must be listed once each, by increasing id")
        n = evaluation._ids.size
        for field in ("tp", "fp", "fn", "iou"):
            values = get_field(state, field, name, list)
            if len(values) != n:
                raise InputError(f"{name}: '{field}' has {len(values)} values for {n} categories")
            if field == "iou":
                array = np.array([check_type(v, float, f"{name}: 'iou'") for v in values], np.float64)
                bad = array < 0
            else:
                array = np.array([check_int(v, f"{name}: '{field}'", 0) for v in values], np.int64)
                bad = array < 0
            if bad.any():
                raise InputError(f"{name}: '{field}' values must not be negative")
            setattr(evaluation, field, array)
        if (evaluation.iou > evaluation.tp * (1 + 1e-9)).any():
            raise InputError(f"{name}: an IoU sum exceeds its class's true positives")
        evaluation.images = get_int(state, "images", name, 0)
        return evaluation

    def summary(self) -> dict:
        """PQ, SQ, RQ over all classes, things and stuff (with their ``n``) and ``per_class``
        ``{name: {"pq", "sq", "rq", "tp", "fp", "fn"}}``, as panopticapi's ``pq_compute``."""
        tp, fp, fn, iou = self.tp, self.fp, self.fn, self.iou
        denominator = tp + 0.5 * fp + 0.5 * fn
        present = (tp + fp + fn) > 0
        safe = np.where(present, denominator, 1.0)
        pq = np.where(present, iou / safe, 0.0)
        sq = np.where(tp > 0, iou / np.maximum(tp, 1), 0.0)
        rq = np.where(present, tp / safe, 0.0)
        thing = np.array([self.categories[int(c)][1] for c in self._ids], bool)
        result: dict = {}
        for suffix, chosen in (("", np.ones_like(thing)), ("_things", thing), ("_stuff", ~thing)):
            used = chosen & present
            count = int(used.sum())
            for key, values in (("pq", pq), ("sq", sq), ("rq", rq)):
                result[key + suffix] = float(values[used].sum() / count) if count else 0.0
            result["n" + suffix] = count
        names = [self.categories[int(c)][0] for c in self._ids]
        per_class = {}
        for k, cid in enumerate(self._ids.tolist()):
            label = names[k] if names.count(names[k]) == 1 else f"{names[k]} ({cid})"
            per_class[label] = {"pq": float(pq[k]), "sq": float(sq[k]), "rq": float(rq[k]),
                                "tp": int(tp[k]), "fp": int(fp[k]), "fn": int(fn[k])}
        result["per_class"] = per_class
        result["images"] = self.images
        return result
