"""segtools' segment-everything equals segment-anything's SamAutomaticMaskGenerator
(fixtures by tools/make_sam_golden.py): the same masks (IoU ≥ 0.999 each), predicted IoUs,
stability scores, points and boxes, in the same order; the box NMS it uses (the detection
models' kernel) equal to torchvision's on SAM-like boxes."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import golden_util  # noqa: E402
from segtools.errors import UsageError  # noqa: E402
from segtools.inference.sam import SamRunner  # noqa: E402
from segtools.inference.sam_auto import EverythingOptions, crop_boxes, generate_masks, mask_boxes, point_grid  # noqa: E402
from segtools.models.detection.boxes import nms  # noqa: E402
from segtools.models.sam.model import SamConfig, build_sam  # noqa: E402

OPTION_NAMES = {"points_per_side": "points_per_side", "points_per_batch": "points_per_batch",
                "pred_iou_thresh": "pred_iou_thresh", "stability_score_thresh": "stability_thresh",
                "stability_score_offset": "stability_offset", "box_nms_thresh": "box_nms",
                "crop_n_layers": "crop_layers", "crop_nms_thresh": "crop_nms",
                "crop_n_points_downscale_factor": "crop_points_downscale", "min_mask_region_area": "min_region"}
# with crops, equal crop-box scores tie in the reference's sort: compare those as sets
UNORDERED = {"amg_crops", "amg_min_region"}


@pytest.fixture(scope="module")
def runner():
    model = build_sam(SamConfig(**golden_util.SAM_TINY))
    golden_util.fill_deterministic(model)
    return SamRunner(model)


@pytest.fixture(scope="module")
def golden():
    return dict(np.load(golden_util.SAM_GOLDEN_DIR / "amg.npz"))


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(len(a), -1).astype(np.float32), b.reshape(len(b), -1).astype(np.float32)
    inter = a @ b.T
    return inter / (a.sum(1)[:, None] + b.sum(1)[None] - inter)


@pytest.mark.parametrize("case", list(golden_util.SAM_AMG_CASES))
def test_everything_equals_the_automatic_mask_generator(runner, golden, case):
    image = golden_util.sam_golden_image()
    options = EverythingOptions(**{OPTION_NAMES[k]: v for k, v in golden_util.SAM_AMG_CASES[case].items()})
    found = generate_masks(runner, image, options)
    expected = np.unpackbits(golden[f"{case}_masks"], axis=-1, count=image.shape[1]).astype(bool)
    assert len(found) == len(expected) > 0
    order = np.arange(len(found))
    if case in UNORDERED:  # match each reference mask to ours
        order = _iou(expected, found.masks).argmax(axis=1)
        assert sorted(order) == list(range(len(found)))
    ious = np.diag(_iou(expected, found.masks[order]))
    assert ious.min() >= 0.999
    np.testing.assert_allclose(found.iou[order], golden[f"{case}_iou"], atol=1e-4)
    np.testing.assert_allclose(found.stability[order], golden[f"{case}_stability"], atol=1e-3)
    np.testing.assert_allclose(found.points[order], golden[f"{case}_points"], atol=1e-9)
    x0, y0, x1, y1 = found.boxes[order].T
    np.testing.assert_allclose(np.stack([x0, y0, x1 - x0, y1 - y0], 1), golden[f"{case}_bbox"], atol=1)
    assert found.masks.sum(axis=(1, 2)).tolist() == pytest.approx(golden[f"{case}_area"][np.argsort(order)].tolist()
                                                                   if case in UNORDERED else
                                                                   golden[f"{case}_area"].tolist(), abs=30)


@pytest.mark.parametrize("seed,count,threshold", golden_util.SAM_NMS_CASES)
def test_box_nms_equals_torchvision(golden, seed, count, threshold):
    # segment-everything de-duplicates with the detection models' NMS kernel
    boxes, scores = golden_util.sam_nms_boxes(seed, count)
    assert nms(torch.from_numpy(boxes).float(), torch.from_numpy(scores).float(), threshold).tolist() == \
        golden[f"nms_{seed}_keep"].tolist()


def test_mask_boxes_and_grids():
    masks = torch.zeros(3, 5, 7, dtype=torch.bool)
    masks[0, 1:3, 2:6] = True
    masks[2, 4, 0] = True
    assert mask_boxes(masks).tolist() == [[2, 1, 5, 2], [0, 0, 0, 0], [0, 4, 0, 4]]
    grid = point_grid(2)
    assert grid.tolist() == [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]]
    boxes, layers = crop_boxes(100, 200, 1, 512 / 1500)
    assert boxes[0] == [0, 0, 200, 100] and layers == [0, 1, 1, 1, 1]
    assert all(b[2] <= 200 and b[3] <= 100 for b in boxes)


@pytest.mark.parametrize("bad,match", [({"points_per_side": 0}, "points_per_side"),
                                       ({"box_nms": 1.5}, "box_nms"),
                                       ({"crop_layers": -1}, "crop_layers")])
def test_bad_options_name_the_parameter(bad, match):
    with pytest.raises(UsageError, match=match):
        EverythingOptions(**bad).check()
