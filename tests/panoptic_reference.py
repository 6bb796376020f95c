"""An independent PQ reference that follows panopticapi's ``evaluation.py`` step by step.

``pq_compute_single_core`` and ``PQStat.pq_average`` re-told with the same dict loops, so a
test can compare segtools' vectorised counts with the original rules (panopticapi is not on
PyPI). Ground-truth areas come from ``segments_info`` as panopticapi reads them.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

OFFSET = 256 * 256 * 256
VOID = 0


class _Stat:
    def __init__(self):
        self.iou, self.tp, self.fp, self.fn = 0.0, 0, 0, 0


def reference_counts(images, stats=None):
    """``images``: ``(gt_ids, gt_segments, pred_ids, pred_segments)``; per-category stats."""
    stats = stats if stats is not None else defaultdict(_Stat)
    for gt_ids, gt_segments, pred_ids, pred_segments in images:
        gt_segms = {el["id"]: dict(el) for el in gt_segments}
        pred_segms = {el["id"]: dict(el) for el in pred_segments}
        labels, labels_cnt = np.unique(pred_ids, return_counts=True)
        for label, label_cnt in zip(labels, labels_cnt):
            if label not in pred_segms:
                assert label == VOID
                continue
            pred_segms[label]["area"] = label_cnt
        pan_gt_pred = gt_ids.astype(np.uint64) * OFFSET + pred_ids.astype(np.uint64)
        gt_pred_map = {}
        labels, labels_cnt = np.unique(pan_gt_pred, return_counts=True)
        for label, intersection in zip(labels, labels_cnt):
            gt_pred_map[(int(label // OFFSET), int(label % OFFSET))] = intersection
        gt_matched, pred_matched = set(), set()
        for (gt_label, pred_label), intersection in gt_pred_map.items():
            if gt_label not in gt_segms or pred_label not in pred_segms:
                continue
            if gt_segms[gt_label].get("iscrowd", 0) == 1:
                continue
            if gt_segms[gt_label]["category_id"] != pred_segms[pred_label]["category_id"]:
                continue
            union = (pred_segms[pred_label]["area"] + gt_segms[gt_label]["area"] - intersection
                     - gt_pred_map.get((VOID, pred_label), 0))
            iou = intersection / union
            if iou > 0.5:
                stats[gt_segms[gt_label]["category_id"]].tp += 1
                stats[gt_segms[gt_label]["category_id"]].iou += iou
                gt_matched.add(gt_label)
                pred_matched.add(pred_label)
        crowd_labels_dict = {}
        for gt_label, gt_info in gt_segms.items():
            if gt_label in gt_matched:
                continue
            if gt_info.get("iscrowd", 0) == 1:
                crowd_labels_dict[gt_info["category_id"]] = gt_label
                continue
            stats[gt_info["category_id"]].fn += 1
        for pred_label, pred_info in pred_segms.items():
            if pred_label in pred_matched:
                continue
            intersection = gt_pred_map.get((VOID, pred_label), 0)
            if pred_info["category_id"] in crowd_labels_dict:
                intersection += gt_pred_map.get((crowd_labels_dict[pred_info["category_id"]], pred_label), 0)
            if intersection / pred_info["area"] > 0.5:
                continue
            stats[pred_info["category_id"]].fp += 1
    return stats


def reference_average(stats, categories, isthing):
    """``PQStat.pq_average``: (averages with ``n``, per-class results); ``categories``: id → (name, isthing)."""
    pq, sq, rq, n = 0, 0, 0, 0
    per_class = {}
    for label, (_, thing) in categories.items():
        if isthing is not None and isthing != thing:
            continue
        st = stats[label]
        iou, tp, fp, fn = st.iou, st.tp, st.fp, st.fn
        if tp + fp + fn == 0:
            per_class[label] = {"pq": 0.0, "sq": 0.0, "rq": 0.0}
            continue
        n += 1
        pq_class = iou / (tp + 0.5 * fp + 0.5 * fn)
        sq_class = iou / tp if tp != 0 else 0
        rq_class = tp / (tp + 0.5 * fp + 0.5 * fn)
        per_class[label] = {"pq": pq_class, "sq": sq_class, "rq": rq_class}
        pq += pq_class
        sq += sq_class
        rq += rq_class
    if n == 0:
        return {"pq": 0.0, "sq": 0.0, "rq": 0.0, "n": 0}, per_class
    return {"pq": pq / n, "sq": sq / n, "rq": rq / n, "n": n}, per_class


CAMVID_THINGS = ("Car", "Pedestrian", "Bicyclist", "SignSymbol")


def camvid_panoptic(semantic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(semantic, instance numbers) of a CamVid label mask (tests and bench/panoptic.py): thing classes split into connected
    components (4-connected), components under 20 px left without a number (crowd)."""
    from scipy import ndimage

    from segtools.io.presets import get_preset

    names = get_preset("camvid").names
    instances = np.zeros(semantic.shape, np.int64)
    top = 0
    for name in CAMVID_THINGS:
        components, count = ndimage.label(semantic == names.index(name))
        sizes = np.bincount(components.ravel(), minlength=count + 1)
        keep = (sizes >= 20) & (np.arange(count + 1) > 0)
        numbers = np.where(keep, np.cumsum(keep) + top, 0)
        instances = np.where(components > 0, numbers[components], instances)
        top += int(keep.sum())
    return semantic, instances
