"""The settings of an instance evaluation (COCO's by default) and their option strings.

COCO: IoU thresholds 0.50:0.95 in steps of 0.05, 101 recall points, at most 1, 10 and 100
detections per image, areas (pixels) ``all`` 0..1e10, ``small`` 0..32², ``medium`` 32²..96²,
``large`` 96²..1e10 (both ends inclusive, as COCOeval compares). Other protocols change
these: LVIS evaluates up to 300 detections per image (``max_dets="300"``) and lets an
image's unlisted categories count no false positives (its federated "not exhaustive" and
"negative" lists — not modelled here); Cityscapes instance AP uses IoU thresholds
0.50:0.95, no area ranges but a 100-pixel minimum size and its own "ignore in eval"
classes, and AP at 50 m / 100 m distances — not modelled either.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from segtools.errors import UsageError

COCO_AREA_RANGES = {"all": (0.0, 1e10), "small": (0.0, 32.0 ** 2), "medium": (32.0 ** 2, 96.0 ** 2),
                    "large": (96.0 ** 2, 1e10)}
IOU_TYPES = ("segm", "bbox")


def _coco_thresholds(start: float, stop: float, step: float) -> tuple[float, ...]:
    """``start:stop:step`` inclusive, as COCOeval builds its grids (linspace, not arange)."""
    return tuple(float(v) for v in np.linspace(start, stop, int(np.round((stop - start) / step)) + 1, endpoint=True))


@dataclass(frozen=True)
class Protocol:
    """What an instance evaluation measures (see the module doc for COCO's defaults).

    >>> p = Protocol.parse("0.5,0.75", "100", None)
    >>> p.iou_thresholds, p.max_dets, list(p.area_ranges)
    ((0.5, 0.75), (100,), ['all', 'small', 'medium', 'large'])
    """

    iou_type: str = "segm"
    iou_thresholds: tuple = field(default_factory=lambda: _coco_thresholds(0.5, 0.95, 0.05))
    recall_thresholds: tuple = field(default_factory=lambda: _coco_thresholds(0.0, 1.0, 0.01))
    max_dets: tuple = (1, 10, 100)
    area_ranges: dict = field(default_factory=lambda: dict(COCO_AREA_RANGES))

    def __post_init__(self) -> None:
        if self.iou_type not in IOU_TYPES:
            raise UsageError(f"iou_type={self.iou_type!r}: expected one of {', '.join(IOU_TYPES)}")
        thresholds = tuple(float(v) for v in np.asarray(self.iou_thresholds, np.float64).ravel())
        if not thresholds or not all(0.0 <= v <= 1.0 for v in thresholds):
            raise UsageError(f"iou_thresholds={list(thresholds)}: give one or more IoUs in 0..1")
        recall = tuple(float(v) for v in np.asarray(self.recall_thresholds, np.float64).ravel())
        if not recall or not all(0.0 <= v <= 1.0 for v in recall) or list(recall) != sorted(recall):
            raise UsageError("recall_thresholds: give increasing recalls in 0..1")
        try:
            dets = tuple(sorted(int(v) for v in self.max_dets))  # COCOeval sorts them too
        except (TypeError, ValueError):
            raise UsageError(f"max_dets={self.max_dets!r}: give positive integers") from None
        if not dets or dets[0] < 1:
            raise UsageError(f"max_dets={list(dets)}: give positive integers")
        ranges = {}
        for label, bounds in dict(self.area_ranges).items():
            low, high = (float(v) for v in bounds)
            if not (0 <= low <= high) or not label or not str(label).isidentifier():
                raise UsageError(f"area_ranges: {label}={low}:{high} needs a name and 0 <= low <= high (pixels)")
            ranges[str(label)] = (low, high)
        if not ranges:
            raise UsageError("area_ranges: give at least one range")
        object.__setattr__(self, "iou_thresholds", thresholds)
        object.__setattr__(self, "recall_thresholds", recall)
        object.__setattr__(self, "max_dets", dets)
        object.__setattr__(self, "area_ranges", ranges)

    @classmethod
    def parse(cls, iou_thresholds: str | None, max_dets: str | None, area_ranges: str | None,
              iou_type: str = "segm") -> "Protocol":
        """A protocol from option strings; ``None`` keeps COCO's value.

        ``iou_thresholds``: ``START:STOP:STEP`` (inclusive, ``0.5:0.95:0.05``) or ``V,W,…``;
        ``max_dets``: ``1,10,100``; ``area_ranges``: ``NAME=LOW:HIGH,…`` in pixels
        (``all=0:1e10,small=0:1024``; ``inf`` allowed).
        """
        options: dict = {"iou_type": iou_type}
        if iou_thresholds is not None:
            options["iou_thresholds"] = _parse_thresholds(iou_thresholds)
        if max_dets is not None:
            try:
                options["max_dets"] = tuple(int(v) for v in max_dets.split(","))
            except ValueError:
                raise UsageError(f"max_dets={max_dets!r}: give integers separated by commas (1,10,100)") from None
        if area_ranges is not None:
            options["area_ranges"] = _parse_ranges(area_ranges)
        return cls(**options)

    def to_dict(self) -> dict:
        """JSON-ready form (exact: floats keep every bit through JSON)."""
        return {"iou_type": self.iou_type, "iou_thresholds": list(self.iou_thresholds),
                "recall_thresholds": list(self.recall_thresholds), "max_dets": list(self.max_dets),
                "area_ranges": [[k, lo, hi] for k, (lo, hi) in self.area_ranges.items()]}

    @classmethod
    def from_dict(cls, data: dict) -> "Protocol":
        """The inverse of :meth:`to_dict`."""
        return cls(iou_type=data["iou_type"], iou_thresholds=tuple(data["iou_thresholds"]),
                   recall_thresholds=tuple(data["recall_thresholds"]), max_dets=tuple(data["max_dets"]),
                   area_ranges={str(k): (lo, hi) for k, lo, hi in data["area_ranges"]})


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not a number") from None
    if value != value:
        raise UsageError(f"{what}: {text!r} is not a number")
    return value


def _parse_thresholds(text: str) -> tuple[float, ...]:
    what = f"iou_thresholds={text!r}"
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise UsageError(f"{what}: give START:STOP:STEP (0.5:0.95:0.05) or values V,W,...")
        start, stop, step = (_number(p, what) for p in parts)
        if step <= 0 or stop < start:
            raise UsageError(f"{what}: STEP must be positive and STOP at least START")
        return _coco_thresholds(start, stop, step)
    return tuple(_number(p, what) for p in text.split(","))


def _parse_ranges(text: str) -> dict:
    what = f"area_ranges={text!r}"
    ranges = {}
    for part in text.split(","):
        label, eq, bounds = part.partition("=")
        low, colon, high = bounds.partition(":")
        if not eq or not colon:
            raise UsageError(f"{what}: give NAME=LOW:HIGH,... in pixels (small=0:1024)")
        ranges[label.strip()] = (_number(low, what), _number(high, what))
    return ranges
