"""``tile split``: cut a large image (and its mask) into overlapping tiles plus a manifest.

The source is read one row of tiles at a time (:class:`~segtools.io.rasters.Raster`), so
a memory-mappable input (``.npy``, uncompressed TIFF) never has to fit in memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segtools.errors import InputError, OutputError, SegtoolsError, UsageError
from segtools.io.streams import write_bytes
from segtools.tiling.grid import Tile, as_pair, tile_grid
from segtools.io.geotiff import geo_to_json, shift_geo
from segtools.io.rasters import Raster, encode_raster_parts, write_parts
from segtools.tiling.manifest import MANIFEST_NAME, PAD_MODES, Manifest, TileRecord, tile_file_name

TILE_FORMATS = {"png": ".png", "npy": ".npy", "tiff": ".tif", "tif": ".tif", "npz": ".npz"}


@dataclass
class SplitOptions:
    """How to cut.

    Attributes
    ----------
    size : tile size (h, w) in pixels.
    overlap : pixels, or a fraction of the tile in [0, 1); ignored when ``stride`` is set.
    stride : distance between tile origins in pixels, or ``None``.
    pad : ``None`` (edge tiles shifted inward), ``"reflect"`` or ``"constant"``.
    pad_value : value of constant padding (images and scores; masks pad with ignore_index).
    min_foreground : skip tiles whose mask has a smaller fraction of foreground pixels
        (neither ``background`` nor the mask's ignore index), in [0, 1].
    background : the mask's background class.
    skip_blank : skip tiles whose image is near-uniform: every channel's standard deviation
        ≤ ``blank_std`` (in 8-bit levels; scaled for 16-bit images).
    tile_format : ``png``, ``npy``, ``tiff`` or ``npz`` (scores); ``None`` picks ``npy`` for
        ``.npy`` sources and score maps, ``tiff`` for TIFF sources, else ``png``.
    stem : tile name prefix (default: the source file's stem).
    """

    size: tuple[int, int] = (512, 512)
    overlap: int | float | tuple = 0
    stride: int | tuple | None = None
    pad: str | None = None
    pad_value: float = 0
    min_foreground: float | None = None
    background: int = 0
    skip_blank: bool = False
    blank_std: float = 2.0
    tile_format: str | None = None
    stem: str | None = None


def _pad_band(band: np.ndarray, rows: int, cols: int, mode: str, value: float, channels_first: bool) -> np.ndarray:
    """Pad a band at the bottom/right to ``rows``×``cols`` (numpy ``reflect`` or ``constant``)."""
    y_axis = 1 if channels_first else 0
    extra_rows, extra_cols = rows - band.shape[y_axis], cols - band.shape[y_axis + 1]
    if extra_rows <= 0 and extra_cols <= 0:
        return band
    widths = [(0, 0)] * band.ndim
    widths[y_axis], widths[y_axis + 1] = (0, max(0, extra_rows)), (0, max(0, extra_cols))
    if mode == "reflect" and min(band.shape[y_axis:y_axis + 2]) > 1:
        return np.pad(band, widths, mode="reflect")
    if mode == "reflect":  # one pixel thick: reflecting it is repeating it
        return np.pad(band, widths, mode="edge")
    return np.pad(band, widths, mode="constant", constant_values=value)


def _crop(band: np.ndarray, tile: Tile, band_top: int, channels_first: bool) -> np.ndarray:
    rows = slice(tile.y - band_top, tile.y1 - band_top)
    cols = slice(tile.x, tile.x1)
    return band[:, rows, cols] if channels_first else band[rows, cols]


def _foreground_fraction(mask_tile: np.ndarray, background: int, ignore: int | None, inside: int) -> float:
    foreground = mask_tile != background
    if ignore is not None:
        foreground &= mask_tile != ignore
    return float(np.count_nonzero(foreground)) / max(1, inside)


def _is_blank(tile_pixels: np.ndarray, threshold: float, channels_first: bool) -> bool:
    scale = 257.0 if tile_pixels.dtype == np.uint16 else 1.0
    pixels = tile_pixels if channels_first or tile_pixels.ndim == 2 else np.moveaxis(tile_pixels, -1, 0)
    pixels = pixels.reshape(-1, pixels.shape[-2] * pixels.shape[-1]) if pixels.ndim == 3 else pixels.reshape(1, -1)
    return bool((pixels.std(axis=1, dtype=np.float64) <= threshold * scale).all())


def split_raster(source: Raster, out_dir: str | os.PathLike, options: SplitOptions,
                 mask: Raster | None = None, allow_overwrite: bool = False) -> Manifest:
    """Write the tiles of ``source`` (and ``mask``) into ``out_dir`` with a ``manifest.json``.

    Returns
    -------
    Manifest
        The manifest written; skipped tiles are listed with ``file = None``.

    Raises
    ------
    UsageError
        Bad grid options, or ``min_foreground`` without a mask.
    InputError
        Mask and image of different sizes.
    OutputError
        ``out_dir`` is a file, or a tile cannot be written. Tiles written so far are removed.
    """
    if mask is not None and (mask.height, mask.width) != (source.height, source.width):
        raise InputError(f"{mask.name}: mask is {mask.width}x{mask.height} but the image is "
                         f"{source.width}x{source.height}")
    if options.min_foreground is not None:
        if mask is None:
            raise UsageError(f"min_foreground={options.min_foreground} needs a mask (the mask decides what is foreground)")
        if not 0.0 <= options.min_foreground <= 1.0:
            raise UsageError(f"min_foreground={options.min_foreground}: must be a fraction in [0, 1]")
    if options.pad is not None and options.pad not in PAD_MODES:
        raise UsageError(f"pad={options.pad!r}: choose {' or '.join(PAD_MODES)}")
    from segtools.io.remote import is_url

    # a prefix on a store: each tile goes up as one whole object from whoever cuts its band
    out = str(out_dir) if is_url(str(out_dir)) else Path(out_dir)
    if isinstance(out, Path) and out.exists() and not out.is_dir():
        raise OutputError(f"{out}: is a file; tiles are written into a folder")
    extension = _tile_extension(source, options.tile_format)
    mask_extension = ".npy" if extension in (".npy", ".npz") else ".png"
    stem = options.stem or Path(source.name).name.split(".")[0] or "tile"
    digits = max(5, len(str(max(source.height, source.width))))
    tiles = tile_grid(source.height, source.width, options.size, options.overlap, options.stride,
                      pad=options.pad is not None)
    channels_first = source.kind == "scores"
    ignore = mask.meta.ignore_index if (mask is not None and mask.meta is not None) else 255
    records: list[TileRecord] = []
    written: list[Path] = []
    try:
        try:
            if isinstance(out, Path):
                out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{out}: cannot make the tile folder ({exc.strerror or exc})") from None
        rows: dict[int, list[Tile]] = {}
        for tile in tiles:
            rows.setdefault(tile.y, []).append(tile)
        from segtools.io.cluster import active_client
        from segtools.io.parallel import pmap

        # on a Dask cluster (``--dask``) each band is a task: a worker opens the source by
        # its path (once) rather than receiving its pixels
        remote = active_client() is not None
        shared = (_RasterRef(source.name, "any") if remote else source,
                  _RasterRef(mask.name, "labels") if remote and mask is not None else mask,
                  options, out, stem, digits, extension, mask_extension, ignore, channels_first, allow_overwrite)
        error = None
        for band_records, band_written, band_error in pmap(_split_band, [(top, row, shared) for top, row in rows.items()]):
            records.extend(band_records)
            written.extend(band_written)
            error = error or band_error
        if error is not None:
            raise error
        manifest = Manifest(
            source={"name": Path(source.name).name, "height": source.height, "width": source.width,
                    "channels": source.channels, "dtype": source.dtype.name, "kind": source.kind,
                    **({"geo": geo_to_json(source.geo)} if source.geo else {})},
            size=tuple(int(v) for v in as_pair(options.size, "size")),
            stride=_strides(tiles), overlap=_overlaps(tiles, options.size),
            pad=options.pad, tiles=records, pad_value=options.pad_value,
            classes=(source.meta or (mask.meta if mask is not None else None)).to_dict()
            if (source.meta or (mask is not None and mask.meta)) else None)
        write_bytes(_at(out, MANIFEST_NAME), manifest.to_json().encode("utf-8"), allow_overwrite)
    except BaseException:
        _remove_all(written)
        raise
    return manifest


def _at(out: "Path | str", name: str) -> "Path | str":
    """The file ``name`` (POSIX, relative) in the tile folder, or below the tile prefix on a store."""
    from segtools.io.remote import below

    return out / name if isinstance(out, Path) else below(out, name)


def _remove_all(written) -> None:
    """Remove what a failed split wrote (files, or objects on a store), as far as it can."""
    from segtools.io.remote import remove

    for path in written:
        try:
            path.unlink() if isinstance(path, Path) else remove(path)
        except (OSError, OutputError):
            pass


@dataclass(frozen=True)
class _RasterRef:
    """A raster by path, opened once per cluster worker."""

    path: str
    want: str

    def open(self) -> Raster:
        from segtools.io.cluster import worker_cached
        from segtools.io.rasters import open_raster
        from segtools.io.remote import is_url, local_file

        try:  # an object on a store: this machine's copy (fetched again when the store says it changed)
            stamp = os.stat(local_file(self.path) if is_url(self.path) else self.path).st_mtime_ns
        except OSError as exc:
            raise InputError(f"{self.path}: a cluster worker cannot read it ({exc.strerror or exc}); the workers "
                             "need the paths the command is given (a shared file system)") from None
        return worker_cached(("raster", self.path, self.want, stamp), lambda: open_raster(self.path, self.want))


def _split_band(job) -> tuple[list[TileRecord], list[Path], Exception | None]:
    """Write one band (row of tiles): its records, the files written, and the error that
    stopped it (its own files then removed), so every band reports what it wrote."""
    band_top, row_tiles, (source, mask, options, out, stem, digits, extension, mask_extension, ignore,
                          channels_first, allow_overwrite) = job
    source = source.open() if isinstance(source, _RasterRef) else source
    mask = mask.open() if isinstance(mask, _RasterRef) else mask
    records: list[TileRecord] = []
    written: list[Path] = []
    try:
        band_rows = row_tiles[0].h
        band_cols = max(t.x1 for t in row_tiles)
        band = source.read_rows(band_top, band_top + band_rows)
        mask_band = mask.read_rows(band_top, band_top + band_rows) if mask is not None else None
        if options.pad is not None:
            band = _pad_band(band, band_rows, band_cols, options.pad, options.pad_value, channels_first)
            if mask_band is not None:
                mask_band = _pad_band(mask_band, band_rows, band_cols, options.pad,
                                      255 if ignore is None else ignore, False)
        for tile in row_tiles:
            records.append(_write_tile(tile, band, mask_band, band_top, source, mask, options, out, stem,
                                       digits, extension, mask_extension, ignore, channels_first,
                                       allow_overwrite, written))
    except SegtoolsError as exc:
        _remove_all(written)
        return [], [], exc
    return records, written, None


def _tile_extension(source: Raster, tile_format: str | None) -> str:
    if tile_format is None:
        suffix = Path(source.name).suffix.lower()
        if source.kind == "scores" or suffix == ".npy":
            return ".npy"
        return ".tif" if suffix in (".tif", ".tiff") else ".png"
    extension = TILE_FORMATS.get(tile_format.lower().lstrip("."))
    if extension is None:
        raise UsageError(f"tile_format={tile_format!r}: choose png, npy, tiff or npz")
    if source.kind == "scores" and extension == ".png":
        raise UsageError("tile_format=png: score maps cannot be tiled as PNG; use tile_format=npy (or npz)")
    if source.kind != "scores" and extension == ".npz":
        raise UsageError("tile_format=npz is for score maps: use png, npy or tiff")
    return extension


def _write_tile(tile, band, mask_band, band_top, source, mask, options, out, stem, digits, extension,
                mask_extension, ignore, channels_first, allow_overwrite, written) -> TileRecord:
    pixels = _crop(band, tile, band_top, channels_first)
    inside = tile.clipped(source.height, source.width)
    mask_pixels = _crop(mask_band, tile, band_top, False) if mask_band is not None else None
    if options.min_foreground is not None and mask_pixels is not None:
        inner = mask_pixels[:inside.h, :inside.w]
        if _foreground_fraction(inner, options.background, ignore, inside.h * inside.w) < options.min_foreground:
            return TileRecord(tile, None, skipped="min-foreground")
    if options.skip_blank and _is_blank(pixels, options.blank_std, channels_first):
        return TileRecord(tile, None, skipped="blank")
    name = tile_file_name(stem, tile, extension, digits)
    fmt = {".png": "png", ".npy": "npy", ".tif": "tiff", ".npz": "npz"}[extension]
    geo = shift_geo(source.geo, tile.y, tile.x) if fmt == "tiff" else None
    written.append(write_parts(_at(out, name), encode_raster_parts(pixels, fmt, source.kind, source.meta, geo),
                               allow_overwrite))
    mask_name = None
    if mask_pixels is not None:
        mask_name = f"masks/{tile_file_name(stem, tile, mask_extension, digits)}"
        mask_fmt = "npy" if mask_extension == ".npy" else "png"
        written.append(write_parts(_at(out, mask_name), encode_raster_parts(mask_pixels, mask_fmt, "labels", mask.meta),
                                   allow_overwrite))
    return TileRecord(tile, name, mask_name)


def _strides(tiles: list[Tile]) -> tuple[int, int]:
    ys = sorted({t.y for t in tiles})
    xs = sorted({t.x for t in tiles})
    return (ys[1] - ys[0] if len(ys) > 1 else tiles[0].h, xs[1] - xs[0] if len(xs) > 1 else tiles[0].w)


def _overlaps(tiles: list[Tile], size) -> tuple[int, int]:
    stride_y, stride_x = _strides(tiles)
    return (max(0, tiles[0].h - stride_y), max(0, tiles[0].w - stride_x))
