"""COCOeval ``accumulate`` and ``summarize`` over per-detection match records, with numpy.

The records of one evaluation: for every kept detection its category, score, image
position (in COCOeval's sorted image order) and rank within its image and category, and
per area range and IoU threshold whether it matched and whether it is ignored; and per
category and area range the number of ground truths not ignored. From these come
COCOeval's precision (T×R×K×A×M) and recall (T×K×A×M) arrays, bit for bit, and its
summary statistics.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

_EPS = np.spacing(1)


def first_reaching(recall_thresholds: np.ndarray, n_gt: np.ndarray) -> np.ndarray:
    """A×R: the least true-positive count ``c`` with ``c / n_gt ≥ threshold`` (float division).

    COCOeval finds, for each recall threshold, the first detection whose recall ``tp / n``
    reaches it; as ``tp / n`` rises with ``tp``, that is the first cumulative count at least
    this ``c``, which one ``searchsorted`` over integer counts finds for every row at once.

    >>> first_reaching(np.array([0.0, 0.3, 0.34, 1.0]), np.array([3])).tolist()
    [[0, 1, 2, 3]]
    """
    n = np.asarray(n_gt, np.int64)[:, None].astype(np.float64)
    count = np.ceil(recall_thresholds[None, :] * n).astype(np.int64)
    for _ in range(2):  # the product may round either way: settle on the exact least count
        count = np.where(count / n < recall_thresholds, count + 1, count)
        count = np.where((count > 0) & ((count - 1) / n >= recall_thresholds), count - 1, count)
    return count


def precision_recall(category: np.ndarray, score: np.ndarray, image_pos: np.ndarray, rank: np.ndarray,
                     matched: np.ndarray, ignored: np.ndarray, n_gt: np.ndarray, recall_thresholds: np.ndarray,
                     max_dets: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval's ``precision`` T×R×K×A×M and ``recall`` T×K×A×M (-1 where no ground truth).

    Parameters
    ----------
    category, score, image_pos, rank : per detection (category index 0..K-1).
    matched, ignored : D×A×T booleans.
    n_gt : K×A ground truths not ignored.
    """
    n_cat, n_area = n_gt.shape
    steps, n_recall, n_max = matched.shape[2] if matched.ndim == 3 else 0, recall_thresholds.size, len(max_dets)
    precision = -np.ones((steps, n_recall, n_cat, n_area, n_max))
    recall = -np.ones((steps, n_cat, n_area, n_max))
    by_category = np.argsort(category, kind="stable")
    bounds = np.searchsorted(category[by_category], np.arange(n_cat + 1))
    for k in np.flatnonzero((n_gt > 0).any(axis=1)):
        own = by_category[bounds[k]: bounds[k + 1]]
        own = own[np.lexsort((rank[own], image_pos[own]))]  # the order accumulate concatenates in
        own = own[np.argsort(-score[own], kind="mergesort")]
        areas = np.flatnonzero(n_gt[k] > 0)
        counts = n_gt[k, areas]
        reach = first_reaching(recall_thresholds, counts)  # a×R
        for m, limit in enumerate(max_dets):
            kept = own[rank[own] < limit]
            n = kept.size
            hit = matched[kept][:, areas].transpose(1, 2, 0)    # a×T×n
            skip = ignored[kept][:, areas].transpose(1, 2, 0)
            tp = np.cumsum(hit & ~skip, axis=2)
            fp = np.cumsum(~hit & ~skip, axis=2).astype(np.float64)
            if n == 0:
                recall[:, k, areas, m] = 0.0
                precision[:, :, k, areas, m] = 0.0
                continue
            tp_float = tp.astype(np.float64)
            recall[:, k, areas, m] = (tp_float[:, :, -1] / counts[:, None]).T
            pr = tp_float / (fp + tp_float + _EPS)
            pr = np.maximum.accumulate(pr[:, :, ::-1], axis=2)[:, :, ::-1]
            # first index whose tp reaches each count, for every (area, threshold) row at once:
            # rows laid end to end with an offset of n + 2 (counts run 0..n)
            row = np.arange(areas.size * steps).reshape(areas.size, steps, 1)
            flat = (tp + row * (n + 2)).ravel()
            wanted = np.minimum(reach, n + 1)[:, None, :] + row * (n + 2)        # a×T×R
            index = np.searchsorted(flat, wanted, side="left") - row * n
            inside = index < n
            values = np.take_along_axis(pr, np.minimum(index, n - 1), axis=2)
            precision[:, :, k, areas, m] = np.where(inside, values, 0.0).transpose(1, 2, 0)
    return precision, recall


def statistic(precision: np.ndarray, recall: np.ndarray, thresholds: Sequence[float], labels: Sequence[str],
              max_dets: Sequence[int], ap: bool, iou: float | None = None, area: str = "all",
              max_det: int = 100, category: int | None = None) -> float:
    """One number of COCOeval ``summarize``: the mean of the entries above -1 (else -1)."""
    a = [i for i, label in enumerate(labels) if label == area]
    m = [i for i, value in enumerate(max_dets) if value == max_det]
    s = precision if ap else recall
    if iou is not None:
        s = s[np.where(iou == np.asarray(thresholds))[0]]
    if category is not None:
        s = s[:, :, [category]] if ap else s[:, [category]]
    s = s[:, :, :, a, m] if ap else s[:, :, a, m]
    return -1.0 if not (s > -1).any() else float(np.mean(s[s > -1]))


def summarize(precision: np.ndarray, recall: np.ndarray, thresholds: Sequence[float], labels: Sequence[str],
              max_dets: Sequence[int], names: Sequence[str]) -> dict:
    """The summary dict: ``ap``, ``ap50``, ``ap75``, ``ap_<area>``, ``ar<maxdets>``,
    ``ar_<area>`` (COCOeval's ``stats`` for its protocol) and ``per_class``.

    AP and the area figures use the largest ``max_dets`` (COCO: 100).
    """
    top = max_dets[-1]
    out: dict = {"ap": statistic(precision, recall, thresholds, labels, max_dets, True, max_det=top),
                 "ap50": statistic(precision, recall, thresholds, labels, max_dets, True, 0.5, max_det=top),
                 "ap75": statistic(precision, recall, thresholds, labels, max_dets, True, 0.75, max_det=top)}
    extra = [label for label in labels if label != "all"]
    for label in extra:
        out[f"ap_{label}"] = statistic(precision, recall, thresholds, labels, max_dets, True, area=label, max_det=top)
    for value in max_dets:
        out[f"ar{value}"] = statistic(precision, recall, thresholds, labels, max_dets, False, max_det=value)
    for label in extra:
        out[f"ar_{label}"] = statistic(precision, recall, thresholds, labels, max_dets, False, area=label, max_det=top)
    out["per_class"] = {
        name: {"ap": statistic(precision, recall, thresholds, labels, max_dets, True, max_det=top, category=k),
               "ap50": statistic(precision, recall, thresholds, labels, max_dets, True, 0.5, max_det=top, category=k),
               f"ar{top}": statistic(precision, recall, thresholds, labels, max_dets, False, max_det=top, category=k)}
        for k, name in enumerate(names)}
    return out
