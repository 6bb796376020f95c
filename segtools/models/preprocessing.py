"""How pixels become a model's input: one :class:`Preprocessing` record for models, weights,
the predictor and training.

``input = (pixel · scale − mean) / std`` per RGB channel, after an optional resize
(``resize_short``: the shorter side to this many pixels; or ``resize_factor``: both sides
scaled). Checkpoints, registry entries and exported files store it as a plain dict
(:meth:`Preprocessing.to_dict` / :meth:`Preprocessing.from_dict`); a dict that leaves a field
out gets the field's default, so every checkpoint written so far still loads.

The defaults are the neutral ones (mean 0, std 1, scale 1/255: pixels in [0, 1]); an
architecture or a checkpoint says when it wants another, e.g. :data:`IMAGENET`.

Only the standard library is imported here (numpy on use).

>>> Preprocessing.from_dict({"mean": [0.5, 0.5, 0.5]}).std
(1.0, 1.0, 1.0)
>>> IMAGENET.to_dict()["std"]
[0.229, 0.224, 0.225]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Mapping

from segtools.errors import InputError


@dataclass(frozen=True)
class Preprocessing:
    """``(pixel · scale − mean) / std`` per RGB channel, after an optional resize.

    Attributes
    ----------
    mean, std : tuple of 3 floats
        Per-channel (R, G, B) mean and standard deviation of the scaled pixels; std > 0.
    scale : float
        Factor from 8-bit pixel values to the model's range (1/255: [0, 1]); > 0.
    resize_short : int or None
        Resize so the shorter side has this many pixels before the model runs.
    resize_factor : float or None
        Or scale both sides by this factor.
    """

    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    scale: float = 1.0 / 255.0
    resize_short: int | None = None
    resize_factor: float | None = None

    def __post_init__(self) -> None:
        mean = tuple(float(v) for v in self.mean)
        std = tuple(float(v) for v in self.std)
        if len(mean) != 3 or len(std) != 3:
            raise InputError(f"preprocessing: mean and std need 3 values each (R, G, B), got {list(mean)}, {list(std)}")
        if min(std) <= 0 or not all(math.isfinite(v) for v in mean + std):
            raise InputError(f"preprocessing: mean and std must be finite and std > 0, got {list(mean)}, {list(std)}")
        if not (math.isfinite(float(self.scale)) and float(self.scale) > 0):
            raise InputError(f"preprocessing: scale must be a finite number > 0, got {self.scale!r}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        object.__setattr__(self, "scale", float(self.scale))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "Preprocessing":
        """From a checkpoint's or registry entry's dict; missing fields get the defaults,
        unknown ones are ignored (``None`` → the defaults)."""
        data = data or {}
        fields: dict[str, Any] = {key: data[key] for key in ("mean", "std", "scale", "resize_short", "resize_factor")
                                  if data.get(key) is not None}
        return cls(**fields)

    def to_dict(self) -> dict[str, Any]:
        """``{"mean": [3], "std": [3], "scale": s}`` plus the resize field that is set."""
        out: dict[str, Any] = {"mean": list(self.mean), "std": list(self.std), "scale": self.scale}
        if self.resize_short:
            out["resize_short"] = self.resize_short
        if self.resize_factor:
            out["resize_factor"] = self.resize_factor
        return out

    @classmethod
    def of(cls, value: "Preprocessing | Mapping[str, Any] | None", default: "Preprocessing | None" = None) -> "Preprocessing":
        """``value`` itself, or read from a dict; ``None`` → ``default`` (else the neutral defaults)."""
        if isinstance(value, Preprocessing):
            return value
        if value is None and default is not None:
            return default
        return cls.from_dict(value)

    def updated(self, changes: "Preprocessing | Mapping[str, Any] | None") -> "Preprocessing":
        """A copy with the fields of ``changes`` (a dict as :meth:`from_dict` reads, or
        another record) replaced."""
        if not changes:
            return self
        if isinstance(changes, Preprocessing):
            changes = changes.to_dict()
        return Preprocessing.from_dict({**self.to_dict(), **changes})

    def with_(self, **changes: Any) -> "Preprocessing":
        """A copy with some fields replaced."""
        return replace(self, **changes)

    def resized(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) the model runs at for an image of ``height`` × ``width`` pixels."""
        if self.resize_short:
            ratio = float(self.resize_short) / min(height, width)
        elif self.resize_factor:
            ratio = float(self.resize_factor)
        else:
            return height, width
        return max(1, int(round(height * ratio))), max(1, int(round(width * ratio)))

    @property
    def fill(self) -> tuple[float, float, float]:
        """The 8-bit colour that normalises to 0 (used to pad crops)."""
        return tuple(min(255.0, max(0.0, m / self.scale)) for m in self.mean)

    def apply(self, image):
        """uint8 H×W×3 → float32 3×H×W, normalised (no resize)."""
        import numpy as np

        mean = np.asarray(self.mean, np.float32)[:, None, None]
        std = np.asarray(self.std, np.float32)[:, None, None]
        chw = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)
        return (chw * np.float32(self.scale) - mean) / std


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: the torchvision convention: ImageNet mean and std of pixels in [0, 1]
IMAGENET = Preprocessing(IMAGENET_MEAN, IMAGENET_STD)
#: pixels in [0, 1], not normalised further (milesial's U-Net)
UNIT = Preprocessing()
