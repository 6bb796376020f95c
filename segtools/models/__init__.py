"""Native segmentation architectures and their registry.

Importing this package does not import torch: :data:`ARCHITECTURES` (names, options,
preprocessing, checkpoint layouts) is plain data, and builders are imported on use.

>>> sorted(ARCHITECTURES)[:3]
['deeplabv3-mnv3', 'deeplabv3-resnet101', 'deeplabv3-resnet50']
>>> ARCHITECTURES["unet"].preprocessing["std"]
[1.0, 1.0, 1.0]

Every model's ``forward(x)`` takes N×3×H×W normalised float and returns logits
N×C×H×W (a tensor) at the input size.
"""

from __future__ import annotations

import difflib
import importlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from segtools.errors import InputError, UsageError, require

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger("segtools")

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
IMAGENET = {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "scale": 1 / 255}
UNIT = {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "scale": 1 / 255}


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
    preprocessing : dict
        ``{"mean", "std", "scale"}``: input = (pixel · scale − mean) / std, per RGB channel.
    layout : str
        Whose state dicts load with ``strict=True``.
    description : str
        One line for tables.
    """

    name: str
    builder: str
    options: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=lambda: dict(IMAGENET))
    layout: str = ""
    description: str = ""

    @property
    def supports_aux(self) -> bool:
        """Whether ``aux=True`` builds an auxiliary head."""
        return "aux" in self.options


def _spec(
    name: str, builder: str, options: dict, layout: str, description: str, preprocessing: dict = IMAGENET
) -> ArchSpec:
    return ArchSpec(name, builder, options, dict(preprocessing), layout, description)


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
        _spec("lraspp-mnv3", "segtools.models.lraspp:lraspp_mobilenet_v3_large", {"inter_channels": 128},
              _TV.format("lraspp_mobilenet_v3_large"), "LR-ASPP, MobileNetV3-Large"),
        _spec("deeplabv3plus-resnet50", "segtools.models.deeplabv3plus:deeplabv3plus_resnet50",
              {"output_stride": 16, "decoder_convs": 2},
              "segtools (decoder_convs=1: VainF/DeepLabV3Plus-Pytorch)", "DeepLabV3+, ResNet-50"),
        _spec("deeplabv3plus-resnet101", "segtools.models.deeplabv3plus:deeplabv3plus_resnet101",
              {"output_stride": 16, "decoder_convs": 2},
              "segtools (decoder_convs=1: VainF/DeepLabV3Plus-Pytorch)", "DeepLabV3+, ResNet-101"),
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


_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model_state", "model", "net", "module")
_PREFIXES = ("module.", "_orig_mod.")


def unwrap_state_dict(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Return the tensors of a checkpoint as a plain state dict.

    Unwraps ``{"state_dict"|"model"|"model_state"|…: {...}}`` containers, strips the
    ``module.`` (DataParallel) and ``_orig_mod.`` (``torch.compile``) prefixes and drops
    non-tensor entries (e.g. milesial's ``mask_values``).
    """
    import torch

    for _ in range(3):
        inner = next((state[k] for k in _WRAPPER_KEYS if isinstance(state.get(k), Mapping)), None)
        if inner is None or any(isinstance(v, torch.Tensor) for v in state.values()):
            break
        state = inner
    tensors: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        for prefix in _PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix):]
        tensors[key] = value
    if not tensors:
        raise InputError("the checkpoint holds no tensors (expected a state dict)")
    return tensors


def load_state_dict_flexible(
    model: torch.nn.Module, state: Mapping[str, Any], strict: bool = True
) -> torch.nn.Module:
    """Load a checkpoint's weights into ``model``, tolerating common wrappers.

    ``aux_classifier.*`` entries are dropped when the model has no auxiliary head (the
    torchvision checkpoints carry one). Everything else must match exactly when ``strict``.

    Parameters
    ----------
    model : torch.nn.Module
        The model to fill (in place).
    state : mapping
        A state dict or a checkpoint dict holding one (see :func:`unwrap_state_dict`).
    strict : bool
        Require every key of the model and of the state to match (shapes always must).

    Returns
    -------
    torch.nn.Module
        ``model``.

    Raises
    ------
    InputError
        Missing or unexpected keys, or shape mismatches, with examples of each.
    """
    tensors = check_state_dict_fits(model, state, strict)
    model.load_state_dict(tensors, strict=strict)
    return model


def check_state_dict_fits(
    model: torch.nn.Module, state: Mapping[str, Any], strict: bool = True
) -> dict[str, torch.Tensor]:
    """The tensors of ``state`` that :func:`load_state_dict_flexible` would load into
    ``model``, after checking keys and shapes; ``model`` may live on the ``meta`` device (so
    a hostile checkpoint's declared sizes are compared before anything is allocated).

    A tensor that claims more elements than its storage holds (an expanded, stride-0 view:
    a few bytes on disk posing as gigabytes) is refused.

    Raises
    ------
    InputError
        Missing or unexpected keys, shape mismatches, or expanded tensors.
    """
    tensors = unwrap_state_dict(state)
    for key, value in tensors.items():
        if value.numel() and value.numel() * value.element_size() > value.untyped_storage().nbytes():
            raise InputError(f"the checkpoint's tensor {key[:80]!r} declares {tuple(value.shape)} over "
                             f"{value.untyped_storage().nbytes():,} bytes of data; refusing an expanded tensor")
    expected = model.state_dict()
    if not any(key.startswith("aux_classifier.") for key in expected):
        dropped = [key for key in tensors if key.startswith("aux_classifier.")]
        for key in dropped:
            del tensors[key]
        if dropped:
            log.debug("ignored %d aux_classifier entries (model built without aux)", len(dropped))
    missing = [key for key in expected if key not in tensors]
    unexpected = [key for key in tensors if key not in expected]
    mismatched = [
        f"{key}: checkpoint {tuple(tensors[key].shape)} vs model {tuple(value.shape)}"
        for key, value in expected.items()
        if key in tensors and tuple(tensors[key].shape) != tuple(value.shape)
    ]
    problems = []
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es), e.g. {mismatched[0]}")
    if strict and missing:
        problems.append(f"{len(missing)} missing key(s), e.g. {', '.join(missing[:3])}")
    if strict and unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s), e.g. {', '.join(unexpected[:3])}")
    if problems:
        raise InputError(
            "the checkpoint does not fit this model: " + "; ".join(problems)
            + " (check --arch, the number of classes and the architecture options)"
        )
    return tensors


def load_torchscript(path: Any, device: Any = "cpu") -> torch.nn.Module:
    """Load a TorchScript file; ``forward`` returns a logits tensor (see :mod:`.torchscript`)."""
    require("torch", "models")
    from segtools.models.torchscript import load_torchscript as _load

    return _load(path, device)


def infer_options(arch: str, state: Mapping[str, Any]) -> dict[str, Any]:
    """Guess ``num_classes`` and options of ``arch`` from a checkpoint's keys and shapes.

    Returns a dict with ``num_classes`` plus the options that can be read off the weights
    (``aux`` for torchvision models; every U-Net option; ``decoder_convs`` for DeepLabV3+).

    Raises
    ------
    InputError
        When the keys do not belong to ``arch``.
    """
    spec = get_arch(arch)
    tensors = unwrap_state_dict(state)
    try:
        if arch == "unet":
            from segtools.models.unet import unet_options_from_state_dict

            return unet_options_from_state_dict(tensors)
        if arch.startswith("deeplabv3plus"):
            prefix = "classifier.classifier."
            convs = sorted(int(k.split(".")[2]) for k in tensors if k.startswith(prefix) and k.endswith(".weight"))
            last = f"classifier.classifier.{convs[-1]}.weight"
            return {"num_classes": int(tensors[last].shape[0]), "decoder_convs": (convs[-1]) // 3}
        if arch.startswith("lraspp"):
            return {"num_classes": int(tensors["classifier.low_classifier.weight"].shape[0])}
        options: dict[str, Any] = {"num_classes": int(tensors["classifier.4.weight"].shape[0])}
        if spec.supports_aux:
            options["aux"] = any(key.startswith("aux_classifier.") for key in tensors)
        return options
    except (KeyError, IndexError, ValueError):
        raise InputError(f"the checkpoint's keys are not those of a '{arch}' model") from None


__all__ = [
    "ARCHITECTURES",
    "ArchSpec",
    "IMAGENET",
    "UNIT",
    "build_model",
    "check_state_dict_fits",
    "get_arch",
    "infer_options",
    "load_state_dict_flexible",
    "load_torchscript",
    "unwrap_state_dict",
]
