"""Instances over a photo: a colour per instance, its outline, a "class score" label; and the
instance error view (TP / FP / FN at an IoU threshold, matched greedily by score).

Instances are held as one RLE per object (:class:`InstanceSet`), whether they come from an
instance-id mask (:func:`segtools.viz.instance_inputs.from_instance_mask`) or a COCO results
JSON, so overlapping detections keep their own shapes until they are painted — lowest score
first, so the most confident instance owns each contested pixel (the instance-mask rule).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from segtools.errors import InputError, UsageError
from segtools.formats import rle as rlelib
from segtools.viz.error_map import CLASS_ERROR_COLOURS

#: Colours of the error view: a true positive, a false positive, a false negative (as the
#: one-class error map draws them).
TP_COLOUR, FP_COLOUR, FN_COLOUR = CLASS_ERROR_COLOURS[1], CLASS_ERROR_COLOURS[2], CLASS_ERROR_COLOURS[3]


@dataclass
class InstanceSet:
    """The instances of one image.

    Attributes
    ----------
    height, width : the image size in pixels; every RLE has this size.
    rles : one compressed RLE per instance.
    category_ids : (N,) int64 category of each instance.
    scores : (N,) float64 confidence in [0, 1] (NaN: none, as for ground truth).
    crowd : (N,) bool, ``iscrowd`` regions of a ground truth.
    names : category id → name (a missing id is shown as ``class N``).
    """

    height: int
    width: int
    rles: list = field(default_factory=list)
    category_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    crowd: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    names: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.category_ids = np.asarray(self.category_ids, np.int64).reshape(-1)
        self.scores = np.asarray(self.scores, np.float64).reshape(-1)
        self.crowd = np.asarray(self.crowd, bool).reshape(-1)
        if not self.scores.size and self.rles:
            self.scores = np.full(len(self.rles), np.nan)
        if not self.crowd.size and self.rles:
            self.crowd = np.zeros(len(self.rles), bool)
        if not len(self.rles) == self.category_ids.size == self.scores.size == self.crowd.size:
            raise InputError("instances: rles, category_ids, scores and crowd need one entry per instance")
        for rle in self.rles:
            if tuple(int(v) for v in rle["size"]) != (self.height, self.width):
                raise InputError(f"instances: an RLE is {rle['size'][1]}×{rle['size'][0]} px but the image is "
                                 f"{self.width}×{self.height} px")

    def __len__(self) -> int:
        return len(self.rles)

    def select(self, keep: np.ndarray) -> "InstanceSet":
        """The instances where the boolean ``keep`` is true."""
        keep = np.asarray(keep, bool)
        return InstanceSet(self.height, self.width, [r for r, k in zip(self.rles, keep) if k],
                           self.category_ids[keep], self.scores[keep], self.crowd[keep], self.names)

    def label(self, index: int) -> str:
        """``"car 0.87"``: the class name and the score (two decimals) of instance ``index``."""
        cid = int(self.category_ids[index])
        text = str(self.names.get(cid, f"class_{cid}"))
        score = self.scores[index]
        return text if np.isnan(score) else f"{text} {score:.2f}"


def painted_ids(instances: InstanceSet) -> np.ndarray:
    """H×W int64: 1 + the index of the instance owning each pixel (0: none), painted lowest
    score first so the most confident instance owns a contested pixel (no score paints first).

    >>> mask = np.zeros((2, 3), np.uint8); mask[:, :2] = 1
    >>> other = np.zeros((2, 3), np.uint8); other[:, 1:] = 1
    >>> s = InstanceSet(2, 3, [rlelib.encode(mask), rlelib.encode(other)], [1, 1], [0.9, 0.5])
    >>> painted_ids(s).tolist()
    [[1, 1, 2], [1, 1, 2]]
    """
    from segtools.formats.polygons import runs_to_indices

    flat = np.zeros(instances.height * instances.width, np.int64)
    order = np.argsort(np.nan_to_num(instances.scores, nan=-np.inf), kind="stable")
    for index in order.tolist():
        flat[runs_to_indices(*rlelib.runs(instances.rles[index]))] = index + 1
    return flat.reshape(instances.width, instances.height).T


def _base(image: np.ndarray | None, height: int, width: int) -> np.ndarray:
    from segtools.io.images import to_rgb8

    if image is None:
        return np.zeros((height, width, 3), np.uint8)
    base = to_rgb8(np.asarray(image))
    if base.shape[:2] != (height, width):
        raise InputError(f"instances are {width}×{height} px but the image is {base.shape[1]}×{base.shape[0]} px; "
                         "give the image they were made from")
    return base


def _fill_and_outline(base: np.ndarray, owner: np.ndarray, colours: np.ndarray, alpha: float,
                      thickness: int) -> np.ndarray:
    """Blend ``colours[owner]`` over ``base`` where ``owner > 0`` and draw each region's outline opaque."""
    from segtools.viz.overlay import blend, label_boundaries

    drawn = owner > 0
    painted = colours[owner]
    out = blend(base, painted, alpha, drawn)
    edges = label_boundaries(owner.astype(np.float32), thickness) & drawn
    out[edges] = painted[edges]
    return out


def _labels(picture: np.ndarray, instances: InstanceSet, colours: np.ndarray, size: int) -> np.ndarray:
    """Each instance's label at the top left of its box, on a patch of its colour."""
    from PIL import Image, ImageDraw

    from segtools.viz.text import draw_text, measure, readable_on

    canvas = Image.fromarray(np.ascontiguousarray(picture))
    draw = ImageDraw.Draw(canvas)
    for index in range(len(instances)):
        x, y, w, h = rlelib.to_bbox(instances.rles[index])
        if w <= 0 or h <= 0:
            continue
        text = instances.label(index)
        text_w, text_h = measure(text, size)
        left = int(min(max(x, 0), max(instances.width - text_w - 2, 0)))
        top = int(y) - text_h - 2 if y >= text_h + 2 else int(y)
        colour = tuple(int(c) for c in colours[index + 1])
        draw.rectangle([left, top, left + text_w + 2, top + text_h + 1], fill=colour)
        draw_text(canvas, (left + 1, top), text, size, readable_on(colour))
    return np.asarray(canvas)


def _check_drawing(alpha: float, thickness: int | None, min_score: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise UsageError(f"alpha={alpha}: must be in [0, 1]")
    if thickness is not None and thickness < 1:
        raise UsageError(f"thickness={thickness}: must be at least 1 px")
    if not 0.0 <= min_score <= 1.0:
        raise UsageError(f"min_score={min_score}: must be in [0, 1]")


def draw_instances(image: np.ndarray | None, instances: InstanceSet, *, min_score: float = 0.0, alpha: float = 0.5,
                   thickness: int | None = None, text_size: int | None = None, labels: bool = True) -> np.ndarray:
    """Instances over ``image``: H×W×3 ``uint8``.

    Parameters
    ----------
    image : the photo (grey, RGB or RGBA, 8 or 16 bit), or ``None`` for black.
    instances : what to draw; those scoring below ``min_score`` are left out (instances
        without a score are always drawn).
    alpha : opacity of the fill in [0, 1]; each instance also gets an opaque outline
        ``thickness`` px wide (default from the image size) in its colour.
    text_size : label height in pixels (default from the image size); ``labels=False``
        draws no labels.

    Returns
    -------
    The picture; instance ``i`` (after ``min_score``) has colour
    ``segtools.viz.palette.instance_palette(n + 1)[i + 1]``.

    Examples
    --------
    >>> mask = np.zeros((4, 6), np.uint8); mask[1:3, 1:4] = 1
    >>> s = InstanceSet(4, 6, [rlelib.encode(mask)], [1], [0.9], names={1: "car"})
    >>> out = draw_instances(None, s, alpha=1.0, labels=False)
    >>> out[0, 0].tolist() == [0, 0, 0], out[2, 2].tolist() == instance_colours(1)[1].tolist()
    (True, True)
    """
    from segtools.viz.overlay import default_thickness
    from segtools.viz.text import text_size_for

    _check_drawing(alpha, thickness, min_score)
    shown = instances.select(~(instances.scores < min_score))
    base = _base(image, shown.height, shown.width)
    colours = instance_colours(len(shown))
    out = _fill_and_outline(base, painted_ids(shown), colours, alpha,
                            thickness or default_thickness(shown.height, shown.width))
    if labels and len(shown):
        out = _labels(out, shown, colours, text_size or text_size_for(shown.height, shown.width))
    return out


def instance_colours(count: int) -> np.ndarray:
    """(count + 1, 3) uint8: black, then one distinct colour per instance (the instance palette)."""
    from segtools.viz.palette import instance_palette

    return instance_palette(count + 1)


def match_instances(pred: InstanceSet, gt: InstanceSet, iou_threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching as COCO does it at one IoU threshold: predictions by descending score
    each take the best still-unmatched ground truth of the same category with IoU ≥
    ``iou_threshold``; one that only overlaps a crowd region that much is neither right nor
    wrong.

    Returns
    -------
    pred_status : (P,) int8, 1 true positive, 0 false positive, -1 matched a crowd region.
    gt_matched : (G,) bool, the ground truths found (crowd regions count as found).

    >>> a = np.zeros((2, 4), np.uint8); a[:, :2] = 1
    >>> b = np.zeros((2, 4), np.uint8); b[:, 2:] = 1
    >>> gt = InstanceSet(2, 4, [rlelib.encode(a), rlelib.encode(b)], [1, 1])
    >>> pred = InstanceSet(2, 4, [rlelib.encode(a), rlelib.encode(a)], [1, 1], [0.5, 0.9])
    >>> status, found = match_instances(pred, gt)
    >>> status.tolist(), found.tolist()
    ([0, 1], [True, False])
    """
    if not 0.0 <= iou_threshold <= 1.0:
        raise UsageError(f"iou_threshold={iou_threshold}: must be in [0, 1]")
    if (pred.height, pred.width) != (gt.height, gt.width):
        raise InputError(f"prediction is {pred.width}×{pred.height} px but the ground truth is "
                         f"{gt.width}×{gt.height} px; they must be the same size")
    status = np.zeros(len(pred), np.int8)
    found = gt.crowd.copy()
    ious = rlelib.iou(pred.rles, gt.rles, gt.crowd) if len(pred) and len(gt) else np.zeros((len(pred), len(gt)))
    same = pred.category_ids[:, None] == gt.category_ids[None, :]
    ious = np.where(same, ious, -1.0)
    taken = np.zeros(len(gt), bool)
    for d in np.argsort(-np.nan_to_num(pred.scores, nan=-np.inf), kind="stable").tolist():
        open_iou = np.where(taken | gt.crowd, -1.0, ious[d])
        best = int(np.argmax(open_iou)) if len(gt) else -1
        if best >= 0 and open_iou[best] >= iou_threshold:
            status[d], taken[best], found[best] = 1, True, True
        elif len(gt) and np.where(gt.crowd, ious[d], -1.0).max() >= iou_threshold:
            status[d] = -1
    return status, found


def draw_instance_errors(image: np.ndarray | None, pred: InstanceSet, gt: InstanceSet, *, iou_threshold: float = 0.5,
                         min_score: float = 0.0, alpha: float = 0.5, thickness: int | None = None) -> np.ndarray:
    """The error view: true positives green, false positives red, missed ground truths
    (false negatives) blue, each filled with ``alpha`` and outlined; predictions matching
    only a crowd region are not drawn. H×W×3 ``uint8``.

    >>> a = np.zeros((4, 8), np.uint8); a[:, :3] = 1
    >>> b = np.zeros((4, 8), np.uint8); b[:, 5:] = 1
    >>> gt = InstanceSet(4, 8, [rlelib.encode(a), rlelib.encode(b)], [1, 1])
    >>> pred = InstanceSet(4, 8, [rlelib.encode(a)], [1], [0.9])
    >>> out = draw_instance_errors(None, pred, gt, alpha=1.0)
    >>> out[1, 1].tolist() == list(TP_COLOUR), out[1, 6].tolist() == list(FN_COLOUR)
    (True, True)
    """
    from segtools.viz.overlay import default_thickness

    _check_drawing(alpha, thickness, min_score)
    pred = pred.select(~(pred.scores < min_score))
    status, found = match_instances(pred, gt, iou_threshold)
    missed = gt.select(~found)
    shown = pred.select(status >= 0)
    kinds = status[status >= 0]
    both = InstanceSet(gt.height, gt.width, missed.rles + shown.rles,
                       np.concatenate([missed.category_ids, shown.category_ids]),
                       np.concatenate([np.full(len(missed), -1.0), np.nan_to_num(shown.scores, nan=0.0)]),
                       np.zeros(len(missed) + len(shown), bool))
    colours = np.array([(0, 0, 0)] + [FN_COLOUR] * len(missed)
                       + [TP_COLOUR if k == 1 else FP_COLOUR for k in kinds.tolist()], np.uint8).reshape(-1, 3)
    base = _base(image, gt.height, gt.width)
    return _fill_and_outline(base, painted_ids(both), colours, alpha, thickness or default_thickness(gt.height, gt.width))


def instance_error_panel(image: np.ndarray | None, pred: InstanceSet, gt: InstanceSet, *, iou_threshold: float = 0.5,
                         min_score: float = 0.0, alpha: float = 0.5, thickness: int | None = None,
                         text_size: int | None = None) -> np.ndarray:
    """Ground truth (instances with labels) beside the error view (:func:`draw_instance_errors`),
    titled, as one picture."""
    from segtools.viz.panel import compose_panel

    truth = draw_instances(image, gt, alpha=alpha, thickness=thickness, text_size=text_size)
    errors = draw_instance_errors(image, pred, gt, iou_threshold=iou_threshold, min_score=min_score, alpha=alpha,
                                  thickness=thickness)
    title = f"IoU {iou_threshold:g}: TP green, FP red, FN blue"
    return compose_panel([("ground truth", truth), (title, errors)], columns=2, text_size=text_size)
