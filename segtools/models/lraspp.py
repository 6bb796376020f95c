"""LR-ASPP (Howard et al., "Searching for MobileNetV3") on dilated MobileNetV3-Large.

torchvision layout: ``classifier`` holds ``cbr`` (1×1 conv-BN-ReLU on C5), ``scale``
(global mean → 1×1 conv → sigmoid gate), ``low_classifier`` (1×1 on C2) and
``high_classifier`` (1×1 on the gated C5 upsampled to C2's size); logits are their sum.
There is no auxiliary head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segtools.models.base import EncoderDecoder, FeatureExtractor
from segtools.models.mobilenetv3 import layer_channels, mobilenet_v3_large_layers, stage_ends


class LRASPPHead(nn.Module):
    """Lite R-ASPP head over ``{"low": C2 (OS 8 by default), "high": C5 (OS 16 by default)}`` features."""

    def __init__(
        self, low_channels: int, high_channels: int, num_classes: int, inter_channels: int = 128
    ) -> None:
        super().__init__()
        self.cbr = nn.Sequential(
            nn.Conv2d(high_channels, inter_channels, 1, bias=False),
            nn.BatchNorm2d(inter_channels),
            nn.ReLU(inplace=True),
        )
        self.scale = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(high_channels, inter_channels, 1, bias=False),
            nn.Sigmoid(),
        )
        self.low_classifier = nn.Conv2d(low_channels, num_classes, 1)
        self.high_classifier = nn.Conv2d(inter_channels, num_classes, 1)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        low, high = features["low"], features["high"]
        gated = self.cbr(high) * self.scale(high)
        gated = F.interpolate(gated, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.low_classifier(low) + self.high_classifier(gated)


def lraspp_mobilenet_v3_large(
    num_classes: int, inter_channels: int = 128, output_stride: int = 16, low_stride: int = 8
) -> EncoderDecoder:
    """LR-ASPP-MobileNetV3-Large (torchvision ``lraspp_mobilenet_v3_large`` layout).

    ``output_stride`` is that of the high branch: 16 as in the paper and torchvision, 32
    (cheaper, no dilation) or 8 (dilated twice; about 4x the compute). The low branch stays
    at 8, and the parameters are the same at every stride, so checkpoints load across them.
    ``low_stride`` 4 takes the low branch from the first 1/4 block (24 channels) instead of
    the first 1/8 one (40; torchvision's): finer logits for thin classes, another layout.
    """
    if low_stride not in (4, 8):
        raise ValueError(f"low_stride must be 4 or 8, not {low_stride!r}")
    layers = mobilenet_v3_large_layers(output_stride)
    stages = stage_ends(layers)
    low_pos, high_pos = stages[-4 if low_stride == 8 else -5], stages[-1]
    low_channels, high_channels = layer_channels(layers, low_pos), layer_channels(layers, high_pos)
    head = LRASPPHead(low_channels, high_channels, num_classes, inter_channels)
    backbone = FeatureExtractor(layers, {str(low_pos): "low", str(high_pos): "high"})
    return EncoderDecoder(backbone, head, classifier_reads_all=True)
