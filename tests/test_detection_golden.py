"""segtools' Mask / Faster R-CNN equal torchvision's on real photos (CamVid frames).

The fixtures under ``tests/fixtures/golden/detection`` were recorded by
``tools/make_detection_golden.py`` from torchvision 0.29.1 (torch 2.14.1) with every
parameter and buffer filled by key (``golden_detection.fill_detector``: BatchNorm
statistics perturbed, class logits scaled so scores spread over [0, 1]), run in float64.
Here we rebuild our model, check its state-dict keys and shapes are torchvision's, fill it
the same way and compare: labels identical, boxes and scores within 1e-4, every mask's IoU
with torchvision's at least 0.999. Skips when the CamVid frames are absent.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import golden_detection  # noqa: E402
from golden_detection import DETECTION_CASES, DETECTION_DIR, DetectionCase  # noqa: E402

from segtools.formats import rle as rlelib  # noqa: E402
from segtools.models.detection import build_detector  # noqa: E402
from segtools.models.detection.transform import paste_masks  # noqa: E402

TOLERANCE = 1e-4  # boxes (pixels) and scores, the bound
MIN_IOU = 0.999


def _document(case: DetectionCase) -> dict:
    return json.loads((DETECTION_DIR / f"{case.name}.json").read_text())


def _frames(camvid, case: DetectionCase) -> list[np.ndarray]:
    from segtools.io.images import read_image

    return [read_image(str(camvid / "val" / name)) for name in case.frames]


def _model(case: DetectionCase, dtype, **options):
    with torch.device("meta"):
        model = build_detector(case.arch, 91, min_size=case.min_size, max_size=case.max_size, **options)
    golden_detection.fill_detector(model)
    return model.eval().to(dtype)


def _run(model, images: list[np.ndarray], dtype) -> list[dict]:
    tensors = [torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1))).to(dtype) / 255 for im in images]
    with torch.inference_mode():
        return model(tensors)


def _ious(ours: np.ndarray, reference: list[dict]) -> list[float]:
    out = []
    for mask, rle in zip(ours, reference):
        theirs = rlelib.decode(rle).astype(bool)
        union = int((theirs | mask).sum())
        out.append(1.0 if union == 0 else int((theirs & mask).sum()) / union)
    return out


def _compare(outputs: list[dict], document: dict, images: list[np.ndarray], box_tol: float, score_tol: float) -> None:
    for out, ref, image in zip(outputs, document["images"], images):
        assert out["labels"].tolist() == ref["labels"]
        assert len(ref["labels"]) > 0
        np.testing.assert_allclose(out["boxes"].double().numpy(), np.array(ref["boxes"]), rtol=0, atol=box_tol)
        np.testing.assert_allclose(out["scores"].double().numpy(), np.array(ref["scores"]), rtol=0, atol=score_tol)
        if "masks" in ref:
            pasted = paste_masks(out["masks"], out["boxes"], image.shape[:2]).numpy()
            assert sum(int(m.sum()) > 0 for m in pasted) > len(pasted) // 2  # real masks, not empty ones
            assert min(_ious(pasted, ref["masks"])) >= MIN_IOU
        else:
            assert "masks" not in out


@pytest.mark.parametrize("case", DETECTION_CASES, ids=lambda case: case.name)
def test_state_dict_keys_and_shapes_equal_torchvision(case: DetectionCase) -> None:
    reference = {key: tuple(shape) for key, shape in _document(case)["state_dict"]}
    with torch.device("meta"):
        model = build_detector(case.arch, 91)
    assert {key: tuple(value.shape) for key, value in model.state_dict().items()} == reference


@pytest.mark.parametrize("case", DETECTION_CASES, ids=lambda case: case.name)
def test_outputs_equal_torchvision(case: DetectionCase, camvid) -> None:
    images = _frames(camvid, case)
    outputs = _run(_model(case, torch.float64), images, torch.float64)
    _compare(outputs, _document(case), images, TOLERANCE, TOLERANCE)


def test_float32_outputs_equal_torchvision(camvid) -> None:
    """In float32 boxes of ~1000 pixels carry ~1e-4 px rounding (torchvision's own float32
    run drifts 7e-4 px from its float64 one): boxes to 5e-3 px, scores to 1e-4."""
    case = DETECTION_CASES[0]
    images = _frames(camvid, case)[:1]
    document = _document(case)
    document["images"] = document["images"][:1]
    _compare(_run(_model(case, torch.float32), images, torch.float32), document, images, 5e-3, TOLERANCE)


def test_comparison_catches_a_subtle_difference(camvid) -> None:
    """detectron2's half-pixel RoIAlign (aligned=True) in place of torchvision's must fail."""
    case = DETECTION_CASES[2]  # box-only: the quickest
    images = _frames(camvid, case)
    model = _model(case, torch.float64)
    model.roi_heads.box_roi_pool.aligned = True
    with pytest.raises(AssertionError):
        _compare(_run(model, images, torch.float64), _document(case), images, TOLERANCE, TOLERANCE)
