"""Reading files written by each format's reference tools (hand-written fixtures from the specs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segtools.errors import InputError
from segtools.formats import Summary, cityscapes, coco, coco_dataset, coco_panoptic, labelme, voc, yolo

FIXTURES = Path(__file__).parent / "fixtures" / "formats"


def _car_and_person() -> np.ndarray:
    labels = np.full((8, 10), 255, np.uint8)
    labels[1:4, 1:5] = 0   # car: polygon corners (1,1)-(5,4)
    labels[5:8, 6:10] = 1  # person: RLE
    return labels


def _label_masks(data: dict) -> dict:
    """``file_name → label mask`` of every image, through the dataset reader."""
    categories, records, _ = coco_dataset.read_coco(data)
    return {r.image["file_name"]: coco.annotations_to_labels(r.annotations, r.image["height"], r.image["width"],
                                                            categories.label_of, 255, None, f"{r.image['file_name']}: ")
            for r in records}


def test_cvat_coco_export_polygons_and_both_rle_forms():
    masks = _label_masks(coco.load(FIXTURES / "coco_cvat.json"))
    np.testing.assert_array_equal(masks["frame_000000.jpg"], _car_and_person())
    second = np.full((8, 10), 255, np.uint8)
    second[5:8, 6:10] = 1
    np.testing.assert_array_equal(masks["frame_000001.jpg"], second)


def test_coco_annotation_fields_match_what_cvat_wrote():
    data = coco.load(FIXTURES / "coco_cvat.json")
    for ann in data["annotations"]:
        mask = coco.segmentation_to_mask(ann["segmentation"], 8, 10)
        fields = coco.mask_annotation(mask, "rle")
        assert fields["area"] == ann["area"] and fields["bbox"] == ann["bbox"]


def test_unknown_category_is_named():
    data = coco.load(FIXTURES / "coco_cvat.json")
    data["annotations"][0]["category_id"] = 99
    with pytest.raises(InputError, match="unknown category_id 99"):
        _label_masks(data)


def test_yolo_labels_boxes_and_segments():
    meta = yolo.read_data_yaml((FIXTURES / "yolo" / "data.yaml").read_text())
    assert meta["names"] == ["car", "person"]
    rows = yolo.parse_lines((FIXTURES / "yolo" / "labels" / "frame_000000.txt").read_text())
    anns = yolo.rows_to_annotations(rows, 8, 10, 1, 1, num_classes=2)
    np.testing.assert_allclose(anns[0]["bbox"], [1, 1, 4, 3])
    assert anns[1]["bbox"] == [6.0, 5.0, 4.0, 3.0] and anns[1]["area"] == 12


@pytest.mark.parametrize("text", [
    "names:\n  0: car\n  1: person\n",
    "names:\n- car\n- person\n",
    "nc: 2\nnames: [\"car\", 'person']  # comment\n",
])
def test_data_yaml_forms_without_pyyaml(text, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_yaml(name, *args, **kwargs):
        if name == "yaml":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_yaml)
    assert yolo.read_data_yaml(text)["names"] == ["car", "person"]


def test_written_data_yaml_reads_back():
    text = yolo.data_yaml(["car", "traffic light", "a: b"], path="/data/x")
    assert yolo.read_data_yaml(text)["names"] == ["car", "traffic light", "a: b"]


@pytest.mark.parametrize("line, message", [
    ("0 0.5 0.5 0.1", "3 coordinates"),
    ("0 0.1 0.1", "fewer than 3 points"),  # 2 points would be 4 numbers: a box
    ("car 0.5 0.5 0.1 0.1", "not a YOLO line"),
    ("0 0.1 0.1 0.2 0.2 0.3 0.4 0.5 0.6 7", "the last value is 7"),  # odd: a polygon and a confidence
    ("0 0.1 0.1 0.2 0.2 1.3", "the last value is 1.3"),  # 5 values: a box and a confidence
])
def test_bad_yolo_lines(line, message):
    with pytest.raises(InputError, match=message):
        yolo.parse_lines(line, "x.txt")


def test_yolo_outside_image_clips_with_a_count_or_fails_strict():
    rows = yolo.parse_lines("0 0.5 0.5 1.2 0.4")
    summary = Summary()
    yolo.rows_to_annotations(rows, 8, 10, 1, 1, summary=summary)
    assert summary.lossy and sum(summary.counts.values()) == 1
    with pytest.raises(InputError, match="outside the image"):
        yolo.rows_to_annotations(rows, 8, 10, 1, 1, strict=True)


def test_voc_devkit_xml():
    ann = voc.parse((FIXTURES / "voc_000000.xml").read_text())
    assert (ann.width, ann.height, ann.filename) == (10, 8, "frame_000000.jpg")
    assert [o.name for o in ann.objects] == ["car", "person"]
    assert ann.objects[1].difficult and ann.objects[1].truncated
    again = voc.parse(voc.to_xml(ann))
    assert [o.box for o in again.objects] == [o.box for o in ann.objects]


def test_voc_bad_xml():
    with pytest.raises(InputError, match="not valid XML"):
        voc.parse("<annotation><size>")
    with pytest.raises(InputError, match="not a Pascal VOC"):
        voc.parse("<svg/>")


def test_voc_segmentation_object_with_borders():
    classes = np.zeros((6, 6), np.uint8)
    objects = np.zeros((6, 6), np.uint8)
    classes[1:4, 1:4], objects[1:4, 1:4] = 15, 1
    classes[0, :], objects[0, :] = 255, 255  # border
    classes[4:6, 4:6], objects[4:6, 4:6] = 7, 2
    assert voc.object_classes(classes, objects) == {1: 15, 2: 7}
    found = voc.segmentation_annotations(classes, objects, "rle")
    assert [(a["category_id"], a["area"]) for a in found] == [(16, 9), (8, 4)]


def test_labelme_shapes():
    data = labelme.load(FIXTURES / "labelme_000000.json")
    summary = Summary()
    (h, w), objects = labelme.objects(data, "fixture", summary)
    assert (h, w) == (8, 10)
    assert [o.label for o in objects] == ["car", "person", "pole", "sign"]
    car, person, pole, sign = objects
    assert car.mask.sum() == 12 and car.mask[1:4, 1:5].all()
    assert person.mask[5:8, 6:10].all() and person.mask[2, 8]  # rectangle + circle, one group
    assert pole.mask[:, 0].all() and sign.mask[6, 2]
    assert any("line" in e for e in summary.counts) and any("point" in e for e in summary.counts)


def test_labelme_without_size_says_what_to_do():
    with pytest.raises(InputError, match="imageHeight"):
        labelme.objects({"shapes": []}, "x.json")


def test_cityscapes_ids():
    label_ids = np.array([[7, 8, 0], [26, 33, 4]], np.uint8)
    train = cityscapes.label_to_train(label_ids)
    assert train.tolist() == [[0, 1, 255], [13, 18, 255]]
    assert cityscapes.train_to_label(train).tolist() == [[7, 8, 0], [26, 33, 0]]
    instance_ids = np.array([[26001, 26002, 7], [24000, 11, 0]])
    classes, numbers = cityscapes.split_instance_ids(instance_ids)
    assert classes.tolist() == [[26, 26, 7], [24, 11, 0]] and numbers.tolist() == [[1, 2, 0], [0, 0, 0]]
    with pytest.raises(InputError, match="labelIds"):
        cityscapes.label_to_train(np.array([[40]]))


def test_panoptic_png_round_trip():
    semantic = np.array([[0, 0, 1, 1], [0, 2, 2, 255]], np.uint8)   # 0 = sky (stuff), 1,2 = person
    instances = np.array([[0, 0, 1, 1], [0, 2, 2, 0]], np.uint8)
    category_ids, things = [17, 1], {1}
    semantic[semantic == 2] = 1
    ids, segments = coco_panoptic.from_masks(semantic, instances, category_ids, things)
    rgb = coco_panoptic.ids_to_rgb(ids)
    np.testing.assert_array_equal(coco_panoptic.rgb_to_ids(rgb), ids)
    assert ids[1, 3] == 0 and len(segments) == 3
    assert {s["category_id"] for s in segments} == {17, 1}
    sem, inst = coco_panoptic.to_masks(ids, segments, {17: 0, 1: 1}, things)
    np.testing.assert_array_equal(sem, semantic)
    assert len(np.unique(inst[inst > 0])) == 2 and (inst[semantic == 0] == 0).all()
    with pytest.raises(InputError, match="not in segments_info"):
        coco_panoptic.to_masks(ids, segments[:1], {17: 0, 1: 1}, things)
