"""``segtools convert`` with instance masks: segtools/Cityscapes/VOC instance ids ⇄ COCO, and COCO panoptic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from conftest import assert_one_line_error

from segtools.formats import coco_panoptic, rle, voc
from segtools.formats import instances as instlib
from segtools.io.images import encode_image
from segtools.io.masks import encode_label_mask, read_label_mask
from segtools.io.meta import ClassMeta

FIXTURES = Path(__file__).parent / "fixtures" / "formats"


def _one_line_error(result, text: str) -> None:
    assert_one_line_error(result)
    assert text in result.stderr, result.stderr


def _semantic() -> np.ndarray:
    labels = np.zeros((20, 30), np.uint8)
    labels[2:6, 2:8] = 1
    labels[10:15, 3:9] = 1
    labels[4:12, 15:25] = 2
    labels[6:8, 18:20] = 0  # a hole
    labels[16:, 26:] = 1
    return labels


def _painted(annotations, shape) -> dict:
    """instance id (annotation order, 1-based) → (category_id, iscrowd, binary mask)."""
    out = {}
    for k, ann in enumerate(annotations, 1):
        segm = ann["segmentation"]
        mask = rle.decode(segm) if isinstance(segm, dict) else \
            rle.decode(rle.encode(_poly_mask(segm, shape)))
        assert ann["area"] == int(mask.sum())
        out[k] = (ann["category_id"], ann["iscrowd"], mask)
    return out


def _poly_mask(polygons, shape):
    from segtools.formats import polygons as polylib

    return polylib.polygons_to_mask(polygons, *shape)


def test_postprocess_instances_to_coco_one_annotation_per_instance_and_back(cli, tmp_path):
    labels = _semantic()
    made = cli("postprocess", "-", "--instances", input=encode_label_mask(labels, ClassMeta(names=("bg", "cat", "dog"))))
    assert made.code == 0, made.stderr
    inst = read_label_mask(made.stdout)
    assert inst.meta.kind == "instance"
    (tmp_path / "inst.png").write_bytes(made.stdout)
    for target in ("coco", "coco-rle"):
        result = cli("convert", tmp_path / "inst.png", "--to", target)
        assert result.code == 0, result.stderr
        data = json.loads(result.stdout)
        assert [c["name"] for c in data["categories"]] == ["bg", "cat", "dog"]
        found = _painted(data["annotations"], labels.shape)
        ids = np.unique(inst.labels[inst.labels > 0])
        assert len(found) == ids.size == 4  # the cat's 3 parts and the dog (a hole, not a part)
        for number, (cid, crowd, mask) in zip(ids, found.values()):
            np.testing.assert_array_equal(mask, inst.labels == number)
            assert cid == inst.meta.extra["instance_class"][number] + 1 and crowd == 0
        ann = tmp_path / f"{target}.json"
        ann.write_bytes(result.stdout)
        back = cli("convert", ann, "--to", "instances")
        assert back.code == 0, back.stderr
        again = read_label_mask(back.stdout)
        assert again.labels.dtype == np.uint16 and again.meta.kind == "instance"
        np.testing.assert_array_equal(again.labels, inst.labels)
        assert again.meta.extra["instance_class"] == inst.meta.extra["instance_class"]
        assert again.meta.extra["class_names"] == ["bg", "cat", "dog"]


def test_16bit_instance_png_without_metadata(cli, tmp_path):
    import cv2

    ids = np.zeros((8, 9), np.uint16)
    ids[1:4, 1:4], ids[5:7, 2:8] = 300, 7
    cv2.imwrite(str(tmp_path / "objects.png"), ids)
    result = cli("convert", tmp_path / "objects.png", "--to", "coco-rle")
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["categories"] == [{"id": 1, "name": "object", "supercategory": ""}]
    assert [a["area"] for a in data["annotations"]] == [12, 9] and {a["category_id"] for a in data["annotations"]} == {1}
    (tmp_path / "names.txt").write_text("tree\n")
    named = json.loads(cli("convert", tmp_path / "objects.png", "--to", "coco", "--classes", tmp_path / "names.txt").stdout)
    assert [c["name"] for c in named["categories"]] == ["tree"]
    several = cli("convert", tmp_path / "objects.png", "--to", "coco", "--classes", "voc")
    _one_line_error(several, "per-instance class list")
    semantic = json.loads(cli("convert", tmp_path / "objects.png", "--from", "mask", "--to", "coco-rle").stdout)
    assert {a["category_id"] for a in semantic["annotations"]} == {8, 301, 1}  # values read as classes (0 included)


def test_cityscapes_instance_ids(cli, tmp_path):
    import cv2

    ids = np.full((12, 16), 7, np.uint16)  # road: stuff
    ids[:3] = 23  # sky
    ids[4:8, 1:5], ids[5:7, 6:10], ids[8:11, 10:14] = 26000, 26001, 24000
    ids[9:12, 1:4] = 33  # a bicycle group without instance numbers
    path = tmp_path / "aachen_000000_000019_gtFine_instanceIds.png"
    cv2.imwrite(str(path), ids)
    result = cli("convert", path, "--to", "coco-rle")
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert len(data["categories"]) == 34 and data["categories"][26]["name"] == "car"
    found = {(a["category_id"], a["iscrowd"], a["area"]) for a in data["annotations"]}
    assert found == {(34, 1, 9), (25, 0, 12), (27, 0, 16), (27, 0, 8)}
    assert "stuff classes left out" in result.stderr
    renamed = tmp_path / "ids.png"
    renamed.write_bytes(path.read_bytes())  # by name it is just a 16-bit mask; --from says what it is
    forced = json.loads(cli("convert", renamed, "--from", "cityscapes-instances", "--to", "coco-rle").stdout)
    assert forced["annotations"] == data["annotations"]
    (tmp_path / "cs.json").write_bytes(result.stdout)
    back = read_label_mask(cli("convert", tmp_path / "cs.json", "--to", "instances").stdout)
    crowd = back.meta.extra["instance_crowd"]
    assert [back.meta.extra["instance_class"][k] for k in crowd] == [33]
    labels = read_label_mask(cli("convert", tmp_path / "cs.json", "--to", "mask").stdout).labels
    things = ids >= 1000
    np.testing.assert_array_equal(labels[things], ids[things] // 1000)  # category_id - 1 = labelId


def test_coco_to_instances_counts_overlaps():
    annotations = [{"id": 1, "category_id": 5, "segmentation": [[0, 0, 4, 0, 4, 4, 0, 4]]},
                   {"id": 2, "category_id": 9, "segmentation": [[2, 2, 6, 2, 6, 6, 2, 6]], "iscrowd": 1},
                   {"id": 3, "category_id": 5, "segmentation": [[2, 2, 4, 2, 4, 4, 2, 4]]},
                   {"id": 4, "category_id": 9, "bbox": [0, 0, 1, 1], "segmentation": []}]
    summary = instlib.Summary()
    ids, classes, crowd = instlib.annotations_to_instances(annotations, 7, 7, {5: 0, 9: 1}, summary)
    assert classes == [-1, 0, 1, 0] and crowd == [2]
    assert ids[0, 0] == 1 and ids[5, 5] == 2 and ids[3, 3] == 3
    assert summary["instances partly covered by later ones (later wins)"] == 2
    assert summary["box-only annotations (no mask to paint)"] == 1
    hidden = instlib.Summary()
    instlib.annotations_to_instances(annotations[:1] + annotations[:1], 7, 7, {5: 0}, hidden)
    assert hidden["instances hidden entirely by later ones"] == 1


def test_voc_segmentation_object_and_class_fixture_to_coco(cli, tmp_path):
    root = FIXTURES / "voc_seg"
    result = cli("convert", root, "--to", "coco")
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [im["file_name"] for im in data["images"]] == ["2007_000033.jpg", "2007_000042.jpg"]
    assert data["categories"][15]["name"] == "person" and len(data["categories"]) == 21
    by_image = [[(a["category_id"], a["area"], a["bbox"]) for a in data["annotations"] if a["image_id"] == i] for i in (1, 2)]
    # person with a one-pixel hole; car; a person in two parts (one object); an aeroplane
    assert by_image == [[(16, 8, [2.0, 2.0, 3.0, 3.0]), (8, 6, [9.0, 3.0, 3.0, 2.0]), (16, 5, [0.0, 8.0, 8.0, 2.0])],
                        [(2, 8, [2.0, 2.0, 4.0, 2.0])]]
    objects = read_label_mask(root / "SegmentationObject" / "2007_000033.png").labels
    classes = read_label_mask(root / "SegmentationClass" / "2007_000033.png").labels
    first = _painted([a for a in data["annotations"] if a["image_id"] == 1], objects.shape)
    for number, (cid, _, mask) in first.items():
        np.testing.assert_array_equal(mask, objects == number)
        assert (classes[mask == 1] == cid - 1).all()
    (tmp_path / "voc.json").write_bytes(result.stdout)
    written = cli("convert", tmp_path / "voc.json", "--to", "instances", "-o", tmp_path / "inst")
    assert written.code == 0, written.stderr
    ids = read_label_mask(tmp_path / "inst" / "2007_000033.png")
    np.testing.assert_array_equal(ids.labels, np.where(objects == 255, 0, objects))  # numbered in object order
    assert ids.meta.extra["instance_class"] == [-1, 15, 7, 15]
    same = cli("convert", root / "SegmentationObject", "--to", "coco")
    assert json.loads(same.stdout)["annotations"] == data["annotations"]
    (tmp_path / "SegmentationObject").mkdir()
    missing = cli("convert", tmp_path, "--from", "voc-seg", "--to", "coco")
    _one_line_error(missing, "SegmentationClass")


def test_voc_majority_class_matches_the_per_object_reader():
    rng = np.random.default_rng(3)
    objects = rng.integers(0, 6, (30, 40)).astype(np.uint8)
    objects[rng.random(objects.shape) < 0.1] = 255
    classes = np.where(objects == 255, 255, rng.integers(0, 21, objects.shape)).astype(np.uint8)
    expected = {n + 1: c for n, (c, _) in enumerate(_objects_one_by_one(classes, objects))}
    assert voc.object_classes(classes, objects) == expected


def _objects_one_by_one(class_mask, object_mask, void=255):
    """The reference: ``(majority class, mask)`` of each object, one object at a time."""
    objects = []
    for number in np.unique(object_mask):
        if number in (0, void):
            continue
        inside = object_mask == number
        classes = class_mask[inside]
        classes = classes[classes != void]
        if classes.size:
            objects.append((int(np.bincount(classes).argmax()), inside.astype(np.uint8)))
    return objects


def _panoptic_dataset(tmp_path) -> Path:
    """Two images: sparse category ids, stuff, things, a crowd segment and void."""
    categories = [{"id": 1, "name": "person", "isthing": 1}, {"id": 3, "name": "car", "isthing": 1},
                  {"id": 184, "name": "tree", "isthing": 0}, {"id": 200, "name": "sky", "isthing": 0}]
    rng = np.random.default_rng(0)
    (tmp_path / "pan").mkdir()
    annotations, images = [], []
    for index, (h, w) in enumerate([(16, 20), (9, 13)], 1):
        ids = np.full((h, w), 10, np.uint32)  # sky
        ids[h // 2:, :] = 20  # tree
        ids[2:6, 3:8], ids[6:h - 1, 9:12], ids[1:3, w - 4:] = 1000, 1001 + 65536 * 3, 77777
        ids[rng.random((h, w)) < 0.05] = 0  # void
        segments = [{"id": 10, "category_id": 200, "iscrowd": 0}, {"id": 20, "category_id": 184, "iscrowd": 0},
                    {"id": 1000, "category_id": 1, "iscrowd": 0}, {"id": 1001 + 65536 * 3, "category_id": 3, "iscrowd": 0},
                    {"id": 77777, "category_id": 1, "iscrowd": 1}]
        name = f"img{index}.png"
        (tmp_path / "pan" / name).write_bytes(encode_image(coco_panoptic.ids_to_rgb(ids), "png"))
        annotations.append({"image_id": index, "file_name": name, "segments_info": segments})
        images.append({"id": index, "file_name": f"img{index}.jpg", "height": h, "width": w})
    path = tmp_path / "pan.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def _segments(json_path: Path) -> dict:
    """file → {(category_id, iscrowd, frozenset of pixels)} plus the categories."""
    data = json.loads(json_path.read_text())
    out = {}
    for entry in data["annotations"]:
        ids = coco_panoptic.rgb_to_ids(_rgb(json_path.with_suffix("") / entry["file_name"]))
        found = set()
        for seg in entry["segments_info"]:
            pixels = frozenset(np.flatnonzero(ids == seg["id"]).tolist())
            assert "area" not in seg or seg["area"] == len(pixels)
            found.add((seg["category_id"], seg["iscrowd"], pixels))
        out[entry["file_name"]] = found
    return out, [(c["id"], c["name"], c["isthing"]) for c in data["categories"]]


def _rgb(path: Path) -> np.ndarray:
    from segtools.io.images import read_image

    return read_image(path)


def test_panoptic_to_masks_and_back_is_exact_per_segment(cli, tmp_path):
    source = _panoptic_dataset(tmp_path)
    masks = tmp_path / "masks"
    result = cli("convert", source, "--to", "mask", "-o", masks)
    assert result.code == 0, result.stderr
    again = tmp_path / "out" / "again.json"
    result = cli("convert", masks, "--instance-masks", masks / "instances", "--to", "panoptic", "-o", again)
    assert result.code == 0, result.stderr
    assert (tmp_path / "out" / "again" / "img1.png").is_file()
    assert _segments(again) == _segments(source)
    images = json.loads(again.read_text())["images"]
    # the photos' names come back (issue 19: they used to become the PNGs' names)
    assert [(im["file_name"], im["height"], im["width"]) for im in images] == [("img1.jpg", 16, 20), ("img2.jpg", 9, 13)]


def test_semantic_and_postprocess_instances_to_panoptic(cli, tmp_path):
    labels = _semantic()
    labels[0, 0] = 255
    meta = ClassMeta(names=("bg", "cat", "dog"))
    (tmp_path / "sem").mkdir()
    (tmp_path / "sem" / "a.png").write_bytes(encode_label_mask(labels, meta))
    made = cli("postprocess", tmp_path / "sem" / "a.png", "--instances", "--only", "cat", "-o", tmp_path / "a_inst.png")
    assert made.code == 0, made.stderr
    inst = read_label_mask(tmp_path / "a_inst.png").labels
    out = tmp_path / "p.json"
    result = cli("convert", tmp_path / "sem", "--instance-masks", tmp_path / "a_inst.png", "--to", "panoptic", "-o", out)
    assert result.code == 0, result.stderr
    data = json.loads(out.read_text())
    assert [(c["name"], c["isthing"]) for c in data["categories"]] == [("bg", 0), ("cat", 1), ("dog", 0)]
    ids = coco_panoptic.rgb_to_ids(_rgb(tmp_path / "p" / "a.png"))
    assert ids[0, 0] == 0  # the ignore index is void
    segments = data["annotations"][0]["segments_info"]
    cats = [s for s in segments if s["category_id"] == 2]
    assert len(cats) == 3 and {s["category_id"] for s in segments} == {1, 2, 3}
    for seg in cats:
        assert len(np.unique(inst[ids == seg["id"]])) == 1
    # --things by name overrides: dog becomes a thing without instance numbers → one crowd segment
    dog = cli("convert", tmp_path / "sem", "--to", "panoptic", "--things", "Dog", "-o", tmp_path / "q.json")
    assert dog.code == 0, dog.stderr
    q = json.loads((tmp_path / "q.json").read_text())
    assert [s["iscrowd"] for s in q["annotations"][0]["segments_info"] if s["category_id"] == 3] == [1]
    assert [c["isthing"] for c in q["categories"]] == [0, 0, 1]
    horse = cli("convert", tmp_path / "sem", "--to", "panoptic", "--things", "horse", "-o", tmp_path / "r.json")
    _one_line_error(horse, "things 'horse': unknown class")
    assert not (tmp_path / "r.json").exists()


def test_panoptic_and_instance_errors(cli, tmp_path):
    (tmp_path / "m.png").write_bytes(encode_label_mask(np.zeros((3, 3), np.uint8)))
    _one_line_error(cli("convert", tmp_path / "m.png", "--to", "panoptic"), "-o NAME.json")
    _one_line_error(cli("convert", tmp_path / "m.png", "--to", "panoptic", "-o", tmp_path / "x.png"), ".json")
    _one_line_error(cli("convert", tmp_path / "m.png", "--to", "coco", "--things", "a"), "only apply to --to panoptic")
    bad = ClassMeta(ignore_index=None, kind="instance", extra={"instance_class": [-1]})
    (tmp_path / "i.png").write_bytes(encode_label_mask(np.full((3, 3), 2, np.uint8), bad))
    _one_line_error(cli("convert", tmp_path / "i.png", "--to", "coco"), "instance id 2 has no class")


def test_instance_crops_agree_with_whole_image_tracing():
    from segtools.formats import coco as cocolib

    labels = _semantic()
    ids = np.zeros(labels.shape, np.uint16)
    ids[labels == 2] = 5  # the dog, with its 2×2 hole
    ids[2:6, 2:8], ids[16:, 26:] = 9, 9  # two parts of one cat
    for mode, holes in (("polygon", "bridge"), ("polygon", "fill"), ("rle", "bridge")):
        found = instlib.instance_annotations(ids, None, mode=mode, holes=holes)
        for ann, value in zip(found, (5, 9)):
            whole = cocolib.mask_annotation((ids == value).astype(np.uint8), mode, 0.0, None, holes)
            assert ann["area"] == whole["area"] and ann["bbox"] == whole["bbox"]
        assert found[0]["area"] == (labels == 2).sum() + (4 if holes == "fill" else 0)
    wrap = np.zeros((5, 6), np.uint8)
    wrap[4, 2], wrap[0, 3] = 1, 1  # column-major, one run wraps from column 2's bottom to column 3's top
    crop = instlib.instance_annotations(wrap, None)[0]
    assert crop["bbox"] == cocolib.mask_annotation(wrap, "rle")["bbox"] == [2.0, 0.0, 2.0, 5.0]
