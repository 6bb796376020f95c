"""Tests for segtools.io.presets: dataset class names, palettes and label mappings."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from segtools.io.presets import (
    ADE20K_CLASSES,
    CITYSCAPES_LABELS,
    COCO_CATEGORY_IDS,
    PRESETS,
    VOC_IGNORE_COLOR,
    Preset,
    cityscapes_id_to_train_id,
    cityscapes_train_id_to_id,
    get_preset,
    voc_colormap,
)

EXPECTED_LENGTHS = {"voc": 21, "cityscapes": 19, "camvid": 11, "camvid32": 32, "ade20k": 150, "coco": 80}


def test_preset_keys_and_lengths():
    assert set(PRESETS) == set(EXPECTED_LENGTHS)
    for key, n in EXPECTED_LENGTHS.items():
        preset = PRESETS[key]
        assert preset.name == key
        assert len(preset.names) == n == len(preset.palette) == preset.num_classes


@pytest.mark.parametrize("key", sorted(EXPECTED_LENGTHS))
def test_palette_entries_are_rgb_bytes(key):
    for color in PRESETS[key].palette:
        assert isinstance(color, tuple) and len(color) == 3
        assert all(isinstance(c, int) and 0 <= c <= 255 for c in color)


@pytest.mark.parametrize("key", sorted(EXPECTED_LENGTHS))
def test_names_unique(key):
    names = PRESETS[key].names
    assert len(set(names)) == len(names)
    assert all(n == n.strip() and n for n in names)


@pytest.mark.parametrize("key", sorted(EXPECTED_LENGTHS))
def test_no_duplicate_colours(key):
    palette = PRESETS[key].palette
    dupes = {c for c in palette if palette.count(c) > 1}
    if key == "ade20k":
        # The upstream ADE20K palette gives road (6) and skyscraper (48) the same
        # grey; we keep it for compatibility. Nothing else may collide.
        assert dupes == {(140, 140, 140)}
        assert [i for i, c in enumerate(palette) if c in dupes] == [6, 48]
    else:
        assert not dupes


def test_ignore_indices():
    assert {k: p.ignore_index for k, p in PRESETS.items()} == {
        "voc": 255, "cityscapes": 255, "camvid": 11, "camvid32": 30, "ade20k": 255, "coco": 255,
    }  # fmt: skip
    for p in PRESETS.values():
        # never collides with a real class (camvid32 keeps label_colors.txt's numbering: Void is 30)
        assert p.ignore_index >= len(p.names) or p.names[p.ignore_index] == "Void"


def test_preset_is_frozen_dataclass():
    p = PRESETS["voc"]
    assert dataclasses.is_dataclass(p)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.ignore_index = 0  # type: ignore[misc]
    assert all(p.kind == "semantic" for p in PRESETS.values())
    assert hash(p) == hash(dataclasses.replace(p))


def test_preset_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="2 names but 1 palette"):
        Preset("x", ("a", "b"), ((0, 0, 0),), 255)


# ------------------------------------------------------------------------ VOC


def test_voc_colormap_known_values():
    cmap = voc_colormap()
    assert len(cmap) == 256
    assert cmap[0] == (0, 0, 0)
    assert cmap[1] == (128, 0, 0)
    assert cmap[2] == (0, 128, 0)
    assert cmap[3] == (128, 128, 0)
    assert cmap[4] == (0, 0, 128)
    assert cmap[15] == (192, 128, 128)
    assert cmap[20] == (0, 64, 128)
    assert cmap[255] == (224, 224, 192) == VOC_IGNORE_COLOR
    assert len(set(cmap)) == 256  # a bijection on 0..255
    assert voc_colormap(5) == cmap[:5]
    assert voc_colormap(0) == []


def test_voc_preset():
    voc = PRESETS["voc"]
    assert voc.names[0] == "background" and voc.names[15] == "person"
    assert voc.names[-1] == "tvmonitor"
    assert voc.palette == tuple(voc_colormap(21))


# ----------------------------------------------------------------- Cityscapes


def test_cityscapes_label_table():
    assert len(CITYSCAPES_LABELS) == 35
    assert [lab.id for lab in CITYSCAPES_LABELS] == [*range(34), -1]
    name, id_, train_id, category, color = CITYSCAPES_LABELS[26]
    assert (name, id_, train_id, category, color) == ("car", 26, 13, "vehicle", (0, 0, 142))
    plate = CITYSCAPES_LABELS[-1]
    assert plate.name == "license plate" and plate.train_id == 255


def test_cityscapes_id_to_train_id():
    m = cityscapes_id_to_train_id()
    assert set(m) == set(range(34))
    assert m[7] == 0  # road
    assert m[8] == 1  # sidewalk
    assert m[26] == 13  # car
    assert m[33] == 18  # bicycle
    for ignored in (0, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30):
        assert m[ignored] == 255
    assert sorted(v for v in m.values() if v != 255) == list(range(19))


def test_cityscapes_train_id_to_id():
    m = cityscapes_train_id_to_id()
    assert set(m) == set(range(19))
    assert m[0] == 7 and m[13] == 26 and m[18] == 33
    fwd = cityscapes_id_to_train_id()
    assert all(fwd[label_id] == train_id for train_id, label_id in m.items())


def test_cityscapes_preset():
    cs = PRESETS["cityscapes"]
    assert cs.names[:3] == ("road", "sidewalk", "building")
    assert cs.names[-1] == "bicycle"
    assert cs.palette[0] == (128, 64, 128)
    assert cs.palette[13] == (0, 0, 142)
    assert cs.palette[18] == (119, 11, 32)


# --------------------------------------------------------------------- CamVid


def test_camvid_order_and_colours():
    cv = PRESETS["camvid"]
    assert list(zip(cv.names, cv.palette)) == [
        ("Sky", (128, 128, 128)),
        ("Building", (128, 0, 0)),
        ("Pole", (192, 192, 128)),
        ("Road", (128, 64, 128)),
        ("Pavement", (60, 40, 222)),
        ("Tree", (128, 128, 0)),
        ("SignSymbol", (192, 128, 128)),
        ("Fence", (64, 64, 128)),
        ("Car", (64, 0, 128)),
        ("Pedestrian", (64, 64, 0)),
        ("Bicyclist", (0, 128, 192)),
    ]
    assert cv.ignore_index == 11


# --------------------------------------------------------------------- ADE20K


def test_ade20k_spot_checks():
    ade = PRESETS["ade20k"]
    assert ade.names is ADE20K_CLASSES or ade.names == ADE20K_CLASSES
    assert ade.names[:5] == ("wall", "building", "sky", "floor", "tree")
    assert ade.names[7] == "bed"  # upstream has a stray trailing space
    assert ade.names[12] == "person" and ade.names[20] == "car"
    assert ade.names[-1] == "flag"
    assert ade.palette[0] == (120, 120, 120)
    assert ade.palette[2] == (6, 230, 230)
    assert ade.palette[12] == (150, 5, 61)
    assert ade.palette[-1] == (92, 0, 255)


# ----------------------------------------------------------------------- COCO


def test_coco_category_ids():
    ids = COCO_CATEGORY_IDS
    assert len(ids) == 80 == len(PRESETS["coco"].names)
    assert ids[:11] == tuple(range(1, 12))
    assert ids[-1] == 90
    assert list(ids) == sorted(set(ids))
    missing = set(range(1, 91)) - set(ids)
    assert missing == {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}


def test_coco_names_and_palette():
    coco = PRESETS["coco"]
    names = dict(zip(COCO_CATEGORY_IDS, coco.names))
    assert names[1] == "person" and names[90] == "toothbrush"
    assert names[44] == "bottle" and names[67] == "dining table" and names[72] == "tv"
    assert coco.palette == tuple(voc_colormap(81)[1:])


# -------------------------------------------------------------------- lookups


def test_get_preset_case_insensitive():
    assert get_preset("voc") is PRESETS["voc"]
    assert get_preset("CityScapes") is PRESETS["cityscapes"]
    assert get_preset(" ADE20K ") is PRESETS["ade20k"]


def test_get_preset_unknown_lists_valid_names():
    with pytest.raises(KeyError) as exc:
        get_preset("kitti")
    msg = str(exc.value)
    assert "kitti" in msg
    for key in EXPECTED_LENGTHS:
        assert key in msg


def test_import_is_light():
    """The module is imported by the CLI at start-up: it must not pull in numpy."""
    code = "import sys, segtools.io.presets; print('numpy' in sys.modules)"
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert out.stdout.strip() == "False"
