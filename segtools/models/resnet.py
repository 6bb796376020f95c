"""ResNet-50/101 (v1.5: stride in the 3×3 conv) as a dilated segmentation backbone.

Module names and shapes follow torchvision's ``resnet50``/``resnet101`` (``conv1``, ``bn1``,
``layer1`` … ``layer4``, each block ``conv1/bn1/conv2/bn2/conv3/bn3[/downsample.{0,1}]``),
without the classification ``fc``, so torchvision segmentation checkpoints load unchanged.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from segtools.models.base import FeatureExtractor

#: Bottleneck blocks per stage.
RESNET_BLOCKS: dict[int, tuple[int, int, int, int]] = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
#: Channels out of each stage (``planes * 4``).
RESNET_STAGE_CHANNELS: tuple[int, int, int, int] = (256, 512, 1024, 2048)


class Bottleneck(nn.Module):
    """1×1 reduce → 3×3 (stride, dilation) → 1×1 expand (×4), plus the identity/projection."""

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(
            planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False
        )
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _stage(
    in_channels: int, planes: int, blocks: int, stride: int, dilation_in: int, dilate: bool
) -> tuple[nn.Sequential, int]:
    """One ResNet stage; with ``dilate`` the stride becomes dilation (torchvision's rule).

    Returns the stage and the dilation its later blocks use.
    """
    dilation = dilation_in
    if dilate:
        dilation *= stride
        stride = 1
    out_channels = planes * Bottleneck.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
            nn.BatchNorm2d(out_channels),
        )
    # The first block keeps the previous dilation, as in torchvision.
    blocks_list = [Bottleneck(in_channels, planes, stride, dilation_in, downsample)]
    blocks_list += [Bottleneck(out_channels, planes, 1, dilation) for _ in range(1, blocks)]
    return nn.Sequential(*blocks_list), dilation


def resnet_layers(
    depth: int = 50, replace_stride_with_dilation: Sequence[bool] = (False, True, True)
) -> OrderedDict[str, nn.Module]:
    """Return the layers of a ResNet-``depth`` trunk in execution order.

    Parameters
    ----------
    depth : {50, 101}
        Network depth.
    replace_stride_with_dilation : sequence of 3 bool
        For ``layer2..layer4``: dilate instead of striding. ``(False, True, True)`` gives
        output stride 8 (DeepLabV3/FCN), ``(False, False, True)`` output stride 16.

    Returns
    -------
    OrderedDict
        ``conv1, bn1, relu, maxpool, layer1 … layer4``.
    """
    if depth not in RESNET_BLOCKS:
        raise ValueError(f"ResNet depth must be one of {sorted(RESNET_BLOCKS)}, not {depth}")
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        conv1=nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False),
        bn1=nn.BatchNorm2d(64),
        relu=nn.ReLU(inplace=True),
        maxpool=nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )
    in_channels, dilation = 64, 1
    dilate_flags = (False, *replace_stride_with_dilation)
    for index, (blocks, dilate) in enumerate(zip(RESNET_BLOCKS[depth], dilate_flags)):
        planes = 64 * 2**index
        stride = 1 if index == 0 else 2
        layers[f"layer{index + 1}"], dilation = _stage(
            in_channels, planes, blocks, stride, dilation, dilate
        )
        in_channels = planes * Bottleneck.expansion
    return layers


def resnet_backbone(
    depth: int,
    return_layers: Mapping[str, str],
    replace_stride_with_dilation: Sequence[bool] = (False, True, True),
) -> FeatureExtractor:
    """ResNet trunk returning the named stages (e.g. ``{"layer4": "out"}``)."""
    return FeatureExtractor(resnet_layers(depth, replace_stride_with_dilation), return_layers)
