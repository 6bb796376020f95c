"""Validation during training: per-class Dice and IoU from the metrics core.

:class:`DiceMonitor` accumulates one exact confusion matrix over the validation set
(:class:`segtools.metrics.confusion.ConfusionAccumulator`) and turns it into the same report
``segtools metrics`` prints (:func:`segtools.metrics.scores.scores`), so the numbers a run
selects ``best.pt`` by are the numbers a user re-measures later.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from segtools.metrics.confusion import ConfusionAccumulator
from segtools.metrics.scores import scores


class DiceMonitor:
    """Running per-class Dice/IoU over a validation pass.

    Examples
    --------
    >>> monitor = DiceMonitor(2, ignore_index=255, class_names=["bg", "fg"])
    >>> monitor.update(np.array([[0, 1, 1]]), np.array([[0, 1, 255]]))
    >>> report = monitor.report()
    >>> report["miou"], [row["dice"] for row in report["per_class"]]
    (1.0, [1.0, 1.0])
    """

    def __init__(self, num_classes: int, ignore_index: int | None = 255,
                 class_names: Sequence[str] | None = None) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.class_names = list(class_names) if class_names is not None else None
        self.reset()

    def reset(self) -> None:
        self.accumulator = ConfusionAccumulator(self.num_classes, self.ignore_index)

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add predictions and ground truth: H×W, or N×H×W for a batch."""
        pred, gt = np.asarray(pred), np.asarray(gt)
        if pred.ndim == 2:
            pred, gt = pred[None], gt[None]
        for one_pred, one_gt in zip(pred, gt):
            self.accumulator.update(one_pred, one_gt)

    @property
    def images(self) -> int:
        return self.accumulator.images

    def report(self) -> dict:
        """The metrics report (``miou``, ``mean_dice``, ``per_class`` with ``iou``/``dice``, …)."""
        names = self.class_names if self.class_names and len(self.class_names) == self.num_classes else None
        report = scores(self.accumulator.confusion, names, self.accumulator.missed)
        report["images"] = self.accumulator.images
        return report
