"""The plain-torch detection ops equal their definitions: greedy NMS (single and batched,
both of torchvision's grouping paths), RoIAlign (torchvision's bilinear sampling rule,
written out per sample), mask pasting (torchvision's per-box resize-and-place, written out
per instance), anchors, and the renaming of torchvision's old checkpoint keys."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from segtools.models.detection import boxes as boxlib  # noqa: E402
from segtools.models.detection import legacy_keys_renamed  # noqa: E402
from segtools.models.detection.anchors import AnchorGenerator  # noqa: E402
from segtools.models.detection.roi_align import MultiScaleRoIAlign, roi_align  # noqa: E402
from segtools.models.detection.transform import paste_masks, resized_size  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _random_boxes(rng, n: int, spread: float = 60.0, dtype=torch.float64):
    xy = rng.uniform(0, spread, (n, 2))
    wh = rng.uniform(2, 30, (n, 2))
    return torch.tensor(np.concatenate([xy, xy + wh], 1), dtype=dtype)


def _greedy(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> list[int]:
    """The textbook loop (torchvision's C++ CPU kernel), one box at a time."""
    order = torch.sort(scores, descending=True, stable=True)[1].tolist()
    b = boxes.tolist()
    area = [(x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in b]
    dead, keep = set(), []
    for pos, i in enumerate(order):
        if i in dead:
            continue
        keep.append(i)
        for j in order[pos + 1:]:
            w = max(0.0, min(b[i][2], b[j][2]) - max(b[i][0], b[j][0]))
            h = max(0.0, min(b[i][3], b[j][3]) - max(b[i][1], b[j][1]))
            inter = w * h
            if inter / (area[i] + area[j] - inter) > threshold:
                dead.add(j)
    return keep


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_nms_equals_the_greedy_loop(threshold: float) -> None:
    rng = np.random.default_rng(3)
    boxes = _random_boxes(rng, 700)
    scores = torch.tensor(rng.random(700))
    scores[10:20] = scores[5]  # ties keep input order, as the stable sort of the C++ kernel
    assert boxlib.nms(boxes, scores, threshold).tolist() == _greedy(boxes, scores, threshold)


def test_nms_of_a_dense_cluster_and_of_nothing() -> None:
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]]).repeat(300, 1) + torch.linspace(0, 3, 300)[:, None]
    scores = torch.linspace(1, 0, 300, dtype=torch.float32)
    assert boxlib.nms(boxes, scores, 0.5).tolist() == _greedy(boxes, scores, 0.5)
    assert boxlib.nms(torch.zeros((0, 4)), torch.zeros(0), 0.5).shape == (0,)


@pytest.mark.parametrize("count", [400, 2500])  # the coordinate-offset path and the sorted-groups path
def test_batched_nms_equals_nms_per_group(count: int) -> None:
    rng = np.random.default_rng(count)
    boxes = _random_boxes(rng, count)
    scores = torch.tensor(rng.random(count))
    groups = torch.tensor(rng.integers(0, 7, count))
    expected = []
    for g in range(7):
        members = torch.where(groups == g)[0]
        expected += members[_greedy(boxes[members], scores[members], 0.5)].tolist()
    expected.sort(key=lambda i: -float(scores[i]))
    assert boxlib.batched_nms(boxes, scores, groups, 0.5).tolist() == expected


def _bilinear(feature: np.ndarray, y: float, x: float) -> np.ndarray:
    """torchvision's ``bilinear_interpolate`` for one sample point (C values)."""
    height, width = feature.shape[1:]
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return np.zeros(feature.shape[0])
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_high = y_low = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_high = x_low = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1 - ly, 1 - lx
    return (hy * hx * feature[:, y_low, x_low] + hy * lx * feature[:, y_low, x_high]
            + ly * hx * feature[:, y_high, x_low] + ly * lx * feature[:, y_high, x_high])


def _roi_align_reference(feature: np.ndarray, box, scale: float, size: int, ratio: int, aligned: bool) -> np.ndarray:
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (v * scale - offset for v in box)
    w, h = x2 - x1, y2 - y1
    if not aligned:
        w, h = max(w, 1.0), max(h, 1.0)
    out = np.zeros((feature.shape[0], size, size))
    for ph in range(size):
        for pw in range(size):
            acc = 0.0
            for iy in range(ratio):
                yy = y1 + ph * (h / size) + (iy + 0.5) * (h / size) / ratio
                for ix in range(ratio):
                    xx = x1 + pw * (w / size) + (ix + 0.5) * (w / size) / ratio
                    acc = acc + _bilinear(feature, yy, xx)
            out[:, ph, pw] = acc / (ratio * ratio)
    return out


@pytest.mark.parametrize("aligned", [False, True])
def test_roi_align_equals_the_sampling_rule(aligned: bool) -> None:
    rng = np.random.default_rng(5)
    feature = rng.normal(size=(2, 3, 9, 13))
    boxes = [torch.tensor([[4.0, 6.0, 30.0, 20.0], [-8.0, -5.0, 10.0, 60.0], [50.0, 30.0, 51.0, 30.5]],
                          dtype=torch.float64),
             torch.tensor([[0.0, 0.0, 52.0, 36.0]], dtype=torch.float64)]
    ours = roi_align(torch.from_numpy(feature), boxes, 5, 0.25, 2, aligned).numpy()
    expected = [_roi_align_reference(feature[i], b.tolist(), 0.25, 5, 2, aligned)
                for i, image_boxes in enumerate(boxes) for b in image_boxes]
    np.testing.assert_allclose(ours, np.stack(expected), atol=1e-12)


def test_multiscale_roi_align_picks_levels_by_box_size() -> None:
    features = {str(k): torch.full((1, 1, 64 // 2**k, 64 // 2**k), float(k)) for k in range(4)}
    boxes = [torch.tensor([[0.0, 0.0, 20.0, 20.0], [0.0, 0.0, 200.0, 200.0], [0.0, 0.0, 112.0, 112.0]])]
    pooled = MultiScaleRoIAlign(output_size=2)(features, boxes, [(256, 256)])
    # sqrt(area) 20 → level 2 (k_min), 200 → 4 + log2(200/224) → 3, 112 → 3 - 1 = 2 + 1 → 3? floor(4 - 1) = 3
    levels = [4 + math.log2(s / 224) + 1e-6 for s in (20.0, 200.0, 112.0)]
    expected = [min(max(math.floor(v), 2), 5) - 2 for v in levels]
    assert pooled[:, 0, 0, 0].tolist() == [float(e) for e in expected]


def _paste_reference(mask: torch.Tensor, box: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """torchvision's ``paste_mask_in_image`` (a grown, int box; the mask padded by one)."""
    w, h = max(int(box[2] - box[0] + 1), 1), max(int(box[3] - box[1] + 1), 1)
    resized = F.interpolate(mask[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    out = torch.zeros((height, width), dtype=mask.dtype)
    x0, x1 = max(int(box[0]), 0), min(int(box[2]) + 1, width)
    y0, y1 = max(int(box[1]), 0), min(int(box[3]) + 1, height)
    if x1 > x0 and y1 > y0:
        out[y0:y1, x0:x1] = resized[y0 - int(box[1]):y1 - int(box[1]), x0 - int(box[0]):x1 - int(box[0])]
    return out


def test_paste_masks_equals_per_instance_resize_and_place() -> None:
    rng = np.random.default_rng(9)
    masks = torch.tensor(rng.random((5, 1, 28, 28)))
    boxes = torch.tensor([[3.2, 4.9, 40.0, 22.0], [-6.0, -3.0, 12.0, 50.0], [55.0, 20.0, 80.0, 47.0],
                          [10.0, 10.0, 10.4, 10.3], [0.0, 0.0, 70.0, 45.0]], dtype=torch.float64)
    height, width = 45, 70
    ours = paste_masks(masks, boxes, (height, width), threshold=None)
    padded = F.pad(masks[:, 0], (1, 1, 1, 1))
    scale = 30 / 28
    centre = (boxes[:, :2] + boxes[:, 2:]) * 0.5
    half = (boxes[:, 2:] - boxes[:, :2]) * 0.5 * scale
    grown = torch.cat([centre - half, centre + half], 1).to(torch.int64)
    for k in range(5):
        np.testing.assert_allclose(ours[k].numpy(), _paste_reference(padded[k], grown[k], height, width).numpy(),
                                   atol=1e-12)
    binary = paste_masks(masks, boxes, (height, width), threshold=0.5)
    assert binary.dtype == torch.bool and torch.equal(binary, ours > 0.5)


def test_anchors_cover_every_cell_of_every_level() -> None:
    generator = AnchorGenerator()
    sizes = [(8, 12), (4, 6), (2, 3), (1, 2), (1, 1)]
    anchors = generator((32, 48), sizes, torch.float32, torch.device("cpu"))
    assert anchors.shape == (3 * sum(h * w for h, w in sizes), 4)
    # first cell of level 0: size 32 at ratios 0.5, 1, 2, centred on (0, 0), rounded
    assert anchors[:3].tolist() == [[-23.0, -11.0, 23.0, 11.0], [-16.0, -16.0, 16.0, 16.0], [-11.0, -23.0, 11.0, 23.0]]
    assert anchors[3, 0] - anchors[0, 0] == 4  # next cell: one stride (32 / 8) to the right


def test_resize_rule() -> None:
    assert resized_size(720, 960, 800, 1333) == (800, 1066)
    assert resized_size(100, 1000, 800, 1333) == (133, 1333)
    assert resized_size(20, 30, 320, 512) == (320, 480)


def test_legacy_torchvision_keys_are_renamed() -> None:
    renamed = legacy_keys_renamed({"rpn.head.conv.weight": 1, "rpn.head.conv.bias": 2,
                                   "roi_heads.mask_head.mask_fcn1.weight": 3, "roi_heads.mask_head.mask_fcn4.bias": 4,
                                   "backbone.body.conv1.weight": 5})
    assert renamed == {"rpn.head.conv.0.0.weight": 1, "rpn.head.conv.0.0.bias": 2,
                       "roi_heads.mask_head.0.0.weight": 3, "roi_heads.mask_head.3.0.bias": 4,
                       "backbone.body.conv1.weight": 5}


def test_decode_boxes_clips_the_log_scale() -> None:
    reference = torch.tensor([[0.0, 0.0, 10.0, 20.0]])
    out = boxlib.decode_boxes(torch.tensor([[0.0, 0.0, 100.0, 0.0]]), reference, (1.0, 1.0, 1.0, 1.0))
    assert torch.allclose(out[0, 0, 2] - out[0, 0, 0], torch.tensor(10.0 * 1000 / 16))


def test_a_detector_runs_under_bfloat16_autocast() -> None:
    """--amp: half-precision features, but anchors, proposals and boxes stay float32. Only
    where the CPU has native bf16 (emulated, one small forward takes minutes)."""
    from segtools.inference.device import cpu_runs_natively
    from segtools.models.detection import build_detector

    if not cpu_runs_natively("bf16"):
        pytest.skip("this CPU has no native bf16")

    torch.manual_seed(0)
    model = build_detector("maskrcnn-resnet50-fpn", 5, min_size=64, max_size=96, box_score_thresh=0.0).eval()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model([torch.rand(3, 40, 60)])[0]
    assert out["boxes"].dtype == torch.float32 and out["boxes"].shape[0] == out["masks"].shape[0] > 0
    assert float(out["boxes"][:, 2].max()) <= 60 and float(out["boxes"][:, 3].max()) <= 40
