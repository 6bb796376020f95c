"""Text on pictures: one scalable font, sized from the picture, drawn with Pillow.

Pillow (>= 10.1, built with FreeType) ships a scalable font (``ImageFont.load_default(size=)``),
so labels are crisp at any size without depending on system fonts.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from segtools.errors import MissingDependency

#: Text size as a fraction of a picture's shorter side, and its bounds in pixels.
TEXT_FRACTION = 0.032
MIN_TEXT_PX = 13
MAX_TEXT_PX = 160


def text_size_for(height: int, width: int | None = None) -> int:
    """Font size in pixels that reads well beside a ``height``×``width`` picture.

    3.2 % of the shorter side, at least 13 px: 16 px for 512 px, 69 px for a 4K frame.

    >>> text_size_for(512, 512), text_size_for(2160, 3840)
    (16, 69)
    """
    short = min(height, width) if width else height
    return int(min(MAX_TEXT_PX, max(MIN_TEXT_PX, round(TEXT_FRACTION * short))))


@lru_cache(maxsize=32)
def font(size: int):
    """Pillow's scalable built-in font at ``size`` pixels (cached)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=int(size))
    except (TypeError, ImportError, OSError):
        for name in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
            try:
                return ImageFont.truetype(name, int(size))
            except OSError:
                continue
    raise MissingDependency("drawing text needs Pillow >= 10.1 built with FreeType: pip install -U pillow")


def measure(text: str, size: int) -> tuple[int, int]:
    """Width and height in pixels that ``text`` takes at ``size`` (height = the font's line height)."""
    face = font(size)
    left, _top, right, _bottom = face.getbbox(text)
    ascent, descent = face.getmetrics()
    return int(np.ceil(right - min(left, 0))), int(ascent + descent)


def draw_text(canvas, xy: tuple[int, int], text: str, size: int, fill=(0, 0, 0),
              stroke: tuple[int, int, int] | None = None, anchor: str = "la") -> None:
    """Draw ``text`` on a Pillow image ``canvas`` at ``xy`` (pixels; ``anchor`` as in Pillow).

    ``stroke`` draws an outline of that colour (about 1/8 of the size) so text stays
    readable over any background.
    """
    from PIL import ImageDraw

    draw = ImageDraw.Draw(canvas)
    width = max(1, size // 8) if stroke is not None else 0
    draw.text(xy, text, font=font(size), fill=tuple(fill), anchor=anchor, stroke_width=width,
              stroke_fill=tuple(stroke) if stroke is not None else None)


def readable_on(colour) -> tuple[int, int, int]:
    """Black or white, whichever reads better on ``colour`` (relative luminance, sRGB weights)."""
    r, g, b = (float(c) for c in colour[:3])
    return (0, 0, 0) if 0.2126 * r + 0.7152 * g + 0.0722 * b > 140 else (255, 255, 255)


def title_bar(width: int, title: str, size: int, background=(255, 255, 255), fill=(0, 0, 0)) -> np.ndarray:
    """An H×W×3 strip (H from the font) with ``title`` centred: goes above a picture."""
    from PIL import Image

    _, line = measure(title, size)
    height = int(round(line * 1.5))
    canvas = Image.new("RGB", (int(width), height), tuple(background))
    draw_text(canvas, (width // 2, height // 2), _fit(title, size, width), size, fill, anchor="mm")
    return np.asarray(canvas)


def _fit(text: str, size: int, width: int) -> str:
    """``text`` shortened with an ellipsis until it fits ``width`` pixels."""
    if measure(text, size)[0] <= width or len(text) <= 1:
        return text
    while len(text) > 1 and measure(text + "...", size)[0] > width:
        text = text[:-1]
    return text + "..."
