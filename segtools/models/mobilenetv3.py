"""MobileNetV3-Large feature trunk (output stride 32, 16 or 8) for segmentation heads.

Layout follows torchvision's ``mobilenet_v3_large(...).features``: child ``0`` is the stem
(conv-BN-Hardswish), ``1`` … ``15`` the inverted-residual blocks (``block.{i}`` with
conv-norm-activation triples and ``fc1``/``fc2`` squeeze-excitation), ``16`` the 1×1 conv to
960 channels. BatchNorm uses eps 1e-3 and momentum 0.01 as there.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import NamedTuple

import torch
from torch import nn

from segtools.models.base import conv_norm_act

BN_EPS = 1e-3
BN_MOMENTUM = 0.01


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to a multiple of ``divisor``, never more than 10 % below it."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class BlockConfig(NamedTuple):
    """One inverted-residual block (MobileNetV3 paper, table 1)."""

    in_channels: int
    kernel: int
    expanded: int
    out_channels: int
    squeeze_excite: bool
    hard_swish: bool
    stride: int
    dilation: int


#: Dilation of the C4 stage (blocks 7-12) and of the C5 stage (13-15) for each output stride.
STAGE_DILATIONS = {32: (1, 1), 16: (1, 2), 8: (2, 4)}


def large_config(output_stride: int = 16) -> list[BlockConfig]:
    """MobileNetV3-Large blocks at ``output_stride`` 32, 16 or 8.

    16 (torchvision's ``dilated=True``) replaces the last stride by dilation 2; 8 also the
    one before, with dilations 2 and 4; 32 is the classification trunk.
    """
    if output_stride not in STAGE_DILATIONS:
        raise ValueError(f"output_stride must be 8, 16 or 32, not {output_stride!r}")
    c, d = STAGE_DILATIONS[output_stride]
    rows = [  # in, k, exp, out, SE, HS, stride, dilation
        (16, 3, 16, 16, False, False, 1, 1),
        (16, 3, 64, 24, False, False, 2, 1),
        (24, 3, 72, 24, False, False, 1, 1),
        (24, 5, 72, 40, True, False, 2, 1),
        (40, 5, 120, 40, True, False, 1, 1),
        (40, 5, 120, 40, True, False, 1, 1),
        (40, 3, 240, 80, False, True, 2, c),
        (80, 3, 200, 80, False, True, 1, c),
        (80, 3, 184, 80, False, True, 1, c),
        (80, 3, 184, 80, False, True, 1, c),
        (80, 3, 480, 112, True, True, 1, c),
        (112, 3, 672, 112, True, True, 1, c),
        (112, 5, 672, 160, True, True, 2, d),
        (160, 5, 960, 160, True, True, 1, d),
        (160, 5, 960, 160, True, True, 1, d),
    ]
    return [BlockConfig(*row) for row in rows]


class SqueezeExcitation(nn.Module):
    """Channel gating: global mean → 1×1 (ReLU) → 1×1 (Hardsigmoid) → scale the input."""

    def __init__(self, channels: int, squeeze_channels: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.fc2(self.activation(self.fc1(self.avgpool(x))))
        return x * self.scale_activation(scale)


class InvertedResidual(nn.Module):
    """Expand (1×1) → depthwise (k×k) → [SE] → project (1×1), residual when shapes allow."""

    def __init__(self, cfg: BlockConfig) -> None:
        super().__init__()
        activation = nn.Hardswish if cfg.hard_swish else nn.ReLU
        bn = {"bn_eps": BN_EPS, "bn_momentum": BN_MOMENTUM}
        layers: list[nn.Module] = []
        if cfg.expanded != cfg.in_channels:
            layers.append(conv_norm_act(cfg.in_channels, cfg.expanded, 1, activation=activation, **bn))
        stride = 1 if cfg.dilation > 1 else cfg.stride
        layers.append(
            conv_norm_act(
                cfg.expanded, cfg.expanded, cfg.kernel, stride=stride, dilation=cfg.dilation,
                groups=cfg.expanded, activation=activation, **bn,
            )
        )
        if cfg.squeeze_excite:
            layers.append(SqueezeExcitation(cfg.expanded, make_divisible(cfg.expanded // 4)))
        layers.append(conv_norm_act(cfg.expanded, cfg.out_channels, 1, activation=None, **bn))
        self.block = nn.Sequential(*layers)
        self.use_residual = cfg.stride == 1 and cfg.in_channels == cfg.out_channels
        self.out_channels = cfg.out_channels
        self.starts_stage = cfg.stride > 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return out + x if self.use_residual else out


def mobilenet_v3_large_layers(output_stride: int = 16) -> OrderedDict[str, nn.Module]:
    """Layers ``"0"`` … ``"16"`` of MobileNetV3-Large's feature trunk (see :func:`large_config`)."""
    bn = {"bn_eps": BN_EPS, "bn_momentum": BN_MOMENTUM}
    config = large_config(output_stride)
    stem = conv_norm_act(3, config[0].in_channels, 3, stride=2, activation=nn.Hardswish, **bn)
    layers: list[nn.Module] = [stem]
    layers += [InvertedResidual(cfg) for cfg in config]
    last = config[-1].out_channels
    layers.append(conv_norm_act(last, 6 * last, 1, activation=nn.Hardswish, **bn))
    return OrderedDict((str(index), layer) for index, layer in enumerate(layers))


def stage_ends(layers: Mapping[str, nn.Module]) -> list[int]:
    """Indices of the stem, of each strided block and of the last layer (C0 … C5)."""
    names = list(layers)
    strided = [i for i, name in enumerate(names) if getattr(layers[name], "starts_stage", False)]
    return [0, *strided, len(names) - 1]


def layer_channels(layers: Mapping[str, nn.Module], index: int) -> int:
    """Output channels of layer ``index``."""
    layer = layers[str(index)]
    if isinstance(layer, InvertedResidual):
        return layer.out_channels
    return layer[0].out_channels  # a conv-norm-activation Sequential
