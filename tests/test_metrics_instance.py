"""Instance evaluation (COCO AP/AR) against pycocotools' COCOeval, number for number."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest

from segtools.errors import InputError, UsageError
from segtools.formats import rle as rlelib
from segtools.metrics.instance import InstanceEvaluation, Protocol

pytest.importorskip("pycocotools")

FIXTURES = Path(__file__).parent / "fixtures" / "formats"
STATS = ["ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large",
         "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large"]


def _ellipse(rng, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    cy, cx, ry, rx = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(2, h / 2), rng.uniform(2, w / 2)
    return (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1).astype(np.uint8)


def make_set(seed: int, n_images: int = 12, n_cats: int = 4, crowd_rate: float = 0.1, tie_step: float | None = 0.1,
             max_dt: int = 12) -> tuple[dict, list[dict]]:
    """A COCO-like GT and results: objects of all three area ranges (images 40..260 × 40..300),
    crowds with uncompressed counts, GT areas that differ from the mask's, scores on a
    coarse grid (ties), empty images, images with only GT or only detections, a category
    without GT, detections of the wrong class, image ids out of file order."""
    rng = np.random.default_rng(seed)
    images, gts, dts = [], [], []
    for i in range(n_images):
        h, w = int(rng.integers(40, 260)), int(rng.integers(40, 300))
        image_id = int(rng.integers(1000)) * 100 + i
        images.append({"id": image_id, "file_name": f"im{i}.png", "height": h, "width": w})
        kind = i % 5  # 0: empty, 1: only GT, 2: only detections, else both
        objects = []
        for _ in range(0 if kind in (0, 2) else int(rng.integers(1, 8))):
            mask = _ellipse(rng, h, w)
            if mask.sum() == 0:
                continue
            category, crowd = int(rng.integers(1, n_cats)), int(rng.random() < crowd_rate)
            segmentation = rlelib.encode(mask, compressed=not crowd)
            area = float(mask.sum()) * float(rng.choice([1.0, 1.0, rng.uniform(0.7, 1.3)]))
            gts.append({"id": len(gts) + 1, "image_id": image_id, "category_id": category, "iscrowd": crowd,
                        "segmentation": segmentation, "area": area, "bbox": rlelib.to_bbox(segmentation)})
            objects.append((mask, category))
        for _ in range(0 if kind in (0, 1) else int(rng.integers(1, max_dt))):
            if objects and rng.random() < 0.7:
                mask, category = objects[int(rng.integers(len(objects)))]
                mask = np.roll(mask, (int(rng.integers(-4, 5)), int(rng.integers(-4, 5))), (0, 1))
                if rng.random() < 0.2:
                    category = int(rng.integers(1, n_cats + 1))
            else:
                yy, xx = np.mgrid[:h, :w]
                mask = ((np.abs(yy - rng.uniform(0, h)) < rng.uniform(1, h / 3))
                        & (np.abs(xx - rng.uniform(0, w)) < rng.uniform(1, w / 3))).astype(np.uint8)
                category = int(rng.integers(1, n_cats + 1))
            if mask.sum() == 0:
                continue
            score = float(np.round(rng.random() / tie_step) * tie_step) if tie_step else float(rng.random())
            segmentation = rlelib.encode(mask)
            box = rlelib.to_bbox(segmentation)
            dts.append({"image_id": image_id, "category_id": category, "segmentation": segmentation,
                        "score": score, "bbox": box, "area": box[2] * box[3]})  # loadRes: area of the box
    categories = [{"id": c + 1, "name": f"class{c + 1}"} for c in range(n_cats)]
    return {"images": images, "annotations": gts, "categories": categories}, dts


def reference(gt_data: dict, results: list[dict], iou_type: str = "segm", **params):
    """pycocotools COCOeval after evaluate, accumulate and summarize (its printing silenced)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(gt_data)
        gt.createIndex()
        evaluation = COCOeval(gt, gt.loadRes(copy.deepcopy(results)), iou_type)
        for key, value in params.items():
            setattr(evaluation.params, key, value)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation


def evaluate(gt_data: dict, results: list[dict], protocol: Protocol, images=None) -> InstanceEvaluation:
    evaluation = InstanceEvaluation(protocol, {c["id"]: c["name"] for c in gt_data["categories"]})
    gt_of, dt_of = {}, {}
    for ann in gt_data["annotations"]:
        gt_of.setdefault(ann["image_id"], []).append(ann)
    for ann in results:
        dt_of.setdefault(ann["image_id"], []).append(ann)
    for image in images if images is not None else gt_data["images"]:
        evaluation.add_image(gt_of.get(image["id"], []), dt_of.get(image["id"], []), image_id=image["id"])
    return evaluation


def assert_equal(ours: InstanceEvaluation, ref) -> None:
    precision, recall = ours.precision_recall()
    assert precision.shape == ref.eval["precision"].shape
    np.testing.assert_allclose(precision, ref.eval["precision"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(recall, ref.eval["recall"], rtol=0, atol=1e-12)
    summary = ours.summary()
    np.testing.assert_allclose([summary[k] for k in STATS], ref.stats, rtol=0, atol=1e-9)


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
@pytest.mark.parametrize("seed", range(5))
def test_equal_to_cocoeval_on_generated_sets(seed, iou_type):
    gt_data, results = make_set(seed)
    assert {a["iscrowd"] for a in gt_data["annotations"]} == {0, 1} or seed
    ours = evaluate(gt_data, results, Protocol(iou_type=iou_type))
    ref = reference(gt_data, results, iou_type)
    assert_equal(ours, ref)
    assert ours.summary()["ap"] > 0.01  # not a comparison of two empty results


def test_sets_cover_every_area_range_crowds_and_ties():
    gt_data, results = make_set(0, n_images=30)
    areas = np.array([a["area"] for a in gt_data["annotations"]])
    assert (areas < 32 ** 2).any() and ((areas > 32 ** 2) & (areas < 96 ** 2)).any() and (areas > 96 ** 2).any()
    assert any(a["iscrowd"] for a in gt_data["annotations"])
    scores = [d["score"] for d in results]
    assert len(set(scores)) < len(scores)
    assert_equal(evaluate(gt_data, results, Protocol()), reference(gt_data, results))


@pytest.mark.parametrize("seed", range(5, 13))
def test_many_crowds_and_heavy_ties(seed):
    gt_data, results = make_set(seed, n_images=8, crowd_rate=0.4, tie_step=0.25)
    assert_equal(evaluate(gt_data, results, Protocol()), reference(gt_data, results))


def test_more_detections_than_max_dets_and_distinct_scores():
    gt_data, results = make_set(21, n_images=6, max_dt=160, tie_step=None)
    per_image = np.bincount([d["image_id"] % 100 for d in results])
    assert per_image.max() > 100
    assert_equal(evaluate(gt_data, results, Protocol()), reference(gt_data, results))


def test_other_protocols_match_cocoeval_arrays():
    gt_data, results = make_set(8, n_images=20)
    thresholds = np.array([0.0, 0.3, 0.5, 0.75, 0.9, 1.0])
    protocol = Protocol(max_dets=(1, 3, 5), iou_thresholds=tuple(thresholds),
                        area_ranges={"all": (0, 1e10), "mid": (100, 2000)})
    ref = reference(gt_data, results, maxDets=[1, 3, 5], iouThrs=thresholds, areaRng=[[0, 1e10], [100, 2000]],
                    areaRngLbl=["all", "mid"])
    precision, recall = evaluate(gt_data, results, protocol).precision_recall()
    np.testing.assert_array_equal(precision, ref.eval["precision"])
    np.testing.assert_array_equal(recall, ref.eval["recall"])
    summary = evaluate(gt_data, results, protocol).summary()
    assert set(summary) >= {"ap", "ap50", "ap75", "ap_mid", "ar1", "ar3", "ar5", "ar_mid", "per_class"}


def test_category_without_gt_is_minus_one_and_left_out():
    gt_data, results = make_set(2)
    summary = evaluate(gt_data, results, Protocol()).summary()
    assert summary["per_class"]["class4"] == {"ap": -1.0, "ap50": -1.0, "ar100": -1.0}
    assert summary["per_class"]["class1"]["ap"] >= 0


def test_the_fixture_coco_file_against_itself_and_a_shifted_copy():
    from segtools.formats import coco as cocolib

    data = json.loads((FIXTURES / "coco_cvat.json").read_text())
    sizes = {im["id"]: (im["height"], im["width"]) for im in data["images"]}
    for ann in data["annotations"]:  # COCOeval turns polygons into RLE with the image's size
        h, w = sizes[ann["image_id"]]
        ann["segmentation"] = rlelib.from_runs(*cocolib.segmentation_runs(ann["segmentation"], h, w), h, w)
    results = []
    for k, ann in enumerate(data["annotations"]):
        h, w = sizes[ann["image_id"]]
        mask = np.roll(rlelib.decode(ann["segmentation"]), k % 2, axis=1)
        results.append({"image_id": ann["image_id"], "category_id": ann["category_id"], "score": 0.5 + 0.1 * k,
                        "segmentation": rlelib.encode(mask)})
    for iou_type in ("segm", "bbox"):
        dts = copy.deepcopy(results)
        if iou_type == "bbox":
            for d in dts:
                d["bbox"] = rlelib.to_bbox(d["segmentation"])
        for d in dts:  # what loadRes sets
            d["area"] = d["bbox"][2] * d["bbox"][3] if iou_type == "bbox" else rlelib.area(d["segmentation"])
        assert_equal(evaluate(data, dts, Protocol(iou_type=iou_type)), reference(data, dts, iou_type))


def test_shards_merged_through_json_state_equal_one_run():
    gt_data, results = make_set(11, n_images=30, tie_step=0.2)
    whole = evaluate(gt_data, results, Protocol())
    shards = []
    for k in range(3):  # interleaved shards: ties across images must still order as one run
        images = gt_data["images"][k::3]
        state = json.loads(json.dumps(evaluate(gt_data, results, Protocol(), images).state()))
        assert state["task"] == "instance"
        shards.append(InstanceEvaluation.from_state(state))
    merged = shards[0].merge(shards[1]).merge(shards[2])
    assert merged.summary() == whole.summary()
    np.testing.assert_array_equal(merged.precision_recall()[0], whole.precision_recall()[0])


def test_merge_refuses_other_protocols_and_categories():
    a = InstanceEvaluation(Protocol(), {1: "a"})
    with pytest.raises(InputError, match="protocols"):
        a.merge(InstanceEvaluation(Protocol(iou_type="bbox"), {1: "a"}))
    with pytest.raises(InputError, match="categories"):
        a.merge(InstanceEvaluation(Protocol(), {1: "b"}))
    with pytest.raises(InputError, match="not an instance-evaluation state"):
        InstanceEvaluation.from_state({"task": "panoptic"})
    state = a.state()
    state["n_gt"] = "x"
    with pytest.raises(InputError, match="malformed"):
        InstanceEvaluation.from_state(state)


def test_streaming_batches_give_the_numbers_of_one_batch():
    gt_data, results = make_set(4, n_images=25)
    one = evaluate(gt_data, results, Protocol())
    small = InstanceEvaluation(Protocol(), {c["id"]: c["name"] for c in gt_data["categories"]})
    small.batch_images = 3
    gt_of = {}
    for ann in gt_data["annotations"]:
        gt_of.setdefault(ann["image_id"], []).append(ann)
    for image in gt_data["images"]:
        small.add_image(gt_of.get(image["id"], []), [d for d in results if d["image_id"] == image["id"]],
                        image_id=image["id"])
    assert small.summary() == one.summary()


SQUARE = {"size": [4, 4], "counts": "52203"}


@pytest.mark.parametrize("dt, message", [
    ({"category_id": 9, "segmentation": SQUARE, "score": 0.5}, "detection 0: category_id 9 is not one of"),
    ({"category_id": 1, "segmentation": {"size": [4, 4], "counts": "5220"}, "score": 0.5}, "detection 0: RLE counts cover"),
    ({"category_id": 1, "segmentation": {"size": [4, 4], "counts": "5\x7f"}, "score": 0.5}, "detection 0: RLE counts string"),
    ({"category_id": 1, "segmentation": SQUARE, "score": "high"}, "detection 0: needs an integer category_id and a numeric score"),
    ({"category_id": 1, "segmentation": rlelib.encode(np.ones((5, 4))), "score": 0.5}, "detection 0 is 5×4 but"),
    ({"category_id": 1, "segmentation": [[0, 0, 1, 0, 1, 1]], "score": 0.5}, "detection 0: segmentation must be an RLE"),
])
def test_bad_detections_name_the_image_and_item(dt, message):
    evaluation = InstanceEvaluation(Protocol(), {1: "a"})
    evaluation.add_image([{"category_id": 1, "segmentation": SQUARE, "area": 4, "iscrowd": 0}], [dt], where="x.png")
    with pytest.raises(InputError, match="^x.png: " + message.replace("(", r"\(")):
        evaluation.summary()


def test_protocol_options():
    assert Protocol.parse(None, None, None) == Protocol()
    assert Protocol.parse("0.5:0.95:0.05", "1,10,100", "all=0:1e10,small=0:1024,medium=1024:9216,large=9216:1e10") \
        == Protocol()
    assert Protocol.parse("0.5", "300", "all=0:inf").area_ranges == {"all": (0.0, float("inf"))}
    for bad in [("1.5", None, None), ("a", None, None), (None, "0", None), (None, "x", None), (None, None, "small=5")]:
        with pytest.raises(UsageError):
            Protocol.parse(*bad)
    with pytest.raises(UsageError, match="iou_type"):
        Protocol(iou_type="keypoints")
