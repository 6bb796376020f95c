"""Recognise what a file or stream holds from its first bytes, never its extension."""

from __future__ import annotations

import struct
from dataclasses import dataclass

# PNG colour types (IHDR byte 9)
PNG_GREY, PNG_RGB, PNG_PALETTE, PNG_GREY_ALPHA, PNG_RGBA = 0, 2, 3, 4, 6


@dataclass(frozen=True)
class Sniffed:
    """What the first bytes say.

    ``format`` is one of ``png``, ``npy``, ``npz``, ``jpeg``, ``tiff``, ``bmp``, ``webp``,
    ``gif``, ``json``, ``text``, ``empty``, ``unknown``. For PNG, ``bit_depth`` and
    ``colour_type`` come from the IHDR chunk; for ``npy``, ``dtype`` and ``shape`` from the
    header. ``width``/``height`` are filled when the header gives them.
    """

    format: str
    width: int | None = None
    height: int | None = None
    bit_depth: int | None = None
    colour_type: int | None = None
    dtype: str | None = None
    shape: tuple[int, ...] | None = None

    @property
    def is_image_file(self) -> bool:
        return self.format in ("png", "jpeg", "tiff", "bmp", "webp", "gif")


def sniff(head: bytes) -> Sniffed:
    """Identify a file from its first bytes (256 are enough).

    >>> sniff(b"\\x93NUMPY\\x01\\x00;\\x00{'descr': '<u1', 'fortran_order': False, 'shape': (2, 3), }").shape
    (2, 3)
    >>> sniff(b"").format
    'empty'
    """
    if not head:
        return Sniffed("empty")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        if len(head) >= 26 and head[12:16] == b"IHDR":
            width, height = struct.unpack(">II", head[16:24])
            return Sniffed("png", width, height, head[24], head[25])
        return Sniffed("png")
    if head.startswith(b"\x93NUMPY"):
        return _sniff_npy(head)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return Sniffed("npz")
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("jpeg")
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return Sniffed("tiff")
    if head.startswith(b"BM"):
        return Sniffed("bmp")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed("webp")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed("gif")
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped[:1] in (b"{", b"["):
        return Sniffed("json")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return Sniffed("unknown")
    return Sniffed("text")


def _sniff_npy(head: bytes) -> Sniffed:
    from segtools.errors import InputError
    from segtools.io.npy import parse_header

    try:
        header = parse_header(head, "npy")
    except InputError:  # a truncated or corrupt header: the reader reports it properly
        return Sniffed("npy")
    shape = header.shape
    height = shape[-2] if len(shape) >= 2 else None
    width = shape[-1] if len(shape) >= 2 else None
    return Sniffed("npy", width, height, dtype=header.dtype.str, shape=shape)
