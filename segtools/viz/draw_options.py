"""The records every drawing shares: how to draw (:class:`DrawOptions`) and what was read
for one item (:class:`Inputs`).

Kept apart from :mod:`segtools.viz.render` (which reads, draws and writes) and
:mod:`segtools.viz.draw_modes` (the pictures) so that both import them and neither imports
the other's records. Plain picklable data: a batch sends them to worker processes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segtools.errors import UsageError
from segtools.io.meta import ClassMeta

MODES = ("mask", "errors", "panel", "heatmap")


@dataclass(frozen=True)
class DrawOptions:
    """How to draw (the options of ``segtools visualize``).

    Attributes
    ----------
    mode : ``mask`` (colours, or an overlay on the image), ``errors`` (against the ground
        truth) or ``panel`` (image | ground truth | prediction | errors).
    classes : class names and palette to use instead of the mask's own.
    colours : colour→class map for RGB colour masks.
    ignore_index : the value drawn as ignored; used when ``ignore_given`` (``None``: none).
    alpha : opacity of colours over the image, in [0, 1].
    contours : outline the regions instead of filling them; ``thickness`` in pixels.
    legend : ``None``: on for panels, error maps and heatmaps, off for masks and overlays.
    class_name : one class (name or index): the heatmap of a score map, TP/FP/FN errors.
    instances : values are instance ids; ``None``: from the metadata (or 16-bit, unnamed).
    ids : write instance ids at their centroids.
    transparent : ignored pixels transparent (RGBA) when not over an image.
    colour_map : for heatmaps (:data:`segtools.viz.heatmap.COLOUR_MAPS`).
    text_size : text height in pixels (``None``: from the picture size).
    """

    mode: str = "mask"
    classes: ClassMeta | None = None
    colours: ClassMeta | None = None
    ignore_index: int | None = None
    ignore_given: bool = False
    alpha: float = 0.5
    contours: bool = False
    thickness: int | None = None
    legend: bool | None = None
    class_name: str | None = None
    instances: bool | None = None
    ids: bool = True
    transparent: bool = False
    colour_map: str = "viridis"
    text_size: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UsageError(f"mode={self.mode!r}: unknown; choose one of {', '.join(MODES)}")
        if not 0.0 <= self.alpha <= 1.0:
            raise UsageError(f"alpha={self.alpha}: must be in [0, 1]")
        if self.thickness is not None and self.thickness < 1:
            raise UsageError(f"thickness={self.thickness}: must be at least 1 px")


@dataclass
class Inputs:
    """What was read for one item: a label mask or a score map (the other ``None``), its
    class metadata, and the image and ground truth when given."""

    labels: np.ndarray | None
    scores: np.ndarray | None
    meta: ClassMeta
    image: np.ndarray | None
    gt: np.ndarray | None
    name: str
    instances: bool
