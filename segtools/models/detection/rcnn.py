"""Mask R-CNN and Faster R-CNN (ResNet-50 FPN, v1 and v2), state-dict compatible with
torchvision's ``maskrcnn_resnet50_fpn[_v2]`` / ``fasterrcnn_resnet50_fpn[_v2]``.

``forward(images)`` takes a list of 3×H×W float tensors with pixels in [0, 1] (any sizes)
and returns, per image, ``boxes`` (K×4, ``x1, y1, x2, y2`` in the image's pixels),
``scores`` (K, decreasing), ``labels`` (K, the model's class indices, 0 = background never
returned) and, for Mask R-CNN, ``masks``: K×1×28×28 probabilities in box coordinates, to be
pasted with :func:`segtools.models.detection.transform.paste_masks` (so a caller decides
how many full-size masks it holds at once).

v1 (the 2017 recipe): frozen BatchNorm in the ResNet, plain FPN, one RPN conv, two-MLP box
head, mask head without norms. v2 (the 2021 recipe): BatchNorm everywhere (ResNet, FPN,
heads), two RPN convs, a four-conv + one-FC box head, BatchNorm in the mask head.
"""

from __future__ import annotations

import torch
from torch import nn

from segtools.models.detection.fpn import ResNetFPN
from segtools.models.detection.heads import (BoxPredictor, MaskPredictor, RPNHead, TwoMLPHead, conv_fc_head,
                                             mask_head)
from segtools.models.detection.roi_heads import RoIHeads
from segtools.models.detection.rpn import RegionProposalNetwork
from segtools.models.detection.transform import prepare_batch, rescale_boxes

IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


class GeneralizedRCNN(nn.Module):
    """``backbone`` → ``rpn`` → ``roi_heads``, with the resize/normalise around them.

    Parameters
    ----------
    backbone, rpn, roi_heads : the parts (see the module docstring).
    min_size, max_size : the resize rule (shorter side to ``min_size`` unless the longer
        would exceed ``max_size``), in pixels.
    image_mean, image_std : normalisation of [0, 1] RGB pixels.
    """

    def __init__(self, backbone: nn.Module, rpn: RegionProposalNetwork, roi_heads: RoIHeads, *,
                 min_size: int = 800, max_size: int = 1333, image_mean: tuple[float, ...] = IMAGE_MEAN,
                 image_std: tuple[float, ...] = IMAGE_STD) -> None:
        super().__init__()
        self.backbone, self.rpn, self.roi_heads = backbone, rpn, roi_heads
        self.min_size, self.max_size = int(min_size), int(max_size)
        self.image_mean, self.image_std = tuple(image_mean), tuple(image_std)

    @property
    def has_masks(self) -> bool:
        return self.roi_heads.mask_head is not None

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        originals = [tuple(int(v) for v in image.shape[-2:]) for image in images]
        batch, sizes = prepare_batch(list(images), self.image_mean, self.image_std, self.min_size, self.max_size)
        features = self.backbone(batch)
        proposals = self.rpn(batch, features, sizes)
        detections = self.roi_heads(features, proposals, sizes)
        for detection, size, original in zip(detections, sizes, originals):
            detection["boxes"] = rescale_boxes(detection["boxes"], size, original)
        return detections


def _rcnn(num_classes: int, version: int, masks: bool, **options) -> GeneralizedRCNN:
    if version not in (1, 2):
        raise ValueError(f"version must be 1 or 2, not {version}")
    v2 = version == 2
    backbone = ResNetFPN(50, fpn_norm=v2, frozen_norm=not v2)
    rpn = RegionProposalNetwork(RPNHead(256, 3, conv_depth=2 if v2 else 1))
    box_head = conv_fc_head(256, 4, 7, 1024) if v2 else TwoMLPHead(256 * 7 * 7, 1024)
    heads = RoIHeads(box_head, BoxPredictor(1024, num_classes),
                     mask_head(256, 4, norm=v2) if masks else None,
                     MaskPredictor(256, 256, num_classes) if masks else None,
                     score_thresh=options.pop("box_score_thresh", 0.05),
                     nms_thresh=options.pop("box_nms_thresh", 0.5),
                     detections_per_img=options.pop("box_detections_per_img", 100))
    return GeneralizedRCNN(backbone, rpn, heads, **options)


def maskrcnn_resnet50_fpn(num_classes: int = 91, **options) -> GeneralizedRCNN:
    """Mask R-CNN ResNet-50 FPN (v1; torchvision ``maskrcnn_resnet50_fpn``)."""
    return _rcnn(num_classes, 1, True, **options)


def maskrcnn_resnet50_fpn_v2(num_classes: int = 91, **options) -> GeneralizedRCNN:
    """Mask R-CNN ResNet-50 FPN v2 (torchvision ``maskrcnn_resnet50_fpn_v2``)."""
    return _rcnn(num_classes, 2, True, **options)


def fasterrcnn_resnet50_fpn(num_classes: int = 91, **options) -> GeneralizedRCNN:
    """Faster R-CNN ResNet-50 FPN (v1; boxes only)."""
    return _rcnn(num_classes, 1, False, **options)


def fasterrcnn_resnet50_fpn_v2(num_classes: int = 91, **options) -> GeneralizedRCNN:
    """Faster R-CNN ResNet-50 FPN v2 (boxes only)."""
    return _rcnn(num_classes, 2, False, **options)
