"""ResNet-50 + feature pyramid: the R-CNN models' ``backbone`` (``body`` + ``fpn``).

The body is the zoo's ResNet (:mod:`segtools.models.resnet`, no dilation) returning
``layer1 … layer4`` as ``"0" … "3"``; the FPN adds a 1×1 lateral and a 3×3 output conv per
level (with BatchNorm in v2), top-down nearest upsampling, and a ``"pool"`` level (stride-2
subsampling of the coarsest output). Module names are torchvision's, so its checkpoints load.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from segtools.models.base import FeatureExtractor
from segtools.models.resnet import RESNET_STAGE_CHANNELS, resnet_layers


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine terms, all buffers (no
    ``num_batches_tracked``): how torchvision's v1 checkpoints store the ResNet's norms."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        for name, value in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)):
            self.register_buffer(name, torch.full((num_features,), value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` under ``module`` by a :class:`FrozenBatchNorm2d`."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, FrozenBatchNorm2d(child.num_features, child.eps))
        else:
            freeze_batchnorm(child)
    return module


def _conv(in_channels: int, out_channels: int, kernel: int, norm: bool) -> nn.Sequential:
    """``Sequential(conv[, BatchNorm])``: a bias only without the norm."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel, padding=(kernel - 1) // 2, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(out_channels))
    return nn.Sequential(*layers)


class FeaturePyramid(nn.Module):
    """Lateral and output convs per level, top-down sum, and the extra ``pool`` level."""

    def __init__(self, in_channels: tuple[int, ...], out_channels: int = 256, norm: bool = False) -> None:
        super().__init__()
        self.inner_blocks = nn.ModuleList(_conv(c, out_channels, 1, norm) for c in in_channels)
        self.layer_blocks = nn.ModuleList(_conv(out_channels, out_channels, 3, norm) for _ in in_channels)

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        names, maps = list(features), list(features.values())
        last = self.inner_blocks[-1](maps[-1])
        outputs = [self.layer_blocks[-1](last)]
        for index in range(len(maps) - 2, -1, -1):
            lateral = self.inner_blocks[index](maps[index])
            last = lateral + F.interpolate(last, size=lateral.shape[-2:], mode="nearest")
            outputs.insert(0, self.layer_blocks[index](last))
        outputs.append(F.max_pool2d(outputs[-1], 1, 2, 0))
        return OrderedDict(zip([*names, "pool"], outputs))


class ResNetFPN(nn.Module):
    """``body`` (ResNet stages 1-4) → ``fpn``; ``out_channels`` per level."""

    def __init__(self, depth: int = 50, fpn_norm: bool = False, frozen_norm: bool = True,
                 out_channels: int = 256) -> None:
        super().__init__()
        layers = resnet_layers(depth, (False, False, False))
        self.body = FeatureExtractor(layers, {f"layer{i + 1}": str(i) for i in range(4)})
        if frozen_norm:
            freeze_batchnorm(self.body)
        self.fpn = FeaturePyramid(RESNET_STAGE_CHANNELS, out_channels, norm=fpn_norm)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.fpn(self.body(x))
