"""Windowed reading and writing of rasters too large to hold twice in memory.

A :class:`Raster` reads bands of rows: ``.npy`` files straight from disk with positioned reads
(no memory map, so the process's resident memory stays one band, not the whole file),
uncompressed TIFF/BigTIFF through ``tifffile``'s memory map (the optional ``tiff`` extra),
and everything else (PNG, JPEG, compressed TIFF, ``.npz``) decoded whole, which PNG
requires. A :class:`RasterWriter` takes bands of rows in order: ``.npy`` is streamed to disk
band by band; PNG, TIFF and ``.npz`` are assembled in memory and encoded at the end. Either
way the output appears atomically (temp file + rename) or not at all.

Kinds and layouts: ``image`` is H×W or H×W×C integers; ``labels`` is H×W integers with
class metadata; ``scores`` is float C×H×W (an H×W float array is read as C = 1).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segtools.errors import InputError, OutputError, UsageError, require
from segtools.io import npy
from segtools.io.geotiff import extratags, read_geo_tags
from segtools.io.limits import check_pixels
from segtools.io.meta import PNG_KEY, ClassMeta
from segtools.io.sniff import PNG_PALETTE, sniff
from segtools.io.streams import AtomicFile, check_output_path, read_head
from segtools.io.tempfiles import hold, sweep_stale_parts

KINDS = ("image", "labels", "scores")


def array_kind(array_shape: tuple[int, ...], dtype: np.dtype, name: str) -> str:
    """``scores`` for floats, ``labels`` for 2-D integers, ``image`` for H×W×C integers."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        if len(array_shape) not in (2, 3):
            raise InputError(f"{name}: a score map is C×H×W or H×W, this array is {array_shape}")
        return "scores"
    if dtype.kind not in "iub":
        raise InputError(f"{name}: cannot tile a {dtype} array; expected integers or floats")
    if len(array_shape) == 2:
        return "labels"
    if len(array_shape) == 3 and array_shape[2] <= 4:
        return "image"
    raise InputError(f"{name}: an integer array must be H×W or H×W×C (C ≤ 4), this one is {array_shape}")


@dataclass
class Raster:
    """A readable raster: ``height``×``width`` pixels, ``channels`` (0 for plain H×W)."""

    name: str
    height: int
    width: int
    channels: int
    dtype: np.dtype
    kind: str
    meta: ClassMeta | None = None
    geo: dict | None = None               # GeoTIFF tags ({code: value}, segtools.io.geotiff)
    _array: np.ndarray | None = None      # whole array or memory map (H×W[×C] or C×H×W)
    _npy: tuple[str, int] | None = None   # (path, data offset) of a C-order .npy read by rows

    @property
    def shape(self) -> tuple[int, ...]:
        """Full shape in this raster's layout (scores C×H×W, others H×W[×C])."""
        if self.kind == "scores":
            return (self.channels, self.height, self.width)
        return (self.height, self.width) + ((self.channels,) if self.channels else ())

    def read_rows(self, top: int, bottom: int) -> np.ndarray:
        """Rows ``[top, bottom)``, all columns: C×rows×W for scores, else rows×W[×C]."""
        top, bottom = max(0, top), min(self.height, bottom)
        if self._array is not None:
            if self.kind == "scores":
                return np.ascontiguousarray(self._array[:, top:bottom])
            return np.ascontiguousarray(self._array[top:bottom])
        path, offset = self._npy
        itemsize = self.dtype.itemsize
        with open(path, "rb") as handle:
            if self.kind == "scores":
                band = np.empty((self.channels, bottom - top, self.width), self.dtype)
                plane = self.height * self.width * itemsize
                for channel in range(self.channels):
                    handle.seek(offset + channel * plane + top * self.width * itemsize)
                    _read_exact(handle, band[channel], self.name)
                return band
            per_row = self.width * max(1, self.channels)
            band = np.empty((bottom - top,) + self.shape[1:], self.dtype)
            handle.seek(offset + top * per_row * itemsize)
            _read_exact(handle, band, self.name)
            return band


def _read_exact(handle, target: np.ndarray, name: str) -> None:
    view = memoryview(target.reshape(-1).view(np.uint8))
    if handle.readinto(view) != view.nbytes:
        raise InputError(f"{name}: file is truncated")


def _from_array(array: np.ndarray, name: str, meta: ClassMeta | None = None, kind: str | None = None) -> Raster:
    kind = kind or array_kind(array.shape, array.dtype, name)
    if kind == "scores" and array.ndim == 2:
        array = array[None]
    if kind == "scores":
        channels, height, width = array.shape
    else:
        height, width = array.shape[:2]
        channels = array.shape[2] if array.ndim == 3 else 0
    return Raster(name, height, width, channels, array.dtype, kind, meta, _array=array)


def _open_npy(path: str, name: str) -> Raster:
    header = npy.parse_header(read_head(path, npy.HEAD_BYTES), name)
    shape, fortran, dtype, offset = header.shape, header.fortran_order, header.dtype, header.offset
    kind = array_kind(shape, dtype, name)
    height, width = (shape[-2], shape[-1]) if kind == "scores" else shape[:2]
    check_pixels(width, height, name)
    if header.count == 0:
        raise InputError(f"{name}: holds no pixels (shape {shape})")
    npy.check_length(header, os.path.getsize(path), name)
    if fortran or not dtype.isnative:
        array = np.load(path, mmap_mode="r")
        return _from_array(np.ascontiguousarray(array.astype(dtype.newbyteorder("="))), name)
    channels = shape[0] if (kind == "scores" and len(shape) == 3) else (1 if kind == "scores" else
                                                                       (shape[2] if len(shape) == 3 else 0))
    return Raster(name, height, width, channels, dtype, kind, None, _npy=(path, offset))


def _open_tiff(path: str, name: str) -> Raster:
    tifffile = require("tifffile", "tiff")
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape, dtype = series.shape, series.dtype
            memmappable = tif.pages[0].is_memmappable and len(tif.series) >= 1
            geo = read_geo_tags(tif)
    except (tifffile.TiffFileError, OSError, ValueError) as exc:
        raise InputError(f"{name}: not a readable TIFF ({exc})") from None
    shape = tuple(s for s in shape if s != 1) if len(shape) > 3 else tuple(shape)
    if len(shape) < 2:
        raise InputError(f"{name}: TIFF holds a {shape} array, not an image")
    planar = len(shape) == 3 and shape[0] < shape[2] and shape[0] <= 64 and shape[2] > 64
    height, width = (shape[1], shape[2]) if planar else (shape[0], shape[1])
    check_pixels(width, height, name)
    try:
        array = tifffile.memmap(path, mode="r") if memmappable else tifffile.imread(path)
    except Exception as exc:  # tifffile raises many kinds for unsupported compression
        raise InputError(f"{name}: cannot decode this TIFF ({exc}); "
                         "install 'imagecodecs' for compressed TIFFs") from None
    array = array.reshape(shape)
    if np.dtype(dtype).kind == "f":
        raster = _from_array(array if planar or array.ndim == 2 else np.moveaxis(array, 2, 0), name, kind="scores")
    else:
        raster = _from_array(np.moveaxis(array, 0, 2) if planar else array, name)
    raster.geo = geo
    return raster


def open_raster(path: str | os.PathLike, want: str = "any") -> Raster:
    """Open an image, label mask or score map for band-wise reading.

    Parameters
    ----------
    path : a PNG/JPEG/TIFF/BigTIFF/``.npy``/``.npz`` file (sniffed from its first bytes), or
        an object on a store (a ``.npy`` or TIFF one is copied once per machine,
        :func:`segtools.io.remote.local_file`; the others are read whole).
    want : ``"any"`` or ``"labels"`` (a grey or colour PNG is then read as a label mask).

    Raises
    ------
    InputError, MissingDependency (TIFF without tifffile)
    """
    name = str(path)
    head = read_head(path, 512)
    kind = sniff(head)
    if kind.format in ("npy", "tiff"):
        from segtools.io.remote import local_file

        path = local_file(path)  # band-wise reading maps a local file: an object is copied once per machine
    if kind.format == "npy":
        raster = _open_npy(str(path), name)
    elif kind.format == "tiff":
        raster = _open_tiff(str(path), name)
    elif kind.format == "npz":
        from segtools.io.masks import read_score_map

        score_map = read_score_map(path)
        raster = _from_array(score_map.scores, name, score_map.meta, kind="scores")
    elif want == "labels" or (kind.format == "png" and (kind.colour_type == PNG_PALETTE or PNG_KEY.encode() in head)):
        from segtools.io.masks import read_label_mask

        mask = read_label_mask(path)
        raster = _from_array(mask.labels, name, mask.meta, kind="labels")
    elif kind.is_image_file:
        from segtools.io.images import read_image

        raster = _from_array(read_image(path), name, kind=None)
        if raster.kind == "labels":
            raster.kind = "image"  # a grey photograph, not class indices
    else:
        raise InputError(f"{name}: not an image, mask or score map (recognised: {kind.format})")
    if want == "labels" and raster.kind == "image" and raster.channels == 0:
        raster.kind = "labels"
    if want == "labels" and raster.kind != "labels":
        raise InputError(f"{name}: expected a label mask (H×W integers), found {raster.kind} {raster.shape}")
    return raster


# ---------------------------------------------------------------- writing

OUTPUT_FORMATS = {".npy": "npy", ".png": "png", ".tif": "tiff", ".tiff": "tiff", ".npz": "npz",
                  ".jpg": "jpeg", ".jpeg": "jpeg"}


def output_format(path: str | os.PathLike, kind: str) -> str:
    """The format a raster of ``kind`` is written in at ``path``; refuses impossible pairs."""
    fmt = OUTPUT_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UsageError(f"{path}: unknown output format; use .png, .npy, .npz, .tif or .jpg")
    if kind == "scores" and fmt in ("png", "jpeg"):
        raise UsageError(f"{path}: score maps are written as .npy, .npz or .tif")
    if kind != "scores" and fmt == "npz":
        raise UsageError(f"{path}: .npz holds score maps; write {kind} as .png, .npy or .tif")
    if kind == "labels" and fmt == "jpeg":
        raise UsageError(f"{path}: JPEG is lossy; write label masks as .png or .npy")
    return fmt


def npy_header(shape: tuple[int, ...], dtype) -> bytes:
    """The ``.npy`` header (magic, version, dict, padding) for a C-order array."""
    buffer = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": tuple(shape)}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def encode_raster_parts(array: np.ndarray, fmt: str, kind: str, meta: ClassMeta | None = None,
                        geo: dict | None = None) -> list:
    """Like :func:`encode_raster` but as buffers to write one after another (``.npy``: header
    and the array itself, so a tile is copied once, not three times)."""
    if fmt == "npy":
        array = np.ascontiguousarray(array)
        return [npy_header(array.shape, array.dtype), memoryview(array.reshape(-1)).cast("B")]
    return [encode_raster(array, fmt, kind, meta, geo)]


def write_parts(path: str | os.PathLike, parts: list, allow_overwrite: bool = False) -> Path:
    """Write buffers to ``path`` atomically, one after the other (no joined copy in memory)."""
    with AtomicFile(path, allow_overwrite) as target:
        for part in parts:
            target.handle.write(part)
    return target.path


def encode_raster(array: np.ndarray, fmt: str, kind: str, meta: ClassMeta | None = None,
                  geo: dict | None = None) -> bytes:
    """Bytes of a whole (small) raster: a tile, or a stitched result assembled in memory.
    ``geo`` (GeoTIFF tags, :mod:`segtools.io.geotiff`) is written into TIFF output only."""
    if fmt == "npy":
        return b"".join(bytes(part) for part in encode_raster_parts(array, fmt, kind, meta))
    if fmt == "npz":
        from segtools.io.masks import encode_score_map

        return encode_score_map(array, meta)
    if fmt == "tiff":
        tifffile = require("tifffile", "tiff")
        buffer = io.BytesIO()
        photometric = "rgb" if kind == "image" and array.ndim == 3 and array.shape[2] in (3, 4) else "minisblack"
        tifffile.imwrite(buffer, array, photometric=photometric, bigtiff=array.nbytes > 2**31 - 2**25,
                         planarconfig="contig" if photometric == "rgb" else None, extratags=extratags(geo))
        return buffer.getvalue()
    if kind == "labels" and fmt == "png":
        from segtools.io.masks import encode_label_mask

        return encode_label_mask(array, meta)
    from segtools.io.images import encode_image

    return encode_image(array, fmt)


class RasterWriter:
    """Write a raster band by band (rows in increasing order), atomically.

    ``.npy`` is streamed to a temp file beside ``path``; other formats are assembled in
    memory and encoded at :meth:`commit`. Use as a context manager: an exception removes the
    temp file and leaves no output.
    """

    def __init__(self, path: str | os.PathLike, height: int, width: int, channels: int, dtype,
                 kind: str, meta: ClassMeta | None = None, allow_overwrite: bool = False,
                 geo: dict | None = None) -> None:
        self.path = check_output_path(path, allow_overwrite)
        self.format = output_format(self.path, kind)
        self.height, self.width, self.channels = height, width, channels
        self.dtype, self.kind, self.meta, self.geo = np.dtype(dtype), kind, meta, geo
        if kind == "scores":
            self.shape = (channels, height, width)
        else:
            self.shape = (height, width) + ((channels,) if channels else ())
        self._handle = None
        self._atomic: AtomicFile | None = None
        sweep_stale_parts(self.path)
        if self.format == "npy":
            self._atomic = AtomicFile(self.path, allow_overwrite=True, mode="w+b")
            try:
                hold(self._atomic.handle)
                self._handle = self._atomic.handle
                header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": self.shape}
                np.lib.format.write_array_header_2_0(self._handle, header)
                self._offset = self._handle.tell()
                self._handle.truncate(self._offset + int(np.prod(self.shape)) * self.dtype.itemsize)
            except OSError as exc:
                self._atomic.abort()
                raise OutputError(f"{self.path}: cannot write ({exc.strerror or exc})") from None
            except BaseException:
                self._atomic.abort()
                raise
            self._buffer = None
        else:
            self._buffer = np.zeros(self.shape, self.dtype)

    def write_rows(self, top: int, band: np.ndarray) -> None:
        """Write rows starting at ``top``: C×rows×W for scores, else rows×W[×C]."""
        band = np.ascontiguousarray(band, dtype=self.dtype)
        rows = band.shape[1] if self.kind == "scores" else band.shape[0]
        if self._buffer is not None:
            if self.kind == "scores":
                self._buffer[:, top:top + rows] = band
            else:
                self._buffer[top:top + rows] = band
            return
        try:
            if self.kind == "scores":
                plane = self.height * self.width * self.dtype.itemsize
                for channel in range(self.channels):
                    self._handle.seek(self._offset + channel * plane + top * self.width * self.dtype.itemsize)
                    self._handle.write(memoryview(band[channel]).cast("B"))
            else:
                per_row = self.width * max(1, self.channels) * self.dtype.itemsize
                self._handle.seek(self._offset + top * per_row)
                self._handle.write(memoryview(band).cast("B"))
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write ({exc.strerror or exc})") from None

    def commit(self) -> Path:
        """Finish: flush/encode and move the result into place."""
        if self._buffer is not None:
            data = encode_raster(self._buffer, self.format, self.kind, self.meta, self.geo)
            self._buffer = None
            with AtomicFile(self.path, allow_overwrite=True) as target:
                hold(target.handle)
                target.handle.write(data)
            return target.path
        return self._atomic.commit()

    def abort(self) -> None:
        """Drop everything written so far."""
        self._buffer = None
        if self._atomic is not None:
            self._atomic.abort()

    def __enter__(self) -> "RasterWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()

