"""The heads of the R-CNN models, with torchvision's module names.

* RPN head: 3×3 conv(s) + ReLU, then per-anchor objectness and box deltas.
* Box head: two fully connected layers (v1, ``fc6``/``fc7``) or four 3×3 conv+BN+ReLU and
  one fully connected layer (v2); box predictor ``cls_score``/``bbox_pred`` (per class).
* Mask head: four 3×3 conv + ReLU (+ BN in v2); mask predictor: 2×2 transposed conv
  (×2 upsampling) + ReLU, 1×1 conv to one logit map per class.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_relu(in_channels: int, out_channels: int, norm: bool) -> nn.Sequential:
    """``Sequential(3×3 conv[, BatchNorm], ReLU)``, the conv biased only without the norm."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class RPNHead(nn.Module):
    """Objectness logits (A per cell) and box deltas (4·A per cell) on every level."""

    def __init__(self, channels: int = 256, anchors: int = 3, conv_depth: int = 1) -> None:
        super().__init__()
        self.conv = nn.Sequential(*(conv_relu(channels, channels, False) for _ in range(conv_depth)))
        self.cls_logits = nn.Conv2d(channels, anchors, 1)
        self.bbox_pred = nn.Conv2d(channels, anchors * 4, 1)

    def forward(self, maps: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        logits, deltas = [], []
        for feature in maps:
            hidden = self.conv(feature)
            logits.append(self.cls_logits(hidden))
            deltas.append(self.bbox_pred(hidden))
        return logits, deltas


class TwoMLPHead(nn.Module):
    """v1 box head: flatten, ``fc6`` + ReLU, ``fc7`` + ReLU."""

    def __init__(self, in_features: int = 256 * 7 * 7, hidden: int = 1024) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_features, hidden)
        self.fc7 = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc7(torch.relu(self.fc6(x.flatten(start_dim=1)))))


def conv_fc_head(channels: int = 256, convs: int = 4, pooled: int = 7, hidden: int = 1024) -> nn.Sequential:
    """v2 box head: ``convs`` × (3×3 conv, BN, ReLU), flatten, linear + ReLU."""
    layers: list[nn.Module] = [conv_relu(channels, channels, True) for _ in range(convs)]
    layers += [nn.Flatten(), nn.Linear(channels * pooled * pooled, hidden), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class BoxPredictor(nn.Module):
    """Class logits (``num_classes``, background first) and per-class box deltas."""

    def __init__(self, in_features: int = 1024, num_classes: int = 91) -> None:
        super().__init__()
        self.cls_score = nn.Linear(in_features, num_classes)
        self.bbox_pred = nn.Linear(in_features, num_classes * 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.flatten(start_dim=1)
        return self.cls_score(x), self.bbox_pred(x)


def mask_head(channels: int = 256, layers: int = 4, norm: bool = False) -> nn.Sequential:
    """Mask head: ``layers`` × (3×3 conv[, BN], ReLU) at 14×14."""
    return nn.Sequential(*(conv_relu(channels, channels, norm) for _ in range(layers)))


class MaskPredictor(nn.Module):
    """14×14 features → 28×28 mask logits, one map per class."""

    def __init__(self, channels: int = 256, hidden: int = 256, num_classes: int = 91) -> None:
        super().__init__()
        self.conv5_mask = nn.ConvTranspose2d(channels, hidden, 2, 2, 0)
        self.mask_fcn_logits = nn.Conv2d(hidden, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mask_fcn_logits(torch.relu(self.conv5_mask(x)))
