"""convert on formats other tools export (issue 19, part B): COCO results in and out, CVAT for
images XML, Cityscapes polygons, SA-1B, MOTS/KITTI, ADE20K — each on a fixture of that layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_one_line_error
from PIL import Image
from test_convert_layouts_b import _gtfine, _rgb_png

from segtools.formats import rle
from segtools.io.masks import encode_label_mask, read_label_mask


# ---------------------------------------------------------------- COCO results files in and out


def _gt_and_results(tmp_path):
    gt = {"images": [{"id": 7, "file_name": "x/a.jpg", "height": 10, "width": 12},
                     {"id": 9, "file_name": "b.jpg", "height": 6, "width": 5}],
          "categories": [{"id": 3, "name": "car"}, {"id": 5, "name": "dog"}],
          "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "iscrowd": 0, "area": 4, "bbox": [0, 0, 2, 2],
                           "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]]}]}
    low = np.zeros((10, 12), np.uint8)
    low[1:6, 1:6] = 1
    high = np.zeros((10, 12), np.uint8)
    high[3:8, 3:9] = 1
    results = [{"image_id": 7, "category_id": 3, "score": 0.3, "segmentation": rle.encode(low), "bbox": [1, 1, 5, 5]},
               {"image_id": 7, "category_id": 5, "score": 0.9, "segmentation": rle.encode(high), "bbox": [3, 3, 6, 5]},
               {"image_id": 9, "category_id": 5, "score": 0.5, "segmentation": [[0.5, 0.5, 4.2, 0.5, 4.2, 5.1]],
                "bbox": [0.5, 0.5, 3.7, 4.6]},
               {"image_id": 9, "category_id": 3, "score": 0.2, "bbox": [1, 1, 2, 2]}]  # a box detection
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(results))
    return gt, results, low, high


def test_coco_results_to_coco_rle_equal_pycocotools_loadres(cli, tmp_path):
    coco_api = pytest.importorskip("pycocotools.coco")
    gt, results, _, _ = _gt_and_results(tmp_path)
    result = cli("convert", tmp_path / "res.json", "--gt", tmp_path / "gt.json", "--to", "coco-rle")
    assert result.code == 0, result.stderr
    out = json.loads(result.stdout)
    assert [im["file_name"] for im in out["images"]] == ["x/a.jpg", "b.jpg"]
    assert "detections without a segmentation (boxes): 1" in result.stderr
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        reference = coco_api.COCO(str(tmp_path / "gt.json")).loadRes(str(tmp_path / "res.json"))
    for ann in out["annotations"]:
        if not ann["segmentation"]:
            assert ann["bbox"] == [1.0, 1.0, 2.0, 2.0]
            continue
        match = [r for r in reference.dataset["annotations"] if r["score"] == ann["score"]][0]
        np.testing.assert_array_equal(rle.decode(ann["segmentation"]), reference.annToMask(match))


def test_coco_results_paint_lowest_score_first(cli, tmp_path):
    _, results, low, high = _gt_and_results(tmp_path)
    (tmp_path / "res7.json").write_text(json.dumps(results[:2]))
    result = cli("convert", tmp_path / "res7.json", "--to", "mask")  # no ground truth: sizes from the RLEs
    assert result.code == 0, result.stderr
    mask = read_label_mask(result.stdout)
    assert mask.labels[4, 4] == 4  # category 5 (label 4), the more confident, owns the overlap
    assert mask.labels[2, 2] == 2 and mask.labels[0, 0] == 255
    bad = cli("convert", tmp_path / "res.json", "--to", "mask", "-o", tmp_path / "m")
    assert_one_line_error(bad)
    assert "--gt" in bad.stderr and "--image-size" in bad.stderr


def test_masks_to_coco_results_and_back(cli, tmp_path):
    from segtools.formats.coco_results import check_results

    labels = np.full((8, 9), 0, np.uint8)
    labels[1:4, 1:4] = 1
    labels[5:7, 2:8] = 2
    labels[0, 8] = 255
    (tmp_path / "m.png").write_bytes(encode_label_mask(labels))
    result = cli("convert", tmp_path / "m.png", "--to", "coco-results", "--skip", "0", "--skip", "255")
    assert result.code == 0, result.stderr
    detections = json.loads(result.stdout)
    assert {d["category_id"] for d in detections} == {2, 3} and all(d["score"] == 1.0 for d in detections)
    grouped = check_results(detections, "out", {1: (8, 9)}, {1, 2, 3})
    assert sum(rle.area(d["segmentation"]) for d in grouped[1]) == 9 + 12
    (tmp_path / "r.json").write_text(result.text)
    again = cli("convert", tmp_path / "r.json", "--to", "coco-results")
    assert again.code == 0, again.stderr
    assert json.loads(again.stdout) == detections


# ---------------------------------------------------------------- CVAT for images 1.1 XML


def _cvat_runs(crop: np.ndarray) -> str:
    """Run lengths over the crop row by row, starting with 0s, as CVAT writes <mask rle=…>."""
    runs, value, count = [], 0, 0
    for pixel in crop.ravel().tolist():
        if pixel != value:
            runs.append(count)
            value, count = pixel, 0
        count += 1
    runs.append(count)
    return ", ".join(map(str, runs))


def _cvat_xml(tmp_path) -> tuple:
    crop = np.zeros((3, 4), np.uint8)
    crop[0, 1:3] = 1
    crop[1:, :] = 1
    crop[2, 3] = 0
    xml = f"""<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta>
    <task><id>3</id><name>streets</name><size>2</size><mode>annotation</mode>
      <labels>
        <label><name>car</name><color>#fa3253</color><type>any</type><attributes></attributes></label>
        <label><name>person</name><color>#3d3df5</color><type>any</type><attributes></attributes></label>
        <label><name>road</name><color>#33ddff</color><type>any</type><attributes></attributes></label>
      </labels>
    </task>
    <dumped>2024-03-01 10:00:00.000000+00:00</dumped>
  </meta>
  <image id="0" name="frame_000000.jpg" width="12" height="10">
    <polygon label="road" source="manual" occluded="0" points="0.00,6.00;12.00,6.00;12.00,10.00;0.00,10.00" z_order="0">
    </polygon>
    <mask label="car" source="manual" occluded="0" rle="{_cvat_runs(crop)}" left="2" top="5" width="4" height="3" z_order="1">
    </mask>
    <box label="person" source="manual" occluded="0" xtl="8.00" ytl="1.00" xbr="10.50" ybr="4.00" z_order="0">
    </box>
    <polyline label="road" source="manual" occluded="0" points="1.00,1.00;5.00,1.00" z_order="0">
    </polyline>
  </image>
  <image id="1" name="sub/frame_000001.jpg" width="8" height="6">
    <box label="car" source="manual" occluded="0" xtl="1.00" ytl="1.00" xbr="5.00" ybr="3.00" rotation="90.0" z_order="0">
    </box>
    <ellipse label="person" source="manual" occluded="0" cx="5.00" cy="3.00" rx="2.00" ry="1.50" z_order="0">
    </ellipse>
  </image>
</annotations>
"""
    (tmp_path / "annotations.xml").write_text(xml)
    return tmp_path / "annotations.xml", crop


def test_cvat_xml_to_coco_and_masks(cli, tmp_path):
    path, crop = _cvat_xml(tmp_path)
    result = cli("convert", path, "--to", "coco-rle")
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [c["name"] for c in data["categories"]] == ["car", "person", "road"]
    assert [im["file_name"] for im in data["images"]] == ["frame_000000.jpg", "sub/frame_000001.jpg"]
    first = [a for a in data["annotations"] if a["image_id"] == 0]
    car = [a for a in first if a["category_id"] == 1][0]
    expected = np.zeros((10, 12), np.uint8)
    expected[5:8, 2:6] = crop
    np.testing.assert_array_equal(rle.decode(car["segmentation"]), expected)
    assert car["area"] == int(crop.sum()) and car["bbox"] == [2.0, 5.0, 4.0, 3.0]
    person = [a for a in first if a["category_id"] == 2][0]
    assert person["bbox"] == [8.0, 1.0, 2.5, 3.0] and person["segmentation"] == []
    assert "lossy: CVAT polyline shapes left out (no area): 1" in result.stderr
    assert "rotated CVAT boxes written as polygons: 1" in result.stderr
    second = [a for a in data["annotations"] if a["image_id"] == 1]
    rotated = rle.decode([a for a in second if a["category_id"] == 1][0]["segmentation"])
    assert rotated[0:4, 2:4].all() and rotated.sum() == 8  # 4x2 turned upright about (3, 2): columns 2-3, rows 0-3
    # z_order: the car mask (1) is painted over the road polygon (0)
    masks = tmp_path / "masks"
    result = cli("convert", tmp_path, "--to", "mask", "-o", masks)  # the folder holding annotations.xml
    assert result.code == 0, result.stderr
    labels = read_label_mask(masks / "frame_000000.png").labels
    assert labels[6, 3] == 0 and labels[9, 0] == 2 and labels[7, 5] == 2 and labels[2, 9] == 255


def test_cvat_mask_whose_runs_do_not_cover_its_box_is_one_line(cli, tmp_path):
    path, _ = _cvat_xml(tmp_path)
    path.write_text(path.read_text().replace('width="4" height="3"', 'width="4" height="2"'))
    result = cli("convert", path, "--to", "coco")
    assert_one_line_error(result)
    assert "rle runs cover 12 pixels" in result.stderr


# ---------------------------------------------------------------- Cityscapes gtFine_polygons.json


def test_cityscapes_polygons_json_to_coco_and_masks(cli, tmp_path):
    root, frames = _gtfine(tmp_path)
    frame = next(iter(frames))
    path = root / "val" / "aachen" / f"{frame}_gtFine_polygons.json"
    doc = json.loads(path.read_text())
    doc["objects"] += [{"label": "cargroup", "polygon": [[12, 2], [14, 2], [14, 3], [12, 3]]},
                       {"label": "person", "polygon": [[1, 1], [3, 1], [3, 3]], "deleted": 1},
                       {"label": "license plate", "polygon": [[3, 8], [4, 8], [4, 9]]}]
    path.write_text(json.dumps(doc))
    result = cli("convert", path, "--to", "coco-rle")  # one file, recognised by its content
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["images"][0]["file_name"] == f"{frame}_leftImg8bit.png"
    found = [(a["category_id"] - 1, a["iscrowd"]) for a in data["annotations"]]
    assert found == [(23, 0), (26, 0), (26, 1)]  # sky, car, the car group as a crowd
    assert "Cityscapes objects marked deleted (left out): 1" in result.stderr
    assert "lossy: Cityscapes objects without a labelId left out (license plate): 1" in result.stderr
    mask_utils = pytest.importorskip("pycocotools.mask")
    shifted = [float(v) + 0.5 for xy in doc["objects"][1]["polygon"] for v in xy]
    reference = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([shifted], 12, 16)))
    np.testing.assert_array_equal(rle.decode(data["annotations"][1]["segmentation"]), reference)
    out = tmp_path / "masks"
    result = cli("convert", root, "--from", "cityscapes-polygons", "--to", "mask", "-o", out)
    assert result.code == 0, result.stderr
    labels = read_label_mask(out / "val" / "aachen" / f"{frame}_leftImg8bit.png").labels
    assert read_label_mask(out / "val" / "aachen" / f"{frame}_leftImg8bit.png").meta.names[26] == "car"
    assert labels[8, 4] == 26 and labels[3, 3] == 23 and labels[11, 0] == 255


# ---------------------------------------------------------------- SA-1B (Segment Anything) JSON


def _sa1b(tmp_path) -> tuple:
    whole = np.zeros((9, 10), np.uint8)
    whole[1:8, 1:9] = 1
    part = np.zeros_like(whole)
    part[2:5, 2:5] = 1
    other = np.zeros_like(whole)
    other[6:8, 6:9] = 1
    annotations = [{"id": 100 + k, "segmentation": rle.encode(m), "bbox": [0, 0, 1, 1], "area": 1,
                    "predicted_iou": 0.9 - k / 10, "stability_score": 0.95, "point_coords": [[3.0, 3.0]],
                    "crop_box": [0, 0, 10, 9]} for k, m in enumerate([part, whole, other])]
    doc = {"image": {"image_id": 11, "width": 10, "height": 9, "file_name": "sa_11.jpg"}, "annotations": annotations}
    folder = tmp_path / "sa1b"
    folder.mkdir()
    (folder / "sa_11.json").write_text(json.dumps(doc))
    Image.fromarray(np.zeros((9, 10, 3), np.uint8)).save(folder / "sa_11.jpg")
    return folder, (part, whole, other)


def test_sa1b_folder_to_instances_and_coco(cli, tmp_path):
    folder, (part, whole, other) = _sa1b(tmp_path)
    result = cli("convert", folder, "--to", "instances", "-o", tmp_path / "inst")
    assert result.code == 0, result.stderr
    inst = read_label_mask(tmp_path / "inst" / "sa_11.png")
    ids = inst.labels
    # largest first: the whole object is 1, its part (painted after it) stays visible
    assert ids[3, 3] != ids[1, 1] and ids[1, 1] > 0 and ids[7, 7] > 0 and len(np.unique(ids)) == 4
    assert inst.meta.extra["class_names"] == ["object"]
    result = cli("convert", folder / "sa_11.json", "--to", "coco-rle")
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["images"][0]["id"] == 11 and data["categories"] == [{"id": 1, "name": "object", "supercategory": ""}]
    by_id = {a["id"]: a for a in data["annotations"]}
    mask_utils = pytest.importorskip("pycocotools.mask")
    for k, m in enumerate((part, whole, other)):
        ann = [a for a in data["annotations"] if abs(a["score"] - (0.9 - k / 10)) < 1e-9][0]
        reference = mask_utils.encode(np.asfortranarray(m))
        assert ann["segmentation"]["counts"] == reference["counts"].decode()
        assert ann["area"] == int(mask_utils.area(reference)) and ann["bbox"] == mask_utils.toBbox(reference).tolist()
    assert len(by_id) == 3
    info = json.loads(cli("info", folder / "sa_11.json", "--format", "json").stdout)
    assert info["kind"] == "SA-1B" and info["annotations"] == 3


# ---------------------------------------------------------------- MOTS, KITTI, ADE20K packed masks


def test_kitti_mots_instance_pngs_to_coco(cli, tmp_path):
    folder = tmp_path / "instances" / "0002"
    folder.mkdir(parents=True)
    ids = np.zeros((8, 10), np.uint16)
    ids[1:4, 1:4], ids[1:4, 6:9], ids[5:8, 2:5], ids[6:, 8:] = 1001, 1002, 2005, 10000
    Image.fromarray(ids).save(folder / "000000.png")
    result = cli("convert", tmp_path / "instances", "--from", "mots", "--to", "coco", "-o", tmp_path / "mots.json")
    assert result.code == 0, result.stderr
    data = json.loads((tmp_path / "mots.json").read_text())
    assert [c["name"] for c in data["categories"]] == ["car", "pedestrian"]
    assert sorted((a["category_id"], a["area"]) for a in data["annotations"]) == [(1, 9), (1, 9), (2, 9)]
    assert data["images"][0]["file_name"] == "0002/000000.png"
    assert "MOTS ignore regions (10000) left out: 1" in result.stderr
    ids[0, 0] = 3001
    Image.fromarray(ids).save(folder / "000000.png")
    bad = cli("convert", folder / "000000.png", "--from", "mots", "--to", "coco")
    assert_one_line_error(bad)
    assert "value 3001" in bad.stderr


def test_kitti_instance_pngs_read_like_cityscapes(cli, tmp_path):
    (tmp_path / "instance").mkdir()
    ids = np.full((6, 9), 7 * 256, np.uint16)  # road (stuff)
    ids[1:3, 1:4], ids[3:5, 5:8] = 26 * 256 + 1, 26 * 256 + 2  # two cars
    ids[0, 6:9] = 24 * 256  # people without instance numbers: one crowd
    Image.fromarray(ids).save(tmp_path / "instance" / "000000_10.png")
    result = cli("convert", tmp_path / "instance", "--from", "kitti", "--to", "coco-rle")
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["categories"][26]["name"] == "car"
    assert sorted((a["category_id"] - 1, a["iscrowd"], a["area"]) for a in data["annotations"]) == [
        (24, 1, 3), (26, 0, 6), (26, 0, 6)]


def test_ade20k_seg_png_class_from_red_green_instance_from_blue(cli, tmp_path):
    folder = tmp_path / "ade"
    folder.mkdir()
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[:3] = (0, 12, 1)  # class 12, instance 1
    rgb[3:, :4] = (70, 39, 2)  # class 7·256 + 39 = 1831, instance 2
    rgb[3:, 4:] = (70, 39, 3)  # the same class, another instance
    rgb[5, 7] = (0, 0, 0)  # unlabelled
    _rgb_png(folder / "ADE_train_00000001_seg.png", rgb)
    _rgb_png(folder / "ADE_train_00000001_parts_1.png", np.zeros((6, 8, 3)))
    result = cli("convert", folder, "--to", "coco-rle", "-o", tmp_path / "ade.json")
    assert result.code == 0, result.stderr
    data = json.loads((tmp_path / "ade.json").read_text())
    assert len(data["images"]) == 1 and len(data["categories"]) == 1831
    assert sorted((a["category_id"], a["area"]) for a in data["annotations"]) == [(12, 24), (1831, 11), (1831, 12)]
    assert "ADE20K part masks (_parts_N.png) not read: 1" in result.stderr


def test_kitti_semantic_label_ids_with_cityscapes_names(cli, tmp_path):
    (tmp_path / "semantic").mkdir()
    label_ids = np.full((5, 6), 7, np.uint8)
    label_ids[1:3, 1:3] = 26
    Image.fromarray(label_ids, "L").save(tmp_path / "semantic" / "000000_10.png")
    result = cli("convert", tmp_path / "semantic", "--from", "kitti", "--to", "coco-rle", "-o", tmp_path / "k.json")
    assert result.code == 0, result.stderr
    data = json.loads((tmp_path / "k.json").read_text())
    assert data["categories"][7]["name"] == "road"
    assert sorted((a["category_id"] - 1, a["area"]) for a in data["annotations"]) == [(7, 26), (26, 4)]
    back = cli("convert", tmp_path / "k.json", "--to", "mask")
    np.testing.assert_array_equal(read_label_mask(back.stdout).labels, label_ids)


def test_ground_truth_as_results_scores_perfectly_in_metrics(cli, tmp_path):
    gt, _, _, _ = _gt_and_results(tmp_path)
    gt["annotations"].append({"id": 2, "image_id": 9, "category_id": 5, "iscrowd": 0, "area": 6, "bbox": [1, 1, 3, 2],
                              "segmentation": [[1, 1, 4, 1, 4, 3, 1, 3]]})
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    result = cli("convert", tmp_path / "gt.json", "--to", "coco-results", "-o", tmp_path / "dt.json")
    assert result.code == 0, result.stderr
    assert "annotations without a score written with score 1.0: 2" in result.stderr
    report = cli("metrics", "--task", "instance", tmp_path / "dt.json", tmp_path / "gt.json", "--format", "json")
    assert report.code == 0, report.stderr
    assert json.loads(report.stdout)["ap"] == pytest.approx(1.0)


def test_cvat_for_video_tracks_become_one_record_a_frame(cli, tmp_path):
    """A "CVAT for video 1.1" export (tests/fixtures/formats/cvat_video.xml, as CVAT writes it):
    4 frames of 40×30; a car box on frames 0–1 (outside from 2), a person polygon on 1–2."""
    from pathlib import Path

    xml = Path(__file__).parent / "fixtures" / "formats" / "cvat_video.xml"
    result = cli("convert", xml, "--to", "coco", "-o", tmp_path / "video.json")
    assert result.code == 0, result.stderr
    assert "attributes not kept" in result.stderr  # the person's 'walking' attribute
    data = json.loads((tmp_path / "video.json").read_text())
    assert [(im["file_name"], im["height"], im["width"]) for im in data["images"]] == [
        (f"frame_{k:06d}", 30, 40) for k in range(4)]
    frame = {im["id"]: int(im["file_name"][-6:]) for im in data["images"]}
    names = {c["id"]: c["name"] for c in data["categories"]}
    assert sorted((frame[a["image_id"]], names[a["category_id"]], a["track_id"], a["bbox"])
                  for a in data["annotations"]) == [
        (0, "car", 0, [2.0, 2.0, 10.0, 8.0]), (1, "car", 0, [4.0, 2.0, 10.0, 8.0]),
        (1, "person", 1, [20.0, 20.0, 10.0, 8.0]), (2, "person", 1, [21.0, 20.0, 10.0, 8.0])]
    masks = tmp_path / "masks"
    assert cli("convert", xml, "--to", "instances", "-o", masks).code == 0
    assert sorted(p.name for p in masks.iterdir()) == [f"frame_{k:06d}.png" for k in range(4)]
    info = cli("info", xml, "--format", "json")
    assert json.loads(info.stdout)["kind"] == "CVAT for video" and json.loads(info.stdout)["tracks"] == 2


@pytest.mark.parametrize("change, message", [
    ("<original_size><width>40</width><height>30</height></original_size>", "original_size"),
    ('<box frame="1" keyframe="0"', "frame 9 is not a frame of the task"),
])
def test_broken_cvat_video_is_one_line(cli, tmp_path, change, message):
    from pathlib import Path

    text = (Path(__file__).parent / "fixtures" / "formats" / "cvat_video.xml").read_text()
    text = text.replace(change, "" if "original_size" in change else change.replace('frame="1"', 'frame="9"'))
    (tmp_path / "annotations.xml").write_text(text)
    result = cli("convert", tmp_path / "annotations.xml", "--to", "coco", "-o", tmp_path / "out.json")
    assert_one_line_error(result)
    assert message in result.stderr and not (tmp_path / "out.json").exists()
