"""Panoptic quality: equal to panopticapi's pq_compute rules, exact across shards, from files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from segtools.errors import InputError
from segtools.metrics.panoptic import PanopticEvaluation
from panoptic_reference import CAMVID_THINGS, camvid_panoptic, reference_average, reference_counts

CATEGORIES = {1: ("road", False), 3: ("sky", False), 4: ("car", True), 7: ("person", True), 9: ("bike", True)}


def _blocks(rng, shape, count):
    """A label image of ``count`` random rectangles painted over each other (labels 1..count)."""
    h, w = shape
    image = np.zeros(shape, np.int64)
    for k in range(1, count + 1):
        y, x = rng.integers(0, h), rng.integers(0, w)
        image[y:y + rng.integers(2, h // 2 + 2), x:x + rng.integers(2, w // 2 + 2)] = k
    return image


def random_image(rng, shape=(24, 32)):
    """(gt ids, gt segments, pred ids, pred segments) with VOID, crowds, near misses and extras."""
    gt_regions = _blocks(rng, shape, int(rng.integers(1, 9)))
    gt_regions[rng.random(shape) < 0.03] = 0  # scattered VOID
    gt_id_of = rng.permutation(np.arange(1, 4000))[:gt_regions.max() + 1] * int(rng.choice([1, 4099]))
    gt_id_of[0] = 0
    gt_ids = gt_id_of[gt_regions]
    gt_segments = []
    cats = list(CATEGORIES)
    for k in range(1, gt_regions.max() + 1):
        area = int((gt_regions == k).sum())
        if area == 0 and rng.random() < 0.5:
            continue  # a listed segment may be absent from the PNG (panopticapi counts it as FN)
        cid = int(rng.choice(cats))
        gt_segments.append({"id": int(gt_id_of[k]), "category_id": cid, "area": area,
                            "iscrowd": int(CATEGORIES[cid][1] and rng.random() < 0.25)})
    present = {s["id"] for s in gt_segments}
    gt_ids[~np.isin(gt_ids, list(present | {0}))] = 0
    # the prediction: the ground truth shifted, relabelled at times, with extra blocks on top
    pred_regions = np.roll(gt_regions, (int(rng.integers(-2, 3)), int(rng.integers(-2, 3))), axis=(0, 1))
    extra = _blocks(rng, shape, int(rng.integers(0, 4)))
    pred_regions = np.where(extra > 0, extra + 100, pred_regions)
    pred_regions[rng.random(shape) < 0.05] = 0
    by_region = {k: s for k, s in zip(range(1, gt_regions.max() + 1), gt_segments)}
    pred_segments = []
    pred_ids = np.zeros(shape, np.int64)
    for j, k in enumerate(np.unique(pred_regions[pred_regions > 0]).tolist()):
        pid = int(rng.integers(1, 2**24 - 1)) if rng.random() < 0.5 else j + 1
        while pid in {s["id"] for s in pred_segments}:
            pid += 1
        cid = by_region[k]["category_id"] if k in by_region and rng.random() < 0.8 else int(rng.choice(cats))
        pred_ids[pred_regions == k] = pid
        pred_segments.append({"id": pid, "category_id": cid})
    gt_order = rng.permutation(len(gt_segments))
    return gt_ids, [gt_segments[i] for i in gt_order], pred_ids, pred_segments


def random_set(seed, count=40):
    rng = np.random.default_rng(seed)
    return [random_image(rng) for _ in range(count)]


def _check_equal(evaluation: PanopticEvaluation, images):
    stats = reference_counts(images)
    for k, cid in enumerate(sorted(CATEGORIES)):
        assert evaluation.tp[k] == stats[cid].tp and evaluation.fp[k] == stats[cid].fp
        assert evaluation.fn[k] == stats[cid].fn
        assert evaluation.iou[k] == pytest.approx(stats[cid].iou, abs=1e-12)
    summary = evaluation.summary()
    for suffix, isthing in (("", None), ("_things", True), ("_stuff", False)):
        averages, per_class = reference_average(stats, CATEGORIES, isthing)
        for key in ("pq", "sq", "rq"):
            assert abs(summary[key + suffix] - averages[key]) <= 1e-9
        assert summary["n" + suffix] == averages["n"]
        for cid, values in per_class.items():
            for key in ("pq", "sq", "rq"):
                assert abs(summary["per_class"][CATEGORIES[cid][0]][key] - values[key]) <= 1e-9
    return stats


@pytest.mark.parametrize("seed", range(8))
def test_counts_equal_the_step_by_step_reference(seed):
    images = random_set(seed)
    evaluation = PanopticEvaluation(CATEGORIES)
    for image in images:
        evaluation.add_image(*image)
    stats = _check_equal(evaluation, images)
    assert sum(s.tp for s in stats.values()) > 0 and sum(s.fp for s in stats.values()) > 0


def test_generated_sets_exercise_every_rule():
    """The random sets reach the rules that differ from plain IoU matching: matches decided by
    the VOID correction, unmatched predictions forgiven by VOID + crowd, crowd matches refused."""
    corrected = forgiven_by_crowd = 0
    for gt_ids, gt_segments, pred_ids, pred_segments in random_set(0) + random_set(1):
        for p in pred_segments:
            mask = pred_ids == p["id"]
            void = int((mask & (gt_ids == 0)).sum())
            for g in gt_segments:
                inter = int((mask & (gt_ids == g["id"])).sum())
                if not inter or g["category_id"] != p["category_id"]:
                    continue
                plain = inter / (mask.sum() + g["area"] - inter)
                fixed = inter / (mask.sum() + g["area"] - inter - void)
                corrected += plain <= 0.5 < fixed and not g["iscrowd"]
                forgiven_by_crowd += bool(g["iscrowd"]) and void / mask.sum() <= 0.5 < (void + inter) / mask.sum()
    assert corrected > 0 and forgiven_by_crowd > 0


def test_crowd_kept_per_category_is_the_last_listed():
    """Two crowd segments of one class: only the last listed one forgives an unmatched prediction."""
    gt = np.array([[5, 5, 5, 5, 6, 6, 6, 6]])
    pred = np.array([[8, 8, 8, 8, 0, 0, 0, 0]])
    crowds = [{"id": 5, "category_id": 4, "iscrowd": 1}, {"id": 6, "category_id": 4, "iscrowd": 1}]
    for order, fp in ((crowds, 1), (crowds[::-1], 0)):
        evaluation = PanopticEvaluation(CATEGORIES)
        evaluation.add_image(gt, order, pred, [{"id": 8, "category_id": 4}])
        assert evaluation.fp.sum() == fp and evaluation.fn.sum() == 0
        _check_equal(evaluation, [(gt, order, pred, [{"id": 8, "category_id": 4}])])


def test_void_correction_decides_a_match():
    # gt segment 1: 4 px; prediction: 3 of them + 3 VOID px → plain IoU 3/7, panopticapi's 3/4
    gt = np.array([[1, 1, 1, 1, 0, 0, 0]])
    pred = np.array([[0, 2, 2, 2, 2, 2, 2]])
    evaluation = PanopticEvaluation(CATEGORIES)
    evaluation.add_image(gt, [{"id": 1, "category_id": 1}], pred, [{"id": 2, "category_id": 1}])
    assert evaluation.tp.tolist() == [1, 0, 0, 0, 0] and evaluation.iou[0] == 0.75


def test_shards_merge_to_the_single_run_exactly():
    images = random_set(3, 30)
    whole = PanopticEvaluation(CATEGORIES)
    shards = [PanopticEvaluation(CATEGORIES) for _ in range(3)]
    for i, image in enumerate(images):
        whole.add_image(*image)
        shards[i % 3].add_image(*image)
    states = [json.loads(json.dumps(s.state())) for s in shards]
    merged = PanopticEvaluation.from_state(states[0])
    for state in states[1:]:
        merged.merge(PanopticEvaluation.from_state(state))
    assert merged.state()["tp"] == whole.state()["tp"] and merged.images == 30
    assert merged.fp.tolist() == whole.fp.tolist() and merged.fn.tolist() == whole.fn.tolist()
    np.testing.assert_allclose(merged.iou, whole.iou, rtol=0, atol=1e-12)
    for key, value in whole.summary().items():
        if key != "per_class":
            assert merged.summary()[key] == pytest.approx(value, abs=1e-12)
    restored = PanopticEvaluation.from_state(json.loads(json.dumps(whole.state())))
    assert restored.summary() == whole.summary()


@pytest.mark.parametrize("change, message", [
    (lambda s: s.update(task="instance"), "not a panoptic state"),
    (lambda s: s.update(tp=s["tp"][:2]), "'tp' has 2 values"),
    (lambda s: s["fp"].__setitem__(0, -1), "out of range"),
    (lambda s: s["iou"].__setitem__(0, "x"), "'iou' must be a number"),
    (lambda s: s["categories"].reverse(), "by increasing id"),
    (lambda s: s.update(version=9), "version 9"),
])
def test_bad_states_are_refused(change, message):
    evaluation = PanopticEvaluation(CATEGORIES)
    evaluation.add_image(*random_set(0, 1)[0])
    state = json.loads(json.dumps(evaluation.state()))
    change(state)
    with pytest.raises(InputError, match=message):
        PanopticEvaluation.from_state(state)


def test_merge_refuses_other_categories():
    with pytest.raises(InputError, match="different categories"):
        PanopticEvaluation(CATEGORIES).merge(PanopticEvaluation({1: ("road", False)}))


def _one(gt_segments=None, pred_segments=None, gt=None, pred=None):
    gt = np.array([[1, 1, 2, 0]]) if gt is None else gt
    pred = np.array([[3, 3, 0, 0]]) if pred is None else pred
    gt_segments = gt_segments if gt_segments is not None else [
        {"id": 1, "category_id": 1, "area": 2}, {"id": 2, "category_id": 4, "area": 1}]
    pred_segments = pred_segments if pred_segments is not None else [{"id": 3, "category_id": 1}]
    PanopticEvaluation(CATEGORIES).add_image(gt, gt_segments, pred, pred_segments, name="img7")


@pytest.mark.parametrize("kwargs, message", [
    ({"pred_segments": [{"id": 3, "category_id": 2}]}, "img7: prediction: segment 3 has unknown category_id 2"),
    ({"pred_segments": [{"id": 3, "category_id": 1}, {"id": 4, "category_id": 1}]}, "segment 4 is in segments_info but not in the PNG"),
    ({"pred_segments": []}, "prediction segment id 3 is in the PNG but not in segments_info"),
    ({"gt_segments": [{"id": 1, "category_id": 1}]}, "ground truth segment id 2 is in the PNG"),
    ({"gt_segments": [{"id": 1, "category_id": 1, "area": 3}, {"id": 2, "category_id": 4}]}, "area 3 in segments_info, 2 pixels"),
    ({"pred_segments": [{"id": 3, "category_id": 1}, {"id": 3, "category_id": 1}]}, "segment id 3 is listed twice"),
    ({"pred": np.array([[3, 3, 0]])}, "prediction size"),
    ({"pred_segments": [{"id": 3}]}, "integer id and category_id"),
    ({"gt_segments": [{"id": 1, "category_id": 1, "iscrowd": 2}, {"id": 2, "category_id": 4}]}, "iscrowd must be 0 or 1"),
    ({"pred": np.array([[2**24, 0, 0, 0]])}, "above 16777215"),
])
def test_bad_images_fail_naming_the_segment(kwargs, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        _one(**kwargs)


def test_summary_of_nothing_is_zero_with_n_zero():
    summary = PanopticEvaluation(CATEGORIES).summary()
    assert summary["pq"] == 0.0 and summary["n"] == 0 and summary["n_things"] == 0
    assert set(summary["per_class"]) == {"road", "sky", "car", "person", "bike"}


def _one_segment_per_stuff_class(ids, segments, stuffs):
    """torchmetrics sees a stuff class as one segment per image: merge them (into the first's id)."""
    ids = ids.copy()
    kept, first = [], {}
    for s in segments:
        cid = s["category_id"]
        if cid in stuffs and cid in first:
            ids[ids == s["id"]] = first[cid]["id"]
            if "area" in first[cid]:
                first[cid]["area"] += s["area"]
            continue
        s = dict(s)
        first.setdefault(cid, s) if cid in stuffs else None
        kept.append(s)
    return ids, kept


def test_torchmetrics_panoptic_quality_agrees_where_conventions_match():
    """torchmetrics' PanopticQuality takes (category, instance) pixel pairs, merges each stuff class
    into one segment per image, knows no crowd, and treats an unknown category as void on *both*
    sides (it also forgives ground truth that is mostly void in the prediction, and subtracts the
    prediction's void from the union). Where conventions match — no crowd, one segment per stuff
    class, VOID only in the ground truth (category 0, unknown to it) — it counts as panopticapi."""
    torch = pytest.importorskip("torch")
    tm = pytest.importorskip("torchmetrics.detection")
    rng = np.random.default_rng(11)
    things, stuffs = {4, 7, 9}, {1, 3}
    evaluation = PanopticEvaluation(CATEGORIES)
    preds, targets = [], []
    for _ in range(12):
        gt_ids, gt_segments, pred_ids, pred_segments = random_image(rng)
        for s in gt_segments:
            s["iscrowd"] = 0
        filler = max(s["id"] for s in pred_segments) + 1 if pred_segments else 1
        pred_segments = pred_segments + [{"id": filler, "category_id": 3}]  # no VOID in the prediction
        pred_ids = np.where(pred_ids == 0, filler, pred_ids)
        gt_ids, gt_segments = _one_segment_per_stuff_class(gt_ids, gt_segments, stuffs)
        pred_ids, pred_segments = _one_segment_per_stuff_class(pred_ids, pred_segments, stuffs)
        evaluation.add_image(gt_ids, gt_segments, pred_ids, pred_segments)

        def pairs(ids, segments):
            cat = np.zeros(ids.shape, np.int64)
            inst = np.zeros(ids.shape, np.int64)
            for k, s in enumerate(segments):
                cat[ids == s["id"]] = s["category_id"]
                inst[ids == s["id"]] = k + 1
            return np.stack([cat, inst], -1)

        targets.append(pairs(gt_ids, gt_segments))
        preds.append(pairs(pred_ids, pred_segments))
    metric = tm.PanopticQuality(things=things, stuffs=stuffs, return_sq_and_rq=True, return_per_class=True)
    value = metric(torch.tensor(np.stack(preds)), torch.tensor(np.stack(targets)))
    # per class (columns pq, sq, rq): torchmetrics orders classes things then stuff, each sorted
    order = sorted(things) + sorted(stuffs)
    summary = evaluation.summary()
    assert 0 < summary["pq"] < 1 and summary["n"] == 5 and evaluation.fp.sum() > 0
    for row, cid in zip(value.reshape(-1, 3).tolist(), order):
        ours = summary["per_class"][CATEGORIES[cid][0]]
        assert row == pytest.approx([ours["pq"], ours["sq"], ours["rq"]], abs=1e-6)


# ------------------------------------------------------------------------------- files


def _write_coco_panoptic(root: Path, stem: str, images, with_categories=True) -> Path:
    from segtools.formats.coco_panoptic import ids_to_rgb
    from segtools.io.images import write_image

    (root / stem).mkdir(parents=True)
    annotations = []
    for k, (ids, segments) in enumerate(images):
        write_image(ids_to_rgb(ids), root / stem / f"img{k:03d}.png")
        annotations.append({"image_id": k + 1, "file_name": f"img{k:03d}.png", "segments_info": list(segments)})
    doc = {"annotations": annotations}
    if with_categories:
        doc["categories"] = [{"id": c, "name": n, "isthing": int(t)} for c, (n, t) in CATEGORIES.items()]
    path = root / f"{stem}.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("jobs", [1, 2])
def test_coco_panoptic_files_equal_the_reference(tmp_path, jobs):
    from segtools.metrics.panoptic_io import evaluate_panoptic_files

    images = random_set(5, 16)
    gt = _write_coco_panoptic(tmp_path, "gt", [(g, gs) for g, gs, _, _ in images])
    pred = _write_coco_panoptic(tmp_path, "pred", [(p, ps) for _, _, p, ps in images[::-1]], with_categories=False)
    # predictions listed in another order: they pair by image_id
    doc = json.loads(pred.read_text())
    for k, entry in enumerate(doc["annotations"]):
        entry["image_id"] = len(images) - k
    pred.write_text(json.dumps(doc))
    evaluation = evaluate_panoptic_files(str(pred), str(gt), jobs=jobs)
    assert evaluation.images == 16
    _check_equal(evaluation, images)


def test_coco_panoptic_folders_can_be_given(tmp_path):
    from segtools.metrics.panoptic_io import evaluate_panoptic_files

    images = random_set(6, 3)
    gt = _write_coco_panoptic(tmp_path, "gt", [(g, gs) for g, gs, _, _ in images])
    pred = _write_coco_panoptic(tmp_path, "pred", [(p, ps) for _, _, p, ps in images])
    (tmp_path / "pred").rename(tmp_path / "elsewhere")
    with pytest.raises(InputError, match="no folder of panoptic PNGs"):
        evaluate_panoptic_files(str(pred), str(gt))
    evaluation = evaluate_panoptic_files(str(pred), str(gt), pred_folder=str(tmp_path / "elsewhere"))
    _check_equal(evaluation, images)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["annotations"].pop(), "no prediction for image_id 3"),
    (lambda d: d["annotations"][0].update(image_id=99), "image_id 99 is not in the ground truth"),
    (lambda d: d["annotations"][1]["segments_info"][0].update(category_id=5), "image_id 2.*unknown category_id 5"),
    (lambda d: d["annotations"][1].update(file_name="../x.png"), "leaves its folder"),
    (lambda d: d["annotations"][1].update(image_id=1), "image_id 1 is listed twice"),
])
def test_bad_coco_panoptic_predictions_fail_naming_the_item(tmp_path, edit, message):
    from segtools.metrics.panoptic_io import evaluate_panoptic_files

    images = random_set(7, 3)
    gt = _write_coco_panoptic(tmp_path, "gt", [(g, gs) for g, gs, _, _ in images])
    pred = _write_coco_panoptic(tmp_path, "pred", [(p, ps) for _, _, p, ps in images])
    doc = json.loads(pred.read_text())
    edit(doc)
    pred.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=message):
        evaluate_panoptic_files(str(pred), str(gt))


def test_mixed_layouts_are_a_usage_error(tmp_path):
    from segtools.errors import UsageError
    from segtools.metrics.panoptic_io import evaluate_panoptic_files

    gt = _write_coco_panoptic(tmp_path, "gt", [(g, gs) for g, gs, _, _ in random_set(8, 1)])
    with pytest.raises(UsageError, match="both as COCO panoptic JSON"):
        evaluate_panoptic_files(str(tmp_path / "gt"), str(gt))


CAMVID = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"


def _camvid_masks(limit=None):
    from segtools.io.masks import read_label_mask

    if not (CAMVID / "valannot").is_dir():
        pytest.skip("CamVid data not available")
    paths = sorted((CAMVID / "valannot").glob("*.png"))[:limit]
    return [(p.name, read_label_mask(p).labels) for p in paths]


def _write_mask_pairs(folder: Path, items, names):
    from segtools.formats.instances import instance_meta
    from segtools.io.masks import write_label_mask
    from segtools.io.meta import ClassMeta

    (folder / "instances").mkdir(parents=True)
    for name, semantic, instances in items:
        write_label_mask(semantic.astype(np.uint8), folder / name, ClassMeta(names=names, ignore_index=11))
        classes = np.full(int(instances.max(initial=0)) + 1, -1, np.int64)
        classes[instances[instances > 0]] = semantic[instances > 0]
        write_label_mask(instances.astype(np.uint16), folder / "instances" / name, instance_meta(classes.tolist(), names))


def test_camvid_mask_pairs_equal_the_reference(tmp_path):
    """CamVid val masks as panoptic ground truth (things: connected components of cars,
    pedestrians, bicyclists and signs; stuff: the rest; Unlabelled = VOID); a degraded copy as
    the prediction; mask pairs and their COCO panoptic conversion both equal the reference."""
    from segtools.formats.coco_panoptic import from_masks
    from segtools.io.presets import get_preset
    from segtools.metrics.panoptic_io import evaluate_panoptic_files

    names = get_preset("camvid").names
    rng = np.random.default_rng(0)
    gt_items, pred_items, images = [], [], []
    category_ids = list(range(1, len(names) + 1))
    thing_ids = {names.index(n) + 1 for n in CAMVID_THINGS}
    for name, labels in _camvid_masks(12):
        semantic, instances = camvid_panoptic(labels)
        pred_semantic = np.roll(semantic, (int(rng.integers(-4, 5)), int(rng.integers(-4, 5))), axis=(0, 1))
        pred_semantic = np.where(rng.random(semantic.shape) < 0.02, rng.integers(0, 11, semantic.shape), pred_semantic)
        _, pred_instances = camvid_panoptic(pred_semantic)
        gt_items.append((name, semantic, instances))
        pred_items.append((name, pred_semantic, pred_instances))
        gt_ids, gt_segments = from_masks(semantic, instances, category_ids, thing_ids, 11)
        pred_ids, pred_segments = from_masks(pred_semantic, pred_instances, category_ids, thing_ids, 11)
        images.append((gt_ids, gt_segments, pred_ids, pred_segments))
    _write_mask_pairs(tmp_path / "gt", gt_items, names)
    _write_mask_pairs(tmp_path / "pred", pred_items, names)
    evaluation = evaluate_panoptic_files(str(tmp_path / "pred"), str(tmp_path / "gt"), jobs=2, things=CAMVID_THINGS)
    categories = {k + 1: (n, k + 1 in thing_ids) for k, n in enumerate(names)}
    assert evaluation.categories == categories
    stats = reference_counts(images)
    for k, cid in enumerate(sorted(categories)):
        assert (evaluation.tp[k], evaluation.fp[k], evaluation.fn[k]) == (stats[cid].tp, stats[cid].fp, stats[cid].fn)
        assert evaluation.iou[k] == pytest.approx(stats[cid].iou, abs=1e-12)
    summary = evaluation.summary()
    for suffix, isthing in (("", None), ("_things", True), ("_stuff", False)):
        averages, _ = reference_average(stats, categories, isthing)
        assert abs(summary["pq" + suffix] - averages["pq"]) <= 1e-9 and summary["n" + suffix] == averages["n"]
    assert 0.2 < summary["pq"] < 0.95 and summary["n_things"] == 4 and sum(s.fp for s in stats.values()) > 0
    # without things given, the thing classes are those the instance masks list
    listed = evaluate_panoptic_files(str(tmp_path / "pred"), str(tmp_path / "gt"))
    assert {n for n, t in listed.categories.values() if t} <= set(CAMVID_THINGS)
