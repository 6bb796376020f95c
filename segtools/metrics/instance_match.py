"""The kernels of instance evaluation, vectorised over many objects at once.

* :func:`decode_runs` — the column-major runs of many COCO RLEs in one pass over all their
  counts strings (no per-object decoding loop).
* :func:`pair_mask_iou` and :func:`pair_box_iou` — the IoU of given (detection, ground
  truth) pairs, from the runs (no dense mask) or from boxes, exactly as pycocotools
  ``maskUtils.iou`` computes it (a crowd ground truth divides by the detection's area).
* :func:`greedy_match` — COCOeval's ``evaluateImg`` matching for many (image, category)
  groups, every area range and IoU threshold at once; the only loop is over the detection
  rank (1..maxDets), each step vectorised over all groups.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from segtools.errors import InputError


def _segmented_cumsum(values: np.ndarray, segment_start: np.ndarray) -> np.ndarray:
    """Cumulative sums restarting at every index where ``segment_start`` is true."""
    total = np.cumsum(values)
    starts = np.flatnonzero(segment_start)
    base = np.zeros(values.size, values.dtype)
    if starts.size:
        offsets = total[starts] - values[starts]
        which = np.cumsum(segment_start) - 1
        base = offsets[np.maximum(which, 0)]
        base[which < 0] = 0
    return total - base


def _string_counts(texts: Sequence[str], where: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(run lengths of all strings end to end, bounds): pycocotools ``rleFrString`` batched."""
    lengths = np.fromiter((len(t) for t in texts), np.int64, len(texts))
    try:
        raw = "".join(texts).encode("ascii")
    except UnicodeEncodeError:
        bad = next(i for i, t in enumerate(texts) if not t.isascii())
        raise InputError(f"{where[bad]}: RLE counts string has characters outside '0'..'o'") from None
    chars = np.frombuffer(raw, np.uint8).astype(np.int64) - 48
    char_bounds = np.concatenate(([0], np.cumsum(lengths)))
    if chars.size == 0:
        return np.zeros(0, np.int64), np.zeros(len(texts) + 1, np.int64)
    owner_char = np.repeat(np.arange(len(texts)), lengths)
    bad = (chars < 0) | (chars > 63)
    if bad.any():
        raise InputError(f"{where[owner_char[np.flatnonzero(bad)[0]]]}: RLE counts string has characters "
                         "outside '0'..'o'; is it a COCO RLE?")
    ends = (chars & 0x20) == 0
    last = char_bounds[1:][lengths > 0] - 1
    if not ends[last].all():
        k = np.flatnonzero(lengths > 0)[np.flatnonzero(~ends[last])[0]]
        raise InputError(f"{where[k]}: RLE counts string is truncated (its last character says more follow)")
    starts = np.flatnonzero(np.concatenate(([True], ends[:-1])))
    group = np.cumsum(np.concatenate(([True], ends[:-1]))) - 1
    k = np.arange(chars.size) - starts[group]
    if k.max() >= 13:
        raise InputError(f"{where[owner_char[np.flatnonzero(k >= 13)[0]]]}: RLE counts string holds a value "
                         "too large for a run length")
    values = np.add.reduceat((chars & 0x1F) << (5 * k), starts)
    n_chars = np.diff(np.append(starts, chars.size))
    negative = (chars[ends] & 0x10) != 0
    values[negative] -= np.left_shift(1, 5 * n_chars[negative])
    owner = owner_char[starts]
    counts_per = np.bincount(owner, minlength=len(texts))
    bounds = np.concatenate(([0], np.cumsum(counts_per)))
    local = np.arange(values.size) - bounds[owner]
    # undo the delta coding, counts[j] += counts[j - 2] for j > 2: a running sum per parity
    counts = values.copy()
    for parity, first in ((1, 1), (0, 2)):
        chain = (local % 2 == parity) & (local >= first)
        counts[chain] = _segmented_cumsum(values[chain], local[chain] == first)
    return counts, bounds


def decode_runs(rles: Sequence[dict], where: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The set pixels of many RLEs as column-major ``[start, end)`` runs, all at once.

    Parameters
    ----------
    rles : COCO RLE dicts (``counts`` a compressed string or a list of ints).
    where : one name per RLE, for messages.

    Returns
    -------
    starts, ends : int64 runs of every RLE, end to end (zero-length runs dropped).
    bounds : RLE ``i`` owns runs ``bounds[i]:bounds[i + 1]``.
    sizes : N×2 ``(height, width)``.

    >>> s, e, b, _ = decode_runs([{"size": [2, 2], "counts": "13"}, {"size": [2, 2], "counts": [4]}], ["a", "b"])
    >>> s.tolist(), e.tolist(), b.tolist()
    ([1], [4], [0, 1, 1])
    """
    n = len(rles)
    sizes = np.zeros((n, 2), np.int64)
    texts, text_at, lists, list_at = [], [], [], []
    for i, rle in enumerate(rles):
        try:
            counts, (height, width) = rle["counts"], rle["size"]
            sizes[i] = int(height), int(width)
        except (TypeError, KeyError, ValueError):
            raise InputError(f"{where[i]}: an RLE is a dict with 'size' [height, width] and 'counts'") from None
        if isinstance(counts, bytes):
            counts = counts.decode("ascii", "replace")
        if isinstance(counts, str):
            texts.append(counts)
            text_at.append(i)
        else:
            lists.append(counts)
            list_at.append(i)
    if (sizes < 0).any():
        raise InputError(f"{where[int(np.flatnonzero((sizes < 0).any(1))[0])]}: RLE 'size' must be non-negative")
    text_counts, text_bounds = _string_counts(texts, [where[i] for i in text_at])
    pieces = [text_counts]
    owner = [np.repeat(np.asarray(text_at, np.int64), np.diff(text_bounds))]
    for i, counts in zip(list_at, lists):
        try:
            array = np.asarray(counts, np.int64).ravel()
        except (TypeError, ValueError, OverflowError):
            raise InputError(f"{where[i]}: uncompressed RLE counts must be a flat list of integers") from None
        pieces.append(array)
        owner.append(np.full(array.size, i, np.int64))
    counts, owner_of = np.concatenate(pieces), np.concatenate(owner)
    if list_at:  # put the list-counts RLEs in their place
        order = np.argsort(owner_of, kind="stable")
        counts, owner_of = counts[order], owner_of[order]
    if (counts < 0).any():
        raise InputError(f"{where[int(owner_of[np.flatnonzero(counts < 0)[0]])]}: RLE counts must be non-negative")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(owner_of, minlength=n))))
    totals = np.add.reduceat(counts, bounds[:-1]) if counts.size else np.zeros(n, np.int64)
    totals = np.where(np.diff(bounds) > 0, totals, 0)
    wrong = totals != sizes[:, 0] * sizes[:, 1]
    if wrong.any():
        i = int(np.flatnonzero(wrong)[0])
        raise InputError(f"{where[i]}: RLE counts cover {int(totals[i])} pixels but its size "
                         f"{sizes[i, 0]}×{sizes[i, 1]} has {int(sizes[i, 0] * sizes[i, 1])}")
    local = np.arange(counts.size) - bounds[owner_of]
    edges = _segmented_cumsum(counts, local == 0)
    is_run = (local % 2 == 1) & (counts > 0)
    run_owner = owner_of[is_run]
    return (edges[is_run] - counts[is_run], edges[is_run],
            np.concatenate(([0], np.cumsum(np.bincount(run_owner, minlength=n)))), sizes)


def _covered_before(starts: np.ndarray, ends: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Set pixels before each flat index ``x``, for sorted, disjoint ``[start, end)`` runs."""
    if starts.size == 0:
        return np.zeros(np.shape(x), np.int64)
    before = np.concatenate(([0], np.cumsum(ends - starts)))
    i = np.searchsorted(starts, x, side="right") - 1
    safe = np.maximum(i, 0)
    return np.where(i >= 0, before[safe] + np.minimum(x, ends[safe]) - starts[safe], 0)


def pair_mask_iou(dt_runs: tuple, gt_runs: tuple, pair_dt: np.ndarray, pair_gt: np.ndarray,
                  gt_crowd: np.ndarray) -> np.ndarray:
    """IoU of each (detection, ground truth) pair from their runs (:func:`decode_runs` output).

    Every ground truth's runs lie in a lane of their own (shifted by ``g·L``), so one
    ``searchsorted`` finds the overlap of every pair's detection runs with its ground truth.
    ``intersection / union``, union = the detection's area for a crowd ground truth.

    >>> a = decode_runs([{"size": [2, 2], "counts": "13"}], ["d"])[:3]
    >>> b = decode_runs([{"size": [2, 2], "counts": "04"}], ["g"])[:3]
    >>> pair_mask_iou(a, b, np.array([0]), np.array([0]), np.array([False])).tolist()
    [0.75]
    """
    d_start, d_end, d_bounds = dt_runs
    g_start, g_end, g_bounds = gt_runs
    d_area = np.add.reduceat(np.append(d_end - d_start, 0), d_bounds[:-1]) * (np.diff(d_bounds) > 0)
    g_area = np.add.reduceat(np.append(g_end - g_start, 0), g_bounds[:-1]) * (np.diff(g_bounds) > 0)
    if pair_dt.size == 0:
        return np.zeros(0)
    lane_size = int(max(g_end.max(initial=0), d_end.max(initial=0))) + 1
    lane = np.repeat(np.arange(g_bounds.size - 1, dtype=np.int64) * lane_size, np.diff(g_bounds))
    lanes_start, lanes_end = g_start + lane, g_end + lane
    n_runs = d_bounds[pair_dt + 1] - d_bounds[pair_dt]
    query_pair = np.repeat(np.arange(pair_dt.size), n_runs)
    run = np.repeat(d_bounds[pair_dt] - (np.cumsum(n_runs) - n_runs), n_runs) + np.arange(int(n_runs.sum()))
    shift = pair_gt[query_pair] * lane_size
    covered = (_covered_before(lanes_start, lanes_end, d_end[run] + shift)
               - _covered_before(lanes_start, lanes_end, d_start[run] + shift))
    inter = np.bincount(query_pair, weights=covered, minlength=pair_dt.size)
    da, ga = d_area[pair_dt].astype(np.float64), g_area[pair_gt].astype(np.float64)
    union = np.where(gt_crowd[pair_gt], da, da + ga - inter)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(inter > 0, inter / np.where(union > 0, union, 1), 0.0)


def pair_box_iou(dt_boxes: np.ndarray, gt_boxes: np.ndarray, pair_dt: np.ndarray, pair_gt: np.ndarray,
                 gt_crowd: np.ndarray) -> np.ndarray:
    """IoU of each (detection, ground truth) pair of ``[x, y, w, h]`` boxes (pycocotools ``bbIou``).

    >>> pair_box_iou(np.array([[0., 0, 2, 2]]), np.array([[1., 0, 2, 2]]), np.array([0]), np.array([0]),
    ...              np.array([False])).tolist()
    [0.3333333333333333]
    """
    d, g = dt_boxes[pair_dt], gt_boxes[pair_gt]
    w = np.minimum(d[:, 0] + d[:, 2], g[:, 0] + g[:, 2]) - np.maximum(d[:, 0], g[:, 0])
    h = np.minimum(d[:, 1] + d[:, 3], g[:, 1] + g[:, 3]) - np.maximum(d[:, 1], g[:, 1])
    inter = w * h
    da, ga = d[:, 2] * d[:, 3], g[:, 2] * g[:, 3]
    union = np.where(gt_crowd[pair_gt], da, da + ga - inter)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((w > 0) & (h > 0), inter / union, 0.0)


def _last_best(values: np.ndarray, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of the last maximum of ``values`` where ``allowed`` along the last axis, any allowed)."""
    masked = np.where(allowed, values, -np.inf)[..., ::-1]
    return values.shape[-1] - 1 - np.argmax(masked, axis=-1), allowed.any(axis=-1)


def greedy_match(iou: np.ndarray, n_dt: np.ndarray, gt_ignore: np.ndarray, gt_crowd: np.ndarray,
                 thresholds: np.ndarray) -> np.ndarray:
    """COCOeval's greedy matching for N groups (one image and category each), all at once.

    Parameters
    ----------
    iou : N×D×G IoUs, detections by rank (highest score first), ground truths in file
        order; padding holds -1.
    n_dt : detections of each group (groups sorted by it, most first).
    gt_ignore : A×N×G, true for crowd, out-of-area-range and padding ground truths.
    gt_crowd : N×G crowd flags.
    thresholds : the T IoU thresholds.

    Returns
    -------
    A×T×N×D index of the matched ground truth (-1: none). As ``evaluateImg``: in rank order,
    a detection takes the unmatched (or crowd) ground truth of highest IoU ≥ the threshold,
    the last one on ties, preferring any regular ground truth to an ignored one.

    >>> iou = np.array([[[0.6, 0.7], [0.9, 0.2]]])
    >>> greedy_match(iou, np.array([2]), np.zeros((1, 1, 2), bool), np.zeros((1, 2), bool), np.array([0.5]))[0, 0].tolist()
    [[1, 0]]
    """
    n_groups, depth, width = iou.shape
    areas, steps = gt_ignore.shape[0], thresholds.size
    limit = np.minimum(thresholds, 1 - 1e-10)[None, :, None, None]
    taken = np.zeros((areas, steps, n_groups, width), bool)
    match = np.full((areas, steps, n_groups, depth), -1, np.int64)
    if width == 0:
        return match
    active = np.searchsorted(-np.asarray(n_dt), -np.arange(depth), side="left")  # groups with > rank detections
    for rank in range(depth):
        n = active[rank]
        row = iou[:n, rank][None, None]                              # 1×1×n×G
        candidate = (row >= limit) & (~taken[:, :, :n] | gt_crowd[None, None, :n])
        ignored = gt_ignore[:, None, :n]
        regular_pick, has_regular = _last_best(np.broadcast_to(row, candidate.shape), candidate & ~ignored)
        ignored_pick, has_ignored = _last_best(np.broadcast_to(row, candidate.shape), candidate & ignored)
        pick = np.where(has_regular, regular_pick, np.where(has_ignored, ignored_pick, -1))
        match[:, :, :n, rank] = pick
        a, t, g = np.nonzero(pick >= 0)
        taken[a, t, g, pick[a, t, g]] = True
    return match
