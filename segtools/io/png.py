"""PNG details Pillow and OpenCV do not expose cheaply: the chunk structure, text chunks.

:func:`check_structure` walks the chunk list before any decoder sees the bytes, so the size
the pixel guard checks is the size that is decoded: ``IHDR`` first and only once, every
chunk inside the file with a correct CRC, ``IEND`` at the end. :func:`critical_only` hands
OpenCV the pixels without the ancillary chunks (colour profiles, text, ...) libpng would
print warnings about on stderr.
"""

from __future__ import annotations

import os
import struct
import sys
import threading
import zlib
from contextlib import contextmanager
from dataclasses import dataclass

from segtools.errors import InputError

SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEXT_CHUNKS = (b"tEXt", b"iTXt", b"zTXt")
_CRITICAL = (b"IHDR", b"PLTE", b"IDAT", b"IEND")
#: Largest text value inflated from a zTXt/iTXt chunk (class metadata is far smaller).
MAX_TEXT_BYTES = 16 << 20
_MAX_CHUNK = 2**31 - 1  # the PNG limit on chunk lengths and image sizes
#: Most chunks in one file (encoders write a few thousand for the largest images).
MAX_CHUNKS = 1 << 20
#: Allowed bit depths for each colour type (PNG spec, table 11.1).
_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}


@dataclass(frozen=True)
class PngHeader:
    """The ``IHDR`` fields segtools uses."""

    width: int
    height: int
    bit_depth: int
    colour_type: int


def _spans(data: bytes, name: str, strict: bool):
    """``(type, body_start, body_end)`` of each chunk up to ``IEND``; ``strict`` refuses a
    chunk that runs past the end (else the walk stops there, for a file's first bytes)."""
    pos, end = len(SIGNATURE), len(data)
    while pos < end:
        if pos + 12 > end:
            if strict:
                raise InputError(f"{name}: truncated PNG (a chunk header runs past the end of the file)")
            return
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        ctype = data[pos + 4:pos + 8]
        body_end = pos + 8 + length
        if length > _MAX_CHUNK or body_end + 4 > end:
            if strict:
                raise InputError(f"{name}: corrupt or truncated PNG (chunk {_show(ctype)} declares "
                                 f"{length:,} bytes, {max(0, end - pos - 12):,} are left in the file)")
            return
        yield ctype, pos + 8, body_end
        if ctype == b"IEND":
            return
        pos = body_end + 4
    if strict:
        raise InputError(f"{name}: truncated PNG (no IEND chunk)")


def _show(ctype: bytes) -> str:
    return repr(ctype.decode("latin1"))


def check_structure(data: bytes, name: str) -> PngHeader:
    """The header of a whole PNG file, refusing what decoders might read differently: no
    ``IHDR`` first, a second ``IHDR``, a chunk running past the end, a bad CRC, more than
    :data:`MAX_CHUNKS` chunks, an impossible size, bit depth or colour type, no ``IDAT``.
    """
    if not data.startswith(SIGNATURE):
        raise InputError(f"{name}: not a PNG file")
    view = memoryview(data)
    counts: dict[bytes, int] = {}
    first = None
    for index, (ctype, start, end) in enumerate(_spans(data, name, strict=True)):
        if index == MAX_CHUNKS:
            raise InputError(f"{name}: corrupt PNG (more than {MAX_CHUNKS:,} chunks)")
        if zlib.crc32(view[start - 4:end]) != struct.unpack(">I", data[end:end + 4])[0]:
            raise InputError(f"{name}: corrupt PNG (bad CRC in chunk {_show(ctype)})")
        if not ctype.isalpha() or ctype[:1].isupper() and ctype not in _CRITICAL:
            raise InputError(f"{name}: corrupt PNG (unknown critical chunk {_show(ctype)})")
        first = first or (ctype, start, end)
        counts[ctype] = counts.get(ctype, 0) + 1
    if first is None or first[0] != b"IHDR" or first[2] - first[1] != 13:
        raise InputError(f"{name}: corrupt PNG (the first chunk must be a 13-byte IHDR)")
    if counts[b"IHDR"] != 1:
        raise InputError(f"{name}: corrupt PNG (more than one IHDR chunk)")
    if b"IDAT" not in counts:
        raise InputError(f"{name}: corrupt PNG (no image data)")
    start = first[1]
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", data[start:start + 13])
    if not (0 < width <= _MAX_CHUNK and 0 < height <= _MAX_CHUNK):
        raise InputError(f"{name}: corrupt PNG (image size {width}x{height})")
    if depth not in _DEPTHS.get(colour, ()) or compression or filtering or interlace > 1:
        raise InputError(f"{name}: corrupt PNG (bit depth {depth} with colour type {colour}, "
                         f"compression {compression}, filter {filtering}, interlace {interlace})")
    return PngHeader(width, height, depth, colour)


def critical_only(data: bytes, keep: tuple[bytes, ...] = ()) -> bytes:
    """A checked PNG (:func:`check_structure`) with only its critical chunks and those in
    ``keep``: the same pixels for a decoder that ignores colour management (OpenCV), and no
    ancillary chunk for libpng to print warnings about."""
    wanted = _CRITICAL + keep
    spans = [(ctype, start, end) for ctype, start, end in _spans(data, "PNG", strict=False)]
    if all(ctype in wanted for ctype, _, _ in spans):
        return data
    view = memoryview(data)
    return b"".join([SIGNATURE] + [view[start - 8:end + 4] for ctype, start, end in spans if ctype in wanted])


def text_chunk(data: bytes, key: str, name: str = "PNG") -> str | None:
    """The value of the first text chunk named ``key`` in PNG bytes, or ``None``.

    Walks the chunk list up to ``IEND`` without decoding any pixels; ``data`` may be the
    file's first bytes only. A compressed value is inflated to at most
    :data:`MAX_TEXT_BYTES`; a larger or corrupt one is an :class:`InputError`.
    """
    wanted = key.encode("latin1")
    for ctype, start, end in _spans(data, name, strict=False):
        if ctype in TEXT_CHUNKS:
            value = _text_value(ctype, data[start:end], wanted, f"{name}: {key} text chunk")
            if value is not None:
                return value
    return None


def _inflate(compressed: bytes, what: str) -> bytes:
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(compressed, MAX_TEXT_BYTES)
    except zlib.error as exc:
        raise InputError(f"{what} is corrupt ({exc})") from None
    if inflater.unconsumed_tail:
        raise InputError(f"{what} inflates to more than {MAX_TEXT_BYTES >> 20} MiB (a decompression bomb?)")
    if not inflater.eof:
        raise InputError(f"{what} is corrupt (truncated compressed text)")
    return text


def _text_value(ctype: bytes, body: bytes, wanted: bytes, what: str) -> str | None:
    name, sep, rest = body.partition(b"\x00")
    if not sep or name != wanted:
        return None
    try:
        if ctype == b"tEXt":
            return rest.decode("latin1")
        if ctype == b"zTXt":
            return _inflate(rest[1:], what).decode("latin1")
        # iTXt: compression flag, method, language\0, translated keyword\0, text
        if len(rest) < 2:
            raise InputError(f"{what} is corrupt (too short)")
        flag = rest[0]
        rest = rest[2:]
        _lang, _, rest = rest.partition(b"\x00")
        _tkey, _, text = rest.partition(b"\x00")
        return (_inflate(text, what) if flag else text).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} is not valid UTF-8 text (byte {exc.start})") from None


_quiet_lock = threading.Lock()
_quiet_depth = 0
_saved_stderr: int | None = None


@contextmanager
def _libpng_silenced():
    """Point file descriptor 2 at /dev/null while OpenCV decodes: libpng (inside OpenCV)
    prints its warnings and errors straight to stderr, and OpenCV offers no switch (the
    decode result says whether it failed). Reentrant across threads: the first decoder in
    redirects, the last one out restores."""
    global _quiet_depth, _saved_stderr
    with _quiet_lock:
        if _quiet_depth == 0:
            try:
                sys.stderr.flush()
            except (AttributeError, ValueError, OSError):
                pass
            devnull = os.open(os.devnull, os.O_WRONLY)
            _saved_stderr = os.dup(2)
            os.dup2(devnull, 2)
            os.close(devnull)
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                os.dup2(_saved_stderr, 2)
                os.close(_saved_stderr)
                _saved_stderr = None


def decode_cv2(data: bytes, name: str, keep: tuple[bytes, ...] = ()):
    """Pixels of a checked PNG (:func:`check_structure`) as OpenCV stores them (BGR order,
    8 or 16 bits, no colour management), with libpng kept off stderr; ancillary chunks other
    than ``keep`` are dropped first. A decoding failure is an :class:`InputError`."""
    import cv2
    import numpy as np

    data = critical_only(data, keep)
    with _libpng_silenced():
        array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise InputError(f"{name}: corrupt or truncated PNG (the image data does not decode)")
    return array
