"""Start a run from existing weights: a whole checkpoint (fine-tuning), or a pretrained backbone.

:func:`init_from_checkpoint` copies every tensor of a checkpoint of the same architecture
into the model; when the class count differs, the classifier layers (the tensors whose
shapes differ only in the number of output classes) keep their fresh initialisation — "a
new head". :func:`init_backbone` fills only ``model.backbone`` from an image-classification
checkpoint (torchvision's ImageNet ResNet and MobileNetV3 files: ``features.N.…`` or
``layerN.…`` keys; the classifier and ``fc`` tensors are not used).

Both take a *source*: a registry name (``segtools weights list``; pulled and verified by
``segtools weights pull``) or a checkpoint file, always read as data only.
:func:`init_arch_options` gives a run that starts from a checkpoint the architecture options
that checkpoint was built with (an output stride changes no weight, so the tensors alone
cannot say it). :func:`set_backbone_frozen` and :func:`param_groups` serve ``freeze_backbone`` and the
backbone learning-rate factor.
"""

from __future__ import annotations

from typing import Any

import torch

from segtools.errors import InputError, UsageError

_BACKBONE_PREFIXES = ("", "features.", "backbone.", "backbone.body.", "encoder.")


def _resolve(source: str):
    """``source`` (registry name or file) as ``(path, label, registry entry or None)``."""
    from segtools.weights import registry
    from segtools.weights.loader import model_source

    kind, _ = model_source(source)
    if kind == "registry":
        entry, path = registry.resolve(source)
        return path, f"weights {entry.name!r}", entry
    from segtools.io.remote import local_file

    path = local_file(source)  # a storage URL: this machine's copy
    if not path.is_file():
        raise InputError(f"{source}: no such checkpoint file")
    return path, source, None


def read_source(source: str) -> tuple[dict[str, torch.Tensor], str]:
    """The tensors of ``source`` (registry name or file) and a label for messages."""
    from segtools.weights.checkpoint import read_weights_file
    from segtools.weights.state_dict import unwrap_state_dict

    path, label, _ = _resolve(source)
    return unwrap_state_dict(read_weights_file(path), label), label


def init_arch_options(source: str, arch: str, given: dict[str, Any]) -> dict[str, Any]:
    """The architecture options of a run of ``arch`` that starts from ``source``.

    Those ``source`` declares (its registry entry, then the checkpoint's ``arch_options``,
    when it is a checkpoint of ``arch``), overridden by the ``given`` ones: a fine-tune of an
    output-stride-32 checkpoint trains at stride 32 unless told otherwise.
    """
    from segtools.models import get_arch
    from segtools.weights.checkpoint import load_checkpoint
    from segtools.weights.metadata import check_arch_options

    path, label, entry = _resolve(source)
    declared: dict[str, Any] = dict(entry.arch_options or {}) if entry is not None and entry.arch == arch else {}
    checkpoint = load_checkpoint(path)
    if checkpoint.get("arch") in (None, arch):
        declared.update(checkpoint.get("arch_options") or {})
    defaults = get_arch(arch).options
    declared = check_arch_options({k: v for k, v in declared.items() if k in defaults}, defaults, arch, label)
    return {**declared, **given}


def _is_class_axis_change(source: torch.Size, target: torch.Size) -> bool:
    """True when two shapes differ only in their first axis (a classifier's outputs)."""
    return len(source) == len(target) and len(source) >= 1 and source[1:] == target[1:] and source[0] != target[0]


def init_from_checkpoint(model: torch.nn.Module, source: str, arch: str) -> dict[str, Any]:
    """Copy the weights of ``source`` into ``model`` (architecture ``arch``).

    Returns ``{"source", "loaded", "new_head"}``: the number of tensors copied and the keys
    left freshly initialised because the checkpoint has another number of classes.

    Raises
    ------
    InputError
        The checkpoint lacks a tensor of ``arch`` (the first missing key is named) or holds
        one of another shape: it is a checkpoint of another architecture.
    """
    tensors, label = read_source(source)
    target = model.state_dict()
    new_head, missing = [], []
    for key, value in target.items():
        if key not in tensors:
            if not key.endswith("num_batches_tracked"):
                missing.append(key)
            continue
        shape = tensors[key].shape
        if shape != value.shape:
            if _is_class_axis_change(shape, value.shape):
                new_head.append(key)
                continue
            raise InputError(f"{label}: {key} has shape {tuple(shape)}, {arch} needs {tuple(value.shape)}: "
                             f"not a checkpoint of {arch} (init= takes weights of the same architecture, "
                             "init_backbone= a pretrained backbone)")
    if missing:
        raise InputError(f"{label}: no {missing[0]} ({len(missing)} of {len(target)} tensors of {arch} missing): "
                         f"not a checkpoint of {arch}; give one of the same architecture, or a backbone as init_backbone=FILE|NAME")
    if len(new_head) == len(target):
        raise InputError(f"{label}: no tensor fits {arch}")
    copied = {k: tensors[k].to(target[k].dtype) for k in target if k in tensors and k not in new_head}
    model.load_state_dict(copied, strict=False)
    return {"source": label, "loaded": len(copied), "new_head": new_head}


def init_backbone(model: torch.nn.Module, source: str) -> dict[str, Any]:
    """Fill ``model.backbone`` from the classification checkpoint ``source``.

    The checkpoint's keys are matched with or without a ``features.``/``backbone.`` prefix
    (whichever covers the backbone); every backbone tensor must be found with its shape.
    Returns ``{"source", "loaded", "unused"}``.
    """
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, torch.nn.Module):
        raise UsageError(f"{type(model).__name__} has no backbone to initialise; use init with a whole checkpoint")
    tensors, label = read_source(source)
    target = {k: v for k, v in backbone.state_dict().items() if not k.endswith("num_batches_tracked")}

    def mapped(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix) and k[len(prefix):] in target}

    best = max((mapped(p) for p in _BACKBONE_PREFIXES), key=len)
    missing = [k for k in target if k not in best]
    if missing:
        raise InputError(f"{label}: no tensor for backbone.{missing[0]} ({len(missing)} of {len(target)} missing): "
                         f"not a backbone of {type(model).__name__} (e.g. torchvision's ImageNet ResNet-50 for "
                         "resnet50 models, MobileNetV3-Large for mnv3 models)")
    wrong = [k for k in target if best[k].shape != target[k].shape]
    if wrong:
        key = wrong[0]
        raise InputError(f"{label}: {key} has shape {tuple(best[key].shape)}, the backbone needs "
                         f"{tuple(target[key].shape)}: not the same backbone")
    backbone.load_state_dict({k: best[k].to(target[k].dtype) for k in target}, strict=False)
    return {"source": label, "loaded": len(target), "unused": len(tensors) - len(target)}


def set_backbone_frozen(model: torch.nn.Module, frozen: bool) -> None:
    """Stop (or restart) training ``model.backbone``: no gradients, BatchNorm statistics kept."""
    backbone = getattr(model, "backbone", None)
    if backbone is None:
        raise UsageError(f"{type(model).__name__} has no backbone to freeze")
    for parameter in backbone.parameters():
        parameter.requires_grad_(not frozen)
    if frozen:
        backbone.eval()


def param_groups(model: torch.nn.Module, backbone_lr: float) -> list[dict]:
    """Optimiser groups: the backbone's parameters at ``backbone_lr`` × the learning rate
    (``lr_scale``, read by :func:`segtools.train.schedule.set_lr`), the rest at 1×."""
    backbone = getattr(model, "backbone", None)
    if backbone is None or backbone_lr == 1.0:
        return [{"params": list(model.parameters()), "lr_scale": 1.0}]
    inside = {id(p) for p in backbone.parameters()}
    return [{"params": [p for p in backbone.parameters()], "lr_scale": float(backbone_lr)},
            {"params": [p for p in model.parameters() if id(p) not in inside], "lr_scale": 1.0}]
