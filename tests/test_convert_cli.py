"""``segtools convert`` end to end: round trips, streams, summaries, one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error

from segtools.formats import rle
from segtools.io.masks import encode_label_mask, read_label_mask

FIXTURES = Path(__file__).parent / "fixtures" / "formats"


def _camvid_masks(camvid, tmp_path, n=3) -> Path:
    folder = tmp_path / "masks"
    folder.mkdir()
    for path in sorted((camvid / "valannot").glob("*.png"))[:n]:
        shutil.copy(path, folder / path.name)
    return folder


def test_mask_to_coco_rle_on_stdout_decodes_to_each_class(cli):
    labels = np.zeros((6, 7), np.uint8)
    labels[1:3, 2:6] = 1
    labels[4:, :2] = 2
    labels[0, 0] = 255
    result = cli("convert", "-", "--to", "coco-rle", input=encode_label_mask(labels))
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    painted = np.full(labels.shape, 255, np.uint8)
    for ann in data["annotations"]:
        painted[rle.decode(ann["segmentation"]) == 1] = ann["category_id"] - 1
        assert ann["area"] == rle.area(ann["segmentation"])
    np.testing.assert_array_equal(painted, labels)
    assert data["info"]["segtools"]["unlabelled"] == 255


def test_camvid_folder_to_coco_and_back_is_exact(cli, camvid, tmp_path):
    masks = _camvid_masks(camvid, tmp_path)
    for target in ("coco", "coco-rle"):
        ann = tmp_path / f"{target}.json"
        result = cli("convert", masks, "--to", target, "--classes", "camvid", "-o", ann)
        assert result.code == 0, result.stderr
        from segtools.formats.coco import is_streamed

        assert is_streamed(ann)  # read back line by line: bounded memory
        back = tmp_path / f"back-{target}"
        result = cli("convert", ann, "--to", "mask", "-o", back)
        assert result.code == 0, result.stderr
        for path in masks.iterdir():
            np.testing.assert_array_equal(read_label_mask(back / path.name).labels, read_label_mask(path).labels)
        last = sorted(masks.iterdir())[-1]
        one = cli("convert", ann, "--to", "mask", "--image", last.name)
        assert one.code == 0, one.stderr
        np.testing.assert_array_equal(read_label_mask(one.stdout).labels, read_label_mask(last).labels)


def test_coco_to_single_mask_by_image_name(cli):
    result = cli("convert", FIXTURES / "coco_cvat.json", "--to", "mask", "--image", "some/dir/frame_000000.jpg")
    assert result.code == 0, result.stderr
    mask = read_label_mask(result.stdout)
    assert mask.meta.names == ("car", "person")
    assert mask.labels[2, 2] == 0 and mask.labels[6, 8] == 1 and mask.labels[0, 0] == 255


def test_coco_to_yolo_seg_and_back_to_the_same_masks(cli, tmp_path):
    dataset = tmp_path / "ds"
    result = cli("convert", FIXTURES / "coco_cvat.json", "--to", "yolo-seg", "-o", dataset)
    assert result.code == 0, result.stderr
    assert "car" in (dataset / "data.yaml").read_text()
    assert (dataset / "labels" / "frame_000000.txt").read_text().startswith("0 0.1 0.125 0.5 0.125 0.5 0.5 0.1 0.5")
    back = tmp_path / "back.json"
    result = cli("convert", dataset, "--to", "coco", "--image-size", "8x10", "-o", back)
    assert result.code == 0, result.stderr
    original = tmp_path / "a"
    again = tmp_path / "b"
    assert cli("convert", FIXTURES / "coco_cvat.json", "--to", "mask", "-o", original).code == 0
    assert cli("convert", back, "--to", "mask", "-o", again).code == 0
    for path in original.iterdir():
        np.testing.assert_array_equal(read_label_mask(again / path.with_suffix(".png").name).labels,
                                      read_label_mask(path).labels)


def test_yolo_boxes_voc_coco_agree(cli, tmp_path):
    coco_json = tmp_path / "voc.json"
    assert cli("convert", FIXTURES / "voc_000000.xml", "--to", "coco", "-o", coco_json).code == 0
    boxes_from_voc = [a["bbox"] for a in json.loads(coco_json.read_text())["annotations"]]
    assert boxes_from_voc == [[1.0, 1.0, 4.0, 3.0], [6.0, 5.0, 4.0, 3.0]]
    yolo_dir = tmp_path / "yolo"
    assert cli("convert", coco_json, "--to", "yolo", "-o", yolo_dir).code == 0
    assert (yolo_dir / "labels" / "frame_000000.txt").read_text().splitlines()[0] == "0 0.3 0.3125 0.4 0.375"
    again = tmp_path / "again.json"
    assert cli("convert", yolo_dir, "--to", "coco", "--image-size", "8x10", "-o", again).code == 0
    np.testing.assert_allclose([a["bbox"] for a in json.loads(again.read_text())["annotations"]], boxes_from_voc, atol=1e-6)
    voc_dir = tmp_path / "voc"
    result = cli("convert", again, "--to", "voc", "-o", voc_dir)
    assert result.code == 0
    assert "<xmin>2</xmin>" in (voc_dir / "Annotations" / "frame_000000.xml").read_text()


def test_yolo_sizes_come_from_the_images(cli, tmp_path):
    from segtools.io.images import encode_image

    dataset = tmp_path / "ds"
    shutil.copytree(FIXTURES / "yolo", dataset)
    (dataset / "images").mkdir()
    for name in ("frame_000000", "frame_000001"):
        (dataset / "images" / f"{name}.png").write_bytes(encode_image(np.zeros((8, 10, 3), np.uint8)))
    result = cli("convert", dataset, "--to", "coco")
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [im["file_name"] for im in data["images"]] == ["frame_000000.png", "frame_000001.png"]
    assert [c["name"] for c in data["categories"]] == ["car", "person"]


def test_labelme_to_mask(cli):
    result = cli("convert", FIXTURES / "labelme_000000.json", "--to", "mask")
    assert result.code == 0, result.stderr
    mask = read_label_mask(result.stdout)
    assert mask.meta.names == ("car", "person", "pole", "sign")
    assert "line shapes drawn" in result.stderr


def test_lossy_conversions_are_counted_on_stderr(cli, tmp_path):
    result = cli("convert", FIXTURES / "coco_cvat.json", "--to", "voc", "-o", tmp_path / "voc")
    assert result.code == 0
    assert "warning: lossy: masks/polygons reduced to boxes (VOC XML): 3" in result.stderr
    result = cli("convert", FIXTURES / "coco_cvat.json", "--to", "coco", "-o", tmp_path / "p.json")
    assert "crowd RLEs traced to polygons: 1" in result.stderr


def test_cityscapes_train_ids(cli):
    label_ids = np.array([[7, 26], [0, 33]], np.uint8)
    result = cli("convert", "-", "--to", "trainids", input=encode_label_mask(label_ids))
    assert result.code == 0, result.stderr
    assert read_label_mask(result.stdout).labels.tolist() == [[0, 13], [255, 18]]


def _bad_coco(tmp_path, change) -> Path:
    data = json.loads((FIXTURES / "coco_cvat.json").read_text())
    change(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("change, message", [
    (lambda d: d["annotations"][0].update(category_id=42), "unknown category_id 42"),
    (lambda d: d["annotations"][0].update(segmentation=[[1, 1, 2, 2]]), "at least 3"),
    (lambda d: d["annotations"][2]["segmentation"].update(size=[9, 10]), "RLE size"),
    (lambda d: d["images"][0].pop("height"), "height"),
])
def test_bad_coco_inputs_are_one_line_errors(cli, tmp_path, change, message):
    result = cli("convert", _bad_coco(tmp_path, change), "--to", "mask", "-o", tmp_path / "out")
    assert_one_line_error(result, 1)
    assert message in result.stderr


def test_other_bad_inputs(cli, tmp_path):
    assert_one_line_error(cli("convert", FIXTURES / "coco_cvat.json", "--to", "pdf"), 2)
    result = cli("convert", FIXTURES / "yolo", "--to", "coco")
    assert_one_line_error(result, 1)
    assert "image_size" in result.stderr
    outside = tmp_path / "ds"
    shutil.copytree(FIXTURES / "yolo", outside)
    (outside / "labels" / "frame_000000.txt").write_text("0 0.5 0.5 1.5 0.2\n")
    result = cli("convert", outside, "--to", "coco", "--image-size", "8x10", "--strict")
    assert_one_line_error(result, 1)
    assert "outside the image" in result.stderr
    result = cli("convert", outside, "--to", "coco", "--image-size", "8x10")
    assert result.code == 0 and "clipped" in result.stderr
    garbage = tmp_path / "x.json"
    garbage.write_text('{"hello": 1}')
    assert_one_line_error(cli("convert", garbage, "--to", "mask"), 1)
    assert_one_line_error(cli("convert", FIXTURES / "coco_cvat.json", "--to", "yolo"), 2)
    assert_one_line_error(cli("convert", FIXTURES / "coco_cvat.json", "--to", "mask", "--image", "nope.jpg"), 1)


def test_a_real_pipe(proc):
    labels = np.zeros((4, 5), np.uint8)
    labels[1:3, 1:4] = 1
    result = proc("convert", "-", "--to", "coco-rle", input=encode_label_mask(labels))
    assert result.code == 0, result.stderr
    back = proc("convert", "-", "--to", "mask", input=result.stdout)
    assert back.code == 0, back.stderr
    np.testing.assert_array_equal(read_label_mask(back.stdout).labels, labels)


def test_panoptic_json_and_pngs_to_masks(cli, tmp_path):
    from segtools.formats import coco_panoptic
    from segtools.io.images import encode_image

    semantic = np.array([[0, 0, 1, 1], [0, 1, 1, 255]], np.uint8)
    instances = np.array([[0, 0, 1, 1], [0, 2, 2, 0]], np.uint8)
    ids, segments = coco_panoptic.from_masks(semantic, instances, [17, 1], {1})
    (tmp_path / "panoptic_val").mkdir()
    (tmp_path / "panoptic_val" / "a.png").write_bytes(encode_image(coco_panoptic.ids_to_rgb(ids)))
    data = {"images": [{"id": 1, "file_name": "a.jpg", "height": 2, "width": 4}],
            "annotations": [{"image_id": 1, "file_name": "a.png", "segments_info": segments}],
            "categories": [{"id": 1, "name": "person", "isthing": 1}, {"id": 17, "name": "sky", "isthing": 0}]}
    (tmp_path / "panoptic_val.json").write_text(json.dumps(data))
    result = cli("convert", tmp_path / "panoptic_val.json", "--to", "mask", "-o", tmp_path / "out")
    assert result.code == 0, result.stderr
    labels = read_label_mask(tmp_path / "out" / "a.png")
    assert labels.meta.names == ("person", "sky")
    assert labels.labels.tolist() == [[1, 1, 0, 0], [1, 0, 0, 255]]
    numbers = read_label_mask(tmp_path / "out" / "instances" / "a.png").labels
    assert numbers[0, 0] == 0 and len(np.unique(numbers[semantic == 1])) == 2


def test_masks_own_ignore_index_is_void_and_restored(cli, tmp_path):
    """CamVid-style masks carry ignore 11 in their metadata: 11 is not a class, and comes back."""
    from segtools.io.meta import load_classes

    labels = np.full((20, 30), 11, np.uint8)
    labels[2:9, 3:12], labels[10:18, 15:28] = 3, 8
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "a.png").write_bytes(encode_label_mask(labels, load_classes("camvid")))
    result = cli("convert", tmp_path / "masks", "--to", "coco", "-o", tmp_path / "ann.json")
    assert result.code == 0, result.stderr
    data = json.loads((tmp_path / "ann.json").read_text())
    assert data["info"]["segtools"]["unlabelled"] == 11
    assert sorted({a["category_id"] - 1 for a in data["annotations"]}) == [3, 8]
    assert cli("convert", tmp_path / "ann.json", "--to", "mask", "-o", tmp_path / "back").code == 0
    np.testing.assert_array_equal(read_label_mask(tmp_path / "back" / "a.png").labels, labels)
