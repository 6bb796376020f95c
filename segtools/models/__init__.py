"""Native segmentation architectures and their registry.

Importing this package does not import torch: :data:`ARCHITECTURES` (names, options,
preprocessing, checkpoint layouts) is plain data, and builders are imported on use.

>>> sorted(ARCHITECTURES)[:3]
['deeplabv3-mnv3', 'deeplabv3-resnet101', 'deeplabv3-resnet50']
>>> ARCHITECTURES["unet"].preprocessing.std
(1.0, 1.0, 1.0)

Every model's ``forward(x)`` takes N×3×H×W normalised float and returns logits
N×C×H×W (a tensor) at the input size. Loading checkpoints into models (unwrapping, fitting
checks, reading options off the weights) lives with the checkpoints, in
:mod:`segtools.weights.state_dict`.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from segtools.errors import UsageError, require
from segtools.models.preprocessing import IMAGENET, UNIT, Preprocessing

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass(frozen=True)
class ArchSpec:
    """One architecture: how to build it, its options and its input convention.

    Attributes
    ----------
    name : str
        Registry name (``--arch``).
    builder : str
        ``"module:function"`` called as ``function(num_classes, **options)``.
    options : dict
        Accepted keyword options and their defaults.
    preprocessing : Preprocessing
        input = (pixel · scale − mean) / std, per RGB channel.
    layout : str
        Whose state dicts load with ``strict=True``.
    description : str
        One line for tables.
    """

    name: str
    builder: str
    options: dict[str, Any] = field(default_factory=dict)
    preprocessing: Preprocessing = IMAGENET
    layout: str = ""
    description: str = ""

    @property
    def supports_aux(self) -> bool:
        """Whether ``aux=True`` builds an auxiliary head."""
        return "aux" in self.options


def _spec(
    name: str, builder: str, options: dict, layout: str, description: str, preprocessing: Preprocessing = IMAGENET
) -> ArchSpec:
    return ArchSpec(name, builder, options, preprocessing, layout, description)


_TV = "torchvision.models.segmentation.{}"
ARCHITECTURES: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in (
        _spec("unet", "segtools.models.unet:UNet",
              {"in_channels": 3, "depth": 4, "base_channels": 64, "bilinear": False, "conv_bias": False},
              "milesial/Pytorch-UNet UNet", "U-Net with BatchNorm, depth 2-5", UNIT),
        _spec("deeplabv3-resnet50", "segtools.models.deeplabv3:deeplabv3_resnet50", {"aux": False},
              _TV.format("deeplabv3_resnet50"), "DeepLabV3, ResNet-50, output stride 8"),
        _spec("deeplabv3-resnet101", "segtools.models.deeplabv3:deeplabv3_resnet101", {"aux": False},
              _TV.format("deeplabv3_resnet101"), "DeepLabV3, ResNet-101, output stride 8"),
        _spec("deeplabv3-mnv3", "segtools.models.deeplabv3:deeplabv3_mobilenet_v3_large", {"aux": False},
              _TV.format("deeplabv3_mobilenet_v3_large"), "DeepLabV3, MobileNetV3-Large, output stride 16"),
        _spec("fcn-resnet50", "segtools.models.fcn:fcn_resnet50", {"aux": False},
              _TV.format("fcn_resnet50"), "FCN, ResNet-50, output stride 8"),
        _spec("fcn-resnet101", "segtools.models.fcn:fcn_resnet101", {"aux": False},
              _TV.format("fcn_resnet101"), "FCN, ResNet-101, output stride 8"),
        _spec("lraspp-mnv3", "segtools.models.lraspp:lraspp_mobilenet_v3_large", {"inter_channels": 128, "output_stride": 16, "low_stride": 8},
              _TV.format("lraspp_mobilenet_v3_large"), "LR-ASPP, MobileNetV3-Large, output stride 16 (8, 32)"),
        _spec("deeplabv3plus-resnet50", "segtools.models.deeplabv3plus:deeplabv3plus_resnet50",
              {"output_stride": 16, "decoder_convs": 2},
              "segtools (decoder_convs=1: VainF/DeepLabV3Plus-Pytorch)", "DeepLabV3+, ResNet-50"),
        _spec("deeplabv3plus-resnet101", "segtools.models.deeplabv3plus:deeplabv3plus_resnet101",
              {"output_stride": 16, "decoder_convs": 2},
              "segtools (decoder_convs=1: VainF/DeepLabV3Plus-Pytorch)", "DeepLabV3+, ResNet-101"),
        _spec("fast-scnn", "segtools.models.fastscnn:fast_scnn", {"dropout": 0.1},
              "segtools (Poudel et al. 2019, table 1)", "Fast-SCNN, real-time, trains from scratch"),
    )
}


def get_arch(arch: str) -> ArchSpec:
    """Return the :class:`ArchSpec` named ``arch`` or raise :class:`UsageError` with a suggestion."""
    spec = ARCHITECTURES.get(arch)
    if spec is None:
        close = difflib.get_close_matches(str(arch), list(ARCHITECTURES), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise UsageError(f"unknown architecture '{arch}'{hint} (choose from {', '.join(ARCHITECTURES)})")
    return spec


def build_model(arch: str, num_classes: int, **options: Any) -> torch.nn.Module:
    """Build architecture ``arch`` with ``num_classes`` outputs, randomly initialised.

    Parameters
    ----------
    arch : str
        A key of :data:`ARCHITECTURES`.
    num_classes : int
        Output channels (≥ 1).
    **options
        Architecture options (see ``ARCHITECTURES[arch].options``), e.g. ``aux=True``.

    Returns
    -------
    torch.nn.Module
        In training mode, as ``torch.nn`` builds it; call ``.eval()`` for inference.

    Raises
    ------
    UsageError
        Unknown architecture, option or invalid value.
    MissingDependency
        torch is not installed.
    """
    spec = get_arch(arch)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        valid = ", ".join(spec.options) or "none"
        raise UsageError(f"architecture '{arch}' has no option {', '.join(unknown)} (options: {valid})")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise UsageError(f"num_classes must be a positive integer, not {num_classes!r}")
    require("torch", "models")
    module_name, function_name = spec.builder.split(":")
    builder = getattr(importlib.import_module(module_name), function_name)
    try:
        return builder(num_classes, **{**spec.options, **options})
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{arch}: {exc}") from None


def parameter_count(model: torch.nn.Module) -> int:
    """Number of trainable and frozen parameter values of ``model`` (buffers such as BatchNorm
    running statistics not included), as torchvision publishes it."""
    return int(sum(p.numel() for p in model.parameters()))


__all__ = [
    "ARCHITECTURES",
    "ArchSpec",
    "IMAGENET",
    "Preprocessing",
    "UNIT",
    "build_model",
    "get_arch",
    "parameter_count",
]
