"""convert on layouts other tools export (issue 19, part B): palette files other tools write,
COCO area/bbox from the segmentation, the panoptic round trip, --fill collisions, a real gtFine
folder, segtools info on annotation files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_one_line_error
from PIL import Image

from segtools.formats import rle
from segtools.io.masks import read_label_mask
from segtools.io.meta import load_classes


def _rgb_png(path, rgb: np.ndarray) -> None:
    Image.fromarray(np.asarray(rgb, np.uint8), "RGB").save(path)


# ---------------------------------------------------------------- palette files (item 22, Mapillary, Datumaro)

LABELMAP = "# label:color_rgb:parts:actions\nbackground:0,0,0::\ncar:250,50,83::\nperson : 61,245,61::\n"


def _colour_mask(palette) -> tuple[np.ndarray, np.ndarray]:
    labels = np.zeros((4, 6), np.uint8)
    labels[1:3, 1:3] = 1
    labels[3, 4:] = 2
    return labels, np.asarray(palette, np.uint8)[labels]


def test_cvat_labelmap_txt_is_a_palette_for_colour_masks(cli, tmp_path):
    (tmp_path / "labelmap.txt").write_text(LABELMAP)
    meta = load_classes(str(tmp_path / "labelmap.txt"))
    assert meta.names == ("background", "car", "person")
    assert meta.palette == ((0, 0, 0), (250, 50, 83), (61, 245, 61))
    labels, rgb = _colour_mask(meta.palette)
    _rgb_png(tmp_path / "frame.png", rgb)
    result = cli("convert", tmp_path / "frame.png", "--to", "mask", "--palette", tmp_path / "labelmap.txt",
                 "-o", tmp_path / "out.png")
    assert result.code == 0, result.stderr
    back = read_label_mask(tmp_path / "out.png")
    np.testing.assert_array_equal(back.labels, labels)
    assert back.meta.names == meta.names


def test_bad_labelmap_line_is_one_line_error(cli, tmp_path):
    (tmp_path / "labelmap.txt").write_text("background:0,0,0::\ncar:300,0,0::\n")
    _rgb_png(tmp_path / "frame.png", np.zeros((2, 2, 3)))
    result = cli("convert", tmp_path / "frame.png", "--to", "mask", "--palette", tmp_path / "labelmap.txt")
    assert_one_line_error(result)
    assert "labelmap.txt:2" in result.stderr


def test_mapillary_config_json_palette_and_its_void(tmp_path):
    config = {"labels": [
        {"color": [165, 42, 42], "instances": True, "readable": "Bird", "name": "animal--bird", "evaluate": True},
        {"color": [128, 64, 128], "instances": False, "readable": "Road", "name": "construction--flat--road",
         "evaluate": True},
        {"color": [0, 0, 0], "instances": False, "readable": "Unlabeled", "name": "void--unlabeled",
         "evaluate": False}], "version": "2.0", "mapping": "public"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    meta = load_classes(str(tmp_path / "config.json"))
    assert meta.names == ("animal--bird", "construction--flat--road", "void--unlabeled")
    assert meta.palette[1] == (128, 64, 128) and meta.ignore_index == 2
    labels, rgb = _colour_mask(meta.palette)
    read = read_label_mask(encode_rgb(rgb), meta)
    np.testing.assert_array_equal(read.labels, labels)


def test_datumaro_dataset_meta_json_palette(cli, tmp_path):
    meta_doc = {"label_map": {"0": "background", "1": "cat", "2": "dog"}, "background_label": "0",
                "segmentation_colors": [[0, 0, 0], [255, 0, 0], [0, 0, 255]]}
    (tmp_path / "dataset_meta.json").write_text(json.dumps(meta_doc))
    meta = load_classes(str(tmp_path / "dataset_meta.json"))
    assert meta.names == ("background", "cat", "dog") and meta.palette[2] == (0, 0, 255)
    labels, rgb = _colour_mask(meta.palette)
    _rgb_png(tmp_path / "m.png", rgb)
    result = cli("convert", tmp_path / "m.png", "--to", "mask", "--palette", tmp_path / "dataset_meta.json")
    assert result.code == 0, result.stderr
    np.testing.assert_array_equal(read_label_mask(result.stdout).labels, labels)
    (tmp_path / "bad.json").write_text(json.dumps({**meta_doc, "segmentation_colors": [[0, 0, 0]]}))
    assert_one_line_error(cli("convert", tmp_path / "m.png", "--to", "mask", "--palette", tmp_path / "bad.json"))


def encode_rgb(rgb: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(rgb, np.uint8), "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------- COCO area and bbox (item 16)


def _coco_with_stale_geometry() -> dict:
    rle_box = np.zeros((10, 12), np.uint8)
    rle_box[2:5, 3:9] = 1
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 10, "width": 12}],
        "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "sign"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 999.0, "bbox": [0, 0, 1, 1],
             "segmentation": [[1, 1, 5, 1, 5, 6, 1, 6]]},
            {"id": 2, "image_id": 1, "category_id": 2, "iscrowd": 0, "segmentation": rle.encode(rle_box)},
        ]}


@pytest.mark.parametrize("target", ["coco", "coco-rle"])
def test_coco_to_coco_recomputes_stale_area_and_bbox(cli, tmp_path, target):
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(_coco_with_stale_geometry()))
    result = cli("convert", path, "--to", target)
    assert result.code == 0, result.stderr
    out = json.loads(result.stdout)["annotations"]
    assert out[0]["area"] == 20 and out[0]["bbox"] == [1.0, 1.0, 4.0, 5.0]
    assert out[1]["area"] == 18 and out[1]["bbox"] == [3.0, 2.0, 6.0, 3.0]
    assert "differed from the segmentation (recomputed): 1" in result.stderr
    assert "without bbox (taken from the segmentation): 1" in result.stderr


def test_coco_rle_without_bbox_to_yolo_boxes(cli, tmp_path):
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(_coco_with_stale_geometry()))
    result = cli("convert", path, "--to", "yolo", "-o", tmp_path / "ds")
    assert result.code == 0, result.stderr
    lines = (tmp_path / "ds" / "labels" / "a.txt").read_text().split("\n")
    car = [float(v) for v in lines[0].split()[1:]]
    sign = [float(v) for v in lines[1].split()[1:]]
    np.testing.assert_allclose(car, [3 / 12, 3.5 / 10, 4 / 12, 5 / 10])  # the stale box replaced
    np.testing.assert_allclose(sign, [6 / 12, 3.5 / 10, 6 / 12, 3 / 10])


def test_yolo_keeps_a_polygon_box_within_a_pixel(cli, tmp_path):
    data = _coco_with_stale_geometry()
    data["annotations"] = data["annotations"][:1]
    data["annotations"][0]["segmentation"] = [[1.2, 1.3, 5.1, 1.3, 5.1, 6.4, 1.2, 6.4]]
    data["annotations"][0]["bbox"] = [1.2, 1.3, 3.9, 5.1]
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    result = cli("convert", path, "--to", "yolo", "-o", tmp_path / "ds")
    assert result.code == 0, result.stderr
    box = [float(v) for v in (tmp_path / "ds" / "labels" / "a.txt").read_text().split()[1:]]
    np.testing.assert_allclose(box, [(1.2 + 3.9 / 2) / 12, (1.3 + 5.1 / 2) / 10, 3.9 / 12, 5.1 / 10])
    assert "recomputed" not in result.stderr


def test_recomputed_geometry_equals_pycocotools(tmp_path):
    mask_utils = pytest.importorskip("pycocotools.mask")
    from segtools.formats import Summary
    from segtools.formats.coco_dataset import refresh_geometry
    from segtools.formats.records import Record

    data = _coco_with_stale_geometry()
    record = refresh_geometry(Record(data["images"][0], [dict(a) for a in data["annotations"]]), Summary())
    reference = mask_utils.merge(mask_utils.frPyObjects(data["annotations"][0]["segmentation"], 10, 12))
    assert record.annotations[0]["area"] == int(mask_utils.area(reference))
    assert record.annotations[0]["bbox"] == mask_utils.toBbox(reference).tolist()


# ---------------------------------------------------------------- COCO panoptic round trip (item 13)


def _panoptic(tmp_path, png_size=(6, 8)):
    from segtools.formats import coco_panoptic
    from segtools.io.images import encode_image

    h, w = png_size
    ids = np.full((h, w), 5, np.uint32)  # sky, a crowd stuff segment
    ids[3:, :] = 7  # road
    ids[1:3, 1:4] = 300  # a person
    (tmp_path / "pan").mkdir()
    (tmp_path / "pan" / "b.png").write_bytes(encode_image(coco_panoptic.ids_to_rgb(ids), "png"))
    data = {"images": [{"id": 42, "file_name": "city/b.jpg", "height": 6, "width": 8}],
            "annotations": [{"image_id": 42, "file_name": "b.png", "segments_info": [
                {"id": 5, "category_id": 119, "iscrowd": 1}, {"id": 7, "category_id": 149, "iscrowd": 0},
                {"id": 300, "category_id": 1, "iscrowd": 0}]}],
            "categories": [{"id": 1, "name": "person", "isthing": 1}, {"id": 119, "name": "sky", "isthing": 0},
                           {"id": 149, "name": "road", "isthing": 0}]}
    (tmp_path / "pan.json").write_text(json.dumps(data))
    return tmp_path / "pan.json"


def test_panoptic_round_trip_keeps_stuff_crowd_and_image_names(cli, tmp_path):
    source = _panoptic(tmp_path)
    result = cli("convert", source, "--to", "mask", "-o", tmp_path / "masks")
    assert result.code == 0, result.stderr
    assert "differs" not in result.stderr
    again = tmp_path / "again.json"
    result = cli("convert", tmp_path / "masks", "--to", "panoptic", "-o", again)
    assert result.code == 0, result.stderr
    data = json.loads(again.read_text())
    assert data["images"][0]["file_name"] == "city/b.jpg"
    assert data["annotations"][0]["file_name"] == "b.png"
    crowd = {s["category_id"]: s["iscrowd"] for s in data["annotations"][0]["segments_info"]}
    assert crowd == {119: 1, 149: 0, 1: 0}


def test_panoptic_png_of_another_size_is_counted_or_refused(cli, tmp_path):
    source = _panoptic(tmp_path, png_size=(7, 8))
    result = cli("convert", source, "--to", "mask", "-o", tmp_path / "masks")
    assert result.code == 0, result.stderr
    assert "lossy: panoptic PNGs whose size differs from their images entry (PNG size used): 1" in result.stderr
    strict = cli("convert", source, "--to", "mask", "--strict", "-o", tmp_path / "strict")
    assert_one_line_error(strict)
    assert "7x8" in strict.stderr and "6x8" in strict.stderr


# ---------------------------------------------------------------- --fill that is a class (item 19)


def test_fill_that_is_a_class_keeps_the_ignore_index(cli, tmp_path):
    data = {"images": [{"id": 1, "file_name": "a.jpg", "height": 4, "width": 5}],
            "categories": [{"id": 1, "name": "_background_"}, {"id": 2, "name": "cat"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 2, "iscrowd": 0,
                             "segmentation": [[1, 1, 3, 1, 3, 3, 1, 3]]}]}
    (tmp_path / "a.json").write_text(json.dumps(data))
    result = cli("convert", tmp_path / "a.json", "--to", "mask", "--fill", "0")
    assert result.code == 0, result.stderr
    mask = read_label_mask(result.stdout)
    assert mask.meta.ignore_index == 255  # background is scored, not dropped
    assert (mask.labels == 0).sum() == 16 and (mask.labels == 1).sum() == 4
    assert "unannotated pixels are class 0 '_background_'" in result.stderr
    other = cli("convert", tmp_path / "a.json", "--to", "mask", "--fill", "9")
    assert read_label_mask(other.stdout).meta.ignore_index == 9 and "unannotated" not in other.stderr


# ---------------------------------------------------------------- a real gtFine folder (item 12)


def _gtfine(tmp_path, frames=("aachen_000000_000019", "aachen_000001_000019")):
    """gtFine/val/aachen/ as cityscapesScripts leaves it: four PNGs and a polygons JSON per frame."""
    from segtools.formats import cityscapes
    from segtools.io.presets import CITYSCAPES_LABELS

    colours = {lab.id: lab.color for lab in CITYSCAPES_LABELS if lab.id >= 0}
    city = tmp_path / "gtFine" / "val" / "aachen"
    city.mkdir(parents=True)
    out = {}
    for k, frame in enumerate(frames):
        label_ids = np.full((12, 16), 23, np.uint8)  # sky
        label_ids[6:] = 7  # road
        label_ids[0, :] = 1  # ego vehicle
        instance_ids = label_ids.astype(np.uint16)
        label_ids[7:10, 2:6] = 26
        instance_ids[7:10, 2:6] = 26000 + k
        label_ids[7:11, 9:11] = 24
        instance_ids[7:11, 9:11] = 24000
        label_ids[2:4, 12:15] = 26  # a car group without instance numbers
        instance_ids[2:4, 12:15] = 26
        base = city / f"{frame}_gtFine"
        Image.fromarray(label_ids, "L").save(f"{base}_labelIds.png")
        Image.fromarray(cityscapes.label_to_train(label_ids), "L").save(f"{base}_labelTrainIds.png")
        Image.fromarray(instance_ids).save(f"{base}_instanceIds.png")
        rgba = np.concatenate([np.asarray([colours[v] for v in label_ids.ravel()], np.uint8).reshape(12, 16, 3),
                               np.full((12, 16, 1), 255, np.uint8)], axis=2)
        Image.fromarray(rgba, "RGBA").save(f"{base}_color.png")
        (city / f"{frame}_gtFine_polygons.json").write_text(json.dumps(
            {"imgHeight": 12, "imgWidth": 16, "objects": [
                {"label": "sky", "polygon": [[0, 0], [16, 0], [16, 6], [0, 6]]},
                {"label": "car", "polygon": [[2, 7], [6, 7], [6, 10], [2, 10]]}]}))
        out[frame] = label_ids, instance_ids
    return tmp_path / "gtFine", out


def test_gtfine_folder_to_coco_reads_each_frame_once_from_its_label_ids(cli, tmp_path):
    root, frames = _gtfine(tmp_path)
    result = cli("convert", root, "--to", "coco", "-o", tmp_path / "cs.json")
    assert result.code == 0, result.stderr
    data = json.loads((tmp_path / "cs.json").read_text())
    assert [im["file_name"] for im in data["images"]] == [
        f"val/aachen/{frame}_leftImg8bit.png" for frame in frames]
    assert data["categories"][26]["name"] == "car" and len(data["categories"]) == 34
    assert "Cityscapes frames read from _labelIds.png (the frame's other files not read): 2" in result.stderr
    back = tmp_path / "back"
    result = cli("convert", tmp_path / "cs.json", "--to", "mask", "-o", back)
    assert result.code == 0, result.stderr
    for frame, (label_ids, _) in frames.items():
        np.testing.assert_array_equal(read_label_mask(back / "val" / "aachen" / f"{frame}_leftImg8bit.png").labels,
                                      label_ids)


def test_gtfine_folder_instances_and_trainids(cli, tmp_path):
    from segtools.formats import cityscapes

    root, frames = _gtfine(tmp_path)
    result = cli("convert", root, "--from", "cityscapes-instances", "--to", "coco", "-o", tmp_path / "inst.json")
    assert result.code == 0, result.stderr
    data = json.loads((tmp_path / "inst.json").read_text())
    assert len(data["images"]) == 2
    per_image = [sorted((a["category_id"] - 1, a["iscrowd"], a["area"]) for a in data["annotations"]
                        if a["image_id"] == im["id"]) for im in data["images"]]
    assert per_image == [[(24, 0, 8), (26, 0, 12), (26, 1, 6)]] * 2
    out = tmp_path / "train"
    result = cli("convert", root, "--to", "trainids", "-o", out)
    assert result.code == 0, result.stderr
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == [f"val/aachen/{f}_gtFine_labelIds.png" for f in frames]
    for frame, (label_ids, _) in frames.items():
        np.testing.assert_array_equal(read_label_mask(out / "val" / "aachen" / f"{frame}_gtFine_labelIds.png").labels,
                                      cityscapes.label_to_train(label_ids))


def test_gtfine_frame_with_only_a_colour_png_is_one_line_error(cli, tmp_path):
    root, frames = _gtfine(tmp_path, frames=("bonn_000000_000019",))
    for kind in ("labelIds", "labelTrainIds", "instanceIds"):
        (root / "val" / "aachen" / f"bonn_000000_000019_gtFine_{kind}.png").unlink()
    result = cli("convert", root, "--to", "coco", "-o", tmp_path / "x.json")
    assert_one_line_error(result)
    assert "no _labelIds.png" in result.stderr and "_color.png" in result.stderr
    assert not (tmp_path / "x.json").exists()


# ---------------------------------------------------------------- segtools info on annotation files (item 20)

FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures" / "formats"


def test_info_describes_coco_labelme_voc_and_yolo(cli):
    coco = json.loads(cli("info", FIXTURES / "coco_cvat.json", "--format", "json").stdout)
    assert coco["kind"] == "COCO instances" and coco["images"] == 2 and coco["categories"] == ["car", "person"]
    assert coco["annotations"] == 3 and coco["by_kind"]["polygon"] == 1 and coco["by_kind"]["crowd"] == 1
    labelme = json.loads(cli("info", FIXTURES / "labelme_000000.json", "--format", "json").stdout)
    assert labelme["kind"] == "labelme" and labelme["by_kind"]["rectangle"] == 1 and labelme["height"] == 8
    voc = json.loads(cli("info", FIXTURES / "voc_000000.xml", "--format", "json").stdout)
    assert voc["kind"] == "Pascal VOC" and voc["by_kind"] == {"box": 2, "difficult": 1}
    yolo = cli("info", FIXTURES / "yolo")
    assert yolo.code == 0, yolo.stderr
    assert "YOLO dataset" in yolo.text and "annotations  3: box=1, polygon=2" in yolo.text
    table = cli("info", FIXTURES / "coco_cvat.json", FIXTURES / "voc_000000.xml", "--format", "csv")
    rows = table.text.splitlines()
    assert rows[0].startswith("source,kind,format,bytes,images,categories,annotations") and len(rows) == 3


def test_info_describes_panoptic_and_results(cli, tmp_path):
    source = _panoptic(tmp_path)
    report = json.loads(cli("info", source, "--format", "json").stdout)
    assert report["kind"] == "COCO panoptic" and report["things"] == 1
    assert report["by_kind"] == {"stuff": 2, "crowd": 1, "thing": 1}
    results = [{"image_id": 1, "category_id": 3, "bbox": [0, 0, 2, 2], "score": 0.9},
               {"image_id": 2, "category_id": 3, "score": 0.4, "segmentation": rle.encode(np.ones((3, 3), np.uint8))}]
    (tmp_path / "res.json").write_text(json.dumps(results))
    text = cli("info", tmp_path / "res.json").text
    assert "COCO results" in text and "box only=1, rle=1" in text and "scores       0.4..0.9" in text


def test_info_on_a_broken_annotation_file_is_one_line(cli, tmp_path):
    (tmp_path / "bad.json").write_text('{"images": [], "annotations": [{"id": 1}], "categories": 3}')
    assert_one_line_error(cli("info", tmp_path / "bad.json"))
    (tmp_path / "bad.xml").write_text("<annotation><object>")
    assert_one_line_error(cli("info", tmp_path / "bad.xml"))


def test_cvat_segmentation_mask_export_reads_its_labelmap(cli, tmp_path):
    """CVAT's "Segmentation mask 1.1" export: labelmap.txt at the root, RGB SegmentationClass in
    its colours, RGB SegmentationObject in the VOC colour map (object i in colour i)."""
    from segtools.io.presets import voc_colormap

    root = tmp_path / "task"
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "default.txt").write_text("frame_000000\n")
    (root / "labelmap.txt").write_text(LABELMAP)
    (root / "SegmentationClass").mkdir()
    (root / "SegmentationObject").mkdir()
    palette = load_classes(str(root / "labelmap.txt")).palette
    classes = np.zeros((20, 30), np.uint8)
    objects = np.zeros((20, 30), np.uint8)
    for number, (rows, cols, label) in enumerate(((slice(2, 8), slice(2, 10), 1), (slice(10, 18), slice(15, 25), 1),
                                                  (slice(10, 18), slice(2, 8), 2)), 1):
        classes[rows, cols], objects[rows, cols] = label, number
    _rgb_png(root / "SegmentationClass" / "frame_000000.png", np.asarray(palette, np.uint8)[classes])
    _rgb_png(root / "SegmentationObject" / "frame_000000.png", np.asarray(voc_colormap(256), np.uint8)[objects])
    result = cli("convert", root, "--to", "coco", "-o", tmp_path / "ann.json")
    assert result.code == 0, result.stderr
    assert "class names and colours from labelmap.txt" in result.stderr
    data = json.loads((tmp_path / "ann.json").read_text())
    assert [c["name"] for c in data["categories"]] == ["background", "car", "person"]
    by_name = {c["id"]: c["name"] for c in data["categories"]}
    assert sorted((by_name[a["category_id"]], a["bbox"]) for a in data["annotations"]) == [
        ("car", [2.0, 2.0, 8.0, 6.0]), ("car", [15.0, 10.0, 10.0, 8.0]), ("person", [2.0, 10.0, 6.0, 8.0])]
