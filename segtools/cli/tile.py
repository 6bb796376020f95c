"""``segtools tile``: split huge images into overlapping tiles, and stitch results back."""

from __future__ import annotations

from typing import Optional

import typer
from typing_extensions import Annotated

from segtools.cli.common import info, progress
from segtools.cli.options import DaskOpt, OverwriteOpt, parse_overlap, parse_size
from segtools.io.remote import storage

#: library parameters → the flags that set them, for library messages (cli.options)
SPLIT_FLAGS = {"min_foreground": "--min-foreground", "pad": "--pad", "tile_format": "--tile-format",
               "overlap": "--overlap", "stride": "--stride"}
MERGE_FLAGS = {"rule": "--rule", "sigma_scale": "--sigma-scale", "allow_missing": "--allow-missing"}

tile_app = typer.Typer(
    help=("Split huge images into overlapping tiles (with a manifest.json) and merge tiles back.\n\n"
          "Example:  segtools tile split scene.png --size 512 --overlap 64 -o tiles/"),
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@tile_app.command("split")
# s3://, gs://, memory://… source, mask and tile prefix: each band's tiles go up as whole objects
# from whoever cuts it (a Dask worker too); a .npy or TIFF source is copied once per machine
@storage(inputs=None, paths=("image", "mask"), streamed=("image", "mask", "output"))
def split(
    image: Annotated[str, typer.Argument(help="Image, label mask or score map: PNG, JPEG, TIFF/BigTIFF, .npy, .npz.")],
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Folder for the tiles and manifest.json.")] = None,
    size: Annotated[str, typer.Option("--size", "-s", help="Tile size in pixels: N or HEIGHTxWIDTH.")] = "512",
    overlap: Annotated[str, typer.Option("--overlap", help="Overlap: pixels (64) or a fraction of the tile (0.25, 25%).")] = "0",
    stride: Annotated[Optional[str], typer.Option("--stride", help="Distance between tiles in pixels (N or HEIGHTxWIDTH); replaces --overlap.")] = None,
    pad: Annotated[Optional[str], typer.Option("--pad", help="Pad edge tiles (reflect or constant) instead of shifting them inward.")] = None,
    pad_value: Annotated[float, typer.Option("--pad-value", help="Value for --pad constant (masks pad with their ignore index).")] = 0,
    mask: Annotated[Optional[str], typer.Option("--mask", "-m", help="Label mask to split along with the image (into masks/).")] = None,
    min_foreground: Annotated[Optional[float], typer.Option(
        "--min-foreground", help="Skip tiles whose mask has less than this fraction [0,1] of foreground pixels.")] = None,
    background: Annotated[int, typer.Option("--background", help="Mask class that is background for --min-foreground.")] = 0,
    skip_blank: Annotated[bool, typer.Option("--skip-blank", help="Skip near-uniform image tiles (e.g. slide background).")] = False,
    blank_std: Annotated[float, typer.Option("--blank-std", help="--skip-blank threshold: max std per channel, 8-bit levels.")] = 2.0,
    tile_format: Annotated[Optional[str], typer.Option(
        "--tile-format", help="png, npy, tiff or npz; default npy for .npy inputs and scores, tiff for TIFF, else png.")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Tile name prefix (default: the input's file stem).")] = None,
    overwrite: OverwriteOpt = False,
    dask: DaskOpt = None,
) -> None:
    """Cut an image (and its mask) into overlapping tiles named by position, plus manifest.json.

    Edge tiles are shifted inward so every tile is full size (or padded with --pad); images
    smaller than a tile give one tile. Tiles are named STEM_yYYYYY_xXXXXX.EXT.

    Example: segtools tile split scene.tif --size 512 --overlap 64 -o tiles/
    """
    from segtools.cli.options import parameters_as_flags
    from segtools.errors import UsageError
    from segtools.io.rasters import open_raster
    from segtools.tiling.split import SplitOptions, split_raster

    if not output:
        raise UsageError("give a folder for the tiles with -o DIR")
    options = SplitOptions(
        size=parse_size(size, "--size"), overlap=parse_overlap(overlap, "--overlap"),
        stride=parse_size(stride, "--stride") if stride is not None else None,
        pad=pad.lower() if pad else None, pad_value=pad_value, min_foreground=min_foreground,
        background=background, skip_blank=skip_blank, blank_std=blank_std, tile_format=tile_format, stem=name)
    if min_foreground is not None and mask is None:
        raise UsageError("--min-foreground needs --mask (the mask decides what is foreground)")
    from segtools.io.cluster import use_dask

    with parameters_as_flags(SPLIT_FLAGS):
        source = open_raster(image)
        mask_raster = open_raster(mask, want="labels") if mask else None
        with use_dask(dask):  # --dask: each row of tiles is a task on the cluster
            manifest = split_raster(source, output, options, mask_raster, allow_overwrite=overwrite)
    kept = manifest.written
    skipped = len(manifest.tiles) - kept
    info(f"{image}: {source.height}x{source.width} → {kept} tiles of {options.size[0]}x{options.size[1]} (HxW)"
         + (f" ({skipped} skipped)" if skipped else "") + f" and manifest.json in {output}")


@tile_app.command("merge")
@storage(inputs=None, paths=("tiles", "manifest"))
def merge(
    tiles: Annotated[str, typer.Argument(help="Folder of tiles (with manifest.json, or see --manifest).")],
    output: Annotated[Optional[str], typer.Option(
        "--output", "-o", help="Stitched result: .png, .npy (streamed, for huge images), .npz, .tif or .jpg.")] = None,
    manifest: Annotated[Optional[str], typer.Option(
        "--manifest", help="manifest.json from `tile split` when TILES holds only results (e.g. model scores).")] = None,
    blend: Annotated[str, typer.Option("--blend", help="Score tiles: mean, linear or gaussian weights.")] = "gaussian",
    sigma_scale: Annotated[float, typer.Option("--sigma-scale", help="Gaussian sigma as a fraction of the tile size.")] = 0.125,
    rule: Annotated[str, typer.Option("--rule", help="Label/image tiles: nearest (tile centre) or majority.")] = "nearest",
    fill: Annotated[Optional[float], typer.Option(
        "--fill", help="Value where no tile covers (default: ignore index 255 for labels, 0 otherwise).")] = None,
    allow_missing: Annotated[bool, typer.Option("--allow-missing", help="Merge even if listed tiles are absent.")] = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Stitch tiles back into one image, label mask or score map, using the manifest.

    Score tiles (float) are blended; label and image tiles take each pixel from the tile whose
    centre is nearest (seam-free), or by majority. A score merge written as .png is argmaxed.

    Example: segtools tile merge scores/ --manifest tiles/manifest.json --blend gaussian -o stitched.npy
    """
    from pathlib import Path

    from segtools.cli.options import parameters_as_flags
    from segtools.errors import InputError, UsageError
    from segtools.tiling.manifest import read_manifest
    from segtools.tiling.merge import MergeOptions, merge_tiles

    if not output:
        raise UsageError("give the output file with -o FILE (.png, .npy, .npz, .tif)")
    tile_dir = Path(tiles)
    if not tile_dir.is_dir():
        raise InputError(f"{tiles}: not a folder of tiles")
    manifest_path = Path(manifest) if manifest else tile_dir
    loaded = read_manifest(manifest_path)
    manifest_dir = manifest_path.parent if manifest_path.is_file() or manifest_path.suffix == ".json" else manifest_path
    options = MergeOptions(rule=rule.lower(), blend=blend.lower(), sigma_scale=sigma_scale, fill=fill,
                           allow_missing=allow_missing)
    with progress(loaded.bands, "merging") as advance, parameters_as_flags(MERGE_FLAGS):
        written = merge_tiles(loaded, manifest_dir, output, options, tile_dir=tile_dir,
                              allow_overwrite=overwrite, on_band=lambda i, n: advance(i))
    info(f"{tiles}: merged {loaded.written} tiles into "
         f"{loaded.height}x{loaded.width} (HxW) {written}")


def register(app: typer.Typer) -> None:
    """Add ``segtools tile split|merge`` (registered on ``tile_app`` once, at import: a
    register per run would pile copies of them up in a process that runs many)."""
    app.add_typer(tile_app, name="tile")
