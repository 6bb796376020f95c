"""Pictures of mask frames: each frame's labels coloured, or drawn over its photo frame."""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, Optional

import numpy as np

from segtools.io.meta import ClassMeta


def frame_painter(meta: Optional[ClassMeta], *, alpha: float = 0.5, contours: bool = False,
                  thickness: Optional[int] = None) -> Callable[[Iterable], Iterator[np.ndarray]]:
    """A ``process`` for :func:`segtools.inference.video.run_frames`: items are label masks
    (coloured in the palette) or ``(labels, photo)`` pairs (drawn over the photo as
    :func:`~segtools.viz.overlay.overlay_labels` draws one image); yields H×W×3 RGB pictures."""
    from segtools.viz.colourise import colourise
    from segtools.viz.overlay import overlay_labels

    def paint(items: Iterable) -> Iterator[np.ndarray]:
        for item in items:
            if isinstance(item, tuple):
                labels, photo = item
                yield overlay_labels(photo, labels, meta, alpha=alpha, contours=contours, thickness=thickness)
            else:
                yield colourise(item, meta)

    return paint
