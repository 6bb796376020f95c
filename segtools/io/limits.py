"""The decompression-bomb guard: refuse images larger than a pixel budget before decoding."""

from __future__ import annotations

import os

from segtools.errors import InputError

DEFAULT_MAX_PIXELS = 500_000_000  # a 20000x20000 scene fits; a 1 Gpx bomb does not
_max_pixels: int | None = None


def max_pixels() -> int:
    """The budget in pixels (0 = unlimited): set_max_pixels(), else $SEGTOOLS_MAX_PIXELS, else 5e8."""
    if _max_pixels is not None:
        return _max_pixels
    env = os.environ.get("SEGTOOLS_MAX_PIXELS")
    if env:
        try:
            return int(float(env))
        except ValueError:
            raise InputError(f"SEGTOOLS_MAX_PIXELS={env!r} is not a number") from None
    return DEFAULT_MAX_PIXELS


def set_max_pixels(value: int | None) -> None:
    """Set the budget for this process (``None`` restores the default, 0 disables the guard)."""
    global _max_pixels
    if value is not None and value < 0:
        raise InputError("--max-pixels must be >= 0 (0 disables the guard)")
    _max_pixels = value


def check_pixels(width: int | None, height: int | None, name: str) -> None:
    """Raise when ``width*height`` exceeds the budget."""
    if width is None or height is None:
        return
    budget = max_pixels()
    if budget and width * height > budget:
        raise InputError(
            f"{name}: {width}x{height} = {width * height:,} pixels exceeds the limit of {budget:,} "
            "(a decompression bomb?); raise it with --max-pixels N or SEGTOOLS_MAX_PIXELS=N, 0 for none"
        )


#: Most classes (labels) a mask, a dataset or a model may declare: the 16-bit PNG limit.
MAX_CLASSES = 65_536


#: Most classes a confusion matrix is made for: C² counts (4096² int64 = 128 MiB each).
MAX_CONFUSION_CLASSES = 4096


def check_class_count(count: int, name: str, limit: int = MAX_CLASSES) -> int:
    """Return ``count`` when it is a usable number of classes, else raise :class:`InputError`.

    ``name`` says where the count came from (``"data.yaml: nc"``, ``"mask.npy: label"``);
    ``limit`` is the most allowed (:data:`MAX_CONFUSION_CLASSES` where a C×C table is made).

    >>> check_class_count(21, "nc")
    21
    """
    if isinstance(count, bool) or not isinstance(count, (int,)) and not hasattr(count, "__index__"):
        raise InputError(f"{name}: a class count must be an integer, got {count!r}")
    count = int(count)
    if not 0 <= count <= limit:
        why = "the 16-bit PNG limit" if limit == MAX_CLASSES else "a C×C confusion matrix is made"
        raise InputError(f"{name}: {count:,} classes is out of range (0..{limit:,}; {why})")
    return count


def check_size(width, height, name: str) -> tuple[int, int]:
    """A declared image size (from a header, JSON or manifest) as ints, checked before
    anything of that size is allocated: positive integers within the pixel budget."""
    for axis, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise InputError(f"{name}: {axis} must be a positive integer, got {value!r}")
    check_pixels(width, height, name)
    return width, height


def label_table_size(labels, name: str) -> int:
    """The length of a table indexed by the values of the integer array ``labels`` (its
    largest value + 1, 0 when empty), refused before anything of that length is made when a
    value is negative or above ``MAX_CLASSES - 1`` (65,535, the 16-bit PNG limit).

    ``name`` says where the labels came from, for the message.

    >>> import numpy as np
    >>> label_table_size(np.array([[0, 3], [255, 1]], np.uint8), "mask.png")
    256
    """
    if labels.size == 0:
        return 0
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= MAX_CLASSES:
        bad = low if low < 0 else high
        raise InputError(f"{name}: label value {bad:,} is out of range (labels are 0..{MAX_CLASSES - 1:,}, "
                         "the 16-bit PNG limit)")
    return high + 1


def follow_budget_in_pillow() -> None:
    """Make Pillow's own decompression-bomb check use this budget instead of its 1.79e8
    pixels (``0`` = none), and raise its over-the-limit warning instead of printing it."""
    import warnings

    from PIL import Image

    budget = max_pixels()
    Image.MAX_IMAGE_PIXELS = budget or None
    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
