"""``convert --shard I/N``: array jobs split the images of a conversion; the shards' outputs
together are one whole run's (mask files byte for byte; annotations image for image, with the
whole input's categories in every shard, so ``convert --merge`` joins them)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_one_line_error


def _masks(folder: Path, count: int = 7) -> Path:
    from segtools.io.images import write_image

    folder.mkdir()
    rng = np.random.default_rng(3)
    for k in range(count):
        labels = np.zeros((24, 32), np.uint8)
        for _ in range(3):
            y, x = rng.integers(0, 18), rng.integers(0, 26)
            labels[y:y + 6, x:x + 6] = rng.integers(1, 4)
        write_image(labels, folder / f"f{k:02d}.png")
    return folder


def _by_image(document: dict) -> dict:
    """file name → sorted (category name, segmentation, bbox) of its annotations."""
    names = {c["id"]: c["name"] for c in document["categories"]}
    files = {i["id"]: i["file_name"] for i in document["images"]}
    out = {name: [] for name in files.values()}
    for a in document["annotations"]:
        out[files[a["image_id"]]].append(json.dumps([names[a["category_id"]], a["segmentation"], a["bbox"]]))
    return {k: sorted(v) for k, v in out.items()}


@pytest.mark.parametrize("classes", [["--classes", "camvid"], []])
def test_mask_shards_make_the_whole_coco_and_merge(cli, tmp_path, classes):
    """With class names every shard lists the whole set; without, each lists the labels it
    met (``class_<label>``, the same name for the same value in every shard)."""
    masks = _masks(tmp_path / "m")
    whole = tmp_path / "all.json"
    assert cli("convert", str(masks), "--to", "coco", *classes, "-o", str(whole)).code == 0
    full = json.loads(whole.read_text())
    seen = {}
    for i in range(3):
        out = tmp_path / f"s{i}.json"
        result = cli("convert", str(masks), "--to", "coco", *classes, "--shard", f"{i}/3", "-o", str(out))
        assert result.code == 0, result.stderr
        part = json.loads(out.read_text())
        if classes:
            assert part["categories"] == full["categories"]
        else:
            assert part["categories"] and all(c in full["categories"] for c in part["categories"])
        names = [img["file_name"] for img in part["images"]]
        assert names == sorted(img["file_name"] for img in full["images"])[i::3]
        seen.update(_by_image(part))
    assert seen == _by_image(full)
    merged = tmp_path / "merged.json"
    assert cli("convert", *(str(tmp_path / f"s{i}.json") for i in range(3)), "--merge", "--to", "coco",
               "-o", str(merged)).code == 0
    assert _by_image(json.loads(merged.read_text())) == _by_image(full)


def test_document_shards_write_the_whole_runs_mask_files(cli, tmp_path):
    masks = _masks(tmp_path / "m", 5)
    whole = tmp_path / "all.json"
    assert cli("convert", str(masks), "--to", "coco", "-o", str(whole)).code == 0
    assert cli("convert", str(whole), "--to", "mask", "-o", str(tmp_path / "full")).code == 0
    for i in range(2):
        result = cli("convert", str(whole), "--to", "mask", "--shard", f"{i}/2", "-o", str(tmp_path / "sharded"))
        assert result.code == 0, result.stderr
    full = sorted(p.name for p in (tmp_path / "full").iterdir())
    assert sorted(p.name for p in (tmp_path / "sharded").iterdir()) == full and len(full) == 5
    assert all((tmp_path / "full" / n).read_bytes() == (tmp_path / "sharded" / n).read_bytes() for n in full)


def test_value_map_shards_write_disjoint_files(cli, tmp_path):
    masks = _masks(tmp_path / "m", 5)
    for i in range(2):
        result = cli("convert", str(masks), "--to", "colour", "--classes", "camvid", "--shard", f"{i}/2",
                     "-o", str(tmp_path / f"c{i}"))
        assert result.code == 0, result.stderr
    parts = [sorted(p.name for p in (tmp_path / f"c{i}").iterdir()) for i in range(2)]
    assert parts == [[f"f{k:02d}.png" for k in (0, 2, 4)], [f"f{k:02d}.png" for k in (1, 3)]]


def test_labelme_shards_number_classes_as_the_whole_batch(cli, tmp_path):
    from tests.test_convert_layouts_a_labelme import _labelme, _square, _write

    folder = tmp_path / "lm"
    for k, label in enumerate(["cat", "dog", "cat", "emu"]):
        _write(folder, f"{k}.json", _labelme([(label, "polygon", _square(2, 2, 20, 20), None)]))
    whole = tmp_path / "all.json"
    assert cli("convert", str(folder), "--to", "coco", "-o", str(whole)).code == 0
    out = tmp_path / "s1.json"
    assert cli("convert", str(folder), "--to", "coco", "--shard", "1/2", "-o", str(out)).code == 0
    part = json.loads(out.read_text())
    assert part["categories"] == json.loads(whole.read_text())["categories"]  # emu and cat too, though unseen
    assert [i["file_name"] for i in part["images"]] == ["a.jpg", "a.jpg"] and len(part["annotations"]) == 2
    assert {a["category_id"] for a in part["annotations"]} == \
        {c["id"] for c in part["categories"] if c["name"] == "dog"} | {c["id"] for c in part["categories"]
                                                                      if c["name"] == "emu"}


def test_panoptic_document_shards(cli, tmp_path):
    masks = _masks(tmp_path / "m", 4)
    pan = tmp_path / "pan.json"
    assert cli("convert", str(masks), "--to", "panoptic", "-o", str(pan)).code == 0
    assert cli("convert", str(pan), "--to", "mask", "-o", str(tmp_path / "full")).code == 0
    result = cli("convert", str(pan), "--to", "mask", "--shard", "1/2", "-o", str(tmp_path / "half"))
    assert result.code == 0, result.stderr
    full = sorted((tmp_path / "full").rglob("*.png"))
    half = sorted((tmp_path / "half").rglob("*.png"))
    assert len(half) * 2 == len(full) > 0
    for path in half:
        assert path.read_bytes() == (tmp_path / "full" / path.relative_to(tmp_path / "half")).read_bytes()


@pytest.mark.parametrize("extra", [["--merge"], ["--split", "train=0.5,val=0.5"]])
def test_shard_with_whole_dataset_options_is_refused(cli, tmp_path, extra):
    masks = _masks(tmp_path / "m", 3)
    result = cli("convert", str(masks), "--to", "coco", "--shard", "0/2", *extra, "-o", str(tmp_path / "x.json"))
    assert_one_line_error(result, 2)
    assert "--shard" in result.stderr and not (tmp_path / "x.json").exists()


def test_an_empty_shard_is_one_line_naming_the_flag(cli, tmp_path):
    masks = _masks(tmp_path / "m", 2)
    result = cli("convert", str(masks), "--to", "coco", "--shard", "2/3", "-o", str(tmp_path / "x.json"))
    assert_one_line_error(result)
    assert "--shard 2/3" in result.stderr and "no items" in result.stderr and not (tmp_path / "x.json").exists()


def test_mask_shards_write_the_whole_runs_panoptic_images(cli, tmp_path):
    """``--to panoptic`` pairs its masks itself (semantic + instance): the shard applies there
    too, and each shard's PNGs and segments are the whole run's for its images."""
    masks = _masks(tmp_path / "m", 5)
    whole = tmp_path / "all.json"
    assert cli("convert", str(masks), "--to", "panoptic", "-o", str(whole)).code == 0
    full = {a["file_name"]: a["segments_info"] for a in json.loads(whole.read_text())["annotations"]}
    seen = {}
    for i in range(2):
        out = tmp_path / f"s{i}.json"
        result = cli("convert", str(masks), "--to", "panoptic", "--shard", f"{i}/2", "-o", str(out))
        assert result.code == 0, result.stderr
        part = {a["file_name"]: a["segments_info"] for a in json.loads(out.read_text())["annotations"]}
        assert sorted(part) == sorted(full)[i::2]
        for name in part:
            assert (tmp_path / f"s{i}" / name).read_bytes() == (tmp_path / "all" / name).read_bytes()
        seen.update(part)
    assert seen == full
