"""State dicts and models: unwrap a checkpoint's tensors, check they fit a model, load them,
and read an architecture's options off them.

What people publish is rarely a bare state dict: a ``{"state_dict"|"model"|…: {...}}``
wrapper (nested up to three deep), keys with DataParallel's ``module.`` or ``torch.compile``'s
``_orig_mod.`` prefix, non-tensor entries (milesial's ``mask_values``), torchvision's
``aux_classifier.*`` weights for a model built without that head. :func:`unwrap_state_dict`
and :func:`load_state_dict_flexible` take all of these; :func:`check_state_dict_fits`
compares keys and shapes against a model on the ``meta`` device, so a hostile checkpoint's
declared sizes fail before anything of their size is allocated.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from segtools.errors import InputError, require

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger("segtools")

#: keys that may hold the weights inside a wrapper dict, in order of preference
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model_state", "model", "net", "module", "params")
_PREFIXES = ("module.", "_orig_mod.")


def _is_tensor_dict(obj: Mapping, torch) -> bool:
    values = list(obj.values())
    return bool(values) and sum(isinstance(v, torch.Tensor) for v in values) >= max(1, len(values) // 2)


def unwrap_state_dict(state: Any, source: str = "the checkpoint") -> dict[str, torch.Tensor]:
    """Return the tensors of a checkpoint as a plain state dict.

    Unwraps ``{"state_dict"|"model"|"model_state"|…: {...}}`` containers (up to three deep;
    a wrapper that holds tensors is preferred), strips the ``module.`` (DataParallel) and
    ``_orig_mod.`` (``torch.compile``) prefixes and drops non-tensor entries (e.g. milesial's
    ``mask_values``).

    Raises
    ------
    InputError
        ``state`` is not a mapping, or holds no tensors; ``source`` names it.
    """
    torch = require("torch", "models")
    for _ in range(3):
        if not isinstance(state, Mapping) or _is_tensor_dict(state, torch):
            break
        inner = [state[k] for k in STATE_DICT_KEYS if isinstance(state.get(k), Mapping)]
        if not inner:
            break
        state = next((c for c in inner if _is_tensor_dict(c, torch)), inner[0])
    if not isinstance(state, Mapping):
        raise InputError(f"{source}: holds a {type(state).__name__}, not a state dict")
    tensors: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        key = str(key)
        for prefix in _PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix):]
        tensors[key] = value
    if not tensors:
        raise InputError(f"{source}: no tensors found, expected a state dict "
                         f"(keys: {', '.join(list(map(str, state))[:6]) or 'none'})")
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
            + " (check the architecture, the number of classes and the architecture options)"
        )
    return tensors


def infer_options(arch: str, state: Mapping[str, Any]) -> dict[str, Any]:
    """Guess ``num_classes`` and options of ``arch`` from a checkpoint's keys and shapes.

    Returns a dict with ``num_classes`` plus the options that can be read off the weights
    (``aux`` for torchvision models; every U-Net option; ``decoder_convs`` for DeepLabV3+;
    ``low_stride`` for LR-ASPP).

    Raises
    ------
    InputError
        When the keys do not belong to ``arch``.
    """
    from segtools.models import get_arch

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
        if arch.startswith("lraspp"):  # (output_stride changes no weight: not readable here)
            low = tensors["classifier.low_classifier.weight"]
            return {"num_classes": int(low.shape[0]), "low_stride": 4 if low.shape[1] == 24 else 8}
        if arch == "fast-scnn":
            return {"num_classes": int(tensors["classifier.logits.weight"].shape[0])}
        options: dict[str, Any] = {"num_classes": int(tensors["classifier.4.weight"].shape[0])}
        if spec.supports_aux:
            options["aux"] = any(key.startswith("aux_classifier.") for key in tensors)
        return options
    except (KeyError, IndexError, ValueError):
        raise InputError(f"the checkpoint's keys are not those of a '{arch}' model") from None
