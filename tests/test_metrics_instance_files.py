"""`segtools metrics` on instance files (COCO instances + results JSON, instance-id masks),
number for number against pycocotools' COCOeval; shards, gates and bad inputs."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from conftest import assert_one_line_error
from test_metrics_instance import STATS, make_set, reference

from segtools.formats import rle as rlelib
from segtools.formats.coco import segmentation_runs
from segtools.metrics.instance import Protocol
from segtools.metrics.instance_io import evaluate_instance_files

pytest.importorskip("pycocotools")


def _write(tmp_path, gt_data: dict, results: list, name: str = "") -> tuple[str, str]:
    gt, dt = tmp_path / f"gt{name}.json", tmp_path / f"dt{name}.json"
    gt.write_text(json.dumps(gt_data))
    dt.write_text(json.dumps(results))
    return str(dt), str(gt)


def _report(cli, *args) -> dict:
    result = cli("metrics", *args, "--format", "json")
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)


def _loadres(results: list, iou_type: str) -> list:
    """What pycocotools' loadRes makes of results whose first entry has a bbox: box areas."""
    out = copy.deepcopy(results)
    for d in out:
        d.pop("area", None)
    return out


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
@pytest.mark.parametrize("seed", [0, 3])
def test_cli_equals_cocoeval_on_generated_sets(cli, tmp_path, seed, iou_type):
    gt_data, results = make_set(seed, n_images=15)
    results = _loadres(results, iou_type)
    dt, gt = _write(tmp_path, gt_data, results)
    expected = reference(gt_data, results, iou_type).stats
    args = (dt, gt) if iou_type == "segm" else (dt, gt, "--iou-type", "bbox")
    report = _report(cli, *args)  # the task is recognised from the inputs
    assert report["task"] == "instance"
    np.testing.assert_allclose([report[k] for k in STATS], expected, rtol=0, atol=1e-9)
    for more in (("--task", "instance"), ("--jobs", "2")):
        again = _report(cli, *args, *more)
        np.testing.assert_allclose([again[k] for k in STATS], expected, rtol=0, atol=1e-9)


def test_results_with_polygons_and_without_bbox_follow_loadres(tmp_path):
    """No bbox in the first result: area = mask area, bbox = the mask's; polygons made RLE."""
    gt_data, results = make_set(5, n_images=10)
    for d in results:
        del d["bbox"], d["area"]
    h, w = gt_data["images"][1]["height"], gt_data["images"][1]["width"]
    polygon = {"image_id": gt_data["images"][1]["id"], "category_id": 1, "score": 0.77,
               "segmentation": [[2.0, 2.0, w / 2, 3.0, w / 2, h / 2, 3.0, h / 2]]}
    results.append(polygon)
    dt, gt = _write(tmp_path, gt_data, results)
    ref_results = copy.deepcopy(results)
    ref_results[-1]["segmentation"] = rlelib.from_runs(*segmentation_runs(polygon["segmentation"], h, w), h, w)
    for iou_type in ("segm", "bbox"):
        ours = evaluate_instance_files(dt, gt, Protocol(iou_type=iou_type)).summary()
        np.testing.assert_allclose([ours[k] for k in STATS], reference(gt_data, ref_results, iou_type).stats,
                                   rtol=0, atol=1e-9)


def test_the_fixture_coco_file_with_polygons_as_ground_truth(tmp_path):
    from pathlib import Path

    data = json.loads((Path(__file__).parent / "fixtures" / "formats" / "coco_cvat.json").read_text())
    results = []
    for k, ann in enumerate(data["annotations"]):
        image = next(im for im in data["images"] if im["id"] == ann["image_id"])
        from segtools.formats.coco import segmentation_to_mask

        mask = np.roll(segmentation_to_mask(ann["segmentation"], image["height"], image["width"]), k % 3, axis=1)
        results.append({"image_id": ann["image_id"], "category_id": ann["category_id"], "score": 0.3 + 0.1 * k,
                        "segmentation": rlelib.encode(mask)})
    dt, gt = _write(tmp_path, data, results)
    ours = evaluate_instance_files(dt, gt).summary()
    np.testing.assert_allclose([ours[k] for k in STATS], reference(data, results, "segm").stats, rtol=0, atol=1e-9)


def _write_masks(root, gt_data: dict, results: list, min_score: float = 0.0) -> None:
    """GT and detections of a COCO-like set as instance-id masks (postprocess --instances layout)."""
    from segtools.formats.instances import instance_meta
    from segtools.io.masks import write_label_mask

    (root / "gt").mkdir()
    (root / "pred").mkdir()
    names = [c["name"] for c in gt_data["categories"]]
    for image in gt_data["images"]:
        h, w = image["height"], image["width"]
        ids, classes, crowd = np.zeros((h, w), np.uint16), [-1], []
        for ann in (a for a in gt_data["annotations"] if a["image_id"] == image["id"]):
            ids[rlelib.decode(ann["segmentation"]).astype(bool)] = len(classes)
            if ann["iscrowd"]:
                crowd.append(len(classes))
            classes.append(ann["category_id"] - 1)
        write_label_mask(ids, root / "gt" / image["file_name"], instance_meta(classes, names, crowd))
        ids, classes, scores = np.zeros((h, w), np.uint16), [-1], [0.0]
        mine = sorted((d for d in results if d["image_id"] == image["id"]), key=lambda d: d["score"])
        for d in mine:  # lowest score first: the most confident instance owns contested pixels
            ids[rlelib.decode(d["segmentation"]).astype(bool)] = len(classes)
            classes.append(d["category_id"] - 1)
            scores.append(d["score"])
        meta = instance_meta(classes, names)
        meta.extra["instance_score"] = scores
        write_label_mask(ids, root / "pred" / image["file_name"], meta)


def _disjoint_set(seed: int):
    """A set whose instances do not overlap within an image (so masks hold them losslessly)."""
    gt_data, results = make_set(seed, n_images=8, tie_step=None)
    keep_gt, keep_dt = [], []
    for image in gt_data["images"]:
        taken = np.zeros((image["height"], image["width"]), bool)
        for ann in (a for a in gt_data["annotations"] if a["image_id"] == image["id"]):
            mask = rlelib.decode(ann["segmentation"]).astype(bool)
            if not (mask & taken).any():
                taken |= mask
                ann["area"] = float(mask.sum())
                ann["bbox"] = rlelib.to_bbox(ann["segmentation"])
                ann["segmentation"] = rlelib.encode(mask.astype(np.uint8))
                keep_gt.append(ann)
        taken[:] = False
        for d in sorted((d for d in results if d["image_id"] == image["id"]), key=lambda d: -d["score"]):
            mask = rlelib.decode(d["segmentation"]).astype(bool)
            if not (mask & taken).any():
                taken |= mask
                keep_dt.append({k: v for k, v in d.items() if k not in ("area", "bbox")})
    gt_data["annotations"] = [{**a, "id": k + 1} for k, a in enumerate(keep_gt)]
    return gt_data, keep_dt


def test_instance_masks_give_the_numbers_of_the_same_set_as_json(cli, tmp_path):
    gt_data, results = _disjoint_set(4)
    assert len(results) > 5 and len(gt_data["annotations"]) > 5
    _write_masks(tmp_path, gt_data, results)
    dt, gt = _write(tmp_path, gt_data, results)
    expected = reference(gt_data, results, "segm").stats
    as_json = evaluate_instance_files(dt, gt).summary()
    np.testing.assert_allclose([as_json[k] for k in STATS], expected, rtol=0, atol=1e-9)
    masks = _report(cli, str(tmp_path / "pred"), str(tmp_path / "gt"))  # recognised from the metadata
    np.testing.assert_allclose([masks[k] for k in STATS], expected, rtol=0, atol=1e-9)
    against_json = evaluate_instance_files(str(tmp_path / "pred"), gt).summary()
    np.testing.assert_allclose([against_json[k] for k in STATS], expected, rtol=0, atol=1e-9)


def test_shards_saved_and_merged_equal_one_run(cli, tmp_path):
    gt_data, results = make_set(7, n_images=18, tie_step=0.2)
    results = _loadres(results, "segm")
    dt, gt = _write(tmp_path, gt_data, results)
    whole = _report(cli, dt, gt)
    states = []
    for k in range(3):
        images = gt_data["images"][k::3]
        ids = {im["id"] for im in images}
        part = {**gt_data, "images": images, "annotations": [a for a in gt_data["annotations"] if a["image_id"] in ids]}
        shard_dt, shard_gt = _write(tmp_path, part, [d for d in results if d["image_id"] in ids], f"-{k}")
        state = tmp_path / f"state-{k}.json"
        _report(cli, shard_dt, shard_gt, "--save-state", str(state))
        states.append(str(state))
    merged = _report(cli, "merge", *states)
    assert merged["task"] == "instance"
    for key in STATS:
        assert merged[key] == pytest.approx(whole[key], abs=1e-12), key
    for name, row in whole["per_class"].items():
        assert merged["per_class"][name] == pytest.approx(row, abs=1e-12)


def test_gate_on_ap_exits_one_naming_the_gate(cli, tmp_path):
    gt_data, results = make_set(1, n_images=10)
    dt, gt = _write(tmp_path, gt_data, results)
    ap = _report(cli, dt, gt)["ap"]
    assert cli("metrics", dt, gt, "--fail-under", f"ap={ap - 0.01}", "--format", "json").code == 0
    result = cli("metrics", dt, gt, "--fail-under", f"ap={ap + 0.01}", "--format", "json")
    assert_one_line_error(result, 1)
    assert "ap " in result.stderr and "gate" in result.stderr


def _bad(entry_change):
    gt_data, results = make_set(2, n_images=6)
    results = _loadres(results, "segm")
    entry_change(results[3], gt_data)
    return gt_data, results


@pytest.mark.parametrize("change, message", [
    (lambda d, g: d.update(image_id=987654321), "[3]: image_id 987654321 is not an image of the ground truth"),
    (lambda d, g: d.update(category_id=99), "[3]: category_id 99 is not a category of the ground truth"),
    (lambda d, g: d.update(score="high"), "[3]: 'score' must be a number"),
    (lambda d, g: d.update(segmentation={"size": [3, 3], "counts": "9"}), "[3]: segmentation: RLE size [3, 3]"),
    (lambda d, g: d["segmentation"].update(counts="\x7f!"), "[3]: segmentation"),
])
def test_bad_results_are_one_line_naming_file_and_item(cli, tmp_path, change, message):
    gt_data, results = _bad(change)
    dt, gt = _write(tmp_path, gt_data, results)
    result = cli("metrics", dt, gt, "--format", "json")
    assert_one_line_error(result)
    assert "dt.json" in result.stderr and message in result.stderr, result.stderr


def test_a_mask_of_another_size_than_its_image_is_one_line(cli, tmp_path):
    gt_data, results = _disjoint_set(6)
    _write_masks(tmp_path, gt_data, results)
    dt, gt = _write(tmp_path, gt_data, results)
    from segtools.formats.instances import instance_meta
    from segtools.io.masks import write_label_mask

    name = gt_data["images"][0]["file_name"]
    meta = instance_meta([-1], [c["name"] for c in gt_data["categories"]])
    meta.extra["instance_score"] = [0.0]
    write_label_mask(np.zeros((5, 7), np.uint16), tmp_path / "pred" / name, meta)
    result = cli("metrics", str(tmp_path / "pred"), gt, "--task", "instance", "--format", "json")
    assert_one_line_error(result)
    assert name in result.stderr and "5×7" in result.stderr, result.stderr


def test_prediction_masks_map_classes_to_categories_by_name(cli, tmp_path):
    """Masks whose class_names are in another order than the ground truth's categories are
    scored by name, with the numbers of the JSON results; an unknown name is refused."""
    from segtools.formats.instances import instance_meta
    from segtools.io.masks import read_label_mask, write_label_mask

    gt_data, results = _disjoint_set(4)
    _write_masks(tmp_path, gt_data, results)
    dt, gt = _write(tmp_path, gt_data, results)
    expected = reference(gt_data, results, "segm").stats
    names = [c["name"] for c in gt_data["categories"]]
    reordered = list(reversed(names)) + ["unrelated"]
    named = tmp_path / "named"
    named.mkdir()
    for path in sorted((tmp_path / "pred").iterdir()):
        mask = read_label_mask(path)
        classes = [-1 if c < 0 else len(names) - 1 - c for c in mask.meta.extra["instance_class"]]
        meta = instance_meta(classes, reordered)
        meta.extra["instance_score"] = mask.meta.extra["instance_score"]
        write_label_mask(mask.labels, named / path.name, meta)
    by_name = evaluate_instance_files(str(named), gt).summary()
    np.testing.assert_allclose([by_name[k] for k in STATS], expected, rtol=0, atol=1e-9)
    first = next(p for p in sorted(named.iterdir()) if len(read_label_mask(p).meta.extra["instance_class"]) > 1)
    mask = read_label_mask(first)
    classes = list(mask.meta.extra["instance_class"])
    classes[1] = len(names)  # the "unrelated" class
    meta = instance_meta(classes, reordered)
    meta.extra["instance_score"] = mask.meta.extra["instance_score"]
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(named, bad)
    (bad / first.name).unlink()
    write_label_mask(mask.labels, bad / first.name, meta)
    refused = cli("metrics", str(bad), gt, "--task", "instance")
    assert_one_line_error(refused)
    assert "class 'unrelated' is not a category of the ground truth" in refused.stderr


def test_a_missing_prediction_mask_is_refused_or_counted_as_no_detections(cli, tmp_path):
    gt_data, results = _disjoint_set(4)
    _write_masks(tmp_path, gt_data, results)
    _, gt = _write(tmp_path, gt_data, results)
    first = gt_data["images"][0]
    (tmp_path / "pred" / first["file_name"]).unlink()
    refused = cli("metrics", str(tmp_path / "pred"), gt, "--task", "instance")
    assert_one_line_error(refused)
    assert first["file_name"] in refused.stderr and "--allow-missing" in refused.stderr
    counted = cli("metrics", str(tmp_path / "pred"), gt, "--task", "instance", "--allow-missing", "--format", "json")
    assert counted.code == 0, counted.stderr
    assert "1 ground-truth image(s) without a prediction mask" in counted.stderr
    kept = [d for d in results if d["image_id"] != first["id"]]
    expected = reference(gt_data, kept, "segm").stats
    report = json.loads(counted.stdout)
    np.testing.assert_allclose([report[k] for k in STATS], expected, rtol=0, atol=1e-9)


def test_results_naming_images_by_file_stem_as_ultralytics_does(cli, tmp_path):
    """Ultralytics' save_json writes ``image_id`` as the photo's stem (an int when the stem is
    a number): scored against the images of those names, the numbers of the same file by id."""
    gt_data, results = make_set(2, n_images=10)
    for k, image in enumerate(gt_data["images"]):
        image["file_name"] = f"frames/{k:06d}.jpg" if k % 2 else f"street_{k}.jpg"
    stem = {im["id"]: (int(im["file_name"][7:13]) if "frames" in im["file_name"] else im["file_name"][:-4])
            for im in gt_data["images"]}
    by_stem = [{**d, "image_id": stem[d["image_id"]]} for d in results]
    assert any(isinstance(d["image_id"], str) for d in by_stem) and any(isinstance(d["image_id"], int) for d in by_stem)
    expected = reference(gt_data, results, "segm").stats
    dt, gt = _write(tmp_path, gt_data, by_stem)
    report = _report(cli, dt, gt)
    np.testing.assert_allclose([report[k] for k in STATS], expected, rtol=0, atol=1e-9)

    unknown = by_stem + [{**by_stem[0], "image_id": "not_an_image"}]
    dt, gt = _write(tmp_path, gt_data, unknown, "_unknown")
    result = cli("metrics", dt, gt)
    assert_one_line_error(result)
    assert f"[{len(by_stem)}]: image_id 'not_an_image' is neither an image id nor the file-name stem" in result.stderr

    named = next(d["image_id"] for d in by_stem if isinstance(d["image_id"], str))
    twice = copy.deepcopy(gt_data)  # two images of one stem: that stem names no image
    twice["images"][1]["file_name"] = f"elsewhere/{named}.jpg"
    dt, gt = _write(tmp_path, twice, [d for d in by_stem if d["image_id"] == named], "_twice")
    result = cli("metrics", dt, gt)
    assert_one_line_error(result)
    assert f"image_id {named!r} is not an image of the ground truth" in result.stderr
