"""Legends: colour swatches with class names, area shares and IoU, beside a picture."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segtools.io.meta import ClassMeta
from segtools.labels import value_counts
from segtools.viz.palette import class_names
from segtools.viz.text import draw_text, measure

BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)
SWATCH_BORDER = (128, 128, 128)


@dataclass(frozen=True)
class LegendRow:
    """One legend line: a colour swatch and text cells (name, then columns such as area, IoU)."""

    colour: tuple[int, int, int]
    cells: tuple[str, ...]


def class_rows(labels: np.ndarray, meta: ClassMeta | None, palette: np.ndarray,
               iou: np.ndarray | None = None, gt_labels: np.ndarray | None = None) -> list[LegendRow]:
    """Legend rows for the classes present in ``labels`` (or in ``gt_labels``), largest first.

    Area share is over the labelled (not ignored) pixels of ``labels``. With ``iou`` (per class,
    NaN when undefined) a third column gives it as a percentage.
    """
    ignore = meta.ignore_index if meta is not None else 255
    counts = value_counts(labels)
    gt_counts = value_counts(gt_labels, "ground truth") if gt_labels is not None else counts[:0]
    size = max(len(palette), len(counts), len(gt_counts))
    counts = _padded(counts, size)
    present = counts + _padded(gt_counts, size)
    if ignore is not None and 0 <= ignore < len(counts):
        counts[ignore] = 0
        present[ignore] = 0
    labelled = max(int(counts.sum()), 1)
    names = class_names(meta, len(counts))
    order = np.lexsort((np.arange(len(counts)), -counts))
    rows = []
    for index in order[present[order] > 0].tolist():
        cells = [names[index], f"{100.0 * counts[index] / labelled:.1f}%"]
        if iou is not None:
            value = float(iou[index]) if index < len(iou) else float("nan")
            cells.append("IoU n/a" if np.isnan(value) else f"IoU {100.0 * value:.1f}")
        colour = tuple(int(c) for c in palette[index]) if index < len(palette) else (0, 0, 0)
        rows.append(LegendRow(colour, tuple(cells)))
    return rows


def _padded(counts: np.ndarray, size: int) -> np.ndarray:
    return np.pad(counts, (0, size - len(counts)))


def draw_legend(rows: list[LegendRow], height: int, size: int, header: str | None = None) -> np.ndarray:
    """A legend panel, H×W×3 RGB: at least ``height`` px tall; rows wrap into more columns.

    ``size`` is the text size in pixels; swatches are as tall as the text.
    """
    from PIL import Image

    line = measure("Ag", size)[1]
    row_h = int(round(line * 1.35))
    pad = max(4, size // 2)
    swatch = max(8, int(round(line * 0.8)))
    n_cells = max((len(r.cells) for r in rows), default=1)
    widths = [max((measure(r.cells[i], size)[0] for r in rows if i < len(r.cells)), default=0)
              for i in range(n_cells)]
    gap = max(6, size)
    col_w = pad + swatch + gap // 2 + sum(widths) + gap * (n_cells - 1) + pad
    top = pad + (row_h if header else 0)
    per_column = max(1, (max(height, top + row_h + pad) - top - pad) // row_h)
    n_cols = max(1, -(-len(rows) // per_column))
    panel_h = max(height, top + min(len(rows), per_column) * row_h + pad)
    header_w = measure(header, size)[0] + 2 * pad if header else 0
    canvas = Image.new("RGB", (max(col_w * n_cols, header_w), panel_h), BACKGROUND)
    if header:
        draw_text(canvas, (pad, pad), header, size, INK)
    pixels = np.asarray(canvas).copy()
    for i, row in enumerate(rows):
        x0 = (i // per_column) * col_w + pad
        y0 = top + (i % per_column) * row_h + (row_h - swatch) // 2
        pixels[y0:y0 + swatch, x0:x0 + swatch] = SWATCH_BORDER
        pixels[y0 + 1:y0 + swatch - 1, x0 + 1:x0 + swatch - 1] = row.colour
    canvas = Image.fromarray(pixels)
    for i, row in enumerate(rows):
        x = (i // per_column) * col_w + pad + swatch + gap // 2
        y = top + (i % per_column) * row_h + row_h // 2
        for j, cell in enumerate(row.cells):
            if j == 0:
                draw_text(canvas, (x, y), cell, size, INK, anchor="lm")
            else:  # numbers right-aligned in their column
                draw_text(canvas, (x + widths[j], y), cell, size, INK, anchor="rm")
            x += widths[j] + gap
    return np.asarray(canvas)


def attach(picture: np.ndarray, panel: np.ndarray, side: str = "right") -> np.ndarray:
    """Put ``panel`` beside (``right``) or under (``bottom``) ``picture``, padding with white."""
    if picture.ndim == 3 and picture.shape[2] == 4 and panel.shape[2] == 3:
        panel = np.concatenate([panel, np.full(panel.shape[:2] + (1,), 255, np.uint8)], axis=2)
    channels = picture.shape[2]
    fill = (255,) * channels
    if side == "right":
        height = max(picture.shape[0], panel.shape[0])
        return np.concatenate([_pad_to(picture, height, picture.shape[1], fill),
                               _pad_to(panel, height, panel.shape[1], fill)], axis=1)
    width = max(picture.shape[1], panel.shape[1])
    return np.concatenate([_pad_to(picture, picture.shape[0], width, fill),
                           _pad_to(panel, panel.shape[0], width, fill)], axis=0)


def _pad_to(picture: np.ndarray, height: int, width: int, fill) -> np.ndarray:
    if picture.shape[:2] == (height, width):
        return picture
    out = np.empty((height, width, picture.shape[2]), np.uint8)
    out[...] = fill
    out[: picture.shape[0], : picture.shape[1]] = picture
    return out
