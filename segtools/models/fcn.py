"""FCN (Long et al.) on a dilated ResNet-50/101, torchvision layout.

``classifier`` and ``aux_classifier`` are :class:`FCNHead` on ``layer4`` (2048 channels)
and ``layer3`` (1024 channels); the output stride is 8.
"""

from __future__ import annotations

from torch import nn

from segtools.models.base import EncoderDecoder
from segtools.models.resnet import RESNET_STAGE_CHANNELS, resnet_backbone


class FCNHead(nn.Sequential):
    """3×3 conv to ``in_channels // 4`` → BN → ReLU → dropout 0.1 → 1×1 conv to classes.

    Children ``0, 1, 2, 3, 4`` as in torchvision (also DeepLabV3's auxiliary head).
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        inter_channels = in_channels // 4
        super().__init__(
            nn.Conv2d(in_channels, inter_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(inter_channels),
            nn.ReLU(inplace=True),
            nn.Dropout(0.1),
            nn.Conv2d(inter_channels, num_classes, 1),
        )


def build_fcn(num_classes: int, depth: int = 50, aux: bool = False) -> EncoderDecoder:
    """FCN-ResNet-``depth`` with ``num_classes`` outputs (``aux`` adds the layer3 head)."""
    return_layers = {"layer4": "out", **({"layer3": "aux"} if aux else {})}
    backbone = resnet_backbone(depth, return_layers, (False, True, True))
    aux_head = FCNHead(RESNET_STAGE_CHANNELS[2], num_classes) if aux else None
    return EncoderDecoder(backbone, FCNHead(RESNET_STAGE_CHANNELS[3], num_classes), aux_head)


def fcn_resnet50(num_classes: int, aux: bool = False) -> EncoderDecoder:
    """FCN-ResNet-50 (torchvision ``fcn_resnet50`` layout)."""
    return build_fcn(num_classes, 50, aux)


def fcn_resnet101(num_classes: int, aux: bool = False) -> EncoderDecoder:
    """FCN-ResNet-101 (torchvision ``fcn_resnet101`` layout)."""
    return build_fcn(num_classes, 101, aux)
