"""Boxes in ``(x1, y1, x2, y2)`` pixels: the R-CNN box coder, clipping, and non-maximum
suppression in plain torch.

NMS keeps the greedy result torchvision's C++ kernel computes (boxes visited by decreasing
score, stable on ties; a box is dropped when its IoU with a kept one is above the threshold,
IoU = inter / (area_i + area_j − inter)), without a Python loop over boxes: the pairs above
the threshold are found in blocks of rows (only within a group, for batched NMS), and the
greedy order is resolved in rounds — a box none of whose undecided or kept predecessors
suppresses it is kept, a box a kept predecessor suppresses is dropped — each round deciding
at least the best undecided box, usually all of a cluster at once.

:func:`batched_nms` separates groups (classes, pyramid levels) as torchvision does: by
offsetting each group's coordinates beyond the others' (its path for up to 1000 boxes), or,
for more boxes, by sorting them into contiguous groups so that no IoU across groups is
ever computed.
"""

from __future__ import annotations

import math

import torch

#: largest log-scale change a decoded box may take (torchvision's ``log(1000 / 16)``)
BBOX_XFORM_CLIP = math.log(1000.0 / 16)
_BLOCK = 512  # rows of the IoU matrix computed at once
_OFFSET_PATH_MAX = 1000  # boxes up to which groups are separated by coordinate offsets


def decode_boxes(deltas: torch.Tensor, reference: torch.Tensor, weights: tuple[float, float, float, float],
                 clip: float = BBOX_XFORM_CLIP) -> torch.Tensor:
    """Apply R-CNN box deltas ``(dx, dy, dw, dh)`` to reference boxes.

    Parameters
    ----------
    deltas : K×(4·C) tensor, C boxes per reference (one per class, or 1).
    reference : K×4 boxes ``(x1, y1, x2, y2)``.
    weights : divisors of ``(dx, dy, dw, dh)`` ((1, 1, 1, 1) for the RPN, (10, 10, 5, 5)
        for the box head).
    clip : upper bound of ``dw``/``dh`` before the exponential.

    Returns
    -------
    K×C×4 boxes.
    """
    dtype = torch.promote_types(deltas.dtype, torch.float32)  # half-precision deltas (autocast) decode in fp32
    deltas, reference = deltas.to(dtype), reference.to(dtype)
    widths = reference[:, 2] - reference[:, 0]
    heights = reference[:, 3] - reference[:, 1]
    ctr_x = reference[:, 0] + 0.5 * widths
    ctr_y = reference[:, 1] + 0.5 * heights
    wx, wy, ww, wh = weights
    dx = deltas[:, 0::4] / wx
    dy = deltas[:, 1::4] / wy
    dw = torch.clamp(deltas[:, 2::4] / ww, max=clip)
    dh = torch.clamp(deltas[:, 3::4] / wh, max=clip)
    pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
    pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
    half_w = 0.5 * (torch.exp(dw) * widths[:, None])
    half_h = 0.5 * (torch.exp(dh) * heights[:, None])
    return torch.stack((pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h), dim=2)


def clip_boxes(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Boxes (…×4) clamped into an image of ``size = (height, width)`` pixels."""
    height, width = size
    x = boxes[..., 0::2].clamp(min=0, max=width)
    y = boxes[..., 1::2].clamp(min=0, max=height)
    return torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), dim=-1)


def small_boxes_removed(boxes: torch.Tensor, min_size: float) -> torch.Tensor:
    """Indices of the boxes whose width and height are both at least ``min_size``."""
    widths, heights = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
    return torch.where((widths >= min_size) & (heights >= min_size))[0]


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas of K×4 boxes."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _pairwise_iou(rows: torch.Tensor, row_area: torch.Tensor, cols: torch.Tensor, col_area: torch.Tensor) -> torch.Tensor:
    """R×C IoU, with torchvision's NMS arithmetic (so ties with its threshold fall alike)."""
    width = (torch.minimum(rows[:, None, 2], cols[None, :, 2]) - torch.maximum(rows[:, None, 0], cols[None, :, 0])).clamp_(min=0)
    height = (torch.minimum(rows[:, None, 3], cols[None, :, 3]) - torch.maximum(rows[:, None, 1], cols[None, :, 1])).clamp_(min=0)
    inter = width * height
    return inter / (row_area[:, None] + col_area[None, :] - inter)


def _suppression_pairs(boxes: torch.Tensor, groups: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs ``(i, j)``, ``i < j``, of one group with IoU above ``threshold``; groups contiguous."""
    count = boxes.shape[0]
    areas = box_area(boxes)
    # the last position of each box's group bounds the columns a row block needs
    group_end = torch.searchsorted(groups, groups, right=True)
    sources, targets = [], []
    columns = torch.arange(count, device=boxes.device)
    for start in range(0, count, _BLOCK):
        stop = min(start + _BLOCK, count)
        end = int(group_end[stop - 1])
        iou = _pairwise_iou(boxes[start:stop], areas[start:stop], boxes[start:end], areas[start:end])
        later = columns[start:end][None, :] > columns[start:stop][:, None]
        same = groups[start:end][None, :] == groups[start:stop][:, None]
        i, j = torch.nonzero((iou > threshold) & later & same, as_tuple=True)
        sources.append(i + start)
        targets.append(j + start)
    return torch.cat(sources), torch.cat(targets)


def _greedy_keep(count: int, sources: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Boolean mask of the boxes greedy NMS keeps, given the suppression pairs of a
    priority order (``sources[k]`` comes before ``targets[k]``)."""
    device = sources.device
    state = torch.zeros(count, dtype=torch.int8, device=device)  # 0 undecided, 1 kept, 2 dropped
    while True:
        undecided = state == 0
        if not bool(undecided.any()):
            return state == 1
        pending = undecided[targets]
        sources, targets = sources[pending], targets[pending]
        blocked = torch.zeros(count, dtype=torch.bool, device=device)
        blocked[targets[state[sources] != 2]] = True
        state[undecided & ~blocked] = 1
        killed = torch.zeros(count, dtype=torch.bool, device=device)
        killed[targets[state[sources] == 1]] = True
        state[(state == 0) & killed] = 2


def _sorted_nms(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, threshold: float) -> torch.Tensor:
    """Indices kept by NMS within each group, by decreasing score."""
    by_score = torch.sort(scores, descending=True, stable=True)[1]
    order = by_score[torch.sort(groups[by_score], stable=True)[1]]  # groups contiguous, scores falling within
    sources, targets = _suppression_pairs(boxes[order], groups[order], threshold)
    kept = order[_greedy_keep(order.numel(), sources, targets)]
    return kept[torch.sort(scores[kept], descending=True, stable=True)[1]]


def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """Indices of the boxes greedy non-maximum suppression keeps, by decreasing score.

    A box is dropped when its IoU with a higher-scoring kept box is above ``threshold``.
    """
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    return _sorted_nms(boxes, scores, torch.zeros(boxes.shape[0], dtype=torch.int64, device=boxes.device), threshold)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, threshold: float) -> torch.Tensor:
    """NMS within each group (class or level) independently; indices by decreasing score.

    Up to 1000 boxes, each group's boxes are moved beyond the others' by a coordinate
    offset (``group · (max coordinate + 1)``) and suppressed together, as torchvision does;
    more boxes are sorted into contiguous groups and no IoU across groups is computed.
    """
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    if boxes.shape[0] <= _OFFSET_PATH_MAX:
        offsets = groups.to(boxes) * (boxes.max() + torch.tensor(1).to(boxes))
        return nms(boxes + offsets[:, None], scores, threshold)
    return _sorted_nms(boxes, scores, groups.to(torch.int64), threshold)
