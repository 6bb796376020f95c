"""``convert`` on labelme files as labelme writes them: batches, 5.3 ``mask`` shapes, lines."""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path

import numpy as np
from conftest import assert_one_line_error

from segtools.formats import rle
from segtools.io.masks import read_label_mask


def _labelme(shapes, height=40, width=50, image="a.jpg") -> dict:
    """A labelme 5.x file: version, flags, shapes (label, points, group_id, description,
    shape_type, flags, mask), imagePath, imageData, imageHeight, imageWidth."""
    return {"version": "5.3.1", "flags": {}, "imagePath": image, "imageData": None,
            "imageHeight": height, "imageWidth": width,
            "shapes": [{"label": label, "points": points, "group_id": None, "description": "",
                        "shape_type": kind, "flags": {}, "mask": extra} for label, kind, points, extra in shapes]}


def _square(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def _write(folder: Path, name: str, data: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(data))
    return path


def shape_to_mask(img_shape, points, shape_type=None, line_width=10, point_size=5):
    """labelme's ``labelme.utils.shape_to_mask`` (the reference), written from its documented
    Pillow calls: one ``ImageDraw`` call per shape on a zero image of the whole size."""
    from PIL import Image, ImageDraw

    mask = Image.fromarray(np.zeros(img_shape[:2], dtype=np.uint8))
    draw = ImageDraw.Draw(mask)
    xy = [tuple(point) for point in points]
    if shape_type == "circle":
        (cx, cy), (px, py) = xy
        d = math.sqrt((cx - px) ** 2 + (cy - py) ** 2)
        draw.ellipse([cx - d, cy - d, cx + d, cy + d], outline=1, fill=1)
    elif shape_type == "rectangle":
        draw.rectangle(xy, outline=1, fill=1)
    elif shape_type in ("line", "linestrip"):
        draw.line(xy=xy, fill=1, width=line_width)
    elif shape_type == "point":
        cx, cy = xy[0]
        r = point_size
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=1, fill=1)
    else:
        draw.polygon(xy=xy, outline=1, fill=1)
    return np.array(mask, dtype=bool)


def test_a_batch_has_one_class_list_fixed_before_writing(cli, tmp_path):
    folder = tmp_path / "json"
    _write(folder, "a.json", _labelme([("dog", "polygon", _square(2, 2, 10, 10), None),
                                       ("cat", "polygon", _square(20, 20, 30, 30), None)]))
    _write(folder, "b.json", _labelme([("bird", "polygon", _square(5, 5, 15, 15), None)], image="b.jpg"))
    result = cli("convert", folder, "--to", "mask", "-o", tmp_path / "masks")
    assert result.code == 0, result.stderr
    a, b = (read_label_mask(tmp_path / "masks" / f"{n}.png") for n in "ab")
    assert a.meta.names == b.meta.names == ("bird", "cat", "dog")
    assert a.labels[5, 5] == 2 and a.labels[25, 25] == 1 and b.labels[10, 10] == 0
    # the masks are one consistent set: they convert on without "label 2 is not one of the classes"
    assert cli("convert", tmp_path / "masks", "--to", "coco", "-o", tmp_path / "again.json").code == 0
    # alone, with the batch's class list, a file gets the very same values
    (tmp_path / "classes.txt").write_text("bird\ncat\ndog\n")
    alone = cli("convert", folder / "a.json", "--to", "mask", "--classes", tmp_path / "classes.txt")
    assert alone.code == 0, alone.stderr
    mask = read_label_mask(alone.stdout)
    assert mask.meta.names == a.meta.names
    np.testing.assert_array_equal(mask.labels, a.labels)
    # labelme's own labels.txt (labelme2voc): __ignore__ is no class, _background_ is 0 and fills
    (tmp_path / "labels.txt").write_text("__ignore__\n_background_\nbird\ncat\ndog\n")
    voc_like = cli("convert", folder, "--to", "mask", "--classes", tmp_path / "labels.txt", "-o", tmp_path / "v")
    assert voc_like.code == 0, voc_like.stderr
    a = read_label_mask(tmp_path / "v" / "a.png")
    assert a.meta.names == ("_background_", "bird", "cat", "dog")
    assert a.labels[0, 0] == 0 and a.labels[5, 5] == 3 and a.labels[25, 25] == 2


def _png_b64(bits: np.ndarray) -> str:
    """labelme's ``img_arr_to_b64``: the uint8 array as a PNG (Pillow), base64."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(bits.astype(np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_labelme_5_3_mask_shapes_are_read(cli, tmp_path):
    rng = np.random.default_rng(0)
    bits = rng.random((9, 12)) > 0.4  # rows y1..y2, columns x1..x2, both ends included
    x1, y1 = 30, 25
    data = _labelme([("blob", "mask", [[x1, y1], [x1 + 11, y1 + 8]], _png_b64(bits)),
                     ("box", "rectangle", [[1, 1], [6, 5]], None)])
    path = _write(tmp_path, "m.json", data)
    result = cli("convert", path, "--to", "mask")
    assert result.code == 0, result.stderr
    mask = read_label_mask(result.stdout)
    blob = mask.meta.names.index("blob")
    want = np.zeros((40, 50), bool)
    want[y1:y1 + 9, x1:x1 + 12] = bits  # labelme's shapes_to_label pastes it there
    np.testing.assert_array_equal(mask.labels == blob, want)
    assert "mask shapes (bitmaps) read: 1" in result.stderr
    coco = cli("convert", path, "--to", "coco-rle")
    assert coco.code == 0 and json.loads(coco.stdout)["annotations"][0]["area"] == int(bits.sum())
    data["shapes"][0]["mask"] = _png_b64(bits[:-1])
    result = cli("convert", _write(tmp_path, "bad.json", data), "--to", "mask")
    assert_one_line_error(result, 1)
    assert "box" in result.stderr


def test_lines_and_points_match_labelmes_own_drawing(cli, tmp_path):
    height, width = 60, 70
    shapes = [("wire", "line", [[3.3, 4.8], [61.2, 40.5]]), ("path", "linestrip", [[5, 50], [20.5, 30.2], [40, 55], [66, 20]]),
              ("dot", "point", [[35.6, 12.4]]), ("edge", "line", [[-5, 58], [30, 65]])]
    path = _write(tmp_path, "l.json", _labelme([(n, k, p, None) for n, k, p in shapes], height, width))
    result = cli("convert", path, "--to", "coco-rle")  # one RLE per shape: overlaps kept
    assert result.code == 0, result.stderr
    annotations = json.loads(result.stdout)["annotations"]
    assert len(annotations) == len(shapes)
    for ann, (_, kind, points) in zip(annotations, shapes):
        reference = shape_to_mask((height, width), points, kind)
        assert reference.sum() > 0
        np.testing.assert_array_equal(rle.decode(ann["segmentation"]) == 1, reference, err_msg=kind)  # IoU 1.0


def test_skip_leaves_labelme_shapes_out(cli, tmp_path):
    path = _write(tmp_path, "s.json", _labelme([("dog", "polygon", _square(2, 2, 10, 10), None),
                                                ("cat", "polygon", _square(20, 20, 30, 30), None)]))
    result = cli("convert", path, "--to", "coco", "--skip", "cat")
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [c["name"] for c in data["categories"]] == ["dog"] and len(data["annotations"]) == 1
    assert "objects of skipped classes left out: 1" in result.stderr


def test_windows_image_paths_name_the_photo(cli, tmp_path):
    """labelme on Windows writes imagePath with backslashes, often into a sibling folder
    (``..\\images\\a.jpg``): the file_name is the photo's name, found under --images."""
    from PIL import Image

    (tmp_path / "ann").mkdir()
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(tmp_path / "images" / "a.jpg")
    (tmp_path / "ann" / "a.json").write_text(json.dumps(_labelme([("car", "polygon", _square(2, 2, 10, 8), None)],
                                                                 image="..\\images\\a.jpg")))
    (tmp_path / "ann" / "b.json").write_text(json.dumps(_labelme([("car", "polygon", _square(2, 2, 10, 8), None)],
                                                                 image="sub\\b.jpg")))
    result = cli("convert", tmp_path / "ann", "--to", "coco", "-o", tmp_path / "out.json")
    assert result.code == 0, result.stderr
    assert [im["file_name"] for im in json.loads((tmp_path / "out.json").read_text())["images"]] == ["a.jpg", "sub/b.jpg"]
