"""The metrics library: exact confusion, scores cross-checked with torchmetrics/scikit-learn,
conventions for ignore and absent classes, boundary and distance metrics, gates."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from segtools.errors import InputError, UsageError
from segtools.labels import remap_labels
from segtools.metrics.boundary import band_width, boundary_counts, boundary_scores
from segtools.metrics.confusion import ConfusionAccumulator, confusion_and_missed, confusion_matrix
from segtools.metrics.distances import distance_sums, surface_scores
from segtools.metrics.evaluate import load_label_map
from segtools.metrics.gates import evaluate_baseline, evaluate_gates, parse_gate
from segtools.metrics.scores import scores

CAMVID_CLASSES, CAMVID_IGNORE = 11, 11


def perturb(gt: np.ndarray, rng: np.random.Generator, noise: float = 0.05) -> np.ndarray:
    """A plausible prediction: shifted 3 px right, 5% random labels, class 10 never predicted."""
    pred = np.roll(gt, 3, axis=1).copy()
    flip = rng.random(gt.shape) < noise
    pred[flip] = rng.integers(0, CAMVID_CLASSES, int(flip.sum()))
    pred[pred == CAMVID_IGNORE] = 0
    pred[pred == 10] = 9
    return pred


@pytest.fixture(scope="module")
def camvid_pairs():
    from conftest import CAMVID

    if not (CAMVID / "valannot").is_dir():
        pytest.skip("../shared/data/camvid is not present beside the project")
    import cv2

    rng = np.random.default_rng(0)
    files = sorted((CAMVID / "valannot").glob("*.png"))[:4]
    gts = [cv2.imread(str(f), cv2.IMREAD_UNCHANGED) for f in files]
    return [(perturb(g, rng), g) for g in gts]


# ------------------------------------------------------------------ confusion matrix


def test_confusion_matches_sklearn_and_torchmetrics_on_camvid(camvid_pairs):
    from sklearn.metrics import confusion_matrix as sk_confusion

    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from torchmetrics.classification import MulticlassConfusionMatrix

    ours = sum(confusion_matrix(p, g, CAMVID_CLASSES, CAMVID_IGNORE) for p, g in camvid_pairs)
    preds = np.stack([p for p, _ in camvid_pairs])
    gts = np.stack([g for _, g in camvid_pairs])
    keep = gts != CAMVID_IGNORE
    np.testing.assert_array_equal(ours, sk_confusion(gts[keep], preds[keep], labels=range(CAMVID_CLASSES)))
    tm = MulticlassConfusionMatrix(num_classes=CAMVID_CLASSES, ignore_index=CAMVID_IGNORE)(
        torch.from_numpy(preds.astype(np.int64)), torch.from_numpy(gts.astype(np.int64)))
    np.testing.assert_array_equal(ours, tm.numpy())


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.int64, bool])
def test_wide_dtypes_agree_with_uint8_path(dtype):
    rng = np.random.default_rng(1)
    gt = rng.integers(0, 2, (64, 80)).astype(np.uint8)
    pred = rng.integers(0, 2, (64, 80)).astype(np.uint8)
    expected = confusion_matrix(pred, gt, 2)
    np.testing.assert_array_equal(confusion_matrix(pred.astype(dtype), gt.astype(dtype), 2), expected)


def test_labels_past_255_use_the_general_path():
    rng = np.random.default_rng(2)
    gt = rng.integers(0, 300, (50, 60)).astype(np.uint16)
    pred = gt.copy()
    pred[:5] = 299
    conf = confusion_matrix(pred, gt, 300, ignore_index=None)
    keep = np.ones(gt.shape, bool)
    expected = np.bincount(gt[keep].astype(np.int64) * 300 + pred[keep], minlength=300 * 300).reshape(300, 300)
    np.testing.assert_array_equal(conf, expected)


def test_counts_stay_exact_past_2_to_the_24():
    # 20 000 000 pixels of one class: float32 (calcHist's output) cannot hold 19 999 999.
    gt = np.ones((5000, 4000), np.uint8)
    pred = gt.copy()
    pred[0, 0] = 0
    conf = confusion_matrix(pred, gt, 2)
    assert conf.dtype == np.int64
    assert conf[1, 1] == 19_999_999 and conf[1, 0] == 1 and conf.sum() == 20_000_000


def test_ignored_ground_truth_is_skipped_and_ignored_prediction_is_a_miss():
    gt = np.array([[0, 1, 255, 1]], np.uint8)
    pred = np.array([[0, 255, 1, 1]], np.uint8)
    conf, missed = confusion_and_missed(pred, gt, 2)
    assert conf.tolist() == [[1, 0], [0, 1]]
    assert missed.tolist() == [0, 1]
    report = scores(conf, missed=missed)
    assert report["per_class"][1]["gt_pixels"] == 2
    assert report["per_class"][1]["recall"] == 0.5
    assert report["pixel_accuracy"] == pytest.approx(2 / 3)


def test_several_ignore_values():
    gt = np.array([[0, 1, 7, 9]], np.uint8)
    pred = np.array([[0, 1, 1, 1]], np.uint8)
    assert confusion_matrix(pred, gt, 2, ignore_index=[7, 9]).tolist() == [[1, 0], [0, 1]]


@pytest.mark.parametrize("side", ["gt", "pred"])
def test_a_value_neither_class_nor_ignored_is_an_error_naming_it(side):
    gt = np.zeros((4, 4), np.uint8)
    pred = np.zeros((4, 4), np.uint8)
    (gt if side == "gt" else pred)[1, 1] = 42
    with pytest.raises(InputError, match=r"label value 42 \(1 pixels\)"):
        confusion_matrix(pred, gt, 3)
    with pytest.raises(InputError, match="label value 42"):
        confusion_matrix(pred.astype(np.int32), gt.astype(np.int32), 3)


def test_different_sizes_are_an_error():
    with pytest.raises(InputError, match="same size"):
        confusion_matrix(np.zeros((4, 5), np.uint8), np.zeros((5, 4), np.uint8), 2)


def test_accumulator_sums_images():
    acc = ConfusionAccumulator(2)
    acc.update(np.array([[0, 1]]), np.array([[0, 1]]))
    acc.update(np.array([[1, 1]]), np.array([[0, 1]]))
    assert acc.confusion.tolist() == [[1, 1], [0, 2]] and acc.images == 2


# ------------------------------------------------------------------------------ scores


def test_scores_match_torchmetrics_on_camvid(camvid_pairs):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from torchmetrics import classification as tmc

    conf = sum(confusion_matrix(p, g, CAMVID_CLASSES, CAMVID_IGNORE) for p, g in camvid_pairs)
    report = scores(conf)
    preds = torch.from_numpy(np.stack([p for p, _ in camvid_pairs]).astype(np.int64))
    gts = torch.from_numpy(np.stack([g for _, g in camvid_pairs]).astype(np.int64))
    common = {"num_classes": CAMVID_CLASSES, "ignore_index": CAMVID_IGNORE}
    for metric, key in [(tmc.MulticlassJaccardIndex, "iou"), (tmc.MulticlassF1Score, "dice"),
                        (tmc.MulticlassPrecision, "precision"), (tmc.MulticlassRecall, "recall")]:
        expected = metric(average=None, **common)(preds, gts).numpy()
        np.testing.assert_allclose([row[key] for row in report["per_class"]], expected, atol=1e-6)
    assert report["per_class"][10]["precision"] == 0.0  # in GT, never predicted
    assert report["miou"] == pytest.approx(tmc.MulticlassJaccardIndex(average="macro", **common)(preds, gts).item(), abs=1e-6)
    assert report["pixel_accuracy"] == pytest.approx(tmc.MulticlassAccuracy(average="micro", **common)(preds, gts).item(), abs=1e-6)
    assert report["mean_class_accuracy"] == pytest.approx(tmc.MulticlassAccuracy(average="macro", **common)(preds, gts).item(), abs=1e-6)
    assert report["kappa"] == pytest.approx(tmc.MulticlassCohenKappa(**common)(preds, gts).item(), abs=1e-6)


def test_scores_match_sklearn_on_camvid(camvid_pairs):
    from sklearn import metrics as skm

    conf = sum(confusion_matrix(p, g, CAMVID_CLASSES, CAMVID_IGNORE) for p, g in camvid_pairs)
    report = scores(conf)
    preds = np.concatenate([p.ravel() for p, _ in camvid_pairs])
    gts = np.concatenate([g.ravel() for _, g in camvid_pairs])
    keep = gts != CAMVID_IGNORE
    y_true, y_pred = gts[keep], preds[keep]
    labels = list(range(CAMVID_CLASSES))
    np.testing.assert_allclose([r["iou"] for r in report["per_class"]],
                               skm.jaccard_score(y_true, y_pred, labels=labels, average=None, zero_division=0))
    np.testing.assert_allclose([r["dice"] for r in report["per_class"]],
                               skm.f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0))
    assert report["mean_dice"] == pytest.approx(skm.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))
    assert report["pixel_accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert report["kappa"] == pytest.approx(skm.cohen_kappa_score(y_true, y_pred))
    iou = skm.jaccard_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    frequency = np.bincount(y_true, minlength=CAMVID_CLASSES) / y_true.size
    assert report["fw_iou"] == pytest.approx(float((frequency * iou).sum()))


def test_absent_classes_follow_the_documented_convention():
    # class 0 in both, class 1 predicted only, class 2 absent from both
    conf = np.array([[3, 1, 0], [0, 0, 0], [0, 0, 0]])
    report = scores(conf, ["a", "b", "c"])
    rows = report["per_class"]
    assert rows[0]["iou"] == 0.75
    assert rows[1]["iou"] == 0.0 and rows[1]["recall"] == 0.0 and rows[1]["precision"] == 0.0
    assert all(math.isnan(rows[2][k]) for k in ("iou", "dice", "precision", "recall", "accuracy"))
    assert report["miou"] == pytest.approx(0.375)  # mean of 0.75 and 0; class c left out


def test_nothing_scored_gives_nan_not_a_crash():
    report = scores(np.zeros((2, 2), np.int64))
    assert math.isnan(report["miou"]) and math.isnan(report["pixel_accuracy"])


# ---------------------------------------------------------------------------- boundary


def _cheng_mask_to_boundary(mask: np.ndarray, dilation: int) -> np.ndarray:
    """The reference formulation of Boundary IoU's inner band (Cheng et al. 2021)."""
    import cv2

    padded = cv2.copyMakeBorder(mask.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=dilation)[1:-1, 1:-1]
    return mask.astype(np.uint8) - eroded


def test_boundary_iou_matches_the_per_class_reference(camvid_pairs):
    pred, gt = camvid_pairs[0]
    pred, gt = pred[:120, :160], gt[:120, :160]
    counts = boundary_counts(pred, gt, CAMVID_CLASSES, CAMVID_IGNORE, dilation_ratio=0.02)
    dilation = band_width(*gt.shape, 0.02)
    scored = gt != CAMVID_IGNORE
    for cls in range(CAMVID_CLASSES):
        g = _cheng_mask_to_boundary(gt == cls, dilation).astype(bool) & scored
        p = _cheng_mask_to_boundary(pred == cls, dilation).astype(bool) & scored
        assert counts["biou_intersection"][cls] == np.count_nonzero(g & p)
        assert counts["biou_union"][cls] == np.count_nonzero(g | p)


def test_boundary_f1_matches_brute_force_matching(camvid_pairs):
    from scipy import ndimage

    pred, gt = camvid_pairs[1]
    pred, gt = pred[100:200, 100:220], gt[100:200, 100:220]
    counts = boundary_counts(pred, gt, CAMVID_CLASSES, CAMVID_IGNORE, tolerance=2)
    scored = gt != CAMVID_IGNORE

    def edges(labels, cls):
        mask = labels == cls
        other = ndimage.grey_dilation(labels, size=3, mode="nearest") != ndimage.grey_erosion(labels, size=3, mode="nearest")
        return mask & other & scored

    for cls in range(CAMVID_CLASSES):
        g, p = edges(gt, cls), edges(pred, cls)
        assert counts["bf_gt_total"][cls] == g.sum() and counts["bf_pred_total"][cls] == p.sum()
        if g.any() and p.any():
            assert counts["bf_pred_hits"][cls] == np.count_nonzero(p & (ndimage.distance_transform_edt(~g) <= 2))
            assert counts["bf_gt_hits"][cls] == np.count_nonzero(g & (ndimage.distance_transform_edt(~p) <= 2))


def test_boundary_scores_of_a_perfect_prediction_are_one():
    gt = np.zeros((40, 40), np.uint8)
    gt[10:30, 5:25] = 1
    per_class = boundary_scores(boundary_counts(gt, gt, 3))
    assert per_class["boundary_f1"][1] == 1.0 and per_class["boundary_iou"][1] == 1.0
    assert math.isnan(per_class["boundary_f1"][2]) and math.isnan(per_class["boundary_iou"][2])


# --------------------------------------------------------------------------- distances


def test_hd95_assd_nsd_against_brute_force():
    from scipy.spatial.distance import cdist

    gt = np.zeros((40, 50), bool)
    gt[10:25, 10:30] = True
    pred = np.zeros_like(gt)
    pred[12:28, 13:33] = True
    spacing = (0.5, 2.0)
    hd95, assd, nsd = surface_scores(pred, gt, spacing, tolerance=2.0)

    def surface_points(mask):
        from scipy import ndimage

        edge = mask & ~ndimage.binary_erosion(mask, border_value=0)
        return np.argwhere(edge) * np.asarray(spacing)

    d = cdist(surface_points(gt), surface_points(pred))
    gt_to_pred, pred_to_gt = d.min(axis=1), d.min(axis=0)
    assert hd95 == pytest.approx(max(np.percentile(gt_to_pred, 95), np.percentile(pred_to_gt, 95)))
    pooled = np.concatenate([gt_to_pred, pred_to_gt])
    assert assd == pytest.approx(pooled.mean())
    assert nsd == pytest.approx(np.mean(pooled <= 2.0))


def test_distance_empty_mask_conventions():
    empty = np.zeros((30, 40), bool)
    full = empty.copy()
    full[5:10, 5:10] = True
    assert all(math.isnan(v) for v in surface_scores(empty, empty))
    assert surface_scores(empty, full, (1.0, 1.0)) == (50.0, 50.0, 0.0)  # diagonal of 30×40
    sums = distance_sums(full.astype(np.uint8), full.astype(np.uint8), 3)
    assert sums["count"].tolist() == [1, 1, 0] and sums["nsd_sum"][1] == 1.0


# ------------------------------------------------------------------------- gates, maps


def test_gate_grammar():
    gate = parse_gate("iou:Car=0.6")
    assert (gate.key, gate.cls, gate.threshold) == ("iou", "Car", 0.6)
    assert parse_gate("acc=0.9").key == "pixel_accuracy"
    assert parse_gate("dice=0.5").key == "mean_dice"
    assert parse_gate("hd95=5", "max").direction == "max"
    for bad in ("miou", "miou=x", "nope=1", "hd95=3", "iou:=1"):
        with pytest.raises(UsageError):
            parse_gate(bad)


def test_gates_evaluate_by_name_and_index_and_nan_fails():
    report = scores(np.array([[3, 1, 0], [0, 4, 0], [0, 0, 0]]), ["bg", "car", "bus"])
    results = evaluate_gates(report, [parse_gate("miou=0.7"), parse_gate("iou:car=0.81"),
                                      parse_gate("iou:0=0.75"), parse_gate("iou:bus=0.1")])
    assert [r["passed"] for r in results] == [True, False, True, False]
    assert results[1]["margin"] == pytest.approx(-0.01)
    with pytest.raises(UsageError, match="not a class"):
        evaluate_gates(report, [parse_gate("iou:truck=0.5")])


def test_baseline_gate_fails_on_a_drop_beyond_max_drop():
    before = {"miou": 0.70, "pixel_accuracy": 0.9, "mean_dice": 0.8}
    now = {"miou": 0.685, "pixel_accuracy": 0.9, "mean_dice": 0.8}
    assert all(r["passed"] for r in evaluate_baseline(now, before, 0.02, []))
    failed = [r for r in evaluate_baseline(now, before, 0.01, []) if not r["passed"]]
    assert [r["metric"] for r in failed] == ["miou"] and failed[0]["drop"] == pytest.approx(0.015)


def test_label_map_forms(tmp_path: Path):
    assert load_label_map("cityscapes")[1][load_label_map("cityscapes")[0].index(7)] == 0
    (tmp_path / "map.txt").write_text("1 0\n2 255\n")
    assert load_label_map(str(tmp_path / "map.txt")) == ((1, 2), (0, 255))
    labels = np.array([[0, 1, 2, 3]], np.uint8)
    assert remap_labels(labels, (1, 2), (0, 255)).tolist() == [[0, 0, 255, 3]]
    assert remap_labels(labels.astype(np.int32) - 1, (-1,), (9,)).tolist() == [[9, 0, 1, 2]]
    with pytest.raises(InputError):
        load_label_map("1:2:3")


def _bincount_confusion(gt: np.ndarray, pred: np.ndarray, classes: int) -> np.ndarray:
    flat = gt.astype(np.int64).ravel() * classes + pred.ravel()
    return np.bincount(flat, minlength=classes * classes).reshape(classes, classes)


@pytest.mark.parametrize("shape", [(101, 103), (64, 128), (1, 9001), (3, 3)])
def test_interleaved_histogram_counts_every_pixel_once(shape):
    """The interleaved feeding order (odd and even sizes, tiny and long) changes no count."""
    rng = np.random.default_rng(sum(shape))
    gt = rng.integers(0, 7, shape).astype(np.uint8)
    pred = rng.integers(0, 7, shape).astype(np.uint8)
    np.testing.assert_array_equal(confusion_matrix(pred, gt, 7, None), _bincount_confusion(gt, pred, 7))


@pytest.mark.parametrize("pixels", [8192, 8193, 3 * 4096 + 5, 10 * 4096, 10 * 4096 + 1, 1 << 20])
def test_blocks_change_no_count(monkeypatch, pixels):
    """Small blocks (every boundary case: odd sizes, a short last block) count each pixel
    exactly once, and the scratch buffers of one call never leak into the next."""
    from segtools.metrics import confusion

    monkeypatch.setattr(confusion, "BLOCK", 4096)
    rng = np.random.default_rng(pixels)
    for classes in (5, 19):
        gt = rng.integers(0, classes, pixels).astype(np.uint8)
        pred = rng.integers(0, classes, pixels).astype(np.uint8)
        expected = _bincount_confusion(gt, pred, classes)
        np.testing.assert_array_equal(confusion_matrix(pred, gt, classes, None), expected)


def test_counts_on_a_real_mask_do_not_depend_on_opencv_threads(camvid_pairs):
    """A CamVid pair scaled to 1024×2048 counts the same with OpenCV's threads set to 1 or
    2 (the kernel itself is single-threaded), and as numpy."""
    import cv2

    pred, gt = camvid_pairs[0]
    gt = cv2.resize(gt, (2048, 1024), interpolation=cv2.INTER_NEAREST)
    pred = cv2.resize(pred, (2048, 1024), interpolation=cv2.INTER_NEAREST)
    saved = cv2.getNumThreads()
    try:
        results = []
        for threads in (1, 2):
            cv2.setNumThreads(threads)
            results.append(confusion_and_missed(pred, gt, CAMVID_CLASSES, CAMVID_IGNORE))
    finally:
        cv2.setNumThreads(saved)
    keep = gt != CAMVID_IGNORE
    scored = keep & (pred != CAMVID_IGNORE)
    expected = _bincount_confusion(gt[scored], pred[scored], CAMVID_CLASSES)
    for confusion, missed in results:
        np.testing.assert_array_equal(confusion, expected)
        np.testing.assert_array_equal(missed, np.bincount(gt[keep & ~scored], minlength=CAMVID_CLASSES))


def test_concurrent_callers_get_their_own_counts():
    """Callers on several threads at once do not share scratch buffers: each gets exactly
    its own image's counts."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(7)
    images = [(rng.integers(0, 19, (1024, 1024)).astype(np.uint8),
               rng.integers(0, 19, (1024, 1024)).astype(np.uint8)) for _ in range(6)]
    expected = [_bincount_confusion(gt, pred, 19) for gt, pred in images]
    with ThreadPoolExecutor(max_workers=4) as callers:
        for _ in range(3):
            results = list(callers.map(lambda pair: confusion_matrix(pair[1], pair[0], 19, None), images))
            for got, want in zip(results, expected):
                np.testing.assert_array_equal(got, want)


def _confusion_in_child(queue) -> None:
    gt = np.tile(np.arange(4, dtype=np.uint8), 1 << 19).reshape(1024, 2048)
    queue.put(confusion_matrix(gt, gt, 4, None).diagonal().tolist())


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_confusion_in_a_forked_child_does_not_hang():
    """A child forked after the parent counted (and used OpenCV's thread pool) counts too,
    rather than waiting forever on threads that do not exist in it."""
    import multiprocessing

    import cv2

    saved = cv2.getNumThreads()
    cv2.setNumThreads(2)
    try:
        gt = np.zeros((1024, 2048), np.uint8)
        assert confusion_matrix(gt, gt, 1, None)[0, 0] == gt.size  # the parent has counted
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=_confusion_in_child, args=(queue,))
        child.start()
        child.join(timeout=60)
        alive = child.is_alive()
        if alive:
            child.kill()
        assert not alive, "the forked child hung"
        assert queue.get(timeout=5) == [1 << 19] * 4
    finally:
        cv2.setNumThreads(saved)
