"""PNG details Pillow and OpenCV do not expose cheaply: text chunks, and the encoders we use."""

from __future__ import annotations

import struct
import zlib

TEXT_CHUNKS = (b"tEXt", b"iTXt", b"zTXt")


def text_chunk(data: bytes, key: str) -> str | None:
    """The value of the first text chunk named ``key`` in PNG bytes, or ``None``.

    Walks the chunk list up to ``IEND`` without decoding any pixels.
    """
    wanted = key.encode("latin1")
    pos = 8
    end = len(data)
    while pos + 8 <= end:
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        ctype = data[pos + 4 : pos + 8]
        body_start = pos + 8
        body_end = body_start + length
        if body_end > end:
            return None
        if ctype in TEXT_CHUNKS:
            body = data[body_start:body_end]
            value = _text_value(ctype, body, wanted)
            if value is not None:
                return value
        elif ctype == b"IEND":
            return None
        pos = body_end + 4  # skip CRC
    return None


def _text_value(ctype: bytes, body: bytes, wanted: bytes) -> str | None:
    name, sep, rest = body.partition(b"\x00")
    if not sep or name != wanted:
        return None
    try:
        if ctype == b"tEXt":
            return rest.decode("latin1")
        if ctype == b"zTXt":
            return zlib.decompress(rest[1:]).decode("latin1")
        # iTXt: compression flag, method, language\0, translated keyword\0, text
        flag = rest[0]
        rest = rest[2:]
        _lang, _, rest = rest.partition(b"\x00")
        _tkey, _, text = rest.partition(b"\x00")
        if flag:
            text = zlib.decompress(text)
        return text.decode("utf-8")
    except (zlib.error, IndexError, UnicodeDecodeError):
        return None
