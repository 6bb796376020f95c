"""The settings of a training run, as one plain, JSON-able record.

:class:`TrainConfig` is what ``segtools train`` options become, what a checkpoint stores as
``train_args``, and what ``--resume`` rebuilds the run from.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from segtools.errors import UsageError


def parse_size(text: str | int | tuple | list | None, option: str) -> tuple[int, int] | None:
    """``"360x480"`` (H×W) or ``"512"`` (square) → ``(height, width)``; ``None`` stays ``None``.

    >>> parse_size("360x480", "--crop"), parse_size("64", "--crop")
    ((360, 480), (64, 64))
    """
    if text is None or text == "":
        return None
    if isinstance(text, (tuple, list)):
        parts = [str(v) for v in text]
    else:
        parts = str(text).lower().replace("×", "x").replace(",", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise UsageError(f"{option} {text!r}: give HEIGHTxWIDTH in pixels (e.g. 360x480) or one number") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise UsageError(f"{option} {text!r}: give HEIGHTxWIDTH in positive pixels (e.g. 360x480)")
    return values[0], values[1]


def parse_range(text: str | tuple | list | None, option: str) -> tuple[float, float]:
    """``"0.5,2"`` → ``(0.5, 2.0)``; one number ``s`` → ``(s, s)``."""
    if text is None or text == "":
        return (1.0, 1.0)
    parts = list(text) if isinstance(text, (tuple, list)) else str(text).split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise UsageError(f"{option} {text!r}: give MIN,MAX (e.g. 0.5,2.0)") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or not (0 < values[0] <= values[1]):
        raise UsageError(f"{option} {text!r}: give 0 < MIN <= MAX (e.g. 0.5,2.0)")
    return values[0], values[1]


@dataclass
class TrainConfig:
    """Everything that defines a run. Sizes are (height, width) pixels; ``epochs`` counts
    passes, ``steps_per_epoch`` (optional) fixes the optimisation steps per epoch."""

    images: list[str]
    masks: list[str]
    output: str
    classes: dict | None = None           # ClassMeta.to_dict(); None = numbered classes
    num_classes: int | None = None
    ignore_index: int | None = 255
    palette: str | None = None            # colour→class map for RGB masks
    val_images: list[str] | None = None
    val_masks: list[str] | None = None
    val_split: float = 0.1
    arch: str = "unet"
    arch_options: dict = field(default_factory=dict)
    epochs: int = 50
    batch: int = 8
    steps_per_epoch: int | None = None
    crop: tuple[int, int] | None = None
    patch: tuple[int, int] | None = None
    min_foreground: float = 0.0
    background: int = 0
    augment: dict = field(default_factory=dict)  # AugmentConfig fields
    loss: str = "ce"
    loss_weights: list[float] | None = None
    focal_gamma: float = 2.0
    focal_alpha: float | None = None
    tversky_alpha: float = 0.5
    tversky_beta: float = 0.5
    label_smoothing: float = 0.0
    aux_weight: float = 0.4
    class_weights: str | None = None      # inverse|median|effective|FILE
    class_weights_beta: float = 0.999
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    schedule: str = "poly"
    warmup: int = 0                       # steps
    lr_step: int = 30                     # epochs, for the step schedule
    lr_gamma: float = 0.1
    min_lr: float = 0.0
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    channels_last: bool = False
    workers: int = 0
    val_every: int = 1
    deterministic: bool = True
    preprocessing: dict | None = None     # None = the architecture's default

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise UsageError("--epochs must be at least 1")
        if self.batch < 1:
            raise UsageError("--batch must be at least 1")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise UsageError("--steps-per-epoch must be at least 1")
        if not 0.0 <= self.min_foreground <= 1.0:
            raise UsageError("--min-foreground is a fraction in [0, 1]")
        if self.min_foreground > 0 and self.patch is None:
            raise UsageError("--min-foreground needs --patch SIZE (it chooses where patches are cut)")
        if self.val_every < 1:
            raise UsageError("--val-every must be at least 1")
        if self.workers < 0:
            raise UsageError("--workers must be >= 0")
        if (self.val_images is None) != (self.val_masks is None):
            raise UsageError("give both --val-images and --val-masks, or neither")
        for name in ("crop", "patch"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, tuple(int(v) for v in value))

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for name in ("crop", "patch"):
            if data[name] is not None:
                data[name] = list(data[name])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
