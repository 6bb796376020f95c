"""``convert --split/--filter/--merge``: the dataset work done around a conversion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import assert_one_line_error

from segtools.formats import Summary
from segtools.formats.records import Record
from segtools.formats.splits import assign_splits, parse_split


def _coco(path: Path, n_a=30, n_b=10, start=0, categories=(("a", 1), ("b", 2)), extra=None) -> Path:
    images, annotations = [], []
    ids = dict(categories)
    for i in range(start, start + n_a + n_b):
        images.append({"id": i + 1, "file_name": f"img_{i:04d}.jpg", "height": 20, "width": 20})
        name = "a" if i - start < n_a else "b"
        annotations.append({"id": i + 1, "image_id": i + 1, "category_id": ids[name], "bbox": [1, 1, 5 + i % 7, 5],
                            "area": float((5 + i % 7) * 5), "segmentation": [], "iscrowd": int(i % 10 == 3),
                            **(extra or {})})
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": c, "name": n} for n, c in categories]}))
    return path


def test_yolo_split_layout_is_stratified_and_named_in_data_yaml(cli, tmp_path):
    source = _coco(tmp_path / "in.json")
    result = cli("convert", source, "--to", "yolo", "--split", "train=0.8,val=0.2", "-o", tmp_path / "ds")
    assert result.code == 0, result.stderr
    train = sorted(p.stem for p in (tmp_path / "ds" / "labels" / "train").glob("*.txt"))
    val = sorted(p.stem for p in (tmp_path / "ds" / "labels" / "val").glob("*.txt"))
    assert (len(train), len(val)) == (32, 8) and not set(train) & set(val)
    b_images = {f"img_{i:04d}" for i in range(30, 40)}
    assert len(b_images & set(val)) == 2  # the rare class is split 8/2 as well
    text = (tmp_path / "ds" / "data.yaml").read_text()
    assert "train: images/train" in text and "val: images/val" in text
    assert "images in the train split: 32" in result.stderr
    again = cli("convert", source, "--to", "yolo", "--split", "train=0.8,val=0.2", "-o", tmp_path / "ds2")
    assert again.code == 0
    assert sorted(p.stem for p in (tmp_path / "ds2" / "labels" / "val").glob("*.txt")) == val  # seeded


def test_without_split_data_yaml_says_val_is_the_training_images(cli, tmp_path):
    assert cli("convert", _coco(tmp_path / "in.json"), "--to", "yolo", "-o", tmp_path / "ds").code == 0
    text = (tmp_path / "ds" / "data.yaml").read_text()
    assert "# no validation split" in text and "val: images" in text


def _records(names, classes):
    return [Record({"id": i, "file_name": n}, [{"category_id": c}] if c else []) for i, (n, c) in enumerate(zip(names, classes))]


def test_splits_are_stable_when_files_are_added():
    names = [f"f{i:03d}.png" for i in range(200)]
    classes = [1 + (i % 5 == 0) for i in range(200)]
    before = assign_splits(_records(names, classes), {"train": 0.7, "val": 0.2, "test": 0.1}, seed=3)
    more = names + [f"new{i}.png" for i in range(10)]
    after = assign_splits(_records(more, classes + [1] * 10), {"train": 0.7, "val": 0.2, "test": 0.1}, seed=3)
    moved = sum(a != b for a, b in zip(before, after))
    assert moved <= 2 * 10  # at most one image per cut per added image
    assert sum(s == "test" for s in before) == 20
    other = assign_splits(_records(names, classes), {"train": 0.7, "val": 0.2, "test": 0.1}, seed=4)
    assert other != before and sorted(other) == sorted(before)


def test_coco_and_voc_get_their_own_split_files(cli, tmp_path):
    source = _coco(tmp_path / "in.json")
    result = cli("convert", source, "--to", "coco", "--split", "train=70,val=20,test=10", "-o", tmp_path / "out.json")
    assert result.code == 0, result.stderr
    counts = {s: len(json.loads((tmp_path / f"out_{s}.json").read_text())["images"]) for s in ("train", "val", "test")}
    assert counts == {"train": 28, "val": 8, "test": 4}
    result = cli("convert", source, "--to", "voc", "--split", "train=0.5,val=0.5", "-o", tmp_path / "voc")
    assert result.code == 0, result.stderr
    lists = [(tmp_path / "voc" / "ImageSets" / "Main" / f"{s}.txt").read_text().split() for s in ("train", "val")]
    assert len(lists[0]) == len(lists[1]) == 20 and lists[0][0].startswith("img_")
    assert len(list((tmp_path / "voc" / "Annotations").glob("*.xml"))) == 40


@pytest.mark.parametrize("bad", ["train=0.8,val=0.3", "train=0.5,dev=0.5", "val=1", "train"])
def test_bad_splits_are_usage_errors(cli, tmp_path, bad):
    result = cli("convert", _coco(tmp_path / "in.json"), "--to", "yolo", "--split", bad, "-o", tmp_path / "ds")
    assert_one_line_error(result, 2)
    assert "--split" in result.stderr and not (tmp_path / "ds").exists()


def test_filters_keep_by_class_area_and_crowd_and_count_the_rest(cli, tmp_path):
    source = _coco(tmp_path / "in.json")
    result = cli("convert", source, "--to", "coco", "--filter", "class=b", "--filter", "images=annotated")
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert len(data["images"]) == 10 and {a["category_id"] for a in data["annotations"]} == {2}
    assert "annotations left out by --filter: 30" in result.stderr
    result = cli("convert", source, "--to", "coco", "--filter", "area>=50", "--filter", "crowd=0")
    data = json.loads(result.stdout)
    assert all(a["area"] >= 50 and not a["iscrowd"] for a in data["annotations"]) and len(data["images"]) == 40
    assert_one_line_error(cli("convert", source, "--to", "coco", "--filter", "colour=red"), 2)


def test_merge_reconciles_categories_by_name(cli, tmp_path):
    first = _coco(tmp_path / "one.json", 2, 1)
    second = _coco(tmp_path / "two.json", 1, 2, start=100, categories=(("b", 7), ("c", 9), ("a", 8)))
    result = cli("convert", first, second, "--merge", "--to", "coco")
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    names = {c["id"]: c["name"] for c in data["categories"]}
    assert sorted(names.values()) == ["a", "b", "c"]
    by_image = {im["id"]: im["file_name"] for im in data["images"]}
    got = sorted((by_image[a["image_id"]], names[a["category_id"]]) for a in data["annotations"])
    assert got == [("img_0000.jpg", "a"), ("img_0001.jpg", "a"), ("img_0002.jpg", "b"),
                   ("img_0100.jpg", "a"), ("img_0101.jpg", "b"), ("img_0102.jpg", "b")]
    assert len({a["id"] for a in data["annotations"]}) == 6


def test_coco_skip_and_keypoints_are_counted(cli, tmp_path):
    source = _coco(tmp_path / "in.json", 3, 2, extra={"keypoints": [1, 1, 2], "num_keypoints": 1})
    result = cli("convert", source, "--to", "coco", "--skip", "a")
    assert result.code == 0, result.stderr
    assert {a["category_id"] for a in json.loads(result.stdout)["annotations"]} == {2}
    assert "objects of skipped classes left out: 3" in result.stderr
    assert "keypoints" not in result.stderr  # COCO keeps them
    assert json.loads(result.stdout)["annotations"][0]["keypoints"] == [1, 1, 2]
    result = cli("convert", source, "--to", "yolo", "-o", tmp_path / "ds")
    assert result.code == 0, result.stderr
    assert "lossy: COCO keypoints left out (annotations with keypoints; their masks and boxes kept): 5" in result.stderr


def test_parse_split_accepts_percentages():
    assert parse_split("train=80,val=20") == {"train": 0.8, "val": 0.2}
    assert Summary().lines() == []
