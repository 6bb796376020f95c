"""segtools.tiling: grids, blend weights, split → merge identities, seams, manifests."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from segtools.errors import InputError, UsageError
from segtools.tiling.blend import MIN_WEIGHT, ScoreAccumulator, blend_weights
from segtools.tiling.grid import Tile, axis_starts, tile_grid
from segtools.io.rasters import RasterWriter, open_raster
from segtools.tiling.manifest import read_manifest, resolve_tile_path
from segtools.tiling.merge import MergeOptions, merge_tiles
from segtools.tiling.split import SplitOptions, split_raster
from segtools.tiling.stitch import ownership_bounds

RNG = np.random.default_rng(7)


def _coverage(tiles, height, width):
    count = np.zeros((height, width), int)
    for t in tiles:
        count[max(t.y, 0):min(t.y1, height), max(t.x, 0):min(t.x1, width)] += 1
    return count


# ---------------------------------------------------------------- grid

@pytest.mark.parametrize("height,width,size,overlap", [
    (1, 29, 8, 3), (29, 1, 8, 3), (97, 89, 13, 4), (101, 103, 17, 0), (5, 7, 32, 8), (64, 64, 16, 0.25),
    (1, 1, 4, 0), (53, 53, 53, 10),
])
def test_grid_covers_every_pixel_with_full_size_tiles_inside(height, width, size, overlap):
    tiles = tile_grid(height, width, size, overlap)
    assert _coverage(tiles, height, width).min() >= 1
    for t in tiles:
        assert 0 <= t.y and t.y1 <= height and 0 <= t.x and t.x1 <= width
        assert (t.h, t.w) == (min(size, height), min(size, width))
    assert tiles == sorted(tiles, key=lambda t: (t.y, t.x))  # row-major
    assert len(set(tiles)) == len(tiles)


def test_grid_stride_overlap_and_padding():
    assert axis_starts(10, 4, 3) == [0, 3, 6]
    assert axis_starts(10, 4, 4) == [0, 4, 6]          # last tile shifted inward
    assert axis_starts(10, 4, 4, pad=True) == [0, 4, 8]  # or left to extend past the border
    assert [t.x for t in tile_grid(4, 100, 40, stride=30)] == [0, 30, 60]
    padded = tile_grid(10, 10, 4, pad=True)
    assert {(t.h, t.w) for t in padded} == {(4, 4)} and max(t.y1 for t in padded) == 12
    assert tile_grid(6, 10, (3, 5), overlap=(1, 0)) == [Tile(y, x, 3, 5) for y in (0, 2, 3) for x in (0, 5)]


@pytest.mark.parametrize("kwargs", [dict(overlap=16), dict(overlap=1.5), dict(stride=17), dict(size=0)])
def test_grid_refuses_bad_options(kwargs):
    args = dict(size=16) | kwargs
    with pytest.raises(UsageError):
        tile_grid(50, 50, **args)


def test_ownership_bounds_are_midpoints_between_centres():
    # tiles of 10 at 0, 8, 16 (image 26): centres 5, 13, 21 → midpoints 9, 17
    assert ownership_bounds([0, 8, 16], 10, 26) == [0, 9, 17, 26]
    starts = axis_starts(97, 13, 9)
    bounds = ownership_bounds(starts, 13, 97)
    centres = np.array(starts) + 6.5
    nearest = np.argmin(np.abs(np.arange(97)[:, None] + 0.5 - centres[None]), axis=1)
    assert np.array_equal(np.repeat(np.arange(len(starts)), np.diff(bounds)), nearest)


# ---------------------------------------------------------------- blend weights

def test_gaussian_weights_follow_monai_formula():
    h, w = 12, 20
    weights = blend_weights(h, w, "gaussian", sigma_scale=0.125)
    gy = np.exp(-0.5 * ((np.arange(h) - (h - 1) / 2) / (0.125 * h)) ** 2)
    gx = np.exp(-0.5 * ((np.arange(w) - (w - 1) / 2) / (0.125 * w)) ** 2)
    monai = np.outer(gy, gx) / np.outer(gy, gx).max()
    assert weights.dtype == np.float32 and weights.shape == (h, w) and weights.max() == 1.0
    central = monai >= MIN_WEIGHT                      # where MONAI does not clamp, identical
    np.testing.assert_allclose(weights[central], monai[central], rtol=1e-6)
    # the clamp is per axis: the rim keeps its shape instead of going flat
    expected = np.outer(np.maximum(gy / gy.max(), MIN_WEIGHT), np.maximum(gx / gx.max(), MIN_WEIGHT))
    np.testing.assert_allclose(weights, expected, rtol=1e-6)
    assert weights[-1, 0] < weights[-1, w // 2] and weights.min() >= MIN_WEIGHT ** 2 * 0.999


def test_linear_and_mean_weights():
    linear = blend_weights(8, 6, "linear")
    assert linear.max() == 1.0 and linear.min() > 0
    np.testing.assert_array_equal(linear, linear[::-1, ::-1])  # symmetric
    assert linear[0, 0] < linear[1, 1] < linear[3, 2]
    np.testing.assert_array_equal(blend_weights(3, 4, "mean"), np.ones((3, 4), np.float32))
    with pytest.raises(UsageError):
        blend_weights(3, 4, "cosine")


@pytest.mark.parametrize("mode", ["mean", "linear", "gaussian"])
def test_accumulator_returns_consistent_tiles_unchanged(mode):
    field = RNG.random((3, 45, 61)).astype(np.float32)
    accumulator = ScoreAccumulator(3, 45, 61, mode=mode)
    for t in tile_grid(45, 61, 16, overlap=5):
        accumulator.add(t, field[:, t.y:t.y1, t.x:t.x1])
    np.testing.assert_allclose(accumulator.result(), field, rtol=1e-5, atol=1e-6)


def test_seam_free_blending_of_disagreeing_tiles():
    """Tiles that disagree by a per-tile offset blend into a field with no step at tile borders."""
    height, width, size, overlap = 96, 224, 64, 32
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    field = (0.5 + 0.2 * np.sin(x / 23.0) * np.cos(y / 17.0))[None]
    tiles = tile_grid(height, width, size, overlap)
    disagreement = 0.2                                   # neighbouring tiles differ by this much
    offsets = [disagreement * (((t.y // 32) + (t.x // 32)) % 2) for t in tiles]
    smooth_step = max(np.abs(np.diff(field[0], axis=1)).max(), np.abs(np.diff(field[0], axis=0)).max())
    steps = {}
    for mode in ("gaussian", "linear", "mean"):
        accumulator = ScoreAccumulator(1, height, width, mode=mode)
        for t, offset in zip(tiles, offsets):
            accumulator.add(t, field[:, t.y:t.y1, t.x:t.x1] + offset)
        merged = accumulator.result()[0]
        steps[mode] = max(np.abs(np.diff(merged, axis=1)).max(), np.abs(np.diff(merged, axis=0)).max())
    # gaussian (σ = 8 px) and linear spread a tile change over the overlap: a step per pixel of
    # at most ~1/8 of the disagreement, image borders included; the plain mean jumps by half of
    # it where a second tile starts.
    assert steps["gaussian"] < smooth_step + 0.15 * disagreement
    assert steps["linear"] < smooth_step + 0.06 * disagreement
    assert steps["mean"] > smooth_step + 0.4 * disagreement


# ---------------------------------------------------------------- split → merge identities

def _split_merge(tmp_path, array, options, rule="nearest", out_name="merged.npy", mask=None, merge_options=None):
    source_path = tmp_path / "scene.npy"
    np.save(source_path, array)
    mask_raster = None
    if mask is not None:
        np.save(tmp_path / "mask.npy", mask)
        mask_raster = open_raster(tmp_path / "mask.npy", want="labels")
    manifest = split_raster(open_raster(source_path), tmp_path / "tiles", options, mask_raster)
    out = tmp_path / out_name
    merge_tiles(read_manifest(tmp_path / "tiles"), tmp_path / "tiles", out,
                merge_options or MergeOptions(rule=rule))
    return manifest, out


@pytest.mark.parametrize("shape,size,overlap,pad,fmt", [
    ((37, 53, 3), 16, 0, None, "png"),
    ((37, 53, 3), 16, 5, None, "npy"),
    ((31, 17), 7, 0.5, "reflect", "png"),
    ((13, 7, 3), 8, 3, "constant", "npy"),
    ((1, 29, 3), 8, 3, None, "png"),
    ((97, 89, 4), 13, 4, None, "npy"),      # prime sizes, RGBA
    ((5, 6, 3), 32, 8, None, "png"),        # image smaller than a tile
])
@pytest.mark.parametrize("rule", ["nearest", "majority"])
def test_split_then_merge_reproduces_the_image_exactly(tmp_path, shape, size, overlap, pad, fmt, rule):
    image = RNG.integers(0, 256, shape, dtype=np.uint8)
    _, out = _split_merge(tmp_path, image, SplitOptions(size=(size, size), overlap=overlap, pad=pad, tile_format=fmt),
                          rule)
    merged = np.load(out)
    assert merged.dtype == image.dtype and merged.shape == image.shape
    np.testing.assert_array_equal(merged, image)


def test_split_merge_scores_with_overlap_and_float16(tmp_path):
    scores = RNG.random((5, 70, 90)).astype(np.float16)
    _, out = _split_merge(tmp_path, scores, SplitOptions(size=(32, 32), overlap=8),
                          merge_options=MergeOptions(blend="gaussian"))
    merged = np.load(out)
    assert merged.dtype == np.float16 and merged.shape == scores.shape
    np.testing.assert_allclose(merged.astype(np.float32), scores.astype(np.float32), atol=1e-3)


def test_label_tiles_keep_their_classes_and_png_metadata(tmp_path):
    from segtools.io.masks import encode_label_mask, read_label_mask
    from segtools.io.meta import load_classes

    meta = load_classes("camvid")
    labels = RNG.integers(0, 12, (40, 50), dtype=np.uint8)
    (tmp_path / "mask.png").write_bytes(encode_label_mask(labels, meta))
    split_raster(open_raster(tmp_path / "mask.png"), tmp_path / "tiles", SplitOptions(size=(16, 16), overlap=4))
    merge_tiles(read_manifest(tmp_path / "tiles"), tmp_path / "tiles", tmp_path / "out.png")
    merged = read_label_mask(tmp_path / "out.png")
    np.testing.assert_array_equal(merged.labels, labels)
    assert merged.meta is not None and merged.meta.names == meta.names


def test_majority_differs_from_nearest_only_where_three_tiles_overlap(tmp_path):
    height, width, size, stride = 1, 30, 12, 4       # up to three tiles cover a pixel
    tiles = tile_grid(height, width, size, stride=stride)
    tiles_dir = tmp_path / "tiles"
    split_raster(open_raster(_save(tmp_path / "zero.npy", np.zeros((height, width), np.uint8))), tiles_dir,
                 SplitOptions(size=(1, size), stride=(1, stride), tile_format="npy"))
    manifest = read_manifest(tiles_dir)
    # tile k says label k everywhere, except tile 2, which agrees with tile 0
    labels = [0 if k == 2 else k for k in range(len(manifest.tiles))]
    for label, record in zip(labels, manifest.tiles):
        np.save(tiles_dir / record.file, np.full((1, size), label, np.uint8))
    merge_tiles(manifest, tiles_dir, tmp_path / "near.npy", MergeOptions(rule="nearest"), allow_overwrite=True)
    merge_tiles(manifest, tiles_dir, tmp_path / "vote.npy", MergeOptions(rule="majority"), allow_overwrite=True)
    nearest, vote = np.load(tmp_path / "near.npy")[0], np.load(tmp_path / "vote.npy")[0]
    bounds = ownership_bounds([t.x for t in tiles], size, width)
    assert list(nearest) == list(np.repeat(labels, np.diff(bounds)))
    # tile 1's pixels are covered by tiles 0, 1, 2: two votes for 0 beat the nearest tile's 1
    owned_by_1 = slice(bounds[1], bounds[2])
    assert (nearest[owned_by_1] == 1).all() and (vote[owned_by_1] == 0).all()
    # elsewhere every covering tile disagrees (or only two cover): ties go to the nearest
    elsewhere = np.ones(width, bool)
    elsewhere[owned_by_1] = False
    np.testing.assert_array_equal(vote[elsewhere], nearest[elsewhere])


def _save(path: Path, array: np.ndarray) -> Path:
    np.save(path, array)
    return path


def test_skipped_tiles_are_filled_from_neighbours_or_fill(tmp_path):
    image = RNG.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    mask = np.zeros((40, 40), np.uint8)
    mask[:20, :20] = 1                                   # foreground only top-left
    manifest, out = _split_merge(tmp_path, image, SplitOptions(size=(20, 20), overlap=0, min_foreground=0.5),
                                 mask=mask)
    assert [r.skipped for r in manifest.tiles] == [None, "min-foreground", "min-foreground", "min-foreground"]
    merged = np.load(out)
    np.testing.assert_array_equal(merged[:20, :20], image[:20, :20])
    assert (merged[20:] == 0).all() and (merged[:, 20:] == 0).all()   # fill for images is 0


def test_skip_blank(tmp_path):
    image = np.full((32, 64, 3), 240, np.uint8)
    image[:, 32:] = RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    manifest = split_raster(open_raster(_save(tmp_path / "s.npy", image)), tmp_path / "t",
                            SplitOptions(size=(32, 32), skip_blank=True))
    assert [r.skipped for r in manifest.tiles] == ["blank", None]


def test_min_foreground_on_camvid_masks(camvid, tmp_path):
    labels = open_raster(camvid / "valannot" / "0016E5_07959.png", want="labels").read_rows(0, 360)
    labels = np.where(labels == 11, 255, labels).astype(np.uint8)    # CamVid's void (11) → ignore
    background = int(np.bincount(labels[labels != 255]).argmax())    # the commonest class
    grid = tile_grid(*labels.shape, 96, overlap=16)
    fractions = [np.mean((c != background) & (c != 255)) for c in (labels[t.y:t.y1, t.x:t.x1] for t in grid)]
    threshold = float(np.median(fractions))
    mask = open_raster(_save(tmp_path / "mask.npy", labels), want="labels")
    image = open_raster(camvid / "val" / "0016E5_07959.png")
    options = SplitOptions(size=(96, 96), overlap=16, min_foreground=threshold, background=background,
                           tile_format="png")
    manifest = split_raster(image, tmp_path / "tiles", options, mask)
    assert [r.tile for r in manifest.tiles] == grid
    for record, fraction in zip(manifest.tiles, fractions):
        assert (record.file is None) == (fraction < threshold), (record.tile, fraction)
        if record.file is not None:
            t = record.tile
            tile_mask = open_raster(tmp_path / "tiles" / record.mask, want="labels").read_rows(0, t.h)
            np.testing.assert_array_equal(tile_mask, labels[t.y:t.y1, t.x:t.x1])
    kept = sum(r.file is not None for r in manifest.tiles)
    assert 0 < kept < len(grid)


# ---------------------------------------------------------------- manifests and large-file I/O

@pytest.mark.parametrize("bad", ["../outside.png", "/etc/passwd", "sub/../../x.png", "C:\\x.png", "..\\x.png"])
def test_manifest_refuses_paths_outside_its_folder(tmp_path, bad):
    split_raster(open_raster(_save(tmp_path / "s.npy", np.zeros((8, 8), np.uint8))), tmp_path / "t",
                 SplitOptions(size=(8, 8)))
    body = json.loads((tmp_path / "t" / "manifest.json").read_text())
    body["tiles"][0]["file"] = bad
    (tmp_path / "t" / "manifest.json").write_text(json.dumps(body))
    with pytest.raises(InputError, match="outside"):
        read_manifest(tmp_path / "t")


def test_symlink_out_of_the_tile_folder_is_refused(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "secret.png").write_bytes(b"x")
    os.symlink(tmp_path / "secret.png", tmp_path / "t" / "link.png")
    with pytest.raises(InputError, match="outside"):
        resolve_tile_path(tmp_path / "t", "link.png")


def test_npy_band_reads_and_streamed_writes_match_numpy(tmp_path):
    scores = RNG.random((4, 33, 21)).astype(np.float32)
    image = RNG.integers(0, 65535, (33, 21, 3), dtype=np.uint16)
    for array, kind in ((scores, "scores"), (image, "image")):
        raster = open_raster(_save(tmp_path / f"{kind}.npy", array))
        assert raster.kind == kind and raster._npy is not None      # positioned reads, no memory map
        band = raster.read_rows(5, 17)
        np.testing.assert_array_equal(band, array[:, 5:17] if kind == "scores" else array[5:17])
        channels = 4 if kind == "scores" else 3
        with RasterWriter(tmp_path / f"out_{kind}.npy", 33, 21, channels, array.dtype, kind) as writer:
            for top in range(0, 33, 10):
                writer.write_rows(top, raster.read_rows(top, top + 10))
            writer.commit()
        np.testing.assert_array_equal(np.load(tmp_path / f"out_{kind}.npy"), array)


def test_failed_writer_leaves_no_output(tmp_path):
    with pytest.raises(RuntimeError):
        with RasterWriter(tmp_path / "out.npy", 4, 4, 0, np.uint8, "labels") as writer:
            writer.write_rows(0, np.zeros((2, 4), np.uint8))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_tiff_round_trip(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    image = RNG.integers(0, 256, (45, 70, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "scene.tif", image, photometric="rgb")
    manifest = split_raster(open_raster(tmp_path / "scene.tif"), tmp_path / "tiles",
                            SplitOptions(size=(32, 32), overlap=8))
    assert manifest.tiles[0].file.endswith(".tif")
    merge_tiles(manifest, tmp_path / "tiles", tmp_path / "out.tif")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), image)
