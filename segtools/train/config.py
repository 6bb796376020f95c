"""The settings of a training run, as one plain, JSON-able record.

:class:`TrainConfig` is what ``segtools train`` options become, what a checkpoint stores as
``train_args``, and what a resumed run is rebuilt from. :func:`class_options` turns a class
preset or file and an optional ignore index into the fields a run stores.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from segtools.errors import UsageError
from segtools.weights.classes import FROM_CLASSES

__all__ = ["FROM_CLASSES", "TrainConfig", "class_options"]


def class_options(classes: str | None, ignore_index: int | None | str = FROM_CLASSES) -> tuple[dict | None, int | None]:
    """What a run stores about its classes: the metadata of ``classes`` (a preset name or a
    file; ``None`` for numbered classes) as a dict, and the ignore index — ``ignore_index``
    when given (``None``: no void label), else the classes' own, else 255.

    >>> class_options(None)
    (None, 255)
    >>> class_options("camvid")[1], class_options("camvid", None)[1]
    (11, None)
    """
    from segtools.io.meta import load_classes

    meta = load_classes(classes) if classes else None
    if ignore_index == FROM_CLASSES:
        ignore_index = meta.ignore_index if meta is not None else 255
    return (meta.to_dict() if meta is not None else None), ignore_index


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
    ohem_thresh: float = 0.7
    ohem_min_kept: float = 0.1            # fraction of the non-ignored pixels
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
    init: str | None = None               # whole checkpoint to start from (registry name or file)
    init_backbone: str | None = None      # pretrained backbone only (registry name or file)
    freeze_backbone: int = 0              # epochs with the backbone frozen
    backbone_lr: float = 1.0              # learning-rate factor of the backbone
    ema: float | None = None              # decay of the weight average (None = off)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise UsageError("epochs must be at least 1")
        if self.batch < 1:
            raise UsageError("batch must be at least 1")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise UsageError("steps_per_epoch must be at least 1")
        if not 0.0 <= self.min_foreground <= 1.0:
            raise UsageError("min_foreground is a fraction in [0, 1]")
        if self.min_foreground > 0 and self.patch is None:
            raise UsageError("min_foreground needs a patch size (patch HxW: it chooses where patches are cut)")
        if self.val_every < 1:
            raise UsageError("val_every must be at least 1")
        if self.workers < 0:
            raise UsageError("workers must be >= 0")
        if self.init and self.init_backbone:
            raise UsageError(f"init={self.init} and init_backbone={self.init_backbone}: give a whole checkpoint "
                             "or a pretrained backbone, not both")
        if self.freeze_backbone < 0:
            raise UsageError(f"freeze_backbone={self.freeze_backbone}: a number of epochs, at least 0")
        if not self.backbone_lr > 0:
            raise UsageError(f"backbone_lr={self.backbone_lr}: must be a positive factor, e.g. 0.1")
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            raise UsageError(f"ema={self.ema}: the decay must be in (0, 1), e.g. 0.999")
        if (self.val_images is None) != (self.val_masks is None):
            raise UsageError("give both validation images and validation masks, or neither")
        for name in ("crop", "patch"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, tuple(int(v) for v in value))
        self.augment_config()  # check the augmentation settings now, before any data is read

    def augment_config(self):
        """The :class:`~segtools.train.augment.AugmentConfig` of :attr:`crop` and :attr:`augment`."""
        from segtools.train.augment import AugmentConfig

        return AugmentConfig(crop=self.crop, **self.augment)

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
