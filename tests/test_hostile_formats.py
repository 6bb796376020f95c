"""Hostile annotation files and ``segtools convert``: escapes, bombs, wrong types, slow paths.

Each test builds its hostile input in ``tmp_path`` and checks the contract: one stderr line
``segtools: error: …`` (never an internal error), exit 1 (2 for usage), no traceback, no
output outside ``-o`` and no partial output. The fast paths are checked for exactness
against the straightforward full-image reference and pycocotools.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_clean_refusal, run_bounded

from segtools.errors import InputError
from segtools.formats import labelme, paths, polygons, rle, rle_regions
from segtools.io.images import encode_image
from segtools.io.masks import encode_label_mask, read_label_mask


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _coco(images=None, annotations=None, categories=None) -> dict:
    return {"images": images if images is not None else [{"id": 1, "file_name": "a.jpg", "height": 8, "width": 10}],
            "annotations": annotations if annotations is not None else [],
            "categories": categories if categories is not None else [{"id": 1, "name": "thing"}]}


def _write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def _panoptic(tmp_path: Path, file_name: str) -> Path:
    pngs = tmp_path / "pan"
    pngs.mkdir()
    (pngs / "a.png").write_bytes(encode_image(np.zeros((4, 4, 3), np.uint8), "png"))
    data = {"images": [{"id": 1, "file_name": "a.jpg", "height": 4, "width": 4}],
            "annotations": [{"image_id": 1, "file_name": file_name, "segments_info": []}],
            "categories": [{"id": 1, "name": "sky", "isthing": 0}]}
    return _write_json(tmp_path / "pan.json", data)


# ------------------------------------------------------------- item 2: writes outside -o


@pytest.mark.parametrize("name", ["../../escaped.png", "/tmp/escaped_abs.png", "../pan/a.png"])
def test_panoptic_file_name_cannot_leave_the_png_folder_or_out(cli, tmp_path, name):
    source = _panoptic(tmp_path, name)
    before = _tree(tmp_path)
    result = cli("convert", source, "--to", "mask", "-o", tmp_path / "out" / "deep")
    assert_clean_refusal(result)
    assert "leaves its folder" in result.stderr
    assert _tree(tmp_path) - before <= {"out", "out/deep"}
    assert not any((tmp_path / "out").rglob("*.png"))
    assert not os.path.exists("/tmp/escaped_abs.png") or name != "/tmp/escaped_abs.png"


def test_panoptic_png_folder_symlink_out_is_refused(cli, tmp_path):
    source = _panoptic(tmp_path, "link/secret.png")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(encode_image(np.zeros((4, 4, 3), np.uint8), "png"))
    (tmp_path / "pan" / "link").symlink_to(outside)
    result = cli("convert", source, "--to", "mask", "-o", tmp_path / "out")
    assert_clean_refusal(result)
    assert "symbolic link" in result.stderr


def test_output_names_stay_under_the_output_folder(tmp_path):
    root = tmp_path / "out"
    assert paths.output_name(root, "/abs/dir/x.jpg", ".png") == root / "x.png"
    assert paths.output_name(root, "..\\..\\y.jpg", ".png") == root / "y.png"
    assert paths.output_name(root, "sub/z.jpg", ".txt") == root / "sub" / "z.txt"
    root.mkdir()
    (root / "sub").symlink_to(tmp_path)
    with pytest.raises(InputError, match="symbolic link"):
        paths.output_name(root, "sub/z.jpg", ".txt")


# ------------------------------------------------------------- item 3: hard links out of --images


@pytest.mark.parametrize("name", ["/etc/passwd", "../secret.jpg", "link/secret.jpg"])
def test_yolo_export_links_nothing_from_outside_images(cli, tmp_path, name):
    images = tmp_path / "images"
    images.mkdir()
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"secret")
    (images / "link").symlink_to(tmp_path)
    source = _write_json(tmp_path / "ann.json", _coco(images=[{"id": 1, "file_name": name, "height": 8, "width": 10}]))
    before = _tree(tmp_path)
    result = cli("convert", source, "--to", "yolo", "--images", images, "-o", tmp_path / "ds")
    if name.startswith("link/"):  # a relative name through a link out of --images: refused
        assert_clean_refusal(result)
    else:  # absolute or climbing: looked up by its last part in --images, where it is not
        assert result.code == 0, result.stderr
        assert not (tmp_path / "ds" / "images").exists()
    assert all(p == "ds" or p.startswith("ds/") for p in _tree(tmp_path) - before)
    written = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()]
    assert not any(os.path.samefile(p, outside) for p in written for outside in (secret, "/etc/passwd")
                   if p != secret)


@pytest.mark.parametrize("source_kind", ["labelme", "voc"])
def test_labelme_and_voc_image_paths_cannot_leave_images(cli, tmp_path, source_kind):
    images = tmp_path / "images"
    images.mkdir()
    (tmp_path / "secret.jpg").write_bytes(b"secret")
    if source_kind == "labelme":
        source = _write_json(tmp_path / "a.json", {"imageHeight": 8, "imageWidth": 10, "imagePath": "../secret.jpg",
                                                   "shapes": [{"label": "a", "points": [[1, 1], [5, 1], [5, 4]]}]})
    else:
        source = tmp_path / "a.xml"
        source.write_text("<annotation><filename>../secret.jpg</filename><size><width>10</width><height>8</height>"
                          "</size><object><name>a</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>4</xmax>"
                          "<ymax>4</ymax></bndbox></object></annotation>")
    result = cli("convert", source, "--to", "yolo", "--images", images, "-o", tmp_path / "ds")
    assert result.code == 0 or assert_clean_refusal(result) is None
    assert not (tmp_path / "ds").exists() or not any((tmp_path / "ds").rglob("*.jpg"))


def test_absolute_names_are_found_by_their_last_part_in_images(cli, tmp_path):
    """Label Studio and CVAT write /data/upload/1/x.jpg: the photo is x.jpg in --images."""
    images = tmp_path / "images"
    images.mkdir()
    (images / "x.jpg").write_bytes(b"photo")
    source = _write_json(tmp_path / "ann.json", _coco(images=[{"id": 1, "file_name": "/data/upload/1/x.jpg",
                                                                "height": 8, "width": 10}]))
    result = cli("convert", source, "--to", "yolo", "--images", images, "-o", tmp_path / "ds")
    assert result.code == 0, result.stderr
    assert os.path.samefile(tmp_path / "ds" / "images" / "x.jpg", images / "x.jpg")


def test_images_inside_the_folder_are_still_linked(cli, tmp_path):
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    (images / "sub" / "a.jpg").write_bytes(b"jpeg")
    source = _write_json(tmp_path / "ann.json", _coco(images=[{"id": 1, "file_name": "sub/a.jpg", "height": 8, "width": 10}]))
    result = cli("convert", source, "--to", "yolo", "--images", images, "-o", tmp_path / "ds")
    assert result.code == 0, result.stderr
    assert (tmp_path / "ds" / "images" / "sub" / "a.jpg").read_bytes() == b"jpeg"


# ------------------------------------------------------------- item 4: huge finite coordinates


@pytest.mark.parametrize("kind", ["labelme", "labelme-line", "labelme-point", "coco"])
def test_huge_coordinates_are_refused_before_rasterising(tmp_path, kind):
    if kind.startswith("labelme"):
        shape = {"labelme": ("polygon", [[0, 0], [1e30, 0], [0, 50]]), "labelme-line": ("line", [[0, 0], [1e30, 3]]),
                 "labelme-point": ("point", [[1e30, 1e30]])}[kind]
        data = {"imageHeight": 100, "imageWidth": 100, "shapes": [{"label": "a", "shape_type": shape[0], "points": shape[1]}]}
    else:
        data = _coco(images=[{"id": 1, "file_name": "a.jpg", "height": 100, "width": 100}],
                     annotations=[{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 1e30, 0, 0, 50]]}])
    source = _write_json(tmp_path / "in.json", data)
    result = run_bounded("convert", source, "--to", "mask", "-o", tmp_path / "m.png")
    assert_clean_refusal(result)
    assert "far outside" in result.stderr
    assert not (tmp_path / "m.png").exists()


def test_coordinates_a_little_outside_are_clipped_not_refused():
    points = polygons.as_points([[-5, -5], [120, 0], [0, 130]], "p", 100, 100)
    assert polygons.polygons_to_mask([points], 100, 100).all(axis=None) is not None
    with pytest.raises(InputError, match="far outside"):
        polygons.as_points([[0, 0], [500, 0], [0, 1]], "p", 100, 100)


# ------------------------------------------------------------- item 5: class-count hangs


def test_data_yaml_with_a_billion_classes_is_refused(tmp_path):
    dataset = tmp_path / "ds"
    (dataset / "labels").mkdir(parents=True)
    (dataset / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (dataset / "data.yaml").write_text("nc: 1000000000\n")
    result = run_bounded("convert", dataset, "--to", "coco", "--image-size", "8x10", "-o", tmp_path / "o.json")
    assert_clean_refusal(result)
    assert "65,536" in result.stderr and not (tmp_path / "o.json").exists()


@pytest.mark.parametrize("label", ["1000000000", "1000000"])
def test_yolo_class_id_without_yaml_is_capped(tmp_path, label):
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "a.txt").write_text(f"{label} 0.5 0.5 0.2 0.2\n")
    result = run_bounded("convert", labels, "--from", "yolo", "--to", "coco", "--image-size", "8x10",
                         "-o", tmp_path / "o.json")
    assert_clean_refusal(result)
    assert "out of range" in result.stderr and not (tmp_path / "o.json").exists()


@pytest.mark.parametrize("text, message", [
    ("names: [a, b]\nnc: 2\n" + "x" * (2 << 20), "too large"),
    ("nc: many\n", "'nc' must be an integer"),
    ("names:\n  0: a\n  2: b\n", "without gaps"),
])
def test_data_yaml_is_read_strictly(text, message):
    from segtools.formats import yolo

    with pytest.raises(InputError, match=message):
        yolo.read_data_yaml(text)


# ------------------------------------------------------------- item 6: declared sizes


@pytest.mark.parametrize("kind", ["coco", "labelme", "voc", "rle"])
def test_declared_sizes_are_checked_before_allocating(tmp_path, kind):
    if kind == "coco":
        source = _write_json(tmp_path / "a.json", _coco(
            images=[{"id": 1, "file_name": "a.jpg", "height": 30000, "width": 30000}],
            annotations=[{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 9, 0, 0, 9]]}]))
        assert source.stat().st_size < 300
    elif kind == "labelme":
        source = _write_json(tmp_path / "a.json", {"imageHeight": 30000, "imageWidth": 30000,
                                                   "shapes": [{"label": "a", "points": [[0, 0], [9, 0], [0, 9]]}]})
    elif kind == "voc":
        source = tmp_path / "a.xml"
        source.write_text("<annotation><size><width>30000</width><height>30000</height></size></annotation>")
    else:
        source = _write_json(tmp_path / "a.json", {"size": [30000, 30000], "counts": [900000000]})
    result = run_bounded("convert", source, "--to", "mask", "-o", tmp_path / "m.png")
    assert_clean_refusal(result)
    assert "exceeds the limit" in result.stderr and not (tmp_path / "m.png").exists()


# ------------------------------------------------------------- item 11: labelme, VOC, YOLO from stdin


def test_labelme_voc_and_yolo_read_from_stdin(cli, tmp_path):
    data = {"imageHeight": 8, "imageWidth": 10, "imagePath": "a.jpg",
            "shapes": [{"label": "car", "points": [[1, 1], [5, 1], [5, 4], [1, 4]], "shape_type": "polygon"}]}
    result = cli("convert", "-", "--to", "mask", input=json.dumps(data).encode())
    assert result.code == 0, result.stderr
    assert read_label_mask(result.stdout).labels[2, 2] == 0
    xml = (b"<annotation><filename>a.jpg</filename><size><width>10</width><height>8</height></size><object>"
           b"<name>car</name><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>5</xmax><ymax>4</ymax></bndbox></object></annotation>")
    result = cli("convert", "-", "--to", "coco", input=xml)
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["annotations"][0]["bbox"] == [1.0, 1.0, 4.0, 3.0]
    result = cli("convert", "-", "--to", "coco", "--image-size", "8x10", input=b"0 0.5 0.5 0.2 0.25\n")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["annotations"][0]["bbox"] == pytest.approx([4.0, 3.0, 2.0, 2.0])


# ------------------------------------------------------------- item 12: malformed fields


def _deep(n: int = 100_000) -> str:
    return "[" * n + "]" * n


IMAGE = {"id": 1, "file_name": "a.jpg", "height": 8, "width": 10}
ANN = {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 5, 1, 5, 4]]}
MALFORMED_COCO = {
    "annotations-int": {**_coco(), "annotations": 5},
    "segmentation-str": _coco(annotations=[{**ANN, "segmentation": "x"}]),
    "segmentation-str-list": _coco(annotations=[{**ANN, "segmentation": ["x"]}]),
    "polygon-bools": _coco(annotations=[{**ANN, "segmentation": [[True, 1, 5, 1, 5, 4]]}]),
    "polygon-strings": _coco(annotations=[{**ANN, "segmentation": [["1", "1", "5", "1", "5", "4"]]}]),
    "bbox-short": _coco(annotations=[{**ANN, "bbox": [1]}]),
    "category-str": _coco(annotations=[{**ANN, "category_id": "a"}]),
    "category-float": _coco(annotations=[{**ANN, "category_id": 1.5}]),
    "image-id-list": _coco(images=[{**IMAGE, "id": []}]),
    "width-bool": _coco(images=[{**IMAGE, "width": True}]),
    "file-name-empty": _coco(images=[{**IMAGE, "file_name": ""}]),
    "file-name-nul": _coco(images=[{**IMAGE, "file_name": "a\u0000.jpg"}]),
    "file-name-int": _coco(images=[{**IMAGE, "file_name": 5}]),
    "categories-dict": {**_coco(), "categories": {}},
    "category-id-dup": _coco(categories=[{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]),
    "rle-counts-int": _coco(annotations=[{**ANN, "segmentation": {"size": [8, 10], "counts": 5}}]),
    "rle-counts-bad-chars": _coco(annotations=[{**ANN, "segmentation": {"size": [8, 10], "counts": "\u00ff~~"}}]),
    "rle-counts-mismatch": _coco(annotations=[{**ANN, "segmentation": {"size": [8, 10], "counts": [3, 4]}}]),
    "rle-counts-floats": _coco(annotations=[{**ANN, "segmentation": {"size": [8, 10], "counts": [40.5, 39.5]}}]),
    "rle-counts-huge": _coco(annotations=[{**ANN, "segmentation": {"size": [8, 10], "counts": [10 ** 30]}}]),
    "rle-size-str": _coco(annotations=[{**ANN, "segmentation": {"size": "8x10", "counts": [80]}}]),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_COCO))
def test_malformed_coco_fields_are_one_line_errors(cli, tmp_path, case):
    source = _write_json(tmp_path / "a.json", MALFORMED_COCO[case])
    result = cli("convert", source, "--to", "mask", "-o", tmp_path / "out")
    assert_clean_refusal(result)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("text", [_deep(), '{"images": [], "annotations": [], "categories": [], "x": 1e999}',
                                  '{"a": NaN}', '\u00ff\u00fe'])
@pytest.mark.parametrize("target", ["mask", "coco"])
def test_unparseable_json_is_refused(cli, tmp_path, text, target):
    source = tmp_path / "a.json"
    source.write_text(text, encoding="latin-1")
    assert_clean_refusal(cli("convert", source, "--to", target, "-o", tmp_path / "out.json"))
    assert_clean_refusal(cli("convert", "-", "--to", target, input=text.encode("latin-1")))


MALFORMED_LABELME = {
    "shapes-dict": {"imageHeight": 8, "imageWidth": 10, "shapes": {}},
    "points-flat": {"imageHeight": 8, "imageWidth": 10, "shapes": [{"label": "a", "points": [1, 2, 3, 4, 5, 6]}]},
    "points-triples": {"imageHeight": 8, "imageWidth": 10, "shapes": [{"label": "a", "points": [[1, 2, 3]] * 3}]},
    "points-ragged": {"imageHeight": 8, "imageWidth": 10, "shapes": [{"label": "a", "points": [[1, 2], [3], [4, 5]]}]},
    "points-strings": {"imageHeight": 8, "imageWidth": 10, "shapes": [{"label": "a", "points": [["1", "2"]] * 3}]},
    "label-int": {"imageHeight": 8, "imageWidth": 10, "shapes": [{"label": 3, "points": [[1, 2], [3, 4], [5, 1]]}]},
    "height-str": {"imageHeight": "8", "imageWidth": 10, "shapes": []},
    "height-bool": {"imageHeight": True, "imageWidth": 10, "shapes": []},
    "image-path-nul": {"imageHeight": 8, "imageWidth": 10, "imagePath": "a\u0000b", "shapes": []},
    "shape-str": {"imageHeight": 8, "imageWidth": 10, "shapes": ["x"]},
}


@pytest.mark.parametrize("case", sorted(MALFORMED_LABELME))
def test_malformed_labelme_fields_are_one_line_errors(cli, tmp_path, case):
    source = _write_json(tmp_path / "a.json", MALFORMED_LABELME[case])
    assert_clean_refusal(cli("convert", source, "--from", "labelme", "--to", "mask", "-o", tmp_path / "m.png"))
    assert not (tmp_path / "m.png").exists()


@pytest.mark.parametrize("xml", [
    b'<?xml version="1.0" encoding="x-bogus"?><annotation/>',
    b'<?xml version="1.0" encoding="utf-16"?><annotation/>',
    b"<annotation><size><width>1e400</width><height>8</height></size></annotation>",
    b"<annotation><size><width>10</width><height>8</height><depth>x</depth></size></annotation>",
    b"<annotation><size><width>10.5</width><height>8</height></size></annotation>",
    b"<annotation><size><width>10</width><height>8</height></size><object><name>a</name><bndbox><xmin>nan</xmin>"
    b"<ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox></object></annotation>",
    b'<!DOCTYPE a [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;'
    b'&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;"><!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">'
    b'<!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;"><!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;">]>'
    b"<annotation><filename>&g;</filename></annotation>",
])
def test_malformed_voc_xml_is_a_one_line_error(cli, tmp_path, xml):
    source = tmp_path / "a.xml"
    source.write_bytes(xml)
    assert_clean_refusal(cli("convert", source, "--to", "coco", "-o", tmp_path / "o.json"))
    assert not (tmp_path / "o.json").exists()


def test_malformed_panoptic_fields_are_one_line_errors(cli, tmp_path):
    source = _panoptic(tmp_path, "a.png")
    data = json.loads(source.read_text())
    data["annotations"][0]["segments_info"] = [{"id": "x", "category_id": 1}]
    _write_json(source, data)
    assert_clean_refusal(cli("convert", source, "--to", "mask", "-o", tmp_path / "out"))


# ------------------------------------------------------------- item 16: the fast paths are exact


def test_coco_rle_of_many_components_matches_pycocotools(cli):
    mask_api = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(0)
    labels = (rng.random((61, 47)) < 0.3).astype(np.uint8) * rng.integers(1, 3, (61, 47)).astype(np.uint8)
    labels[:, 20] = 1  # a part touching the top and bottom rows: runs that wrap across columns
    result = cli("convert", "-", "--to", "coco-rle", input=encode_label_mask(labels))
    assert result.code == 0, result.stderr
    annotations = json.loads(result.stdout)["annotations"]
    import cv2

    expected = []
    for value in (0, 1, 2):  # 0 is a class like the others (only 255 is void by default)
        count, parts = cv2.connectedComponents((labels == value).astype(np.uint8), connectivity=8)
        expected += [(value + 1, parts == k) for k in range(1, count)]
    assert len(annotations) == len(expected) > 100
    for ann, (category_id, part) in zip(annotations, expected):
        reference = mask_api.encode(np.asfortranarray(part.astype(np.uint8)))
        assert ann["category_id"] == category_id
        assert ann["segmentation"]["counts"] == reference["counts"].decode()
        assert ann["area"] == int(mask_api.area(reference))
        assert ann["bbox"] == mask_api.toBbox(reference).tolist()


def test_encode_regions_equals_one_encode_per_region():
    rng = np.random.default_rng(1)
    for _ in range(50):
        index = rng.integers(0, 5, tuple(rng.integers(1, 20, 2))).astype(np.int32)
        numbers, rles, areas, boxes = rle_regions.encode_regions(index)
        assert numbers.tolist() == [v for v in np.unique(index).tolist() if v]
        for number, encoded, area, box in zip(numbers, rles, areas, boxes):
            assert encoded == rle.encode(index == number)
            assert area == rle.area(encoded) and box == rle.to_bbox(encoded)


def _reference_object(shapes, height, width) -> np.ndarray:
    """The old way: every shape rasterised on the full image, OR-ed."""
    from PIL import Image, ImageDraw

    mask = np.zeros((height, width), np.uint8)
    for shape in shapes:
        polygon = labelme.shape_polygon(shape, "ref", height, width)
        if polygon is not None:
            mask |= polygons.polygons_to_mask([polygon], height, width)
            continue
        drawn = Image.new("L", (width, height), 0)  # on the whole image, as labelme's shape_to_mask
        xy = [tuple(p) for p in shape["points"]]
        if shape["shape_type"] == "point":
            (cx, cy), r = xy[0], labelme.POINT_SIZE
            ImageDraw.Draw(drawn).ellipse([cx - r, cy - r, cx + r, cy + r], outline=1, fill=1)
        else:
            ImageDraw.Draw(drawn).line(xy=xy, fill=1, width=labelme.LINE_WIDTH)
        mask |= np.asarray(drawn, np.uint8)
    return mask


def test_labelme_objects_in_their_boxes_equal_full_image_rasterising():
    rng = np.random.default_rng(2)
    height, width = 57, 83
    shapes = []
    for k in range(300):
        kind = ["polygon", "rectangle", "circle", "line", "linestrip", "point"][k % 6]
        count = {"polygon": 5, "rectangle": 2, "circle": 2, "line": 2, "linestrip": 4, "point": 1}[kind]
        centre = rng.uniform(-10, 90, 2)
        points = (centre + rng.uniform(-8, 8, (count, 2))).round(2).tolist()
        shapes.append({"label": f"c{k % 4}", "shape_type": kind, "points": points, "group_id": k % 7 if k % 3 else None})
    data = {"imageHeight": height, "imageWidth": width, "shapes": shapes}
    (_, _), objects = labelme.objects(data, "x.json")
    groups: dict = {}
    for index, shape in enumerate(shapes):
        key = (shape["label"], shape["group_id"] if shape["group_id"] is not None else f"#{index}")
        groups.setdefault(key, []).append(shape)
    assert len(objects) == len(groups)
    for obj, (key, members) in zip(objects, groups.items()):
        reference = _reference_object(members, height, width)
        np.testing.assert_array_equal(obj.mask, reference)
        encoded = rle.encode(reference)
        assert obj.rle == encoded and obj.area == rle.area(encoded) and obj.bbox == rle.to_bbox(encoded)


def test_crop_runs_and_union_equal_encode():
    rng = np.random.default_rng(3)
    for _ in range(100):
        h, w = rng.integers(1, 12, 2)
        mask = (rng.random((h, w)) < 0.5).astype(np.uint8)
        top, left = rng.integers(0, h), rng.integers(0, w)
        crop = mask[top:, left:]
        placed = np.zeros_like(mask)
        placed[top:, left:] = crop
        starts, ends = rle.crop_runs(crop, top, left, h)
        assert rle.from_runs(starts, ends, h, w) == rle.encode(placed)
        more = rle.crop_runs(mask)
        assert rle.from_runs(np.r_[starts, more[0]], np.r_[ends, more[1]], h, w) == rle.encode(mask)


@pytest.mark.parametrize("number", ["1e999", "-1E+0400", "9" * 309 + ".5", "9" * 300 + "e10", "1" * 99 + "e999"])
def test_every_number_too_large_for_a_float_is_refused(number):
    """The C scanner parses floats unchecked unless the text may overflow one; each number
    that does overflow must still be seen (exponents of 3 digits, runs of 100 digits)."""
    from segtools.io.jsondata import parse_json

    text = f'{{"name": "frame", "values": [1.5, {number}]}}'
    with pytest.raises(InputError, match="out of range"):
        parse_json(text.encode(), "a.json")


def test_finite_numbers_parse_the_same_on_both_paths():
    from segtools.io.jsondata import parse_json

    plain = '{"bbox": [1.5, 2.25, 1e-999, 12345678901234567890, 9.99e99], "name": "frame_e123"}'
    assert parse_json(plain.encode(), "a.json") == {"bbox": [1.5, 2.25, 0.0, 12345678901234567890, 9.99e99],
                                                    "name": "frame_e123"}
    assert parse_json(plain.replace("frame_e123", "frame").encode(), "a.json")["bbox"][4] == 9.99e99
