"""Which colour each label gets: the mask's own palette, a preset, or distinct automatic colours."""

from __future__ import annotations

import numpy as np

from segtools.io.limits import check_class_count
from segtools.io.meta import ClassMeta, default_palette

#: Colour for ignored (void) pixels when drawn opaque.
IGNORE_COLOUR = (0, 0, 0)


def class_palette(meta: ClassMeta | None, size: int) -> np.ndarray:
    """A (size, 3) uint8 RGB table: class ``i`` → ``meta.palette[i]``, the rest automatic.

    Automatic colours are the Pascal VOC colour map (:func:`~segtools.io.meta.default_palette`),
    the same palette segtools writes into mask PNGs, so a mask looks the same in any image
    viewer as it does here. Beyond 256 entries (instance ids) :func:`instance_palette` is used.

    >>> class_palette(None, 3).tolist()
    [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
    """
    size = max(check_class_count(int(size), "palette size"), 1)
    table = np.empty((size, 3), np.uint8)
    auto = np.asarray(default_palette(min(size, 256)), np.uint8)
    table[: len(auto)] = auto
    if size > 256:
        table[256:] = instance_palette(size)[256:]
    if meta is not None and meta.palette:
        known = np.asarray(meta.palette[:size], np.uint8)
        table[: len(known)] = known
    return table


def instance_palette(size: int, seed: int = 0) -> np.ndarray:
    """(size, 3) uint8 distinct colours for instance ids; id 0 (background) is black.

    Hues step by the golden ratio so consecutive ids differ strongly; saturation and value
    cycle through three levels each so ids far apart rarely share a colour. Deterministic.

    >>> instance_palette(3).tolist()[0]
    [0, 0, 0]
    """
    import cv2

    ids = np.arange(int(size), dtype=np.float64) + seed
    hue = (ids * 0.618033988749895) % 1.0
    saturation = np.array([0.85, 0.6, 1.0])[(ids.astype(np.int64) // 3) % 3]
    value = np.array([1.0, 0.8, 0.6])[ids.astype(np.int64) % 3]
    hsv = np.stack([hue * 180.0, saturation * 255.0, value * 255.0], axis=-1)
    hsv = np.clip(np.round(hsv), 0, 255).astype(np.uint8)[None]
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]
    rgb[0] = 0
    return rgb


def class_names(meta: ClassMeta | None, size: int) -> list[str]:
    """Names for classes ``0..size-1``: the metadata's, else ``class_N`` (as every command names them).

    >>> class_names(ClassMeta(names=("road",)), 3)
    ['road', 'class_1', 'class_2']
    """
    names = list(meta.names) if meta is not None and meta.names else []
    return [names[i] if i < len(names) else f"class_{i}" for i in range(int(size))]


def resolve_meta(mask_meta: ClassMeta | None, override: ClassMeta | None = None,
                 ignore_index: int | None = None, ignore_given: bool = False) -> ClassMeta:
    """The class metadata to draw with: ``override`` (``--classes``) beats the mask's own.

    ``ignore_index`` replaces the ignore value when ``ignore_given`` (``None`` then means
    "every value is a class").
    """
    meta = override or mask_meta or ClassMeta()
    if ignore_given:
        meta = meta.with_(ignore_index=ignore_index)
    return meta
