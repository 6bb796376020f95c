"""Instance models: Mask R-CNN and Faster R-CNN (ResNet-50 FPN, v1 and v2), native torch.

Importing this package does not import torch: :data:`DETECTION_ARCHITECTURES` is plain
data and builders are imported on use. Everything runs in plain torch — anchors, RPN,
NMS (:mod:`.boxes`), RoIAlign (:mod:`.roi_align`), mask pasting (:mod:`.transform`) — so
torchvision's compiled ops are never needed; state dicts have torchvision's keys and
shapes, and torchvision's older key names (``rpn.head.conv.weight``,
``mask_head.mask_fcn1.weight``) are renamed on load by :func:`legacy_keys_renamed`.

>>> sorted(DETECTION_ARCHITECTURES)[:2]
['fasterrcnn-resnet50-fpn', 'fasterrcnn-resnet50-fpn-v2']
>>> DETECTION_ARCHITECTURES["maskrcnn-resnet50-fpn"].masks
True
"""

from __future__ import annotations

import difflib
import importlib
import re
from dataclasses import dataclass
from typing import Any, Mapping

from segtools.errors import UsageError, require

#: options every detection architecture accepts, with their defaults
DETECTION_OPTIONS: dict[str, Any] = {
    "min_size": 800, "max_size": 1333, "box_score_thresh": 0.05, "box_nms_thresh": 0.5,
    "box_detections_per_img": 100,
}


@dataclass(frozen=True)
class DetectionArch:
    """One instance architecture: builder ``module:function``, whether it predicts masks,
    whose checkpoints load, one line for tables."""

    name: str
    builder: str
    masks: bool
    layout: str
    description: str


_RCNN = "segtools.models.detection.rcnn:{}"
DETECTION_ARCHITECTURES: dict[str, DetectionArch] = {a.name: a for a in (
    DetectionArch("maskrcnn-resnet50-fpn", _RCNN.format("maskrcnn_resnet50_fpn"), True,
                  "torchvision.models.detection.maskrcnn_resnet50_fpn", "Mask R-CNN, ResNet-50 FPN (v1)"),
    DetectionArch("maskrcnn-resnet50-fpn-v2", _RCNN.format("maskrcnn_resnet50_fpn_v2"), True,
                  "torchvision.models.detection.maskrcnn_resnet50_fpn_v2", "Mask R-CNN, ResNet-50 FPN v2"),
    DetectionArch("fasterrcnn-resnet50-fpn", _RCNN.format("fasterrcnn_resnet50_fpn"), False,
                  "torchvision.models.detection.fasterrcnn_resnet50_fpn", "Faster R-CNN, ResNet-50 FPN (v1), boxes"),
    DetectionArch("fasterrcnn-resnet50-fpn-v2", _RCNN.format("fasterrcnn_resnet50_fpn_v2"), False,
                  "torchvision.models.detection.fasterrcnn_resnet50_fpn_v2", "Faster R-CNN, ResNet-50 FPN v2, boxes"),
)}


def is_detection_arch(name: str | None) -> bool:
    return name in DETECTION_ARCHITECTURES


def get_detection_arch(name: str) -> DetectionArch:
    """The architecture called ``name``, or a :class:`UsageError` with a suggestion."""
    if name in DETECTION_ARCHITECTURES:
        return DETECTION_ARCHITECTURES[name]
    close = difflib.get_close_matches(str(name), list(DETECTION_ARCHITECTURES), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise UsageError(f"unknown instance architecture '{name}'{hint} (choose from {', '.join(DETECTION_ARCHITECTURES)})")


def build_detector(arch: str, num_classes: int = 91, **options: Any):
    """Build instance architecture ``arch`` (random weights, eval mode not set).

    Parameters
    ----------
    arch : a key of :data:`DETECTION_ARCHITECTURES`.
    num_classes : classes including the background (91 for torchvision's COCO weights).
    **options : see :data:`DETECTION_OPTIONS` (resize rule, score threshold, NMS, detections).
    """
    spec = get_detection_arch(arch)
    unknown = sorted(set(options) - set(DETECTION_OPTIONS))
    if unknown:
        raise UsageError(f"architecture '{arch}' has no option {', '.join(unknown)} "
                         f"(options: {', '.join(DETECTION_OPTIONS)})")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise UsageError(f"num_classes must be an integer ≥ 2 (background + classes), not {num_classes!r}")
    _check_options(options)
    require("torch", "models")
    module_name, function_name = spec.builder.split(":")
    return getattr(importlib.import_module(module_name), function_name)(num_classes, **{**DETECTION_OPTIONS, **options})


_BOUNDS = {"min_size": (16, 8192), "max_size": (16, 8192), "box_score_thresh": (0.0, 1.0),
           "box_nms_thresh": (0.0, 1.0), "box_detections_per_img": (1, 100000)}


def _check_options(options: Mapping[str, Any]) -> None:
    for key, value in options.items():
        low, high = _BOUNDS[key]
        integral = isinstance(low, int) and not isinstance(low, bool)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integral and not isinstance(value, int)) \
                or not low <= value <= high:
            raise UsageError(f"{key}={value!r}: give {'an integer' if integral else 'a number'} in [{low}, {high}]")


_LEGACY = (
    (re.compile(r"^(rpn\.head\.conv)\.(weight|bias)$"), r"\1.0.0.\2"),
    (re.compile(r"^(roi_heads\.mask_head)\.mask_fcn(\d+)\.(weight|bias)$"), None),
)


def legacy_keys_renamed(state: Mapping[str, Any]) -> dict[str, Any]:
    """torchvision's pre-0.13 key names (as in the published v1 checkpoints) → today's."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        match = _LEGACY[1][0].match(key)
        if match:
            key = f"{match.group(1)}.{int(match.group(2)) - 1}.0.{match.group(3)}"
        else:
            key = _LEGACY[0][0].sub(_LEGACY[0][1], key)
        out[key] = value
    return out


def num_classes_of(state: Mapping[str, Any]) -> int | None:
    """Classes (with background) of a detection state dict, from its class-score layer."""
    weight = state.get("roi_heads.box_predictor.cls_score.weight")
    return int(weight.shape[0]) if weight is not None and getattr(weight, "ndim", 0) == 2 else None


def matching_arch(state: Mapping[str, Any]) -> str | None:
    """The instance architecture whose keys are exactly those of ``state`` (BatchNorm
    ``num_batches_tracked`` counters aside), or ``None``."""
    import torch

    keys = {k for k in state if not k.endswith("num_batches_tracked")}
    for name in DETECTION_ARCHITECTURES:
        with torch.device("meta"):
            model = build_detector(name, num_classes_of(state) or 91)
        if keys == {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}:
            return name
    return None


__all__ = ["DETECTION_ARCHITECTURES", "DETECTION_OPTIONS", "DetectionArch", "build_detector",
           "get_detection_arch", "is_detection_arch", "legacy_keys_renamed", "matching_arch", "num_classes_of"]
