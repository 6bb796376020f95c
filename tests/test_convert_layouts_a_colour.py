"""Colour masks as datasets draw them: void colours, the way back, CamVid's 32 classes, RGB VOC."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error

from segtools.io.masks import read_label_mask
from segtools.io.presets import PRESETS, voc_colormap

FIXTURES = Path(__file__).parent / "fixtures" / "formats"


def _rgb_png(path: Path, rgb: np.ndarray) -> Path:
    from PIL import Image

    Image.fromarray(rgb.astype(np.uint8), "RGB").save(path)
    return path


def _labels() -> np.ndarray:
    labels = np.zeros((12, 16), np.uint8)
    labels[2:6, 3:9] = 1
    labels[7:, 10:] = 2
    return labels


@pytest.mark.parametrize("preset, voids, ignore", [
    ("voc", [(224, 224, 192)], 255),
    ("cityscapes", [(0, 0, 0), (81, 0, 81), (111, 74, 0)], 255),
    ("camvid", [(0, 0, 0)], 11),
])
def test_void_colours_read_as_the_ignore_index_and_drawn_back(cli, tmp_path, preset, voids, ignore):
    palette = np.array(PRESETS[preset].palette, np.uint8)
    labels = _labels()
    rgb = palette[labels]
    for k, colour in enumerate(voids):  # a border of void, as real colour masks have
        rgb[k, :] = colour
    path = _rgb_png(tmp_path / "colour.png", rgb)
    result = cli("convert", path, "--palette", preset, "--to", "mask", "-o", tmp_path / "m.png")
    assert result.code == 0, result.stderr
    mask = read_label_mask(tmp_path / "m.png")
    want = labels.copy()
    want[: len(voids)] = ignore
    np.testing.assert_array_equal(mask.labels, want)
    # the palette and ignore index ride along: the way back needs no option
    assert mask.meta.ignore_index == ignore and mask.meta.palette == PRESETS[preset].palette
    back = cli("convert", tmp_path / "m.png", "--to", "colour", "-o", tmp_path / "back.png")
    assert back.code == 0, back.stderr
    again = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(tmp_path / "back.png").convert("RGB"))
    np.testing.assert_array_equal(again[len(voids):], rgb[len(voids):])
    np.testing.assert_array_equal(again[0], np.broadcast_to(np.array(voids[0], np.uint8), again[0].shape))


def test_an_unknown_colour_names_the_file(cli, tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[0, 0] = (1, 2, 3)
    path = _rgb_png(tmp_path / "odd_colours.png", rgb)
    result = cli("convert", path, "--palette", "voc", "--to", "coco")
    assert_one_line_error(result, 1)
    assert "odd_colours.png" in result.stderr and "<bytes>" not in result.stderr and "(1,2,3)" in result.stderr


def test_camvid32_preset_is_label_colors_txt_in_file_order(cli, tmp_path):
    preset = PRESETS["camvid32"]
    assert preset.names[0] == "Animal" and preset.names[30] == "Void" and preset.names[31] == "Wall"
    assert preset.palette[preset.names.index("LaneMkgsDriv")] == (128, 0, 192)
    labels = np.arange(32, dtype=np.uint8).repeat(3).reshape(6, 16)
    path = _rgb_png(tmp_path / "camvid.png", np.array(preset.palette, np.uint8)[labels])
    result = cli("convert", path, "--palette", "camvid32", "--to", "mask")
    assert result.code == 0, result.stderr
    mask = read_label_mask(result.stdout)
    np.testing.assert_array_equal(mask.labels, labels)
    assert mask.meta.ignore_index == 30 and mask.meta.names[31] == "Wall"


def test_rgb_voc_segmentation_object_pngs_read_through_the_palette(cli, tmp_path):
    plain = cli("convert", FIXTURES / "voc_seg", "--to", "coco-rle")
    assert plain.code == 0, plain.stderr
    root = tmp_path / "VOC2012"
    shutil.copytree(FIXTURES / "voc_seg", root)
    cmap = np.array(voc_colormap(256), np.uint8)
    for folder in ("SegmentationObject", "SegmentationClass"):  # as re-saved by a tool that drops the palette
        for path in (root / folder).glob("*.png"):
            _rgb_png(path, cmap[read_label_mask(path).labels])
    refused = cli("convert", root, "--to", "coco-rle")
    assert_one_line_error(refused, 1)
    assert "--palette" in refused.stderr
    result = cli("convert", root, "--palette", "voc", "--to", "coco-rle")
    assert result.code == 0, result.stderr
    got, want = json.loads(result.stdout), json.loads(plain.stdout)
    assert [(a["category_id"], a["segmentation"]) for a in got["annotations"]] == \
        [(a["category_id"], a["segmentation"]) for a in want["annotations"]]


def test_camvid_masks_round_trip_through_colour(cli, camvid, tmp_path):
    """Real CamVid label masks (11 = Unlabelled) → colour → labels: identical, void included."""
    for path in sorted((camvid / "valannot").glob("*.png"))[:2]:
        original = read_label_mask(path).labels
        assert (original == 11).any()
        coloured = tmp_path / f"{path.stem}_colour.png"
        assert cli("convert", path, "--to", "colour", "--classes", "camvid", "-o", coloured).code == 0
        result = cli("convert", coloured, "--palette", "camvid", "--to", "mask", "-o", tmp_path / f"{path.stem}.png")
        assert result.code == 0, result.stderr
        back = read_label_mask(tmp_path / f"{path.stem}.png")
        np.testing.assert_array_equal(back.labels, original)
        assert back.meta.ignore_index == 11 and back.meta.names == PRESETS["camvid"].names
