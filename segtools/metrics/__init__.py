"""Segmentation metrics: exact confusion matrices, scores, boundary and distance metrics, gates.

Importable without torch. Submodules: :mod:`~segtools.metrics.confusion`,
:mod:`~segtools.metrics.scores`, :mod:`~segtools.metrics.boundary`,
:mod:`~segtools.metrics.distances`, :mod:`~segtools.metrics.gates`,
:mod:`~segtools.metrics.report`.
"""

from segtools.metrics.confusion import ConfusionAccumulator, confusion_and_missed, confusion_matrix
from segtools.metrics.scores import scores

__all__ = ["ConfusionAccumulator", "confusion_and_missed", "confusion_matrix", "scores"]
