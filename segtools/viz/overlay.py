"""Colours over a photograph: alpha blending, outlines (contours) and instance ids."""

from __future__ import annotations

import numpy as np

from segtools.errors import InputError
from segtools.io.images import to_rgb8
from segtools.io.meta import ClassMeta
from segtools.viz.colourise import colour_table


def default_thickness(height: int, width: int) -> int:
    """Outline width in pixels for a picture: 0.5 % of the shorter side, at least 1 px.

    >>> default_thickness(360, 480), default_thickness(2160, 3840)
    (2, 11)
    """
    return max(1, int(round(min(height, width) / 200)))


def blend(image: np.ndarray, colours: np.ndarray, alpha: float, where: np.ndarray | None = None) -> np.ndarray:
    """``round((1 - alpha) * image + alpha * colours)`` per channel, only where ``where`` is true.

    Both inputs are H×W×3 ``uint8``; rounding is to the nearest integer (ties to even, as
    OpenCV's ``saturate_cast``). Pixels outside ``where`` keep the image unchanged.

    >>> img = np.full((1, 2, 3), 100, np.uint8); col = np.full((1, 2, 3), 200, np.uint8)
    >>> blend(img, col, 0.25, np.array([[True, False]]))[0, :, 0].tolist()
    [125, 100]
    """
    import cv2

    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"alpha={alpha}: must be in [0, 1]")
    mixed = cv2.addWeighted(image, 1.0 - alpha, colours, alpha, 0.0)
    if where is None:
        return mixed
    out = image.copy()
    np.copyto(out, mixed, where=where[..., None])
    return out


def label_boundaries(labels: np.ndarray, thickness: int = 1) -> np.ndarray:
    """H×W bool: pixels within ``thickness`` px of a change of label (outlines of regions).

    A pixel is on a boundary when the max and min label in its (thickness+1)² neighbourhood
    differ, so lines are ``thickness`` px wide, split across the two sides of an edge.

    >>> label_boundaries(np.array([[0, 0, 1, 1]], np.uint8)).astype(int).tolist()
    [[0, 0, 1, 0]]
    """
    import cv2

    if thickness < 1:
        raise InputError(f"thickness={thickness}: contours must be at least 1 px wide")
    work = labels
    if work.dtype not in (np.uint8, np.uint16, np.int16, np.float32):
        work = work.astype(np.float32 if int(work.max(initial=0)) > 65535 else np.uint16)
    kernel = np.ones((thickness + 1, thickness + 1), np.uint8)
    return cv2.dilate(work, kernel) != cv2.erode(work, kernel)


def halo_colours(colours: np.ndarray) -> np.ndarray:
    """Black or white per colour (``...×3`` uint8), whichever contrasts with it (luminance > 140:
    black), as :func:`segtools.viz.text.readable_on` picks for text.

    >>> halo_colours(np.array([[64, 0, 128], [220, 220, 0]], np.uint8)).tolist()
    [[255, 255, 255], [0, 0, 0]]
    """
    luminance = colours[..., :3].astype(np.float32) @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    return np.repeat(np.where(luminance > 140, np.uint8(0), np.uint8(255))[..., None], 3, axis=-1)


def outline_with_halo(base: np.ndarray, labels: np.ndarray, colours: np.ndarray, drawn: np.ndarray,
                      thickness: int) -> np.ndarray:
    """Class-coloured outlines ``thickness`` px wide, each edged by a 1 px (``thickness // 3``
    for thick lines) halo in black or white, whichever contrasts with the class colour, so a
    dark class (car, road) stays visible on a dark photo and a light one on a light photo.

    ``colours`` is H×W×3 (each pixel's class colour), ``drawn`` where outlines may go.
    """
    import cv2

    edges = label_boundaries(labels, thickness) & drawn
    out = base.copy()
    if not edges.any():
        return out
    width = max(1, thickness // 3)
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    # the halo takes the colour of the nearest outline pixel's contrast: spread it by dilation
    halo_rgb = np.where(edges[..., None], halo_colours(colours), 0).astype(np.uint8)
    dark = cv2.dilate((edges & (halo_rgb[..., 0] == 0)).astype(np.uint8), kernel).astype(bool)
    light = cv2.dilate((edges & (halo_rgb[..., 0] == 255)).astype(np.uint8), kernel).astype(bool)
    out[light & ~edges] = 255
    out[dark & ~edges] = 0
    out[edges] = colours[edges]
    return out


def overlay_labels(image: np.ndarray | None, labels: np.ndarray, meta: ClassMeta | None = None, *,
                   alpha: float = 0.5, contours: bool = False, thickness: int | None = None,
                   instances: bool = False) -> np.ndarray:
    """Draw a label mask over an image: H×W×3 RGB ``uint8`` out.

    Parameters
    ----------
    image : grey, RGB or RGBA, 8 or 16 bit (alpha dropped, 16 bit scaled to 8); ``None`` draws
        on black.
    labels : H×W integers, the same height and width as ``image``.
    meta : palette and ignore index; ignored pixels (and instance background 0) show the image.
    alpha : opacity of the fill in [0, 1].
    contours : draw outlines only (opaque, ``thickness`` px, with a contrasting halo: see
        :func:`outline_with_halo`) instead of a filled overlay.
    instances : colour values as instance ids.
    """
    labels = np.asarray(labels)
    base = np.zeros(labels.shape + (3,), np.uint8) if image is None else to_rgb8(np.asarray(image))
    if base.shape[:2] != labels.shape[:2]:
        raise InputError(
            f"mask is {labels.shape[1]}×{labels.shape[0]} px but the image is {base.shape[1]}×{base.shape[0]} px; "
            "give the image the mask was made from"
        )
    table = colour_table(labels, meta, instances=instances, transparent_ignore=True)
    drawn = table[:, 3][labels] > 0
    colours = table[:, :3][labels]
    if contours:
        return outline_with_halo(base, labels, colours, drawn, thickness or default_thickness(*labels.shape))
    return blend(base, colours, alpha, drawn)
