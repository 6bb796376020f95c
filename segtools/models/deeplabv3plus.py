"""DeepLabV3+ (Chen et al. 2018): DeepLabV3's ASPP plus a low-level decoder.

Layout (our own; with ``decoder_convs=1`` it is exactly that of the widely used
VainF/DeepLabV3Plus-Pytorch ResNet models, whose checkpoints then load with ``strict=True``):

- ``backbone``: ResNet-50/101 (torchvision names) returning ``layer1`` (stride 4, 256
  channels) as ``"low_level"`` and ``layer4`` as ``"out"``. Output stride 16 dilates
  ``layer4`` only (ASPP rates 6, 12, 18); output stride 8 dilates ``layer3`` and ``layer4``
  (rates 12, 24, 36).
- ``classifier.aspp``: ASPP on ``layer4`` (256 channels, dropout 0.1).
- ``classifier.project``: 1×1 conv-BN-ReLU projecting ``layer1`` to 48 channels.
- ``classifier.classifier``: ASPP output upsampled (bilinear) to ``layer1``'s size and
  concatenated after the projection (48 + 256 = 304 channels), then ``decoder_convs``
  3×3 conv-BN-ReLU blocks of 256 channels (the paper uses two), then a 1×1 conv to classes.

Logits are upsampled bilinearly (``align_corners=False``) from stride 4 to the input size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segtools.models.base import EncoderDecoder
from segtools.models.deeplabv3 import ASPP, ASPP_CHANNELS
from segtools.models.resnet import RESNET_STAGE_CHANNELS, resnet_backbone

LOW_LEVEL_CHANNELS = 48
ATROUS_RATES = {16: (6, 12, 18), 8: (12, 24, 36)}
DILATE_STAGES = {16: (False, False, True), 8: (False, True, True)}


class DeepLabV3PlusHead(nn.Module):
    """ASPP on ``features["out"]`` fused with projected ``features["low_level"]``."""

    def __init__(
        self,
        in_channels: int,
        low_level_channels: int,
        num_classes: int,
        atrous_rates: tuple[int, ...] = (6, 12, 18),
        decoder_convs: int = 2,
    ) -> None:
        super().__init__()
        self.project = nn.Sequential(
            nn.Conv2d(low_level_channels, LOW_LEVEL_CHANNELS, 1, bias=False),
            nn.BatchNorm2d(LOW_LEVEL_CHANNELS),
            nn.ReLU(inplace=True),
        )
        self.aspp = ASPP(in_channels, atrous_rates, dropout=0.1)
        layers: list[nn.Module] = []
        channels = LOW_LEVEL_CHANNELS + ASPP_CHANNELS
        for _ in range(decoder_convs):
            layers += [
                nn.Conv2d(channels, ASPP_CHANNELS, 3, padding=1, bias=False),
                nn.BatchNorm2d(ASPP_CHANNELS),
                nn.ReLU(inplace=True),
            ]
            channels = ASPP_CHANNELS
        layers.append(nn.Conv2d(channels, num_classes, 1))
        self.classifier = nn.Sequential(*layers)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        low_level = self.project(features["low_level"])
        context = self.aspp(features["out"])
        context = F.interpolate(context, size=low_level.shape[-2:], mode="bilinear", align_corners=False)
        return self.classifier(torch.cat([low_level, context], dim=1))


def deeplabv3plus_resnet(
    num_classes: int, depth: int = 50, output_stride: int = 16, decoder_convs: int = 2
) -> EncoderDecoder:
    """DeepLabV3+ on ResNet-``depth`` (see the module docstring for the layout).

    Parameters
    ----------
    num_classes : int
        Output channels.
    depth : {50, 101}
        ResNet depth.
    output_stride : {16, 8}
        Ratio of input to ``layer4`` resolution.
    decoder_convs : int
        Number of 3×3 blocks in the decoder (1 or 2; 1 loads VainF checkpoints).
    """
    if output_stride not in ATROUS_RATES:
        raise ValueError(f"output_stride must be 8 or 16, not {output_stride}")
    if decoder_convs not in (1, 2):
        raise ValueError(f"decoder_convs must be 1 or 2, not {decoder_convs}")
    backbone = resnet_backbone(depth, {"layer1": "low_level", "layer4": "out"}, DILATE_STAGES[output_stride])
    head = DeepLabV3PlusHead(
        RESNET_STAGE_CHANNELS[3], RESNET_STAGE_CHANNELS[0], num_classes,
        ATROUS_RATES[output_stride], decoder_convs,
    )
    return EncoderDecoder(backbone, head, classifier_reads_all=True)


def deeplabv3plus_resnet50(
    num_classes: int, output_stride: int = 16, decoder_convs: int = 2
) -> EncoderDecoder:
    """DeepLabV3+-ResNet-50."""
    return deeplabv3plus_resnet(num_classes, 50, output_stride, decoder_convs)


def deeplabv3plus_resnet101(
    num_classes: int, output_stride: int = 16, decoder_convs: int = 2
) -> EncoderDecoder:
    """DeepLabV3+-ResNet-101."""
    return deeplabv3plus_resnet(num_classes, 101, output_stride, decoder_convs)
