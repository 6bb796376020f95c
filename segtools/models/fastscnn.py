"""Fast-SCNN (Poudel, Liwicki and Cipolla, "Fast-SCNN: Fast Semantic Segmentation Network", 2019).

A real-time network built to train from scratch (the paper finds ImageNet pre-training adds
little), as the paper's table 1 lays it out:

* **learning to downsample** (the ``backbone``'s ``downsample``): a 3×3 conv (32, stride 2)
  and two depthwise-separable convs (48 and 64, stride 2) — the 1/8 features the fusion
  reuses, computed once for both branches;
* **global feature extractor** (``backbone.features``): MobileNetV2 bottlenecks (expansion 6)
  of 64, 96 and 128 channels, 3 each, the first two groups at stride 2 (1/32), then a
  pyramid pooling module (bins 1, 2, 3, 6, as PSPNet);
* **feature fusion** (``classifier.fusion``): the 1/32 features upsampled ×4, a depthwise
  3×3 conv and a 1×1 conv, added to a 1×1 conv of the 1/8 features;
* **classifier** (``classifier``): two depthwise-separable convs (128), dropout 0.1 and a
  1×1 conv to the classes; logits upsampled ×8 to the input.

``backbone`` is the first two parts, so ``--freeze-backbone`` and the backbone learning-rate
factor of ``segtools train`` apply as to the other architectures. 1.1 M parameters for 19
classes (the paper: 1.11 M).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segtools.models.base import EncoderDecoder, conv_norm_act


def separable(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """Depthwise 3×3 (stride) then pointwise 1×1, each with BatchNorm and ReLU ("DSConv")."""
    return nn.Sequential(conv_norm_act(in_channels, in_channels, 3, stride=stride, groups=in_channels),
                         conv_norm_act(in_channels, out_channels, 1))


class Bottleneck(nn.Module):
    """MobileNetV2's inverted residual: 1×1 expand (×``expansion``), depthwise 3×3 (stride),
    linear 1×1 projection; the input is added back when the shapes allow."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, expansion: int = 6) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.residual = stride == 1 and in_channels == out_channels
        self.block = nn.Sequential(conv_norm_act(in_channels, hidden, 1),
                                   conv_norm_act(hidden, hidden, 3, stride=stride, groups=hidden),
                                   conv_norm_act(hidden, out_channels, 1, activation=None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.residual else out


def pool_matrix(size, bins: int, like: torch.Tensor) -> torch.Tensor:
    """``bins × size``: row ``i`` averages positions ``floor(i·size/bins)`` … ``ceil((i+1)·size/bins) − 1``,
    the windows of ``adaptive_avg_pool2d``. Built from tensor ops on ``size``, so an ONNX export
    keeps any input size (ONNX's adaptive pooling needs sizes the bins divide).

    >>> (pool_matrix(5, 2, torch.zeros(1)) * 3).round().tolist()  # windows 0–2 and 2–4, a third each
    [[1.0, 1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0, 1.0]]
    """
    index = torch.arange(bins, device=like.device, dtype=torch.float32)
    start = torch.floor(index * size / bins)
    end = torch.ceil((index + 1) * size / bins)
    position = torch.arange(size, device=like.device).to(torch.float32)
    inside = (position[None, :] >= start[:, None]) & (position[None, :] < end[:, None])
    return (inside.to(torch.float32) / (end - start)[:, None]).to(like.dtype)


def adaptive_mean(x: torch.Tensor, bins: int) -> torch.Tensor:
    """``adaptive_avg_pool2d(x, bins)`` as two matrix products (:func:`pool_matrix`)."""
    rows, cols = pool_matrix(x.shape[-2], bins, x), pool_matrix(x.shape[-1], bins, x)
    return torch.matmul(torch.matmul(rows, x), cols.transpose(0, 1))


class PyramidPooling(nn.Module):
    """PSPNet's pyramid pooling: average pools to ``bins``², each 1×1-convolved to a quarter of
    the channels and upsampled back, concatenated with the input, fused by a 1×1 conv."""

    def __init__(self, channels: int, out_channels: int, bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.bins = tuple(bins)
        self.stages = nn.ModuleList(conv_norm_act(channels, channels // 4, 1) for _ in self.bins)
        self.project = conv_norm_act(channels + len(self.bins) * (channels // 4), out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [F.interpolate(stage(adaptive_mean(x, b)), size=size, mode="bilinear", align_corners=False)
                  for b, stage in zip(self.bins, self.stages)]
        return self.project(torch.cat([x, *pooled], dim=1))


class Encoder(nn.Module):
    """Learning to downsample (1/8, ``high``) and the global feature extractor (1/32, ``low``)."""

    def __init__(self) -> None:
        super().__init__()
        self.downsample = nn.Sequential(conv_norm_act(3, 32, 3, stride=2), separable(32, 48, 2), separable(48, 64, 2))
        blocks: list[nn.Module] = []
        for in_channels, out_channels, stride in ((64, 64, 2), (64, 96, 2), (96, 128, 1)):
            blocks += [Bottleneck(in_channels, out_channels, stride), Bottleneck(out_channels, out_channels),
                       Bottleneck(out_channels, out_channels)]
        self.features = nn.Sequential(*blocks, PyramidPooling(128, 128))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        high = self.downsample(x)
        return {"high": high, "low": self.features(high)}


class FeatureFusion(nn.Module):
    """The 1/32 features upsampled to the 1/8 ones (depthwise 3×3 dilated by the ×4 of the
    upsampling, as the paper's table, then 1×1), added to a 1×1 conv of the 1/8 features."""

    def __init__(self, high_channels: int = 64, low_channels: int = 128, out_channels: int = 128) -> None:
        super().__init__()
        self.low = nn.Sequential(conv_norm_act(low_channels, low_channels, 3, dilation=4, groups=low_channels),
                                 conv_norm_act(low_channels, out_channels, 1, activation=None))
        self.high = conv_norm_act(high_channels, out_channels, 1, activation=None)

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        low = F.interpolate(low, size=high.shape[-2:], mode="bilinear", align_corners=False)
        return F.relu(self.high(high) + self.low(low))


class Head(nn.Module):
    """Feature fusion, two depthwise-separable convs, dropout, 1×1 conv to the classes (at 1/8)."""

    def __init__(self, num_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.fusion = FeatureFusion()
        self.refine = nn.Sequential(separable(128, 128), separable(128, 128))
        self.dropout = nn.Dropout(dropout)
        self.logits = nn.Conv2d(128, num_classes, 1)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.logits(self.dropout(self.refine(self.fusion(features["high"], features["low"]))))


def fast_scnn(num_classes: int, dropout: float = 0.1) -> EncoderDecoder:
    """Fast-SCNN with ``num_classes`` outputs (see the module doc), randomly initialised."""
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), not {dropout!r}")
    return EncoderDecoder(Encoder(), Head(num_classes, float(dropout)), classifier_reads_all=True)
