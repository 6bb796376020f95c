"""Score maps as pictures: one class's probabilities through a colour map, with a colour bar."""

from __future__ import annotations

import logging

import numpy as np

from segtools.errors import InputError, UsageError
from segtools.viz.text import draw_text, measure

log = logging.getLogger("segtools")

#: Colour maps by name (OpenCV's perceptually uniform ones first).
COLOUR_MAPS = ("viridis", "magma", "inferno", "plasma", "turbo", "jet", "hot", "gray")


def _cv2_map(name: str) -> int | None:
    import cv2

    if name == "gray":
        return None
    code = getattr(cv2, f"COLORMAP_{name.upper()}", None)
    if code is None:
        raise UsageError(f"colour_map={name!r}: unknown; choose one of {', '.join(COLOUR_MAPS)}")
    return code


def colour_map_table(name: str = "viridis") -> np.ndarray:
    """(256, 3) uint8 RGB: the colour for each of 256 levels of [0, 1]."""
    import cv2

    ramp = np.arange(256, dtype=np.uint8)[:, None]
    code = _cv2_map(name)
    if code is None:
        return np.repeat(ramp, 3, axis=1)
    return cv2.applyColorMap(ramp, code)[:, 0, ::-1].copy()


def class_scores(scores: np.ndarray, class_index: int | None, name: str = "score map") -> np.ndarray:
    """The H×W probabilities of one class from a C×H×W (or H×W) score map, clipped to [0, 1].

    An H×W map is the foreground probability (class 1 of a binary problem); values outside
    [0, 1] (logits?) are clipped with a warning.
    """
    if scores.ndim == 2:
        if class_index not in (None, 1):
            raise InputError(f"{name}: an H×W score map has one (foreground) class; drop class_name or give class_name=1")
        plane = scores
    else:
        if class_index is None:
            raise UsageError(f"{name}: has {scores.shape[0]} classes; say which to draw with class_name=NAME|INDEX")
        if not 0 <= class_index < scores.shape[0]:
            raise InputError(f"{name}: class {class_index} is outside 0..{scores.shape[0] - 1}")
        plane = scores[class_index]
    plane = plane.astype(np.float32, copy=False)
    low, high = float(np.nanmin(plane)), float(np.nanmax(plane))
    if low < -1e-3 or high > 1 + 1e-3:
        log.warning("%s: scores range %.3g..%.3g, not probabilities in [0, 1]; clipping (apply softmax first)",
                    name, low, high)
    return np.clip(np.nan_to_num(plane, nan=0.0), 0.0, 1.0)


def heatmap(probabilities: np.ndarray, colour_map: str = "viridis") -> np.ndarray:
    """H×W values in [0, 1] → H×W×3 RGB ``uint8`` (256 levels, rounded to nearest).

    >>> heatmap(np.array([[0.0, 1.0]]), "gray")[0, :, 0].tolist()
    [0, 255]
    """
    levels = np.rint(np.clip(probabilities, 0.0, 1.0) * 255.0).astype(np.uint8)
    return colour_map_table(colour_map)[levels]


def colour_bar(height: int, size: int, colour_map: str = "viridis", label: str = "",
               scale: float = 1.0) -> np.ndarray:
    """A vertical colour bar (1 at the top, 0 at the bottom) with ticks at 0, 0.25 … 1 written
    times ``scale`` (100 for percentages): H×W×3 RGB, at least ``height`` px tall."""
    from PIL import Image

    pad = max(4, size // 2)
    bar_w = max(12, size)
    label_h = measure(label, size)[1] + pad if label else 0
    top, bottom = pad + measure("1", size)[1] // 2 + label_h, pad + measure("0", size)[1] // 2
    bar_h = max(16, height - top - bottom)
    tick_w = max(measure(f"{v * scale:g}", size)[0] for v in (0.25, 1.0))
    width = pad + bar_w + pad // 2 + max(6, size // 3) + pad // 2 + tick_w + pad
    width = max(width, measure(label, size)[0] + 2 * pad if label else 0)
    pixels = np.full((max(height, top + bar_h + bottom), width, 3), 255, np.uint8)
    levels = np.linspace(1.0, 0.0, bar_h)[:, None]
    pixels[top:top + bar_h, pad:pad + bar_w] = heatmap(np.repeat(levels, bar_w, axis=1), colour_map)
    tick_len = max(6, size // 3)
    canvas = Image.fromarray(pixels)
    if label:
        draw_text(canvas, (pad, pad), label, size, (0, 0, 0))
    for value in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = top + int(round((1.0 - value) * (bar_h - 1)))
        x = pad + bar_w
        canvas.paste((0, 0, 0), (x, max(0, y - max(1, size // 16)), x + tick_len, y + max(1, size // 16) + 1))
        draw_text(canvas, (x + tick_len + pad // 2, y), f"{value * scale:g}", size, (0, 0, 0), anchor="lm")
    return np.asarray(canvas)
