"""Golden fixtures of the instance models (Mask / Faster R-CNN), on top of :mod:`golden_util`.

Shared by ``tools/make_detection_golden.py`` (run once where torchvision is installed) and
``tests/test_detection_golden.py``. Weights come from :func:`golden_util.fill_deterministic`
(keyed by state-dict key, BatchNorm statistics perturbed); the class logits are then scaled
so that the softmax scores spread over [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

from golden_util import GOLDEN_DIR, fill_deterministic


#: after the keyed fill, these tensors are multiplied by a gain, so that softmax scores spread over
#: [0, 1] (with the plain fill every class scores ~1/91, under the 0.05 threshold): the class
#: logits, and v2's box-head FC, whose input has shrunk through four conv+BN+ReLU layers
DETECTION_GAINS: dict[str, float] = {"roi_heads.box_predictor.cls_score.": 6.0, "roi_heads.box_head.5.weight": 25.0}
DETECTION_DIR = GOLDEN_DIR / "detection"
#: CamVid frames the detection fixtures were recorded on (tests skip when they are absent)
DETECTION_FRAMES = ("0016E5_07959.png", "0016E5_07961.png")


@dataclass(frozen=True)
class DetectionCase:
    """One detection fixture: our architecture, the frames (one batch), the resize rule."""

    name: str
    arch: str
    frames: tuple[str, ...]
    min_size: int = 320
    max_size: int = 512
    reference: str = ""


DETECTION_CASES: tuple[DetectionCase, ...] = (
    DetectionCase("maskrcnn-v1", "maskrcnn-resnet50-fpn", DETECTION_FRAMES,
                  reference="torchvision MaskRCNN(resnet50 FrozenBN + FPN), as maskrcnn_resnet50_fpn with weights"),
    DetectionCase("maskrcnn-v2", "maskrcnn-resnet50-fpn-v2", DETECTION_FRAMES[:1],
                  reference="torchvision maskrcnn_resnet50_fpn_v2"),
    DetectionCase("fasterrcnn-v1", "fasterrcnn-resnet50-fpn", DETECTION_FRAMES[1:],
                  reference="torchvision FasterRCNN(resnet50 FrozenBN + FPN), as fasterrcnn_resnet50_fpn with weights"),
    DetectionCase("maskrcnn-v1-800", "maskrcnn-resnet50-fpn", DETECTION_FRAMES[:1], 800, 1333,
                  reference="torchvision maskrcnn_resnet50_fpn layout at the default 800/1333 resize"),
)


def fill_detector(model) -> None:
    """:func:`fill_deterministic`, then the tensors of :data:`DETECTION_GAINS` scaled."""
    import torch

    fill_deterministic(model)
    with torch.no_grad():
        for key, tensor in model.state_dict(keep_vars=True).items():
            for prefix, gain in DETECTION_GAINS.items():
                if key.startswith(prefix):
                    tensor.mul_(gain)
