"""Confusion-matrix heatmaps from a ``segtools metrics`` JSON report."""

from __future__ import annotations

import json
import math

import numpy as np

from segtools.errors import InputError, UsageError
from segtools.viz.heatmap import colour_bar, colour_map_table
from segtools.viz.text import draw_text, measure, readable_on

NORMALISE = ("row", "column", "none")
EMPTY_CELL = (235, 235, 235)


def load_report_confusion(text: str | bytes, source: str = "report") -> tuple[np.ndarray, list[str], dict]:
    """The confusion matrix (C×C int64, rows ground truth), class names and the report itself,
    from the JSON text (or its UTF-8 bytes) of a ``segtools metrics --format json`` report."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{source}: not a JSON text file") from None
    try:
        report = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno}); "
                         "expected the output of `segtools metrics --format json`") from None
    if not isinstance(report, dict) or "confusion" not in report:
        raise InputError(f"{source}: has no 'confusion' matrix; write one with `segtools metrics --format json`")
    try:
        confusion = np.asarray(report["confusion"], dtype=np.int64)
    except (TypeError, ValueError):
        raise InputError(f"{source}: 'confusion' is not a matrix of integer counts") from None
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1] or confusion.shape[0] == 0:
        raise InputError(f"{source}: 'confusion' must be a square C×C matrix, not shape {confusion.shape}")
    if (confusion < 0).any():
        raise InputError(f"{source}: 'confusion' holds negative counts")
    size = confusion.shape[0]
    names = report.get("class_names") or [f"class_{i}" for i in range(size)]
    if len(names) != size:
        raise InputError(f"{source}: {len(names)} class names for a {size}×{size} confusion matrix")
    return confusion, [str(n) for n in names], report


def confusion_title(report: dict, normalise: str = "row") -> str:
    """The default title: what the cells show, and the report's mIoU when it has one.

    >>> confusion_title({"miou": 0.5}), confusion_title({}, "none")
    ('confusion (row-normalised %) · mIoU 50.0', 'confusion (pixel counts)')
    """
    view = {"row": "row-normalised %", "column": "column-normalised %", "none": "pixel counts"}.get(normalise, "")
    miou = report.get("miou")
    known = isinstance(miou, (int, float)) and not isinstance(miou, bool) and not math.isnan(miou)
    return f"confusion ({view})" + (f" · mIoU {100 * miou:.1f}" if known else "")


def normalised(confusion: np.ndarray, normalise: str = "row") -> np.ndarray:
    """Fractions in [0, 1]: of each ground-truth row (recall view), each predicted column
    (precision view), or of the largest count (``none``); NaN for an empty row/column.

    >>> normalised(np.array([[3, 1], [0, 0]])).tolist()
    [[0.75, 0.25], [nan, nan]]
    """
    if normalise not in NORMALISE:
        raise UsageError(f"normalise={normalise!r}: must be one of {', '.join(NORMALISE)}")
    counts = confusion.astype(np.float64)
    if normalise == "row":
        totals = counts.sum(axis=1, keepdims=True)
    elif normalise == "column":
        totals = counts.sum(axis=0, keepdims=True)
    else:
        totals = np.full((1, 1), max(counts.max(initial=0.0), 1.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(totals > 0, counts / np.where(totals > 0, totals, 1.0), np.nan)


def compact_count(count: int) -> str:
    """A count in at most four characters: ``999``, ``1.2k``, ``35M``.

    >>> [compact_count(n) for n in (999, 1234, 35_000_000)]
    ['999', '1.2k', '35M']
    """
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if count >= factor:
            value = count / factor
            return f"{value:.1f}{suffix}" if value < 10 else f"{value:.0f}{suffix}"
    return str(int(count))


def draw_confusion(confusion: np.ndarray, names: list[str], *, normalise: str = "row",
                   cell: int | None = None, colour_map: str = "viridis", title: str | None = None) -> np.ndarray:
    """Draw a confusion matrix as an RGB heatmap with class names on both axes.

    Parameters
    ----------
    confusion : C×C counts, rows ground truth, columns prediction.
    names : C class names.
    normalise : ``row`` (each row sums to 100 %), ``column`` or ``none`` (counts; colour by
        fraction of the largest cell).
    cell : cell size in pixels (default: 720/C, between 12 and 72).
    colour_map : see :data:`~segtools.viz.heatmap.COLOUR_MAPS`.
    title : text above the matrix.

    Cells show the percentage (or the compact count) when they are at least 30 px.
    """
    from PIL import Image

    size = confusion.shape[0]
    fractions = normalised(confusion, normalise)
    cell = int(cell or min(72, max(12, round(720 / size))))
    name_size = int(min(26, max(11, round(cell * 0.42))))
    number_size = int(min(24, max(10, round(cell * 0.34))))
    axis_size = max(name_size + 2, 15)
    pad = max(6, name_size // 2)
    name_w = max(measure(n, name_size)[0] for n in names)
    axis_h = measure("Ag", axis_size)[1]
    title_h = measure("Ag", axis_size)[1] + pad if title else 0
    left = pad + axis_h + pad + name_w + pad
    top = pad + title_h + axis_h + pad + name_w + pad
    grid = size * cell
    bar = colour_bar(grid, name_size, colour_map, "%" if normalise != "none" else "of max",
                     100.0 if normalise != "none" else 1.0)
    width = left + grid + 2 * pad + bar.shape[1]
    height = top + max(grid, bar.shape[0]) + pad
    pixels = np.full((height, width, 3), 255, np.uint8)

    table = colour_map_table(colour_map)
    levels = np.rint(np.nan_to_num(fractions, nan=0.0) * 255).astype(np.uint8)
    cell_colours = table[levels]
    cell_colours[np.isnan(fractions)] = EMPTY_CELL
    block = np.repeat(np.repeat(cell_colours, cell, axis=0), cell, axis=1)
    if cell >= 8:  # thin white grid lines
        block[::cell, :] = 255
        block[:, ::cell] = 255
    pixels[top:top + grid, left:left + grid] = block
    pixels[top:top + bar.shape[0], left + grid + 2 * pad:left + grid + 2 * pad + bar.shape[1]] = bar
    canvas = Image.fromarray(pixels)

    if title:
        draw_text(canvas, (left, pad), title, axis_size, (0, 0, 0))
    draw_text(canvas, (left + grid // 2, pad + title_h), "prediction", axis_size, (0, 0, 0), anchor="ma")
    _draw_vertical(canvas, "ground truth", axis_size, (pad, top + grid // 2))
    for i, name in enumerate(names):
        centre = i * cell + cell // 2
        draw_text(canvas, (left - pad, top + centre), name, name_size, (0, 0, 0), anchor="rm")
        _draw_vertical(canvas, name, name_size, (left + centre - measure("Ag", name_size)[1] // 2, top - pad),
                       bottom_aligned=True)
    if cell >= 30:
        for r in range(size):
            for c in range(size):
                if math.isnan(fractions[r, c]):
                    continue
                text = f"{100 * fractions[r, c]:.0f}" if normalise != "none" else compact_count(int(confusion[r, c]))
                draw_text(canvas, (left + c * cell + cell // 2, top + r * cell + cell // 2), text, number_size,
                          readable_on(cell_colours[r, c]), anchor="mm")
    return np.asarray(canvas)


def _draw_vertical(canvas, text: str, size: int, xy: tuple[int, int], bottom_aligned: bool = False) -> None:
    """Text rotated 90° (reading upwards). ``xy`` is its left edge and vertical centre, or with
    ``bottom_aligned`` its left edge and bottom end."""
    from PIL import Image

    text_w, text_h = measure(text, size)
    strip = Image.new("RGB", (text_w + 2, text_h), (255, 255, 255))
    draw_text(strip, (1, 0), text, size, (0, 0, 0))
    strip = strip.rotate(90, expand=True)
    x, y = xy
    y = y - strip.height if bottom_aligned else y - strip.height // 2
    canvas.paste(strip, (int(x), int(y)))
