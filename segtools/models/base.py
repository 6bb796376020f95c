"""Building blocks shared by the encoder-decoder architectures.

The module tree mirrors torchvision's ``_SimpleSegmentationModel`` (``backbone``,
``classifier``, ``aux_classifier``) and ``IntermediateLayerGetter`` (a backbone whose
children are the original network's layers, truncated after the last one used), so that
state dicts saved by torchvision load with ``strict=True``. Unlike torchvision, ``forward``
returns the logits tensor itself, not a dict.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn


def conv_norm_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    *,
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
    activation: type[nn.Module] | None = nn.ReLU,
    bn_eps: float = 1e-5,
    bn_momentum: float = 0.1,
) -> nn.Sequential:
    """Return ``Sequential(conv (no bias), BatchNorm2d[, activation])`` ("same" padding).

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out.
    kernel_size, stride, dilation, groups : int
        Convolution geometry; padding is ``(kernel_size - 1) // 2 * dilation`` pixels.
    activation : type of nn.Module or None
        Activation class appended after the norm (none when None).
    bn_eps, bn_momentum : float
        BatchNorm parameters (MobileNetV3 uses 1e-3 and 0.01).

    Returns
    -------
    nn.Sequential
        Children named ``0`` (conv), ``1`` (norm) and ``2`` (activation).
    """
    padding = (kernel_size - 1) // 2 * dilation
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding,
            dilation=dilation, groups=groups, bias=False,
        ),
        nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum),
    ]
    if activation is not None:
        layers.append(activation(inplace=True) if activation in (nn.ReLU, nn.Hardswish) else activation())
    return nn.Sequential(*layers)


class FeatureExtractor(nn.Module):
    """Run named layers in order and return the outputs of some of them.

    Layers after the last returned one are not kept, so the state dict holds exactly what
    torchvision's ``IntermediateLayerGetter`` keeps.

    Parameters
    ----------
    layers : Mapping of str to nn.Module
        The network's layers, in execution order.
    return_layers : Mapping of str to str
        Layer name → feature name (e.g. ``{"layer4": "out", "layer3": "aux"}``).
    """

    def __init__(self, layers: Mapping[str, nn.Module], return_layers: Mapping[str, str]) -> None:
        super().__init__()
        missing = set(return_layers) - set(layers)
        if missing:
            raise ValueError(f"return_layers names unknown layers: {sorted(missing)}")
        wanted = set(return_layers)
        for name, module in layers.items():
            self.add_module(name, module)
            wanted.discard(name)
            if not wanted:
                break
        self.return_layers = dict(return_layers)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features: dict[str, torch.Tensor] = OrderedDict()
        for name, module in self.named_children():
            x = module(x)
            if name in self.return_layers:
                features[self.return_layers[name]] = x
        return features


class EncoderDecoder(nn.Module):
    """Backbone → classifier head (+ optional auxiliary head), logits at input size.

    Parameters
    ----------
    backbone : FeatureExtractor
        Returns a dict with ``"out"`` (and ``"aux"`` when an auxiliary head is used, or
        whatever names the classifier reads when ``classifier_reads_all``).
    classifier : nn.Module
        Main head.
    aux_classifier : nn.Module or None
        Auxiliary head on ``features["aux"]`` (used for training losses).
    classifier_reads_all : bool
        Pass the whole feature dict to the classifier (DeepLabV3+, LR-ASPP) instead of
        ``features["out"]``.
    """

    def __init__(
        self,
        backbone: nn.Module,
        classifier: nn.Module,
        aux_classifier: nn.Module | None = None,
        classifier_reads_all: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.classifier = classifier
        self.aux_classifier = aux_classifier
        self.classifier_reads_all = classifier_reads_all

    def _main(self, features: dict[str, torch.Tensor], size: torch.Size) -> torch.Tensor:
        head_input = features if self.classifier_reads_all else features["out"]
        logits = self.classifier(head_input)
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits N×C×H×W at the input size (the auxiliary head is not run)."""
        return self._main(self.backbone(x), x.shape[-2:])  # Size, not ints: traces stay dynamic

    def forward_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return ``(logits, aux_logits)``, both N×C×H×W; ``aux_logits`` is None without one."""
        size = x.shape[-2:]
        features = self.backbone(x)
        out = self._main(features, size)
        if self.aux_classifier is None:
            return out, None
        aux = self.aux_classifier(features["aux"])
        return out, F.interpolate(aux, size=size, mode="bilinear", align_corners=False)
