""".npy bytes from untrusted sources: the header is parsed and checked before any array exists.

Which arrays segtools reads: C- or Fortran-order, either byte order, of a plain numeric dtype
(bool, signed and unsigned integers, float16/32/64). Object, structured, sub-array,
complex, string, void and datetime arrays are refused, and so is a file whose data is
shorter or longer than its header declares (numpy writes exactly the declared bytes).
Arrays are returned C-contiguous, native byte order and writable.
"""

from __future__ import annotations

import ast
import math
import struct
from dataclasses import dataclass

import numpy as np

from segtools.errors import InputError

MAGIC = b"\x93NUMPY"
#: Longest header read (numpy's own default limit for untrusted files).
MAX_HEADER_BYTES = 10_000
#: Bytes that always hold the whole header of a file segtools accepts.
HEAD_BYTES = 12 + MAX_HEADER_BYTES
NUMERIC_KINDS = "biuf"


@dataclass(frozen=True)
class NpyHeader:
    """What a ``.npy`` header declares; ``offset`` is where the array data starts."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    offset: int

    @property
    def count(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.count * self.dtype.itemsize


def parse_header(head: bytes, name: str, kinds: str = NUMERIC_KINDS) -> NpyHeader:
    """The header at the start of ``head`` (the file's first bytes, :data:`HEAD_BYTES` suffice).

    Raises :class:`InputError` for anything numpy would not have written: a bad magic or
    version, a header that is not a literal dict of ``descr``, ``fortran_order``, ``shape``,
    negative sizes, or a dtype whose kind is not in ``kinds`` (default: a plain number).

    >>> h = parse_header(b"\\x93NUMPY\\x01\\x00\\x3c\\x00{'descr': '<u2', 'fortran_order': False, 'shape': (2, 3), }\\n", "x")
    >>> h.shape, h.dtype.name, h.offset
    ((2, 3), 'uint16', 70)
    """
    if not head.startswith(MAGIC) or len(head) < 10:
        raise InputError(f"{name}: not a .npy file (no numpy header)")
    major = head[6]
    if major == 1:
        (length,), start = struct.unpack("<H", head[8:10]), 10
    elif major in (2, 3) and len(head) >= 12:
        (length,), start = struct.unpack("<I", head[8:12]), 12
    else:
        raise InputError(f"{name}: unsupported .npy format version {major}.{head[7]}")
    if length > MAX_HEADER_BYTES:
        raise InputError(f"{name}: .npy header of {length:,} bytes is larger than numpy writes "
                         f"(at most {MAX_HEADER_BYTES:,})")
    if len(head) < start + length:
        raise InputError(f"{name}: truncated .npy header")
    try:
        header = ast.literal_eval(head[start:start + length].decode("utf-8" if major == 3 else "latin1"))
    except Exception:  # SyntaxError, ValueError, tokenize errors, MemoryError, RecursionError ...
        raise InputError(f"{name}: corrupt .npy header (not a Python literal)") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise InputError(f"{name}: corrupt .npy header (expected the keys descr, fortran_order, shape)")
    shape, fortran, descr = header["shape"], header["fortran_order"], header["descr"]
    if not isinstance(shape, tuple) or not all(type(s) is int and s >= 0 for s in shape):
        raise InputError(f"{name}: corrupt .npy header (shape {str(shape)[:60]} is not a tuple of sizes)")
    if type(fortran) is not bool:
        raise InputError(f"{name}: corrupt .npy header (fortran_order is not True or False)")
    return NpyHeader(shape, _numeric_dtype(descr, name, kinds), fortran, start + length)


def _numeric_dtype(descr, name: str, kinds: str) -> np.dtype:
    if not isinstance(descr, str):
        raise InputError(f"{name}: holds a structured array; only plain numeric arrays are read")
    try:
        dtype = np.dtype(descr)
    except (TypeError, ValueError):
        raise InputError(f"{name}: corrupt .npy header (unknown dtype {descr[:40]!r})") from None
    if dtype.hasobject:
        raise InputError(f"{name}: holds Python objects; only plain numeric arrays are read")
    if dtype.kind not in kinds or dtype.fields is not None or dtype.subdtype is not None:
        raise InputError(f"{name}: holds {dtype} values; only bool, integer and float arrays are read")
    return dtype


def check_length(header: NpyHeader, size: int, name: str) -> None:
    """Refuse a file of ``size`` bytes that holds less or more than its header declares."""
    expected = header.offset + header.nbytes
    if size < expected:
        raise InputError(f"{name}: truncated .npy ({size:,} of {expected:,} bytes)")
    if size > expected:
        raise InputError(f"{name}: corrupt .npy ({size - expected:,} bytes after the array its header declares)")


def load_array(data: bytes, name: str, header: NpyHeader | None = None) -> np.ndarray:
    """The array in ``.npy`` bytes: C-order, native byte order, writable (one copy)."""
    header = header or parse_header(data[:HEAD_BYTES], name)
    check_length(header, len(data), name)
    flat = np.frombuffer(data, header.dtype, header.count, header.offset)
    array = flat.reshape(header.shape, order="F" if header.fortran_order else "C")
    return np.array(array, dtype=header.dtype.newbyteorder("="), order="C")


def plane_size(shape: tuple[int, ...], layout: str) -> tuple[int, int] | None:
    """(height, width) of an array of ``shape`` read as ``layout``, ``None`` when it is not one.

    ``labels``: H×W, 1×H×W or H×W×1; ``scores``: H×W or C×H×W; ``image``: H×W or H×W×C.

    >>> plane_size((480, 640, 1), "labels"), plane_size((3, 480, 640), "scores")
    ((480, 640), (480, 640))
    """
    if len(shape) == 2:
        return shape[0], shape[1]
    if len(shape) != 3:
        return None
    if layout == "scores":
        return shape[1], shape[2]
    if layout == "labels" and shape[0] == 1 and shape[2] != 1:
        return shape[1], shape[2]
    return shape[0], shape[1]


def read_npz_member(archive, member: str, name: str, layout: str | None,
                    kinds: str = NUMERIC_KINDS, max_bytes: int | None = None) -> np.ndarray:
    """The array ``member`` of an open :class:`zipfile.ZipFile`, inflating nothing beyond its
    header until the header's shape has passed the pixel guard (``layout``: see
    :func:`plane_size`; ``None`` for no image) and agrees with the member's declared size."""
    import zipfile

    from segtools.io.limits import check_pixels

    where = f"{name}: {member}"
    info = archive.getinfo(member)
    if max_bytes is not None and info.file_size > max_bytes:
        raise InputError(f"{where}: {info.file_size:,} bytes is more than the {max_bytes:,} this entry may hold")
    try:
        with archive.open(info) as stream:
            head = stream.read(min(info.file_size, HEAD_BYTES))
            if not head.startswith(MAGIC):
                raise InputError(f"{where}: not a .npy array (an .npz holds .npy files)")
            header = parse_header(head, where, kinds)
            plane = plane_size(header.shape, layout) if layout else None
            if plane is not None:
                check_pixels(plane[1], plane[0], where)
            check_length(header, info.file_size, where)
            data = head + stream.read(info.file_size - len(head))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise InputError(f"{where}: corrupt or truncated .npz entry ({exc})") from None
    return load_array(data, where, header)


def read_npy(data: bytes, name: str, layout: str) -> np.ndarray:
    """A ``.npy`` array, its declared plane (``layout``: see :func:`plane_size`) checked
    against the pixel budget and its length against the header before anything is copied."""
    header = parse_header(data[:HEAD_BYTES], name)
    plane = plane_size(header.shape, layout)
    if plane is not None:
        from segtools.io.limits import check_pixels

        check_pixels(plane[1], plane[0], name)
    return load_array(data, name, header)
