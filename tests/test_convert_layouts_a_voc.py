"""``convert`` on VOC XML as tools write it: 0-based boxes, no <size>, <part> boxes, --skip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from conftest import assert_one_line_error


def _xml(objects, size=(480, 640), filename="a.jpg", parts="") -> str:
    body = "".join(
        f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>"
        f"<occluded>0</occluded><bndbox><xmin>{x0}</xmin><xmax>{x1}</xmax><ymin>{y0}</ymin><ymax>{y1}</ymax>"
        f"</bndbox>{parts}</object>" for name, (x0, y0, x1, y1) in objects)
    size_xml = "" if size is None else (f"<size><width>{size[1]}</width><height>{size[0]}</height>"
                                        "<depth>3</depth></size>")
    # Roboflow's layout: folder, filename, path, source, size, segmented, objects
    return (f"<annotation><folder></folder><filename>{filename}</filename><path>{filename}</path>"
            f"<source><database>roboflow.ai</database></source>{size_xml}<segmented>0</segmented>{body}</annotation>")


def _coco(cli, *args):
    result = cli("convert", *args, "--to", "coco")
    assert result.code == 0, result.stderr
    return json.loads(result.stdout), result.stderr


def test_zero_based_boxes_are_recognised(cli, tmp_path):
    folder = tmp_path / "Annotations"
    folder.mkdir()
    (folder / "a.xml").write_text(_xml([("dog", (0, 0, 640, 100)), ("cat", (10, 20, 30, 40))]))
    (folder / "b.xml").write_text(_xml([("cat", (5, 5, 15, 15))], filename="b.jpg"))
    data, stderr = _coco(cli, folder)
    boxes = [a["bbox"] for a in data["annotations"]]
    assert boxes == [[0, 0, 640, 100], [10, 20, 20, 20], [5, 5, 10, 10]]
    assert "0-based" in stderr and "lossy" not in stderr
    # told it is the devkit's 1-based: xmin=0 is one pixel outside, clipped and counted
    data, stderr = _coco(cli, folder, "--voc-origin", "1")
    assert data["annotations"][0]["bbox"] == [0, 0, 640, 100]
    assert "lossy: boxes outside the image (clipped): 1" in stderr
    assert_one_line_error(cli("convert", folder, "--to", "coco", "--voc-origin", "1", "--strict"), 1)


def test_devkit_boxes_stay_one_based_and_written_back_the_same(cli, tmp_path):
    xml = tmp_path / "a.xml"
    xml.write_text(_xml([("dog", (1, 1, 640, 480))]))
    data, stderr = _coco(cli, xml)
    assert data["annotations"][0]["bbox"] == [0, 0, 640, 480] and "1-based" in stderr
    (tmp_path / "c.json").write_text(json.dumps(data))
    assert cli("convert", tmp_path / "c.json", "--to", "voc", "-o", tmp_path / "v").code == 0
    text = (tmp_path / "v" / "Annotations" / "a.xml").read_text()
    assert "<xmin>1</xmin>" in text and "<xmax>640</xmax>" in text
    assert cli("convert", tmp_path / "c.json", "--to", "voc", "--voc-origin", "0", "-o", tmp_path / "v0").code == 0
    text = (tmp_path / "v0" / "Annotations" / "a.xml").read_text()
    assert "<xmin>0</xmin>" in text and "<xmax>640</xmax>" in text


def test_boxes_written_outside_the_image_are_clipped_and_counted(cli, tmp_path):
    coco = {"images": [{"id": 1, "file_name": "a.jpg", "height": 10, "width": 10}],
            "categories": [{"id": 1, "name": "x"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [-2, 3, 5, 20], "area": 1,
                             "segmentation": [], "iscrowd": 0}]}
    (tmp_path / "c.json").write_text(json.dumps(coco))
    result = cli("convert", tmp_path / "c.json", "--to", "voc", "-o", tmp_path / "v")
    assert result.code == 0 and "lossy: boxes outside the image (clipped): 1" in result.stderr
    text = (tmp_path / "v" / "Annotations" / "a.xml").read_text()
    assert "<xmin>1</xmin>" in text and "<xmax>3</xmax>" in text and "<ymax>10</ymax>" in text


def test_no_size_takes_it_from_the_photos_or_image_size(cli, tmp_path):
    from PIL import Image

    xml = tmp_path / "ann" / "a.xml"
    xml.parent.mkdir()
    xml.write_text(_xml([("dog", (1, 1, 5, 5))], size=None))
    result = cli("convert", xml, "--to", "coco")
    assert_one_line_error(result, 1)
    assert "photos' folder (images)" in result.stderr and "--image-size HEIGHTxWIDTH" in result.stderr
    data, _ = _coco(cli, xml, "--image-size", "20x30")
    assert (data["images"][0]["height"], data["images"][0]["width"]) == (20, 30)
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(photos / "a.jpg")
    data, stderr = _coco(cli, xml, "--images", photos)
    assert (data["images"][0]["height"], data["images"][0]["width"]) == (12, 16)
    assert "without <size>" in stderr
    (tmp_path / "zero.xml").write_text(_xml([("dog", (1, 1, 5, 5))], size=(0, 0)))  # "unknown" as some tools write
    data, _ = _coco(cli, tmp_path / "zero.xml", "--image-size", "20x30")
    assert data["images"][0]["width"] == 30


def test_part_boxes_are_counted_and_skip_applies(cli, tmp_path):
    part = "<part><name>head</name><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>4</xmax><ymax>4</ymax></bndbox></part>"
    xml = tmp_path / "a.xml"
    xml.write_text(_xml([("person", (1, 1, 10, 10)), ("dog", (3, 3, 8, 8))], parts=part))
    data, stderr = _coco(cli, xml)
    assert "lossy: VOC <part> boxes left out (head, hand, foot: parts of an object): 2" in stderr
    data, stderr = _coco(cli, xml, "--skip", "dog")
    assert [a["category_id"] for a in data["annotations"]] == [1]
    assert "objects of skipped classes left out: 1" in stderr
