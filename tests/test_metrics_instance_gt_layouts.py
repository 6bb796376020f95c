"""`segtools metrics --task instance` with Cityscapes instanceIds and VOC SegmentationObject ground
truth, number for number against pycocotools' COCOeval on the same ground truth converted by
`segtools convert ... --to coco-rle`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error
from PIL import Image
from test_metrics_instance import STATS, reference

from segtools.metrics.instance import Protocol
from segtools.metrics.instance_io import evaluate_instance_files
from segtools.metrics.instance_layouts import find_layout, layout_categories

mask_api = pytest.importorskip("pycocotools.mask")

H, W = 120, 160
CITY_THINGS = (24, 25, 26, 27, 28, 31, 32, 33)


def _objects(rng, n: int) -> list[tuple[slice, slice]]:
    """Rectangles of all three COCO area ranges (small < 32², medium, large > 96²)."""
    shapes = [(4, 6), (10, 12), (25, 30), (40, 50), (100, 110)]
    out = []
    for _ in range(n):
        h, w = shapes[rng.integers(len(shapes))]
        top, left = rng.integers(0, H - h + 1), rng.integers(0, W - w + 1)
        out.append((slice(top, top + h), slice(left, left + w)))
    return out


def _detections(rng, image_id: int, truth: np.ndarray, classes: dict[int, int], category_ids) -> list[dict]:
    """Shifted copies of every object (some of another class), false positives, tied scores."""
    found = []
    for value, category in classes.items():
        ys, xs = np.nonzero(truth == value)
        if ys.size == 0:
            continue
        mask = np.zeros((H, W), np.uint8)
        dy, dx = rng.integers(-3, 4, 2)
        mask[np.clip(ys + dy, 0, H - 1), np.clip(xs + dx, 0, W - 1)] = 1
        if rng.random() < 0.2:
            category = int(rng.choice(category_ids))
        found.append((mask, category))
    for box in _objects(rng, 2):
        mask = np.zeros((H, W), np.uint8)
        mask[box] = 1
        found.append((mask, int(rng.choice(category_ids))))
    out = []
    for mask, category in found:
        rle = mask_api.encode(np.asfortranarray(mask))
        rle["counts"] = rle["counts"].decode()
        out.append({"image_id": image_id, "category_id": category, "segmentation": rle,
                    "bbox": [float(v) for v in mask_api.toBbox(rle)], "score": float(rng.integers(1, 6)) / 5})
    return out


def _cityscapes(tmp_path, seed: int = 0) -> tuple[str, list[np.ndarray]]:
    """gtFine/val/<city>/*_instanceIds.png (with labelIds beside them): objects, crowds, caravans, stuff only."""
    rng = np.random.default_rng(seed)
    root = tmp_path / "gtFine"
    images = []
    for k, city in enumerate(["aachen", "aachen", "bonn", "bonn", "bonn"]):
        ids = np.full((H, W), 7, np.int32)
        ids[:20] = 23
        if k != 3:  # image 4: stuff only
            for n, box in enumerate(_objects(rng, 6), 1):
                label = int(rng.choice(CITY_THINGS))
                ids[box] = label * 1000 + n
            ids[0:8, 0:12] = 26  # a group of cars: crowd
            ids[110:120, 140:160] = 29001  # caravan: not evaluated
        folder = root / "val" / city
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{city}_{k:06d}_000019_gtFine"
        Image.fromarray(ids.astype(np.uint16)).save(folder / f"{stem}_instanceIds.png")
        Image.fromarray(np.where(ids >= 1000, ids // 1000, ids).astype(np.uint8)).save(folder / f"{stem}_labelIds.png")
        images.append(ids)
    return str(root), images


def _voc(tmp_path, seed: int = 0) -> tuple[str, list[tuple[np.ndarray, np.ndarray]]]:
    """VOC2012/SegmentationObject + SegmentationClass palette PNGs with 255 borders."""
    from segtools.io.presets import get_preset

    rng = np.random.default_rng(seed)
    palette = [v for colour in get_preset("voc").palette for v in colour]
    palette += [0, 0, 0] * (255 - len(palette) // 3) + [224, 224, 192]
    root = tmp_path / "VOC2012"
    images = []
    for k in range(4):
        objects, classes = np.zeros((H, W), np.uint8), np.zeros((H, W), np.uint8)
        if k != 2:  # image 3: background only
            for n, box in enumerate(_objects(rng, 5), 1):
                objects[box], classes[box] = n, int(rng.integers(1, 21))
                edge = (slice(box[0].start, box[0].start + 1), box[1])
                objects[edge], classes[edge] = 255, 255
        for folder, values in (("SegmentationObject", objects), ("SegmentationClass", classes)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            image = Image.fromarray(values, "P")
            image.putpalette(palette)
            image.save(root / folder / f"2008_{k:06d}.png")
        images.append((objects, classes))
    return str(root), images


def _cityscapes_results(tmp_path, images, seed: int = 1) -> str:
    rng = np.random.default_rng(seed)
    things = [t + 1 for t in CITY_THINGS]
    results = []
    for image_id, ids in enumerate(images, 1):
        classes = {int(v): int(v) // 1000 + 1 for v in np.unique(ids) if v >= 1000 and v // 1000 in CITY_THINGS}
        results += _detections(rng, image_id, ids, classes, things)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    return str(path)


def _voc_results(tmp_path, images, seed: int = 1) -> str:
    rng = np.random.default_rng(seed)
    results = []
    for image_id, (objects, classes) in enumerate(images, 1):
        truth = {int(n): int(np.bincount(classes[objects == n]).argmax()) + 1 for n in np.unique(objects) if 0 < n < 255}
        results += _detections(rng, image_id, objects, truth, list(range(2, 22)))
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    return str(path)


def _converted(cli, tmp_path, *source) -> dict:
    out = tmp_path / "converted.json"
    result = cli("convert", *source, "--to", "coco-rle", "-o", str(out))
    assert result.code == 0, result.stderr
    return json.loads(out.read_text())


def _stats(report) -> list[float]:
    return [report[k] for k in STATS]


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_cityscapes_instance_ids_equal_cocoeval_on_converted(cli, tmp_path, iou_type):
    gt_dir, images = _cityscapes(tmp_path)
    assert find_layout(gt_dir) == "cityscapes"
    dt = _cityscapes_results(tmp_path, images)
    converted = _converted(cli, tmp_path, f"{gt_dir}/**/*_instanceIds.png", "--from", "cityscapes-instances")
    names = [image["file_name"].rsplit("/", 1)[-1] for image in sorted(converted["images"], key=lambda i: i["id"])]
    assert names == sorted(names) and len(names) == 5  # ids 1..N in sorted order, as the layout reader numbers them
    assert any(a["iscrowd"] for a in converted["annotations"])
    assert {a["category_id"] for a in converted["annotations"]} >= {27, 30}  # cars, a caravan (left out)
    expected = reference(converted, json.loads(open(dt).read()), iou_type, catIds=[t + 1 for t in CITY_THINGS]).stats
    ours = evaluate_instance_files(dt, gt_dir, Protocol(iou_type=iou_type)).summary()
    np.testing.assert_allclose(_stats(ours), expected, rtol=0, atol=1e-9)
    assert sorted(ours["per_class"]) == sorted(layout_categories("cityscapes").values())
    result = cli("metrics", dt, gt_dir, "--iou-type", iou_type, "--jobs", "2", "--format", "json")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["task"] == "instance"
    np.testing.assert_allclose(_stats(report), expected, rtol=0, atol=1e-9)


def test_voc_segmentation_object_equals_cocoeval_on_converted(cli, tmp_path):
    voc_dir, images = _voc(tmp_path)
    assert find_layout(voc_dir) == "voc"
    dt = _voc_results(tmp_path, images)
    converted = _converted(cli, tmp_path, voc_dir)
    assert [i["id"] for i in converted["images"]] == [1, 2, 3, 4]
    assert len(converted["annotations"]) == 15
    expected = reference(converted, json.loads(open(dt).read())).stats
    assert expected[0] > 0
    ours = evaluate_instance_files(dt, voc_dir).summary()
    np.testing.assert_allclose(_stats(ours), expected, rtol=0, atol=1e-9)
    assert "aeroplane" in ours["per_class"] and "background" not in ours["per_class"]
    again = evaluate_instance_files(dt, str(tmp_path / "VOC2012" / "SegmentationObject"), jobs=2).summary()
    np.testing.assert_allclose(_stats(again), expected, rtol=0, atol=1e-9)


def test_instance_masks_pair_with_cityscapes_by_stem(cli, tmp_path):
    """Prediction masks named *_leftImg8bit.png pair with *_gtFine_instanceIds.png, equal to COCOeval."""
    from segtools.formats.instances import encode_instance_png, instance_meta
    from segtools.formats.cityscapes import label_names

    gt_dir, images = _cityscapes(tmp_path)
    converted = _converted(cli, tmp_path, f"{gt_dir}/**/*_instanceIds.png", "--from", "cityscapes-instances")
    rng = np.random.default_rng(4)
    masks, results = tmp_path / "pred" / "val", []
    masks.mkdir(parents=True)
    for image_id, (ids, path) in enumerate(zip(images, sorted((tmp_path / "gtFine").rglob("*_instanceIds.png"))), 1):
        painted, classes, scores = np.zeros((H, W), np.uint16), [-1], [0.0]
        for value in [v for v in np.unique(ids) if v >= 1000 and v // 1000 in CITY_THINGS]:
            ys, xs = np.nonzero(ids == value)
            dy, dx = rng.integers(-3, 4, 2)
            painted[np.clip(ys + dy, 0, H - 1), np.clip(xs + dx, 0, W - 1)] = len(classes)
            classes.append(int(value) // 1000)
            scores.append(float(rng.integers(1, 6)) / 5)
        meta = instance_meta(classes, label_names())
        meta.extra["instance_score"] = scores
        (masks / path.name.replace("_gtFine_instanceIds", "_leftImg8bit")).write_bytes(encode_instance_png(painted, meta))
        for n in range(1, len(classes)):
            if (painted == n).any():
                rle = mask_api.encode(np.asfortranarray((painted == n).astype(np.uint8)))
                rle["counts"] = rle["counts"].decode()
                results.append({"image_id": image_id, "category_id": classes[n] + 1, "segmentation": rle,
                                "bbox": [float(v) for v in mask_api.toBbox(rle)], "score": scores[n]})
    expected = reference(converted, results, catIds=[t + 1 for t in CITY_THINGS]).stats
    ours = evaluate_instance_files(str(tmp_path / "pred"), gt_dir).summary()
    np.testing.assert_allclose(_stats(ours), expected, rtol=0, atol=1e-9)
    sorted(masks.iterdir())[0].unlink()
    result = cli("metrics", str(tmp_path / "pred"), gt_dir, "--task", "instance")
    assert_one_line_error(result)
    assert "aachen_000000_000019_gtFine_instanceIds.png" in result.stderr


@pytest.mark.parametrize("value, said", [(40, "value 40"), (7001, "value 7001")])
def test_unknown_cityscapes_value_is_one_line(cli, tmp_path, value, said):
    gt_dir, images = _cityscapes(tmp_path)
    dt = _cityscapes_results(tmp_path, images)
    bad = sorted((tmp_path / "gtFine").rglob("*_instanceIds.png"))[1]
    ids = np.asarray(Image.open(bad)).copy()
    ids[50, 50] = value
    Image.fromarray(ids.astype(np.uint16)).save(bad)
    result = cli("metrics", dt, gt_dir, "--task", "instance")
    assert_one_line_error(result)
    assert bad.name in result.stderr and said in result.stderr


def test_results_naming_an_image_not_in_the_layout_is_one_line(cli, tmp_path):
    voc_dir, images = _voc(tmp_path)
    dt = tmp_path / "results.json"
    results = json.loads(open(_voc_results(tmp_path, images)).read())
    results[0]["image_id"] = 99
    dt.write_text(json.dumps(results))
    result = cli("metrics", str(dt), voc_dir)
    assert_one_line_error(result)
    assert "99" in result.stderr


@pytest.mark.parametrize("layout", ["cityscapes", "voc"])
def test_layouts_on_a_store_give_the_local_folders_numbers(cli, tmp_path, layout):
    """A Cityscapes or VOC ground truth and a results JSON under a storage prefix (fsspec's
    ``memory://``): recognised from the listing, each image's PNGs read by URL where it is
    measured, the report of the local folder's."""
    import fsspec

    make, results_of = (_cityscapes, _cityscapes_results) if layout == "cityscapes" else (_voc, _voc_results)
    root, images = make(tmp_path)
    results = results_of(tmp_path, images)
    fsspec.filesystem("memory").put(str(tmp_path) + "/", f"/layouts-{layout}/", recursive=True)
    url = f"memory://layouts-{layout}/{root.rsplit('/', 1)[-1]}"
    specs = [url, f"{url}/SegmentationObject"] if layout == "voc" else [url, f"{url}/val"]
    assert [find_layout(spec) for spec in specs] == [layout, layout]
    for spec in specs:
        local = spec.replace(f"memory://layouts-{layout}", str(tmp_path))
        here = cli("metrics", results, local, "-f", "json")
        there = cli("metrics", f"memory://layouts-{layout}/results.json", spec, "-f", "json")
        assert here.code == 0 and there.code == 0, there.stderr
        assert there.stdout == here.stdout
        assert json.loads(there.stdout)["task"] == "instance"


def test_cityscapes_results_may_name_images_by_photo_stem(cli, tmp_path):
    """Results from a model run on ``leftImg8bit`` photos name them by stem
    (``city_000000_000000_leftImg8bit``, Ultralytics' image_id): the numbers of ids 1..N."""
    gt_dir, images = _cityscapes(tmp_path)
    dt = _cityscapes_results(tmp_path, images)
    by_id = cli("metrics", dt, gt_dir, "--format", "json")
    assert by_id.code == 0, by_id.stderr
    files = sorted(p.name for p in Path(gt_dir).rglob("*_instanceIds.png"))
    photo = {k: name.replace("_gtFine_instanceIds.png", "_leftImg8bit") for k, name in enumerate(files, 1)}
    results = [{**d, "image_id": photo[d["image_id"]]} for d in json.loads(open(dt).read())]
    (tmp_path / "by_stem.json").write_text(json.dumps(results))
    by_stem = cli("metrics", tmp_path / "by_stem.json", gt_dir, "--format", "json")
    assert by_stem.code == 0, by_stem.stderr
    assert _stats(json.loads(by_stem.stdout)) == _stats(json.loads(by_id.stdout))


def test_cvat_segmentation_mask_export_scores_as_its_conversion(cli, tmp_path):
    """CVAT's "Segmentation mask 1.1" export (RGB masks, labelmap.txt): its classes, and the
    numbers of the COCO file `convert` makes of it."""
    from PIL import Image

    from segtools.io.presets import voc_colormap

    root = tmp_path / "task"
    for folder in ("SegmentationClass", "SegmentationObject"):
        (root / folder).mkdir(parents=True)
    (root / "labelmap.txt").write_text("# label:color_rgb:parts:actions\nbackground:0,0,0::\ncar:250,50,83::\n"
                                       "person:61,245,61::\n")
    palette = np.array([(0, 0, 0), (250, 50, 83), (61, 245, 61)], np.uint8)
    rng = np.random.default_rng(4)
    results = []
    for k in range(3):
        classes, objects = np.zeros((24, 32), np.uint8), np.zeros((24, 32), np.uint8)
        for number in range(1, 4):
            y, x = int(rng.integers(0, 16)), int(rng.integers(0, 24))
            classes[y:y + 8, x:x + 8], objects[y:y + 8, x:x + 8] = 1 + number % 2, number
            results.append({"image_id": k + 1, "category_id": 2 + number % 2, "score": float(rng.random()),
                            "bbox": [x + int(rng.integers(-1, 2)), y, 8, 8]})
        Image.fromarray(palette[classes]).save(root / "SegmentationClass" / f"frame_{k:06d}.png")
        Image.fromarray(np.asarray(voc_colormap(256), np.uint8)[objects]).save(
            root / "SegmentationObject" / f"frame_{k:06d}.png")
    (tmp_path / "results.json").write_text(json.dumps(results))
    converted = _converted(cli, tmp_path, root)
    (tmp_path / "gt.json").write_text(json.dumps(converted))
    via_coco = cli("metrics", tmp_path / "results.json", tmp_path / "gt.json", "--iou-type", "bbox", "-f", "json")
    direct = cli("metrics", tmp_path / "results.json", root, "--iou-type", "bbox", "-f", "json")
    assert via_coco.code == 0 and direct.code == 0, direct.stderr + via_coco.stderr
    ours, theirs = json.loads(direct.stdout), json.loads(via_coco.stdout)
    assert sorted(ours["per_class"]) == ["car", "person"]
    assert _stats(ours) == _stats(theirs) and ours["ap"] > 0
