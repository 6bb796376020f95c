"""DeepLabV3 (Chen et al. 2017): atrous spatial pyramid pooling on a dilated backbone.

torchvision layout: ``classifier = DeepLabHead`` (``0`` ASPP, ``1`` 3×3 conv, ``2`` BN,
``3`` ReLU, ``4`` 1×1 conv to classes), ``aux_classifier = FCNHead``. Backbones: ResNet-50/101
at output stride 8 (aux on ``layer3``) or MobileNetV3-Large at output stride 16 (aux on the
C2 block, output stride 8).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from segtools.models.base import EncoderDecoder, FeatureExtractor, conv_norm_act
from segtools.models.fcn import FCNHead
from segtools.models.mobilenetv3 import layer_channels, mobilenet_v3_large_layers, stage_ends
from segtools.models.resnet import RESNET_STAGE_CHANNELS, resnet_backbone

ASPP_CHANNELS = 256


class ASPPPooling(nn.Sequential):
    """Image-level branch: global mean → 1×1 conv → BN → ReLU → broadcast back to H×W."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = super().forward(x)
        return F.interpolate(pooled, size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Parallel 1×1, three dilated 3×3 and image-pooling branches, concatenated and projected.

    Parameters
    ----------
    in_channels : int
        Channels of the backbone feature map.
    atrous_rates : sequence of int
        Dilations of the 3×3 branches in pixels of the feature map ((12, 24, 36) at output
        stride 8, (6, 12, 18) at 16).
    out_channels : int
        Channels of every branch and of the output.
    dropout : float
        Dropout after the projection (torchvision 0.5; only active in training).
    """

    def __init__(
        self,
        in_channels: int,
        atrous_rates: Sequence[int] = (12, 24, 36),
        out_channels: int = ASPP_CHANNELS,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        branches: list[nn.Module] = [conv_norm_act(in_channels, out_channels, 1)]
        branches += [conv_norm_act(in_channels, out_channels, 3, dilation=rate) for rate in atrous_rates]
        branches.append(ASPPPooling(in_channels, out_channels))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(
            nn.Conv2d(len(branches) * out_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))


class DeepLabHead(nn.Sequential):
    """ASPP → 3×3 conv → BN → ReLU → 1×1 conv to ``num_classes``."""

    def __init__(
        self, in_channels: int, num_classes: int, atrous_rates: Sequence[int] = (12, 24, 36)
    ) -> None:
        super().__init__(
            ASPP(in_channels, atrous_rates),
            nn.Conv2d(ASPP_CHANNELS, ASPP_CHANNELS, 3, padding=1, bias=False),
            nn.BatchNorm2d(ASPP_CHANNELS),
            nn.ReLU(inplace=True),
            nn.Conv2d(ASPP_CHANNELS, num_classes, 1),
        )


def deeplabv3_resnet(num_classes: int, depth: int = 50, aux: bool = False) -> EncoderDecoder:
    """DeepLabV3 on a ResNet-``depth`` at output stride 8 (torchvision layout)."""
    return_layers = {"layer4": "out", **({"layer3": "aux"} if aux else {})}
    backbone = resnet_backbone(depth, return_layers, (False, True, True))
    aux_head = FCNHead(RESNET_STAGE_CHANNELS[2], num_classes) if aux else None
    return EncoderDecoder(backbone, DeepLabHead(RESNET_STAGE_CHANNELS[3], num_classes), aux_head)


def deeplabv3_resnet50(num_classes: int, aux: bool = False) -> EncoderDecoder:
    """DeepLabV3-ResNet-50 (torchvision ``deeplabv3_resnet50`` layout)."""
    return deeplabv3_resnet(num_classes, 50, aux)


def deeplabv3_resnet101(num_classes: int, aux: bool = False) -> EncoderDecoder:
    """DeepLabV3-ResNet-101 (torchvision ``deeplabv3_resnet101`` layout)."""
    return deeplabv3_resnet(num_classes, 101, aux)


def deeplabv3_mobilenet_v3_large(num_classes: int, aux: bool = False) -> EncoderDecoder:
    """DeepLabV3 on dilated MobileNetV3-Large (torchvision layout): head on C5, aux on C2."""
    layers = mobilenet_v3_large_layers(16)
    stages = stage_ends(layers)
    out_pos, aux_pos = stages[-1], stages[-4]
    out_channels, aux_channels = layer_channels(layers, out_pos), layer_channels(layers, aux_pos)
    return_layers = {str(out_pos): "out", **({str(aux_pos): "aux"} if aux else {})}
    backbone = FeatureExtractor(layers, return_layers)
    aux_head = FCNHead(aux_channels, num_classes) if aux else None
    return EncoderDecoder(backbone, DeepLabHead(out_channels, num_classes), aux_head)
