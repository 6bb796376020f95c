"""GeoTIFF tags survive tiling: shifted to each tile's origin, restored on the stitched TIFF."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segtools.errors import InputError
from segtools.io.geotiff import shift_geo
from segtools.io.rasters import open_raster
from segtools.tiling.manifest import read_manifest
from segtools.tiling.merge import merge_tiles
from segtools.tiling.split import SplitOptions, split_raster

tifffile = pytest.importorskip("tifffile")

SCALE = (0.5, 0.25, 0.0)
TIEPOINT = (0.0, 0.0, 0.0, 440720.0, 3751320.0, 0.0)
KEYS = (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32611)
DOUBLES = (6378137.0, 298.257223563)
ASCII = "WGS 84 / UTM zone 11N|"


def _geotiff(path, image):
    tifffile.imwrite(path, image, photometric="rgb", extratags=[
        (33550, 12, 3, SCALE, True), (33922, 12, 6, TIEPOINT, True), (34735, 3, len(KEYS), KEYS, True),
        (34736, 12, 2, DOUBLES, True), (34737, 2, 0, ASCII, True)])


def _tags(path):
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        return {code: tags[code].value for code in (33550, 33922, 34735, 34736, 34737) if code in tags}


def test_tiles_carry_geo_tags_with_the_tiepoint_at_their_origin_and_merge_restores_them(tmp_path):
    image = np.random.default_rng(3).integers(0, 256, (45, 70, 3), dtype=np.uint8)
    _geotiff(tmp_path / "scene.tif", image)
    manifest = split_raster(open_raster(tmp_path / "scene.tif"), tmp_path / "tiles",
                            SplitOptions(size=(32, 32), overlap=8))
    origins = {(r.tile.y, r.tile.x) for r in manifest.tiles}
    assert (13, 38) in origins                      # the shifted-inward corner tile
    for record in manifest.tiles:
        tags = _tags(tmp_path / "tiles" / record.file)
        y, x = record.tile.y, record.tile.x
        assert tags[33922] == pytest.approx((0, 0, 0, TIEPOINT[3] + x * SCALE[0], TIEPOINT[4] - y * SCALE[1], 0))
        assert tuple(tags[33550]) == SCALE and tuple(tags[34735]) == KEYS
        assert tuple(tags[34736]) == DOUBLES and tags[34737] == ASCII
    recorded = json.loads((tmp_path / "tiles" / "manifest.json").read_text())["source"]["geo"]
    assert recorded["33922"] == list(TIEPOINT)
    merge_tiles(read_manifest(tmp_path / "tiles"), tmp_path / "tiles", tmp_path / "out.tif")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"), image)
    tags = _tags(tmp_path / "out.tif")
    assert tuple(tags[33922]) == TIEPOINT and tuple(tags[33550]) == SCALE and tuple(tags[34735]) == KEYS
    assert tuple(tags[34736]) == DOUBLES and tags[34737] == ASCII


def test_plain_tiff_tiles_get_no_geo_tags(tmp_path):
    image = np.zeros((20, 20), np.uint8)
    tifffile.imwrite(tmp_path / "plain.tif", image)
    manifest = split_raster(open_raster(tmp_path / "plain.tif"), tmp_path / "tiles", SplitOptions(size=(16, 16)))
    assert "geo" not in manifest.source
    assert _tags(tmp_path / "tiles" / manifest.tiles[-1].file) == {}


def test_without_a_pixel_scale_the_tiepoints_raster_position_moves():
    geo = {33922: (10.0, 5.0, 0.0, 100.0, 200.0, 0.0, 50.0, 40.0, 0.0, 300.0, 100.0, 0.0)}
    assert shift_geo(geo, 4, 8)[33922] == (2.0, 1.0, 0.0, 100.0, 200.0, 0.0, 42.0, 36.0, 0.0, 300.0, 100.0, 0.0)


@pytest.mark.parametrize("geo", [{"999": [1.0]}, {"33550": "x"}, {"34735": [1.5]}, {"33922": []}, [1]])
def test_manifest_with_bad_geo_tags_is_refused(tmp_path, geo):
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((20, 20), np.uint8))
    split_raster(open_raster(tmp_path / "plain.tif"), tmp_path / "tiles", SplitOptions(size=(16, 16)))
    path = tmp_path / "tiles" / "manifest.json"
    body = json.loads(path.read_text())
    body["source"]["geo"] = geo
    path.write_text(json.dumps(body))
    with pytest.raises(InputError, match="geo"):
        read_manifest(tmp_path / "tiles")
