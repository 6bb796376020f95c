"""Photographs and other pixel images: 8/16-bit, grey, RGB, RGBA, EXIF orientation applied."""

from __future__ import annotations

import io
import os
from contextlib import contextmanager

import numpy as np

from segtools.errors import InputError, OutputError
from segtools.io import png
from segtools.io.limits import check_pixels, follow_budget_in_pillow
from segtools.io.sniff import sniff
from segtools.io.streams import Source, describe, emit, read_bytes


def read_image(source: Source, *, name: str | None = None) -> np.ndarray:
    """Read an image as H×W (grey) or H×W×C (RGB or RGBA) in RGB order, uint8 or uint16.

    EXIF orientation is applied, palette images are expanded to RGB(A), 16-bit PNGs keep
    their 16 bits. ``.npy`` arrays (H×W or H×W×C) are returned as stored.
    """
    name = name or describe(source)
    data = read_bytes(source)
    kind = sniff(data[:512])
    if kind.format == "npy":
        from segtools.io.npy import read_npy

        array = read_npy(data, name, "image")
        if array.ndim not in (2, 3):
            raise InputError(f"{name}: an image array is H×W or H×W×C, this one is {array.shape}")
        return array
    if not kind.is_image_file:
        hint = "empty input (no bytes)" if kind.format == "empty" else f"is not an image (recognised: {kind.format})"
        raise InputError(f"{name}: {hint}")
    if kind.format == "png":
        header = png.check_structure(data, name)
        check_pixels(header.width, header.height, name)
        if header.bit_depth == 16:
            return _read_png16(data, name)
    return _read_pillow(data, name)


def _read_png16(data: bytes, name: str) -> np.ndarray:
    import cv2

    array = png.decode_cv2(data, name, keep=(b"tRNS",))
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_BGRA2RGBA if array.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return array


@contextmanager
def pillow_image(data: bytes, name: str, what: str = "image"):
    """``PIL.Image.open`` on ``data`` with Pillow's bomb check at segtools' pixel budget;
    every decoding failure (a corrupt file, Pillow's bomb check) is an :class:`InputError`."""
    from PIL import Image

    follow_budget_in_pillow()
    try:
        with Image.open(io.BytesIO(data)) as image:
            yield image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"{name}: {exc}; raise the limit with --max-pixels N or SEGTOOLS_MAX_PIXELS=N, "
                         "0 for none") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(f"{name}: corrupt or truncated {what} ({exc})") from None


def _read_pillow(data: bytes, name: str) -> np.ndarray:
    from PIL import ImageOps

    with pillow_image(data, name) as image:
        check_pixels(image.width, image.height, name)
        image = ImageOps.exif_transpose(image)
        mode = image.mode
        if mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        elif mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
            image = image.convert("L" if mode == "1" else "RGB")
        elif mode in ("LA", "PA"):
            image = image.convert("RGBA")
        elif mode.startswith("I;16"):
            return np.asarray(image).astype(np.uint16)
        elif mode == "I":
            return np.clip(np.asarray(image), 0, 65535).astype(np.uint16)
        return np.asarray(image)


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """Any image (grey, RGB, RGBA; uint8, uint16 or float in [0,1]) → H×W×3 uint8 RGB."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype.kind == "f":
        image = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.shape[2] == 2:
        return np.repeat(image[..., :1], 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def encode_image(image: np.ndarray, fmt: str = "png", quality: int = 92) -> bytes:
    """PNG or JPEG bytes for an H×W, H×W×3 (RGB) or H×W×4 (RGBA) uint8/uint16 image."""
    import cv2

    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR if image.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    fmt = fmt.lower().lstrip(".")
    if fmt in ("jpg", "jpeg"):
        if image.ndim == 3 and image.shape[2] == 4:
            image = image[..., :3]
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    elif fmt == "png":
        ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    else:
        raise OutputError(f"cannot write images as {fmt!r}: use .png or .jpg")
    if not ok:
        raise OutputError(f"could not encode a {image.shape} {image.dtype} image as {fmt}")
    return buf.tobytes()


def write_image(image: np.ndarray, output: str | os.PathLike | None, allow_overwrite: bool = False) -> None:
    """Write an image to a file (format by extension: .png, .jpg/.jpeg) or stdout (PNG)."""
    fmt = "png"
    if output is not None and str(output) != "-":
        ext = os.path.splitext(str(output))[1].lower()
        fmt = ext[1:] if ext in (".jpg", ".jpeg", ".png") else "png"
    emit(encode_image(image, fmt), output, f"a {fmt.upper()} image", allow_overwrite)
