"""``convert`` on COCO export folders: Roboflow's per-split ``_annotations.coco.json`` and
COCO's own ``annotations/instances_<split>.json`` beside ``<split>/`` photos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from conftest import assert_one_line_error
from test_convert_layouts_a_yolo import _photo, _write

from segtools.io.masks import read_label_mask

# two real classes; Roboflow's placeholder (id 0, named after the project) first
ROBOFLOW_CATEGORIES = [{"id": 0, "name": "pets", "supercategory": "none"},
                       {"id": 1, "name": "cat", "supercategory": "pets"},
                       {"id": 2, "name": "dog", "supercategory": "pets"}]


def _roboflow_split(folder: Path, images: list[tuple[str, int, int, list]], categories=ROBOFLOW_CATEGORIES) -> None:
    """One split as Roboflow writes it: photos and ``_annotations.coco.json`` side by side,
    image ids from 0, a box-only annotation with ``segmentation: []``."""
    entries, annotations = [], []
    for number, (name, height, width, anns) in enumerate(images):
        _photo(folder / name, height, width)
        entries.append({"id": number, "license": 1, "file_name": name, "height": height, "width": width,
                        "date_captured": "2024-05-01T10:00:00+00:00"})
        for category, polygon in anns:
            xs, ys = polygon[0::2], polygon[1::2]
            box = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
            annotations.append({"id": len(annotations), "image_id": number, "category_id": category, "bbox": box,
                                "area": box[2] * box[3], "segmentation": [polygon] if len(polygon) > 4 else [],
                                "iscrowd": 0})
    _write(folder / "_annotations.coco.json", json.dumps({
        "info": {"year": "2024", "version": "1", "description": "Exported from roboflow.com"},
        "licenses": [{"id": 1, "url": "https://creativecommons.org/licenses/by/4.0/", "name": "CC BY 4.0"}],
        "categories": categories, "images": entries, "annotations": annotations}))


def roboflow_coco_export(root: Path) -> Path:
    _write(root / "README.roboflow.txt", "Exported via roboflow.com\n")
    _roboflow_split(root / "train", [("a_jpg.rf.11.jpg", 40, 80, [(1, [40, 10, 60, 10, 60, 30, 40, 30]),
                                                                   (2, [0, 0, 20, 0, 20, 20, 0, 20])])])
    _roboflow_split(root / "valid", [("b_jpg.rf.22.jpg", 20, 40, [(2, [10, 5, 30, 5, 30, 15, 10, 15])])])
    _roboflow_split(root / "test", [("c_jpg.rf.33.jpg", 20, 40, [])])
    return root


def roboflow_yolo_export(root: Path) -> Path:
    """The same dataset as Roboflow's "YOLOv8" export writes it (segments, 0-based classes)."""
    _write(root / "data.yaml", "train: ../train/images\nval: ../valid/images\ntest: ../test/images\n"
           "nc: 2\nnames: ['cat', 'dog']\n")
    for split, name, (h, w), lines in (
            ("train", "a_jpg.rf.11", (40, 80), ["0 0.5 0.25 0.75 0.25 0.75 0.75 0.5 0.75",
                                                "1 0 0 0.25 0 0.25 0.5 0 0.5"]),
            ("valid", "b_jpg.rf.22", (20, 40), ["1 0.25 0.25 0.75 0.25 0.75 0.75 0.25 0.75"]),
            ("test", "c_jpg.rf.33", (20, 40), [])):
        _photo(root / split / "images" / f"{name}.jpg", h, w)
        _write(root / split / "labels" / f"{name}.txt", "".join(line + "\n" for line in lines))
    return root


def _masks(folder: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(folder)).replace("images/", ""): read_label_mask(p).labels
            for p in sorted(folder.rglob("*.png"))}


def test_roboflow_coco_root_reads_every_split_without_the_placeholder(cli, tmp_path):
    root = roboflow_coco_export(tmp_path / "pets")
    result = cli("convert", root, "--to", "coco", "-o", tmp_path / "pets.json")
    assert result.code == 0, result.stderr
    assert "placeholder category 0" in result.stderr and "COCO files read from the folder: 3" in result.stderr
    data = json.loads((tmp_path / "pets.json").read_text())
    assert [(c["id"], c["name"]) for c in data["categories"]] == [(1, "cat"), (2, "dog")]
    names = {im["id"]: im["file_name"] for im in data["images"]}
    assert sorted(names.values()) == ["test/c_jpg.rf.33.jpg", "train/a_jpg.rf.11.jpg", "valid/b_jpg.rf.22.jpg"]
    assert len(set(names)) == 3  # each split numbered its images from 0: renumbered
    found = sorted((names[a["image_id"]], a["category_id"], a["bbox"]) for a in data["annotations"])
    assert found == [("train/a_jpg.rf.11.jpg", 1, [40.0, 10.0, 20.0, 20.0]),
                     ("train/a_jpg.rf.11.jpg", 2, [0.0, 0.0, 20.0, 20.0]),
                     ("valid/b_jpg.rf.22.jpg", 2, [10.0, 5.0, 20.0, 10.0])]
    assert len({a["id"] for a in data["annotations"]}) == 3


def test_roboflow_coco_and_yolo_exports_of_one_dataset_give_the_same_masks(cli, tmp_path):
    coco_root = roboflow_coco_export(tmp_path / "coco")
    yolo_root = roboflow_yolo_export(tmp_path / "yolo")
    for root, out in ((coco_root, tmp_path / "m_coco"), (yolo_root, tmp_path / "m_yolo")):
        result = cli("convert", root, "--to", "mask", "-o", out)
        assert result.code == 0, result.stderr
    from_coco, from_yolo = _masks(tmp_path / "m_coco"), _masks(tmp_path / "m_yolo")
    assert sorted(from_coco) == sorted(from_yolo) == ["test/c_jpg.rf.33.png", "train/a_jpg.rf.11.png",
                                                      "valid/b_jpg.rf.22.png"]
    for name in from_coco:
        np.testing.assert_array_equal(from_coco[name], from_yolo[name], err_msg=name)
    train = from_coco["train/a_jpg.rf.11.png"]
    assert train[20, 50] == 0 and train[10, 10] == 1 and train[35, 70] == 255  # cat, dog, unlabelled


def test_roboflow_coco_to_yolo_names_the_export_splits(cli, tmp_path):
    root = roboflow_coco_export(tmp_path / "pets")
    result = cli("convert", root, "--to", "yolo", "-o", tmp_path / "out")
    assert result.code == 0, result.stderr
    out = tmp_path / "out"
    yaml = (out / "data.yaml").read_text()
    assert "train: images/train\n" in yaml and "val: images/valid\n" in yaml and "test: images/test\n" in yaml
    assert "no validation split" not in yaml and "  0: cat\n  1: dog\n" in yaml
    assert (out / "images" / "valid" / "b_jpg.rf.22.jpg").is_file()
    assert (out / "labels" / "valid" / "b_jpg.rf.22.txt").read_text().split() == ["1", "0.5", "0.5", "0.5", "0.5"]


def test_one_roboflow_file_by_itself_drops_the_placeholder_too(cli, tmp_path):
    root = roboflow_coco_export(tmp_path / "pets")
    result = cli("convert", root / "valid" / "_annotations.coco.json", "--to", "coco", "-o", tmp_path / "v.json")
    assert result.code == 0, result.stderr
    data = json.loads((tmp_path / "v.json").read_text())
    assert [c["name"] for c in data["categories"]] == ["cat", "dog"]
    assert data["images"][0]["file_name"] == "b_jpg.rf.22.jpg"


def test_a_category_0_in_use_or_not_the_supercategory_is_kept(cli, tmp_path):
    used = tmp_path / "used"
    _roboflow_split(used, [("a.jpg", 20, 20, [(0, [0, 0, 10, 0, 10, 10, 0, 10])])])
    other = tmp_path / "other"
    _roboflow_split(other, [("a.jpg", 20, 20, [(1, [0, 0, 10, 0, 10, 10, 0, 10])])],
                    [{"id": 0, "name": "background", "supercategory": "none"},
                     {"id": 1, "name": "cat", "supercategory": "animal"}])
    for folder, kept in ((used, ["pets", "cat", "dog"]), (other, ["background", "cat"])):
        result = cli("convert", folder, "--to", "coco", "-o", tmp_path / f"{folder.name}.json")
        assert result.code == 0, result.stderr
        assert "placeholder" not in result.stderr
        assert [c["name"] for c in json.loads((tmp_path / f"{folder.name}.json").read_text())["categories"]] == kept


def test_coco_own_layout_keeps_category_ids_and_split_folders(cli, tmp_path):
    root = tmp_path / "coco"
    categories = [{"id": 1, "name": "person", "supercategory": "person"},
                  {"id": 18, "name": "dog", "supercategory": "animal"}]
    for split, image_id in (("train2017", 9), ("val2017", 139)):
        name = f"{image_id:012d}.jpg"
        _photo(root / split / name, 30, 40)
        _write(root / "annotations" / f"instances_{split}.json", json.dumps({
            "images": [{"id": image_id, "file_name": name, "height": 30, "width": 40}],
            "annotations": [{"id": 1, "image_id": image_id, "category_id": 18, "bbox": [1, 1, 10, 10], "area": 100,
                             "iscrowd": 0, "segmentation": [[1, 1, 11, 1, 11, 11, 1, 11]]}],
            "categories": categories}))
    _write(root / "annotations" / "captions_val2017.json", json.dumps({"annotations": [{"caption": "a dog"}]}))
    result = cli("convert", root, "--to", "coco", "-o", tmp_path / "all.json")
    assert result.code == 0, result.stderr
    data = json.loads((tmp_path / "all.json").read_text())
    assert [c["id"] for c in data["categories"]] == [1, 18]
    assert [im["file_name"] for im in data["images"]] == ["train2017/000000000009.jpg", "val2017/000000000139.jpg"]
    assert {a["category_id"] for a in data["annotations"]} == {18}
    result = cli("convert", root, "--to", "yolo-seg", "-o", tmp_path / "yolo")
    assert result.code == 0, result.stderr
    yaml = (tmp_path / "yolo" / "data.yaml").read_text()
    assert "train: images/train2017\n" in yaml and "val: images/val2017\n" in yaml
    assert (tmp_path / "yolo" / "images" / "val2017" / "000000000139.jpg").is_file()


def test_splits_that_disagree_on_category_ids_are_matched_by_name(cli, tmp_path):
    root = tmp_path / "export"
    _roboflow_split(root / "train", [("a.jpg", 20, 20, [(1, [0, 0, 10, 0, 10, 10, 0, 10])])],
                    [{"id": 1, "name": "cat", "supercategory": ""}, {"id": 2, "name": "dog", "supercategory": ""}])
    _roboflow_split(root / "valid", [("b.jpg", 20, 20, [(1, [0, 0, 10, 0, 10, 10, 0, 10])])],
                    [{"id": 1, "name": "dog", "supercategory": ""}])
    result = cli("convert", root, "--to", "coco", "-o", tmp_path / "all.json")
    assert result.code == 0, result.stderr
    data = json.loads((tmp_path / "all.json").read_text())
    by_id = {c["id"]: c["name"] for c in data["categories"]}
    names = {im["id"]: im["file_name"] for im in data["images"]}
    assert sorted((names[a["image_id"]], by_id[a["category_id"]]) for a in data["annotations"]) == [
        ("train/a.jpg", "cat"), ("valid/b.jpg", "dog")]


def test_a_broken_split_file_is_one_line_naming_it(cli, tmp_path):
    root = roboflow_coco_export(tmp_path / "pets")
    (root / "valid" / "_annotations.coco.json").write_text('{"images": [], "annotations": [')
    result = cli("convert", root, "--to", "mask", "-o", tmp_path / "out")
    assert_one_line_error(result)
    assert "valid/_annotations.coco.json" in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.png"))


def test_cvat_and_datumaro_coco_exports_find_their_photos_in_images(cli, tmp_path):
    """CVAT's "COCO 1.0" export: annotations/instances_default.json, the photos in images/;
    Datumaro's: images/<split>/."""
    root = tmp_path / "task"
    _photo(root / "images" / "frame_000000.png", 20, 30)
    _write(root / "annotations" / "instances_default.json", json.dumps({
        "licenses": [{"name": "", "id": 0, "url": ""}], "info": {"contributor": "", "version": ""},
        "categories": [{"id": 1, "name": "car", "supercategory": ""}],
        "images": [{"id": 1, "width": 30, "height": 20, "file_name": "frame_000000.png", "license": 0,
                    "flickr_url": "", "coco_url": "", "date_captured": 0}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[2, 2, 12, 2, 12, 8, 2, 8]],
                         "area": 60.0, "bbox": [2, 2, 10, 6], "iscrowd": 0, "attributes": {"occluded": False}}]}))
    result = cli("convert", root, "--to", "yolo-seg", "-o", tmp_path / "yolo")
    assert result.code == 0, result.stderr
    assert "not found" not in result.stderr
    assert (tmp_path / "yolo" / "images" / "frame_000000.png").is_file()
    assert (tmp_path / "yolo" / "labels" / "frame_000000.txt").read_text().startswith("0 ")
    datumaro = tmp_path / "datumaro"
    (datumaro / "annotations").mkdir(parents=True)
    (datumaro / "annotations" / "instances_train.json").write_text(
        (root / "annotations" / "instances_default.json").read_text())
    _photo(datumaro / "images" / "train" / "frame_000000.png", 20, 30)
    result = cli("convert", datumaro, "--to", "coco", "-o", tmp_path / "d.json")
    assert result.code == 0, result.stderr
    assert json.loads((tmp_path / "d.json").read_text())["images"][0]["file_name"] == "train/frame_000000.png"


def test_results_naming_photos_by_stem_convert_against_their_ground_truth(cli, tmp_path):
    """Ultralytics' predictions.json (image_id = the photo's stem) with --gt: the GT's images."""
    gt = {"images": [{"id": 1, "file_name": "street_a.jpg", "height": 20, "width": 30},
                     {"id": 2, "file_name": "000000000139.jpg", "height": 20, "width": 30}],
          "annotations": [], "categories": [{"id": 1, "name": "car"}]}
    results = [{"image_id": "street_a", "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.9},
               {"image_id": 139, "category_id": 1, "bbox": [2, 2, 5, 5], "score": 0.8}]
    _write(tmp_path / "gt.json", json.dumps(gt))
    _write(tmp_path / "predictions.json", json.dumps(results))
    result = cli("convert", tmp_path / "predictions.json", "--gt", tmp_path / "gt.json", "--to", "coco",
                 "-o", tmp_path / "out.json")
    assert result.code == 0, result.stderr
    data = json.loads((tmp_path / "out.json").read_text())
    assert sorted((a["image_id"], a["bbox"]) for a in data["annotations"]) == [(1, [1.0, 1.0, 5.0, 5.0]),
                                                                                (2, [2.0, 2.0, 5.0, 5.0])]


def test_info_describes_export_folders_whole(cli, tmp_path):
    from test_convert_layouts_a_yolo import roboflow_export

    coco_root = roboflow_coco_export(tmp_path / "coco")
    result = cli("info", coco_root, "--format", "json")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["kind"] == "COCO export" and report["images"] == 3 and report["categories"] == ["cat", "dog"]
    assert report["files"] == ["train/_annotations.coco.json", "valid/_annotations.coco.json",
                               "test/_annotations.coco.json"]
    yolo_root = roboflow_export(tmp_path / "yolo")  # README.roboflow.txt beside the splits is not a label file
    result = cli("info", yolo_root, "--format", "json")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["kind"] == "YOLO dataset" and report["images"] == 3 and report["annotations"] == 3
