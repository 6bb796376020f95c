"""``convert`` on the YOLO layouts exports actually have: Roboflow, Darknet/CVAT, bare labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error

from segtools.io.images import encode_image


def _photo(path: Path, height: int, width: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jpg":
        from PIL import Image

        Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(path, "JPEG")
    else:
        path.write_bytes(encode_image(np.zeros((height, width, 3), np.uint8)))


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def roboflow_export(root: Path) -> Path:
    """A Roboflow "YOLOv8" export as it unzips: data.yaml naming ../train/images etc."""
    _write(root / "data.yaml", "train: ../train/images\nval: ../valid/images\ntest: ../test/images\n\n"
           "nc: 2\nnames: ['cat', 'dog']\n\nroboflow:\n  workspace: ws\n  project: pets\n  version: 1\n"
           "  license: CC BY 4.0\n  url: https://universe.roboflow.com/ws/pets/dataset/1\n")
    _write(root / "README.roboflow.txt", "Exported via roboflow.com\n")
    _photo(root / "train" / "images" / "a_jpg.rf.1f2e.jpg", 40, 80)
    _write(root / "train" / "labels" / "a_jpg.rf.1f2e.txt", "0 0.5 0.5 0.25 0.5\n1 0.125 0.25 0.25 0.5\n")
    _photo(root / "valid" / "images" / "b_jpg.rf.9a9a.jpg", 20, 40)
    _write(root / "valid" / "labels" / "b_jpg.rf.9a9a.txt", "1 0.5 0.5 0.5 0.5\n")
    _photo(root / "test" / "images" / "c_jpg.rf.7c7c.jpg", 20, 40)
    _write(root / "test" / "labels" / "c_jpg.rf.7c7c.txt", "")
    return root


def test_roboflow_root_converts_with_its_splits_and_names(cli, tmp_path):
    root = roboflow_export(tmp_path / "pets")
    result = cli("convert", root, "--to", "coco", "-o", tmp_path / "pets.json")
    assert result.code == 0, result.stderr
    data = json.loads((tmp_path / "pets.json").read_text())
    assert [c["name"] for c in data["categories"]] == ["cat", "dog"]
    assert sorted(im["file_name"] for im in data["images"]) == [
        "test/images/c_jpg.rf.7c7c.jpg", "train/images/a_jpg.rf.1f2e.jpg", "valid/images/b_jpg.rf.9a9a.jpg"]
    sizes = {im["file_name"]: (im["height"], im["width"]) for im in data["images"]}
    assert sizes["train/images/a_jpg.rf.1f2e.jpg"] == (40, 80)
    by_image = {im["id"]: im["file_name"] for im in data["images"]}
    boxes = sorted((by_image[a["image_id"]], a["category_id"], a["bbox"]) for a in data["annotations"])
    assert boxes == [("train/images/a_jpg.rf.1f2e.jpg", 1, [30.0, 10.0, 20.0, 20.0]),
                     ("train/images/a_jpg.rf.1f2e.jpg", 2, [0.0, 0.0, 20.0, 20.0]),
                     ("valid/images/b_jpg.rf.9a9a.jpg", 2, [10.0, 5.0, 20.0, 10.0])]


def cvat_yolo_export(root: Path, extension: str = ".png") -> Path:
    """CVAT's "YOLO 1.1" export (Darknet layout): obj.data, obj.names, train.txt, obj_train_data/."""
    _write(root / "obj.data", "classes = 2\ntrain = data/train.txt\nnames = data/obj.names\nbackup = backup/\n")
    _write(root / "obj.names", "person\ncar\n")
    _write(root / "train.txt", f"data/obj_train_data/frame_000000{extension}\ndata/obj_train_data/frame_000001{extension}\n")
    _photo(root / "obj_train_data" / f"frame_000000{extension}", 10, 20)
    _photo(root / "obj_train_data" / f"frame_000001{extension}", 10, 20)
    _write(root / "obj_train_data" / "frame_000000.txt", "1 0.500000 0.500000 0.500000 0.400000\n")
    _write(root / "obj_train_data" / "frame_000001.txt", "0 0.250000 0.250000 0.100000 0.200000\n")
    return root


def test_darknet_layout_reads_train_txt_as_the_photo_list(cli, tmp_path):
    root = cvat_yolo_export(tmp_path / "cvat")
    result = cli("convert", root, "--to", "coco", "-o", tmp_path / "out.json")
    assert result.code == 0, result.stderr
    data = json.loads((tmp_path / "out.json").read_text())
    assert [c["name"] for c in data["categories"]] == ["person", "car"]
    assert [im["file_name"] for im in data["images"]] == ["obj_train_data/frame_000000.png",
                                                        "obj_train_data/frame_000001.png"]
    assert [(a["category_id"], a["bbox"]) for a in data["annotations"]] == [
        (2, [5.0, 3.0, 10.0, 4.0]), (1, [4.0, 1.5, 2.0, 2.0])]


def test_darknet_list_naming_a_missing_label_is_one_line(cli, tmp_path):
    root = cvat_yolo_export(tmp_path / "cvat")
    (root / "obj_train_data" / "frame_000001.txt").unlink()
    result = cli("convert", root, "--to", "coco", "-o", tmp_path / "out.json")
    assert_one_line_error(result)
    assert "train.txt:2" in result.stderr and not (tmp_path / "out.json").exists()


def test_obj_names_and_classes_txt_name_the_classes(cli, tmp_path):
    for names_file in ("obj.names", "classes.txt"):
        root = tmp_path / names_file
        _write(root / names_file, "road\nsky\n")
        _write(root / "x.txt", "1 0.5 0.5 0.5 0.5\n")
        result = cli("convert", root, "--to", "coco", "--image-size", "10x10")
        assert result.code == 0, result.stderr
        assert [c["name"] for c in json.loads(result.stdout)["categories"]] == ["road", "sky"]
        assert names_file in result.stderr  # where the names came from is said


def test_without_names_the_largest_class_is_not_a_cap_in_any_order(cli, tmp_path):
    for order in (("a", "b"), ("b", "a")):
        root = tmp_path / "".join(order)
        _write(root / "labels" / f"{order[0]}.txt", "0 0.5 0.5 0.2 0.2\n")
        _write(root / "labels" / f"{order[1]}.txt", "3 0.5 0.5 0.2 0.2\n")
        result = cli("convert", root, "--to", "coco", "--image-size", "10x10")
        assert result.code == 0, result.stderr
        assert [c["name"] for c in json.loads(result.stdout)["categories"]] == [f"class_{i}" for i in range(4)]


def test_names_from_a_yaml_are_still_a_cap(cli, tmp_path):
    root = tmp_path / "ds"
    _write(root / "data.yaml", "names: [a, b]\n")
    _write(root / "labels" / "x.txt", "2 0.5 0.5 0.2 0.2\n")
    result = cli("convert", root, "--to", "coco", "--image-size", "10x10")
    assert_one_line_error(result)
    assert "class 2" in result.stderr


def _coco(tmp_path: Path, segmentations, height=30, width=40) -> Path:
    data = {"images": [{"id": 1, "file_name": "a.jpg", "height": height, "width": width}],
            "categories": [{"id": 1, "name": "thing"}],
            "annotations": [{"id": i + 1, "image_id": 1, "category_id": 1, "segmentation": s, "iscrowd": 0,
                             "area": 1.0, "bbox": [0, 0, 1, 1]} for i, s in enumerate(segmentations)]}
    path = tmp_path / "in.json"
    path.write_text(json.dumps(data))
    return path


def _round_trip_masks(cli, tmp_path, coco_path, height=30, width=40):
    from segtools.io.masks import read_label_mask

    assert cli("convert", coco_path, "--to", "mask", "-o", tmp_path / "want").code == 0
    result = cli("convert", coco_path, "--to", "yolo-seg", "-o", tmp_path / "ds")
    assert result.code == 0, result.stderr
    back = cli("convert", tmp_path / "ds", "--to", "mask", "--image-size", f"{height}x{width}", "-o", tmp_path / "got")
    assert back.code == 0, back.stderr
    want = read_label_mask(tmp_path / "want" / "a.png").labels
    got = read_label_mask(tmp_path / "got" / "a.png").labels
    return result, want, got


def test_yolo_seg_cuts_polygons_at_the_border_keeping_every_pixel(cli, tmp_path):
    triangle = [[-20.0, 5.0, 30.0, 2.0, 25.0, 45.0]]  # two vertices outside the 40x30 image
    result, want, got = _round_trip_masks(cli, tmp_path, _coco(tmp_path, [triangle]))
    # the new vertices on the border sit on the 1/5 px grid pycocotools rounds to: a pixel or two
    # along a cut edge may flip, where clamping loses whole strips
    assert (got != want).sum() <= 2
    assert "polygons cut at the image border: 1" in result.stderr
    clamped = np.clip(np.array(triangle[0]).reshape(-1, 2), 0, [40, 30])  # what clamping would have kept
    from segtools.formats.polygons import polygons_to_mask

    assert (polygons_to_mask([clamped], 30, 40) != (want == 0)).sum() > 20


def test_yolo_seg_unites_overlapping_parts_instead_of_a_hole(cli, tmp_path):
    parts = [[2.0, 2.0, 20.0, 2.0, 20.0, 20.0, 2.0, 20.0], [10.0, 10.0, 30.0, 10.0, 30.0, 25.0, 10.0, 25.0]]
    result, want, got = _round_trip_masks(cli, tmp_path, _coco(tmp_path, [parts]))
    assert (want == 0).sum() == 18 * 18 + 20 * 15 - 10 * 10
    np.testing.assert_array_equal(got, want)
    assert "overlapping parts of one object united" in result.stderr


def test_yolo_text_precision_is_kept_integers_stay_integers(cli, tmp_path):
    width, height = 640, 480
    x0, y0, x1, y1 = 83, 41, 120, 97
    root = tmp_path / "ds"
    line = f"0 {(x0 + x1) / 2 / width:.6f} {(y0 + y1) / 2 / height:.6f} {(x1 - x0) / width:.6f} {(y1 - y0) / height:.6f}"
    _write(root / "labels" / "a.txt", line + "\n")
    _write(root / "classes.txt", "car\n")
    result = cli("convert", root, "--to", "voc", "--image-size", f"{height}x{width}", "-o", tmp_path / "voc")
    assert result.code == 0, result.stderr
    xml = (tmp_path / "voc" / "Annotations" / "a.xml").read_text()
    for tag, value in (("xmin", x0 + 1), ("ymin", y0 + 1), ("xmax", x1), ("ymax", y1)):
        assert f"<{tag}>{value}</{tag}>" in xml, xml
    coco = cli("convert", root, "--to", "coco", "--image-size", f"{height}x{width}")
    assert json.loads(coco.stdout)["annotations"][0]["bbox"] == [83, 41, 37, 56]


def test_yolo_boxes_outside_are_clipped_and_counted_or_refused(cli, tmp_path):
    root = tmp_path / "ds"
    _write(root / "labels" / "a.txt", "0 0.9 0.5 0.4 0.2\n")  # every field in [0, 1], the box is not
    result = cli("convert", root, "--to", "coco", "--image-size", "10x10")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["annotations"][0]["bbox"] == [7, 4, 3, 2]
    assert "lossy: boxes outside the image (clipped): 1" in result.stderr
    assert_one_line_error(cli("convert", root, "--to", "coco", "--image-size", "10x10", "--strict"), 1)


def test_darknet_lists_cannot_lead_out_of_the_dataset(cli, tmp_path):
    secret = tmp_path / "secret"
    _write(secret / "x.txt", "0 0.5 0.5 0.1 0.1\n")
    root = cvat_yolo_export(tmp_path / "cvat")
    (root / "train.txt").write_text("../secret/x.jpg\n")
    result = cli("convert", root, "--to", "coco", "-o", tmp_path / "out.json")
    assert_one_line_error(result, 1)
    assert "train.txt:1" in result.stderr and not (tmp_path / "out.json").exists()
    (root / "obj.data").write_text("classes = 2\ntrain = data/train.txt\nnames = ../secret/x.txt\n")
    result = cli("convert", root, "--to", "coco", "-o", tmp_path / "out.json")
    assert_one_line_error(result, 1)
    assert "names" in result.stderr


def test_united_parts_rasterise_to_the_union_pixel_for_pixel():
    from segtools.formats import polygon_clip
    from segtools.formats import polygons as polylib

    rng = np.random.default_rng(5)
    united_count = 0
    for _ in range(150):
        height, width = (int(v) for v in rng.integers(20, 80, 2))
        parts = [rng.uniform([-10, -10], [width + 10, height + 10], (int(rng.integers(3, 8)), 2)).round(int(rng.integers(0, 3)))
                 for _ in range(int(rng.integers(2, 4)))]
        united, did = polygon_clip.unite_parts(parts, height, width)
        want = polylib.polygons_to_mask(parts, height, width)
        if did:
            united_count += 1
            got = polylib.polygons_to_mask(united, height, width) if united else np.zeros_like(want)
            np.testing.assert_array_equal(got, want)
    assert united_count > 100


def test_ultralytics_save_conf_lines_become_scored_detections(cli, tmp_path):
    """``yolo predict save_txt=True save_conf=True``: the confidence after the coordinates."""
    _photo(tmp_path / "images" / "a.jpg", 40, 60)
    _write(tmp_path / "labels" / "a.txt", "0 0.5 0.5 0.2 0.2 0.87\n1 0.1 0.1 0.3 0.1 0.3 0.3 0.1 0.3 0.55\n")
    _write(tmp_path / "data.yaml", "names: [car, person]\n")
    result = cli("convert", tmp_path, "--to", "coco-results", "-o", tmp_path / "results.json")
    assert result.code == 0, result.stderr
    assert "YOLO lines with a confidence (Ultralytics save_conf): 2" in result.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    assert [(d["category_id"], d["score"], d["bbox"]) for d in results] == [
        (1, 0.87, [24.0, 16.0, 12.0, 8.0]), (2, 0.55, [6.0, 4.0, 12.0, 8.0])]


@pytest.mark.parametrize("line", ["0 0.5 0.5 0.2 0.2 1.5", "0 0.1 0.1 0.3 0.1 0.3 0.3 0.1 0.3 7"])
def test_a_confidence_out_of_range_is_one_line(cli, tmp_path, line):
    _photo(tmp_path / "images" / "a.jpg", 40, 60)
    _write(tmp_path / "labels" / "a.txt", line + "\n")
    result = cli("convert", tmp_path, "--to", "coco-results", "-o", tmp_path / "results.json")
    assert_one_line_error(result)
    assert "a.txt:1" in result.stderr and "a confidence in [0, 1], but the last value is" in result.stderr
