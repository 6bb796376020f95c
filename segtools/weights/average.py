"""Weighted averages of checkpoints of one model: checkpoint averaging, model soups, WiSE-FT.

A fine-tuned model and the one it started from lie in one basin of the loss, so a weighted
average of their weights is a model too — often better than either on data unlike the
fine-tuning set (Wortsman et al., *Robust fine-tuning of zero-shot models*, 2022, "WiSE-FT";
*Model soups*, 2022). Every floating-point tensor (parameters and BatchNorm statistics) is
averaged in float64 and stored in the first checkpoint's dtype; integer buffers
(``num_batches_tracked``) are taken from the checkpoint with the largest weight.
"""

from __future__ import annotations

import math
import os
from typing import Sequence

from segtools.errors import InputError, UsageError


def parse_weights(text: str | None, count: int) -> list[float]:
    """``"0.25,0.75"`` → ``[0.25, 0.75]`` (``None``: equal weights); non-negative, summing to 1.

    >>> parse_weights(None, 4), parse_weights("1,3", 2)
    ([0.25, 0.25, 0.25, 0.25], [0.25, 0.75])
    """
    if text is None:
        return [1.0 / count] * count
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"weights={text!r}: give one number per checkpoint, comma-separated, e.g. 0.25,0.75") from None
    if len(values) != count:
        raise UsageError(f"weights={text!r}: {len(values)} numbers for {count} checkpoints")
    if any(not math.isfinite(v) or v < 0 for v in values) or sum(values) <= 0:
        raise UsageError(f"weights={text!r}: weights are non-negative numbers, not all 0")
    total = sum(values)
    return [v / total for v in values]


def average_checkpoints(paths: Sequence[str | os.PathLike], weights: Sequence[float]) -> dict:
    """The segtools checkpoint whose tensors are ``Σ weights[i] · checkpoint[i]``.

    The checkpoints must share architecture, class count, keys and shapes (checked, the
    first difference named); classes, preprocessing and architecture options come from the
    first. Metrics and training state are dropped: the average has to be measured anew.

    Raises
    ------
    InputError
        A checkpoint of another architecture, class count, key set or tensor shape.
    """
    import torch

    from segtools.weights.checkpoint import load_checkpoint, make_checkpoint

    if len(paths) < 2:
        raise UsageError("checkpoints: give two or more to average")
    loaded = [load_checkpoint(path) for path in paths]
    first, name = loaded[0], str(paths[0])
    if not first.get("arch"):
        raise InputError(f"{name}: a plain state dict without an architecture; import it first "
                         "(segtools weights import FILE --name NAME --arch ARCH)")
    for path, other in zip(paths[1:], loaded[1:]):
        for field in ("arch", "num_classes"):
            if other.get(field) != first.get(field):
                raise InputError(f"{path}: {field} {other.get(field)!r} differs from {name}'s {first.get(field)!r}")
        keys, mine = set(other["state_dict"]), set(first["state_dict"])
        if keys != mine:
            key = sorted(keys ^ mine)[0]
            raise InputError(f"{path}: tensor {key!r} is in only one of it and {name}")
        for key, tensor in first["state_dict"].items():
            if tuple(other["state_dict"][key].shape) != tuple(tensor.shape):
                raise InputError(f"{path}: tensor {key!r} has shape {tuple(other['state_dict'][key].shape)}, "
                                 f"{tuple(tensor.shape)} in {name}")
    heaviest = max(range(len(weights)), key=lambda i: weights[i])
    state = {}
    for key, tensor in first["state_dict"].items():
        if tensor.is_floating_point():
            total = sum(w * c["state_dict"][key].to(torch.float64) for w, c in zip(weights, loaded))
            state[key] = total.to(tensor.dtype)
        else:
            state[key] = loaded[heaviest]["state_dict"][key].clone()
    return make_checkpoint(first["arch"], first["num_classes"], state, classes=first.get("classes"),
                           preprocessing=first.get("preprocessing"), arch_options=first.get("arch_options"),
                           averaged_from=[{"file": os.path.basename(str(p)), "weight": round(w, 6)}
                                          for p, w in zip(paths, weights)])
