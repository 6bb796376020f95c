"""Test-time augmentation: flips and scales, undone on the outputs, probabilities averaged.

``--tta flip`` runs the image as is and mirrored left-right; ``flip=hv`` adds the up-down
mirror; ``scales=0.75,1,1.25`` runs each flip at each scale (resized bilinearly, outputs
resized back). Every variant's probabilities (softmax, or sigmoid for one channel) are
averaged, as mmsegmentation's and segmentation_models' TTA do. A model that is itself
flip-equivariant gives exactly the plain prediction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from segtools.errors import UsageError, require


@dataclass(frozen=True)
class TTA:
    """Augmentations to run: ``flips`` among ``""`` (none), ``"h"``, ``"v"``; ``scales`` factors."""

    flips: tuple[str, ...] = ("",)
    scales: tuple[float, ...] = (1.0,)

    @property
    def variants(self) -> int:
        return len(self.flips) * len(self.scales)


def parse_tta(spec: str | None) -> TTA | None:
    """``"flip"``, ``"flip=hv"``, ``"scales=0.75,1,1.25"``, ``"flip,scales=0.5,1"`` → :class:`TTA`.

    >>> parse_tta("flip,scales=0.75,1,1.25")
    TTA(flips=('', 'h'), scales=(0.75, 1.0, 1.25))
    >>> parse_tta("flip=hv").flips
    ('', 'h', 'v')
    """
    if spec is None or not str(spec).strip() or str(spec).strip().lower() == "none":
        return None
    flips: tuple[str, ...] = ("",)
    scales: tuple[float, ...] = (1.0,)
    text = str(spec).replace(" ", "")
    scale_part = ""
    if "scales=" in text:
        text, scale_part = text.split("scales=", 1)
        text = text.rstrip(",")
    for token in filter(None, text.split(",")):
        name, _, value = token.partition("=")
        if name != "flip":
            raise UsageError(f"tta {spec!r}: unknown augmentation {name!r}; use flip[=h|v|hv] and/or scales=A,B,...")
        axes = value or "h"
        if set(axes) - {"h", "v"}:
            raise UsageError(f"tta {spec!r}: flip takes h, v or hv, not {axes!r}")
        flips = ("",) + tuple(dict.fromkeys(axes))
    if scale_part:
        try:
            scales = tuple(float(v) for v in scale_part.split(",") if v)
        except ValueError:
            raise UsageError(f"tta {spec!r}: scales must be numbers, e.g. scales=0.75,1,1.25") from None
        if not scales or min(scales) <= 0:
            raise UsageError(f"tta {spec!r}: scales must be positive numbers")
    return TTA(flips, scales)


def _flip(x: "torch.Tensor", flip: str) -> "torch.Tensor":
    if flip == "h":
        return x.flip(-1)
    if flip == "v":
        return x.flip(-2)
    return x


def tta_probabilities(logits_fn: Callable[["torch.Tensor"], "torch.Tensor"], images: "torch.Tensor",
                      tta: TTA, activate: Callable[["torch.Tensor"], "torch.Tensor"]) -> "torch.Tensor":
    """Mean of ``activate(logits)`` over the TTA variants, at the input size (N×C×H×W float32)."""
    F = require("torch", "models").nn.functional  # imported here: parse_tta and TTA need no torch
    height, width = images.shape[-2:]
    total = None
    for scale in tta.scales:
        if scale == 1.0:
            scaled = images
        else:
            size = (max(1, round(height * scale)), max(1, round(width * scale)))
            scaled = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        for flip in tta.flips:
            logits = _flip(logits_fn(_flip(scaled, flip)), flip).float()
            if logits.shape[-2:] != (height, width):
                logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
            probs = activate(logits)
            total = probs if total is None else total + probs
    return total / tta.variants
