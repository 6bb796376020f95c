"""``tile merge``: put tiles back together, one band of rows at a time.

Bands are the rows each tile row owns under the nearest-centre rule
(:func:`~segtools.tiling.stitch.ownership_bounds`). For every band only the tiles crossing it
are loaded (those of its own tile row and the overlapping neighbours), stitched or blended,
and the band is handed to a :class:`~segtools.io.rasters.RasterWriter`, which streams
``.npy`` straight to disk. Memory is a few tile rows, never the whole set of tiles.

- Float tiles (score maps) are blended with a weight window (:mod:`~segtools.tiling.blend`);
  written as ``.npy``/``.npz``/``.tif``, or as an argmax label mask when the output is ``.png``.
- Integer tiles (label masks, images) are stitched by nearest tile centre or majority
  (:mod:`~segtools.tiling.stitch`): every output pixel is a copy of some tile's pixel.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from segtools.errors import InputError, UsageError
from segtools.io.geotiff import geo_from_json
from segtools.io.meta import ClassMeta
from segtools.tiling.blend import ScoreAccumulator
from segtools.tiling.grid import Tile
from segtools.io.rasters import OUTPUT_FORMATS, RasterWriter, open_raster
from segtools.tiling.manifest import Manifest, resolve_tile_path
from segtools.tiling.stitch import ownership_bounds, paint_cells, paint_owned

STITCH_RULES = ("nearest", "majority")
TILE_EXTENSIONS = (".npz", ".npy", ".png", ".tif", ".tiff")


@dataclass
class MergeOptions:
    """How to merge.

    Attributes
    ----------
    rule : integer tiles: ``nearest`` (tile centre) or ``majority``.
    blend : float tiles: ``mean``, ``linear`` or ``gaussian`` weights.
    sigma_scale : Gaussian σ as a fraction of the tile size.
    fill : value where no tile covers a pixel; default the ignore index (255) for labels,
        0 for images and scores.
    allow_missing : merge even when tiles the manifest lists are absent (they count as skipped).
    """

    rule: str = "nearest"
    blend: str = "gaussian"
    sigma_scale: float = 0.125
    fill: float | None = None
    allow_missing: bool = False


def locate_tiles(manifest: Manifest, manifest_dir: Path, tile_dir: Path,
                 allow_missing: bool = False) -> list[tuple[Tile, Path | None]]:
    """Each grid tile and its file in ``tile_dir`` (``None`` when skipped or, if allowed, absent).

    A tile is found under the manifest's name, or else under the same stem with another
    extension (``scene_y00000_x00000.npz`` for a model's scores of ``…png``).
    """
    located, missing = [], []
    for record in manifest.tiles:
        if record.file is None:
            located.append((record.tile, None))
            continue
        path = resolve_tile_path(tile_dir, record.file)
        if not path.is_file():
            stem = record.file[: len(record.file) - len(Path(record.file).suffix)]
            candidates = (resolve_tile_path(tile_dir, stem + ext) for ext in TILE_EXTENSIONS)
            path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            missing.append(record.file)
        located.append((record.tile, path))
    if missing and not allow_missing:
        raise InputError(f"{tile_dir}: {len(missing)} tile(s) the manifest lists are missing, e.g. {missing[0]}; "
                         "(allow_missing: merge without them)")
    if all(path is None for _, path in located):
        raise InputError(f"{tile_dir}: no tiles to merge (all {len(located)} are skipped or missing)")
    return located


def _load(tile: Tile, path: Path, kind: str | None, channels: int | None) -> tuple[np.ndarray, str, ClassMeta | None]:
    raster = open_raster(path)
    pixels = raster.read_rows(0, raster.height)
    if (raster.height, raster.width) != (tile.h, tile.w):
        raise InputError(f"{path}: tile is {raster.width}x{raster.height} but the manifest says {tile.w}x{tile.h}; "
                         "resize model outputs back to the tile size before merging")
    tile_kind = "scores" if raster.kind == "scores" else "pixels"
    if kind is not None and tile_kind != kind:
        raise InputError(f"{path}: holds {raster.kind} but earlier tiles were "
                         f"{'score maps' if kind == 'scores' else 'labels/images'}; do not mix them")
    if channels is not None and raster.channels != channels:
        raise InputError(f"{path}: has {raster.channels} channels, earlier tiles {channels}")
    return pixels, raster.kind, raster.meta


def merge_tiles(manifest: Manifest, manifest_dir: str | os.PathLike, output: str | os.PathLike,
                options: MergeOptions | None = None, tile_dir: str | os.PathLike | None = None,
                allow_overwrite: bool = False,
                on_band: Callable[[int, int], None] | None = None) -> Path:
    """Merge the tiles a manifest lists into one raster at ``output``.

    Parameters
    ----------
    manifest : the split's manifest (source size, grid, tile files).
    manifest_dir : folder the manifest's file names are relative to.
    output : ``.png``, ``.npy``, ``.npz``, ``.tif`` or ``.jpg`` (the format follows the extension).
    options : stitching/blending choices.
    tile_dir : folder holding the tiles (default ``manifest_dir``), e.g. a model's outputs.
    allow_overwrite : allow ``output`` to replace a file this process read.
    on_band : called as ``on_band(i, n)`` after each of the ``n`` bands (progress).

    Returns
    -------
    Path of the written output.
    """
    options = options or MergeOptions()
    if options.rule not in STITCH_RULES:
        raise UsageError(f"rule={options.rule!r}: choose {' or '.join(STITCH_RULES)}")
    if Path(output).suffix.lower() not in OUTPUT_FORMATS:
        raise UsageError(f"{output}: unknown output format; use .png, .npy, .npz, .tif or .jpg")
    manifest_dir = Path(manifest_dir)
    tile_dir = Path(tile_dir) if tile_dir is not None else manifest_dir
    located = locate_tiles(manifest, manifest_dir, tile_dir, options.allow_missing)
    height, width = manifest.height, manifest.width
    tile_h, tile_w = located[0][0].h, located[0][0].w
    if any((t.h, t.w) != (tile_h, tile_w) for t, _ in located):
        raise InputError("manifest tiles differ in size; tiles of one grid must all be the same size")
    ys, xs = sorted({t.y for t, _ in located}), sorted({t.x for t, _ in located})
    y_bounds, x_bounds = ownership_bounds(ys, tile_h, height), ownership_bounds(xs, tile_w, width)
    complete = all(p is not None for _, p in located) and len(located) == len(ys) * len(xs)

    first_tile, first_path = next((t, p) for t, p in located if p is not None)
    first_pixels, first_kind, meta = _load(first_tile, first_path, None, None)
    if meta is None and manifest.classes:
        meta = ClassMeta.from_dict(manifest.classes, "manifest classes")
    scores = first_kind == "scores"
    channels = first_pixels.shape[0] if scores else (first_pixels.shape[2] if first_pixels.ndim == 3 else 0)
    out_kind = first_kind
    if not scores and channels == 0 and manifest.source.get("kind") == "labels":
        out_kind = "labels"
    argmax = scores and Path(output).suffix.lower() == ".png"
    if argmax:
        out_kind = "labels"
    ignore = meta.ignore_index if (meta is not None and meta.ignore_index is not None) else 255
    fill = options.fill if options.fill is not None else (ignore if out_kind == "labels" else 0)
    if argmax:
        out_dtype, out_channels = (np.uint8 if channels <= 255 and fill <= 255 else np.uint16), 0
    else:
        out_dtype, out_channels = first_pixels.dtype, channels
    owned = {}
    for row, y in enumerate(ys):
        for col, x in enumerate(xs):
            owned[Tile(y, x, tile_h, tile_w)] = (y_bounds[row], y_bounds[row + 1], x_bounds[col], x_bounds[col + 1])

    cache: dict[Tile, np.ndarray] = {first_tile: first_pixels}
    scratch: np.ndarray | None = None   # score bands are accumulated in one reused buffer
    kind_key = "scores" if scores else "pixels"
    geo = geo_from_json(manifest.source.get("geo"), "manifest source")
    writer = RasterWriter(output, height, width, out_channels, out_dtype, out_kind, meta, allow_overwrite, geo)
    with writer:
        bands = [(top, bottom) for top, bottom in zip(y_bounds[:-1], y_bounds[1:]) if bottom > top]
        for index, (top, bottom) in enumerate(bands):
            for tile in [t for t in cache if t.y1 <= top]:
                del cache[tile]
            pieces = []
            for tile, path in located:
                if path is None or tile.y >= bottom or tile.y1 <= top:
                    continue
                if tile not in cache:
                    cache[tile] = _load(tile, path, kind_key, channels)[0]
                pieces.append((tile, cache[tile]))
            if scores:
                if scratch is None:
                    tallest = max(b - t for t, b in bands)
                    scratch = np.empty((channels, tallest, width), np.float32)
                band, coverage = _blend_band(pieces, top, bottom, width, channels, options, scratch)
                if argmax:
                    labels = band.argmax(axis=0).astype(out_dtype)
                    labels[~coverage] = fill
                    band = labels
                elif fill:
                    band[:, ~coverage] = fill
                writer.write_rows(top, band)
            else:
                canvas = np.full((bottom - top, width) + ((channels,) if channels else ()), fill, out_dtype)
                if complete and options.rule == "nearest":
                    paint_owned(canvas, top, pieces, owned)
                else:
                    paint_cells(canvas, top, pieces, x_bounds, options.rule)
                writer.write_rows(top, canvas)
            if on_band is not None:
                on_band(index, len(bands))
        return writer.commit()


def _blend_band(pieces, top: int, bottom: int, width: int, channels: int, options: MergeOptions,
                scratch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean of the score tiles crossing rows ``[top, bottom)``, and its coverage."""
    sums = scratch[:, :bottom - top]
    sums[...] = 0
    accumulator = ScoreAccumulator(channels, bottom - top, width, mode=options.blend,
                                   sigma_scale=options.sigma_scale, out=sums)
    for tile, pixels in pieces:
        accumulator.add(Tile(tile.y - top, tile.x, tile.h, tile.w), pixels)
    return accumulator.result(), accumulator.coverage
