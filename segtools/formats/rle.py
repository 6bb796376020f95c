"""COCO run-length encoding (RLE), byte-identical to pycocotools, in vectorised numpy.

An RLE is the dict COCO stores: ``{"size": [height, width], "counts": ...}``. The mask is
flattened in **Fortran (column-major) order** — down the first column, then the next — and
``counts`` are alternating run lengths that **start with a run of zeros** (a mask whose first
pixel is set starts with a count of 0). ``counts`` is either a list of ints ("uncompressed
RLE", what COCO uses for ``iscrowd`` annotations written by hand) or the compressed string of
pycocotools' ``rleToString``: every count after the second is stored as the difference to the
count two before it, then written 5 bits per character, least significant group first, in
ASCII 48..111 (bit 0x20 = "more characters follow", sign taken from bit 0x10 of the last).

This module never imports pycocotools (it is a test dependency only). Functions:
:func:`encode`, :func:`decode`, :func:`area`, :func:`to_bbox`, :func:`merge`, :func:`iou`,
:func:`counts_to_string`, :func:`string_to_counts`, :func:`normalise` (either counts form →
a compressed RLE); runs ⇄ RLE: :func:`runs`, :func:`crop_runs`, :func:`union_runs`,
:func:`from_runs` (many regions at once: :mod:`segtools.formats.rle_regions`).

Differences from pycocotools, on purpose: a mask is binarised with ``!= 0`` (pycocotools
compares raw byte values, so a mask holding 1 and 2 encodes to nonsense), counts strings are
``str`` (JSON-ready) rather than ``bytes`` (both are accepted), and any 2-D array layout is
accepted (no ``np.asfortranarray`` needed).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from segtools.errors import InputError

RLE = dict  # {"size": [h, w], "counts": str | list[int]}

_MAX_CHARS = 7  # a uint32 difference needs at most 33 signed bits = 7 groups of 5


# ---------------------------------------------------------------- counts <-> string


def counts_to_string(counts: Sequence[int] | np.ndarray) -> str:
    """The compressed COCO counts string for run lengths ``counts`` (pycocotools ``rleToString``).

    >>> counts_to_string([0, 3, 5])
    '035'
    """
    counts = np.asarray(counts, dtype=np.int64)
    if counts.size == 0:
        return ""
    values = counts.copy()
    values[3:] -= counts[1:-2]
    return counts_characters(values)[0].tobytes().decode("ascii")


def counts_characters(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ASCII codes, characters per value) of delta-coded counts, 5 bits per character."""
    # a signed value needs bitlen(v if v >= 0 else ~v) + 1 bits, sent 5 per character
    magnitude = np.where(values >= 0, values, ~values).astype(np.float64)
    bits = np.frexp(magnitude)[1] + 1  # frexp(0) gives exponent 0
    n_chars = (bits + 4) // 5
    which = np.repeat(np.arange(values.size), n_chars)
    first = np.cumsum(n_chars) - n_chars
    k = np.arange(which.size) - first[which]
    chars = ((values[which] >> (5 * k)) & 0x1F) | ((k < n_chars[which] - 1).astype(np.int64) << 5)
    return (chars + 48).astype(np.uint8), n_chars


def string_to_counts(text: str | bytes) -> np.ndarray:
    """Run lengths (uint32) from a compressed COCO counts string (pycocotools ``rleFrString``)."""
    try:
        raw = text.encode("ascii") if isinstance(text, str) else bytes(text)
    except UnicodeEncodeError:
        raise InputError("RLE counts string has characters outside '0'..'o'; is it a COCO RLE?") from None
    chars = np.frombuffer(raw, np.uint8).astype(np.int64) - 48
    if chars.size == 0:
        return np.zeros(0, np.uint32)
    if (chars < 0).any() or (chars > 63).any():
        raise InputError("RLE counts string has characters outside '0'..'o'; is it a COCO RLE?")
    ends = (chars & 0x20) == 0
    if not ends[-1]:
        raise InputError("RLE counts string is truncated (its last character says more follow)")
    group = np.concatenate(([0], np.cumsum(ends)[:-1]))
    starts = np.flatnonzero(np.concatenate(([True], ends[:-1])))
    k = np.arange(chars.size) - starts[group]
    if k.max() >= 13:  # more than 64 bits: not something rleToString writes
        raise InputError("RLE counts string holds a value too large for a run length")
    parts = (chars & 0x1F) << (5 * k)
    values = np.add.reduceat(parts, starts)  # groups are contiguous and ordered
    last = chars[ends]
    n_chars = np.diff(np.append(starts, chars.size))
    negative = (last & 0x10) != 0
    values[negative] -= np.left_shift(1, 5 * n_chars[negative])
    # undo the delta coding: counts[i] += counts[i-2] for i > 2 (a running sum per parity)
    out = values.copy()
    if out.size > 3:
        out[3::2] = np.cumsum(values[1::2])[1:]
        out[4::2] = np.cumsum(values[2::2])[1:]
    return out.astype(np.uint32)  # C casts to uint; valid strings are non-negative anyway


# ---------------------------------------------------------------- encode / decode


def encode_counts(mask: np.ndarray) -> np.ndarray:
    """Run lengths (uint32) of a 2-D mask (non-zero = set) in Fortran order.

    No transposed copy is made: changes between vertical neighbours are found in the array's
    own (C) order, changes across a column break separately, and the few change positions
    are then put in column-major order with a stable (radix) sort on their column.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise InputError(f"an RLE encodes a 2-D mask, got shape {mask.shape}")
    h, w = mask.shape
    if h * w == 0:
        return np.zeros(1, np.uint32)
    binary = mask if mask.dtype == bool else mask != 0
    if binary.flags.f_contiguous and not binary.flags.c_contiguous:
        flat = binary.ravel(order="F")  # already column-major: a view, no copy
        change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
        counts = np.diff(change, prepend=0, append=h * w)
        return (np.concatenate(([0], counts)) if flat[0] else counts).astype(np.uint32)
    inside = np.flatnonzero(binary[1:] != binary[:-1])   # change between rows r and r+1
    rows, cols = np.divmod(inside, w)
    across = np.flatnonzero(binary[-1, :-1] != binary[0, 1:]) + 1  # change at the top of a column
    columns = np.concatenate((across, cols))
    positions = np.concatenate((across * h, cols * h + rows + 1))
    key = columns.astype(np.uint16 if w <= 65536 else np.int64, copy=False)
    positions = positions[np.argsort(key, kind="stable")]
    counts = np.diff(positions, prepend=0, append=h * w)
    if binary[0, 0]:
        counts = np.concatenate(([0], counts))
    return counts.astype(np.uint32)


def encode(mask: np.ndarray, compressed: bool = True) -> RLE:
    """COCO RLE of one binary H×W mask (non-zero = inside), as pycocotools ``encode``.

    Parameters
    ----------
    mask : H×W array, any integer/bool dtype and memory layout.
    compressed : True → ``counts`` is the compressed string (``str``); False → a list of ints.

    >>> encode(np.array([[0, 1], [1, 1]], np.uint8))
    {'size': [2, 2], 'counts': '13'}
    """
    counts = encode_counts(mask)
    h, w = np.asarray(mask).shape
    return {"size": [int(h), int(w)], "counts": counts_to_string(counts) if compressed else counts.tolist()}


def rle_counts(rle: RLE) -> np.ndarray:
    """The run lengths of an RLE dict in either counts form, validated against its size."""
    if not isinstance(rle, dict) or "counts" not in rle or "size" not in rle:
        raise InputError("an RLE is a dict with 'size' [height, width] and 'counts'")
    counts = rle["counts"]
    if isinstance(counts, (str, bytes)):
        runs = string_to_counts(counts)
    else:
        runs = np.asarray(counts, dtype=np.int64)
        if runs.ndim != 1 or (runs < 0).any():
            raise InputError("uncompressed RLE counts must be a flat list of non-negative integers")
        runs = runs.astype(np.uint32)
    h, w = _size(rle)
    total = int(runs.sum(dtype=np.int64))
    if total != h * w:
        raise InputError(f"RLE counts cover {total} pixels but its size {h}×{w} has {h * w}")
    return runs


def _size(rle: RLE) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in rle["size"])
    except (TypeError, ValueError):
        raise InputError(f"RLE 'size' must be [height, width], not {rle.get('size')!r}") from None
    if h < 0 or w < 0:
        raise InputError(f"RLE 'size' must be non-negative, not {[h, w]}")
    return h, w


def decode(rle: RLE) -> np.ndarray:
    """The H×W uint8 mask (0/1) of an RLE in either counts form (pycocotools ``decode``)."""
    runs = rle_counts(rle)
    h, w = _size(rle)
    values = (np.arange(runs.size) & 1).astype(np.uint8)
    flat = np.repeat(values, runs)
    return flat.reshape(w, h).T


def runs(rle: RLE) -> tuple[np.ndarray, np.ndarray]:
    """Column-major ``[start, end)`` flat-index runs of the set pixels."""
    counts = rle_counts(rle).astype(np.int64)
    edges = np.cumsum(counts)
    n_ones = counts.size // 2
    return edges[0: 2 * n_ones: 2], edges[1: 2 * n_ones: 2]


def normalise(rle: RLE) -> RLE:
    """Any RLE (string or list counts, bytes or str) → the compressed form with ``str`` counts."""
    counts = rle.get("counts") if isinstance(rle, dict) else None
    if isinstance(counts, bytes):
        return {"size": list(_size(rle)), "counts": counts.decode("ascii")}
    if isinstance(counts, str):
        rle_counts(rle)  # validate
        return {"size": list(_size(rle)), "counts": counts}
    return {"size": list(_size(rle)), "counts": counts_to_string(rle_counts(rle))}


def crop_runs(crop: np.ndarray, top: int = 0, left: int = 0, height: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Column-major ``[start, end)`` runs of the set pixels of a 2-D crop placed at
    ``(top, left)`` in an image of ``height`` rows (default: the crop's), in O(crop) work."""
    crop = np.asarray(crop) != 0
    h, w = crop.shape
    height = h if height is None else height
    padded = np.zeros((w, h + 2), np.int8)  # a clear pixel above and below: runs stay in their column
    padded[:, 1:-1] = crop.T
    change = np.flatnonzero(np.diff(padded.ravel())) + 1
    starts, ends = change[0::2], change[1::2]
    column, row = np.divmod(starts, h + 2)
    base = (left + column) * height + top - 1
    return base + row, base + ends - column * (h + 2)


def union_runs(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted, disjoint, non-touching runs covering the union of ``[start, end)`` runs."""
    starts, ends = np.asarray(starts, np.int64), np.asarray(ends, np.int64)
    keep = ends > starts
    starts, ends = starts[keep], ends[keep]
    if starts.size == 0:
        return starts, ends
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], np.maximum.accumulate(ends[order])
    first = np.flatnonzero(np.concatenate(([True], starts[1:] > ends[:-1])))
    return starts[first], np.maximum.reduceat(ends, first)


def from_runs(starts: np.ndarray, ends: np.ndarray, height: int, width: int) -> RLE:
    """Compressed RLE of the union of column-major ``[start, end)`` runs in an H×W image
    (equal to :func:`encode` of the mask they cover, without making the mask)."""
    starts, ends = union_runs(starts, ends)
    total = height * width
    edges = np.empty(2 * starts.size + 2, np.int64)
    edges[0], edges[-1] = 0, total
    edges[1:-1:2], edges[2:-1:2] = starts, ends
    counts = np.diff(edges)
    if counts.size > 1 and counts[-1] == 0:
        counts = counts[:-1]  # the mask ends with a set run: no empty run after it
    return {"size": [int(height), int(width)], "counts": counts_to_string(counts)}


# ---------------------------------------------------------------- measures


def area(rle: RLE) -> int:
    """Number of set pixels (pycocotools ``area``)."""
    return int(rle_counts(rle)[1::2].sum(dtype=np.int64))


def to_bbox(rle: RLE) -> list[float]:
    """``[x, y, width, height]`` (pixels, COCO convention) of the set pixels; zeros when empty.

    Matches pycocotools ``toBbox``: a run of ones that wraps into the next column makes the
    box span the full height.
    """
    runs = rle_counts(rle).astype(np.int64)
    h, _ = _size(rle)
    m = (runs.size // 2) * 2
    if m == 0 or h == 0:
        return [0.0, 0.0, 0.0, 0.0]
    ends = np.cumsum(runs[:m])
    first = ends[0::2]          # flat index of the first set pixel of each run
    last = ends[1::2] - 1       # ... and of its last set pixel
    if not (runs[1:m:2] > 0).any():
        return [0.0, 0.0, 0.0, 0.0]
    xs_first, ys_first = first // h, first % h
    xs_last, ys_last = last // h, last % h
    x0, x1 = int(min(xs_first.min(), xs_last.min())), int(max(xs_first.max(), xs_last.max()))
    y0, y1 = int(min(ys_first.min(), ys_last.min())), int(max(ys_first.max(), ys_last.max()))
    if (xs_first < xs_last).any():
        y0, y1 = 0, h - 1
    return [float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1)]


def merge(rles: Iterable[RLE], intersect: bool = False) -> RLE:
    """Union (or intersection) of RLEs of one size, compressed (pycocotools ``merge``).

    Computed on the runs, never on the pixels: every RLE's run starts count +1 and its run
    ends -1, and the pixels covered by at least one (union) or by all (intersection) are the
    stretches between consecutive boundaries where the running sum says so.

    >>> a, b = encode(np.array([[1, 1], [0, 0]])), encode(np.array([[1, 0], [1, 0]]))
    >>> decode(merge([a, b])).tolist(), decode(merge([a, b], intersect=True)).tolist()
    ([[1, 1], [1, 0]], [[1, 0], [0, 0]])
    """
    rles = list(rles)
    if not rles:
        raise InputError("merge needs at least one RLE")
    size = _size(rles[0])
    if any(_size(r) != size for r in rles[1:]):
        raise InputError("cannot merge RLEs of different sizes: " + ", ".join(str(list(_size(r))) for r in rles))
    if len(rles) == 1:
        return normalise(rles[0])
    pairs = [runs(r) for r in rles]
    starts = np.concatenate([s for s, _ in pairs])
    ends = np.concatenate([e for _, e in pairs])
    if not intersect:
        return from_runs(starts, ends, *size)
    positions, where = np.unique(np.concatenate((starts, ends)), return_inverse=True)
    steps = np.concatenate((np.ones(starts.size, np.int64), -np.ones(ends.size, np.int64)))
    covering = np.cumsum(np.bincount(where, weights=steps, minlength=positions.size)).astype(np.int64)
    full = np.flatnonzero(covering[:-1] == len(rles))  # stretch k is [positions[k], positions[k + 1])
    return from_runs(positions[full], positions[full + 1], *size)


def _covered_before(starts: np.ndarray, ends: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Set pixels before each flat index ``x``, for sorted, disjoint ``[start, end)`` runs."""
    if starts.size == 0:
        return np.zeros(np.shape(x), np.int64)
    before = np.concatenate(([0], np.cumsum(ends - starts)))
    i = np.searchsorted(starts, x, side="right") - 1  # the last run starting at or before x
    safe = np.maximum(i, 0)
    return np.where(i >= 0, before[safe] + np.minimum(x, ends[safe]) - starts[safe], 0)


def iou(detections: Sequence[RLE], ground_truths: Sequence[RLE], iscrowd: Sequence[bool] | None = None) -> np.ndarray:
    """D×G intersection over union (pycocotools ``iou``); a crowd GT divides by the detection's area.

    Computed on the runs: the ground truths are laid end to end (ground truth g shifted by
    g·H·W), so one ``searchsorted`` finds how many of each one's pixels lie before every
    detection run boundary, and a detection run's overlap is the difference at its two ends.

    >>> a, b = encode(np.array([[1, 1], [0, 0]])), encode(np.array([[1, 0], [1, 0]]))
    >>> iou([a], [b]).tolist(), iou([a], [b], [True]).tolist()
    ([[0.3333333333333333]], [[0.5]])
    """
    crowd = np.zeros(len(ground_truths), bool) if iscrowd is None else np.asarray(iscrowd, bool)
    if crowd.size != len(ground_truths):
        raise InputError("iscrowd needs one flag per ground truth")
    sizes = {_size(r) for r in [*detections, *ground_truths]}
    if len(sizes) > 1:
        raise InputError("iou: detections and ground truths have different sizes")
    if not len(detections) or not len(ground_truths):
        return np.zeros((len(detections), len(ground_truths)))
    height, width = sizes.pop()
    total = height * width
    dt_runs, gt_runs = [runs(r) for r in detections], [runs(r) for r in ground_truths]
    dt_area = np.array([int((e - s).sum()) for s, e in dt_runs], np.float64)
    gt_area = np.array([int((e - s).sum()) for s, e in gt_runs], np.float64)
    lane = np.arange(len(gt_runs), dtype=np.int64) * total
    gt_starts = np.concatenate([s + o for (s, _), o in zip(gt_runs, lane)])
    gt_ends = np.concatenate([e + o for (_, e), o in zip(gt_runs, lane)])
    dt_starts = np.concatenate([s for s, _ in dt_runs])
    dt_ends = np.concatenate([e for _, e in dt_runs])
    overlap = (_covered_before(gt_starts, gt_ends, dt_ends[None, :] + lane[:, None])
               - _covered_before(gt_starts, gt_ends, dt_starts[None, :] + lane[:, None]))  # G × detection runs
    bounds = np.cumsum([0] + [s.size for s, _ in dt_runs])
    summed = np.concatenate((np.zeros((len(gt_runs), 1), np.int64), np.cumsum(overlap, axis=1)), axis=1)
    inter = (summed[:, bounds[1:]] - summed[:, bounds[:-1]]).T.astype(np.float64)  # D × G
    union = np.where(crowd[None, :], dt_area[:, None], dt_area[:, None] + gt_area[None, :] - inter)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(inter > 0, inter / np.maximum(union, 1), 0.0)
    return out
