"""Assemble a run from its settings: classes, data loaders, model, optimiser, schedule, loss.

Kept apart from :mod:`segtools.train.loop` so the loop reads as the algorithm and this
module as the wiring.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from segtools.errors import InputError, UsageError
from segtools.io.meta import ClassMeta, default_palette
from segtools.models.preprocessing import Preprocessing
from segtools.train.config import TrainConfig
from segtools.train.data import EpochSampler, SegmentationDataset, collate, find_pairs, scan_masks, split_validation
from segtools.train.losses import CombinedLoss, build_loss
from segtools.train.schedule import Schedule

log = logging.getLogger("segtools")

OPTIMIZERS = ("sgd", "adam", "adamw")


@contextlib.contextmanager
def reproducible(seed: int, deterministic: bool = True) -> Iterator[None]:
    """Seed torch, numpy and random; use deterministic kernels inside the block."""
    previous = torch.are_deterministic_algorithms_enabled()
    previous_benchmark = torch.backends.cudnn.benchmark
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)
        torch.backends.cudnn.benchmark = previous_benchmark


def resolve_classes(config: TrainConfig) -> tuple[ClassMeta, int]:
    """Class metadata (names and palette filled in) and the number of classes."""
    meta = ClassMeta.from_dict(config.classes, "classes") if config.classes else ClassMeta()
    num_classes = config.num_classes if config.num_classes is not None else meta.num_classes
    if num_classes is None:
        raise UsageError("give the classes (a preset such as camvid, or a file) or their number (num_classes)")
    if meta.num_classes is not None and meta.num_classes != num_classes:
        raise UsageError(f"num_classes {num_classes} contradicts the classes, which name {meta.num_classes}")
    if num_classes < 2:
        raise UsageError("training needs at least 2 classes (background and one more)")
    # padding (crops past the border, rotations) needs a value the loss skips
    ignore = config.ignore_index if config.ignore_index is not None else max(255, num_classes)
    if 0 <= ignore < num_classes:
        raise UsageError(f"ignore index {ignore} is one of the {num_classes} classes (0..{num_classes - 1}); "
                         "the ignore value must be outside them (e.g. 255)")
    names = meta.names or tuple(f"class_{i}" for i in range(num_classes))
    palette = meta.palette[:num_classes] if meta.palette else default_palette(num_classes)[:num_classes]
    return meta.with_(names=tuple(names), palette=tuple(palette), ignore_index=ignore), num_classes


def read_class_weights(spec: str, counts, num_classes: int, beta: float) -> np.ndarray:
    """Weights from a method name (``inverse``, ``median``, ``effective``) or a file of C numbers
    (JSON list, ``.npy``, or text separated by spaces, commas or new lines)."""
    from segtools.weights.classes import METHODS, class_weights

    if spec.lower() in METHODS:
        return class_weights(counts, spec.lower(), beta=beta)
    path = Path(spec)
    if not path.is_file():
        raise UsageError(f"class weights {spec!r}: neither {', '.join(METHODS)} nor a readable file")
    try:
        if path.suffix.lower() == ".npy":
            values = np.load(path, allow_pickle=False)
        else:
            text = path.read_text(encoding="utf-8").strip()
            values = json.loads(text) if text.startswith(("[", "{")) else text.replace(",", " ").split()
            if isinstance(values, dict):
                values = values.get("weights", values.get("class_weights"))
        weights = np.asarray(values, dtype=np.float64).ravel()
    except (ValueError, TypeError, OSError, json.JSONDecodeError) as exc:
        raise InputError(f"class weights {spec}: cannot read numbers from it ({exc})") from None
    if weights.size != num_classes or not np.isfinite(weights).all() or (weights < 0).any():
        raise InputError(f"class weights {spec}: needs {num_classes} non-negative numbers, found {weights.size}")
    return weights


@dataclass
class Parts:
    """Everything a run is made of once built."""

    meta: ClassMeta
    num_classes: int
    preprocessing: Preprocessing
    train_set: SegmentationDataset
    val_set: SegmentationDataset | None
    sampler: EpochSampler
    train_loader: Any
    val_loader: Any
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    loss: CombinedLoss
    scaler: Any
    amp_dtype: torch.dtype | None
    device: torch.device
    use_aux: bool
    aux_weight: float
    class_weights: np.ndarray | None
    init_report: dict | None = None

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)


def _loader(dataset, config: TrainConfig, device: torch.device, **kwargs):
    from torch.utils.data import DataLoader

    generator = torch.Generator().manual_seed(config.seed)  # keeps the global RNG untouched
    return DataLoader(dataset, num_workers=config.workers, pin_memory=device.type == "cuda",
                      persistent_workers=config.workers > 0, generator=generator, **kwargs)


def build_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    from segtools.train.init import param_groups

    params = param_groups(model, config.backbone_lr)
    name = config.optimizer.lower()
    if name == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    raise UsageError(f"optimizer {config.optimizer!r}: choose from {', '.join(OPTIMIZERS)}")


def _amp(config: TrainConfig, device: torch.device):
    if not config.amp:
        return None, None
    if device.type != "cuda":
        log.warning("mixed precision (amp) needs a CUDA device; training in float32 on %s", device)
        return None, None
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, None
    return torch.float16, torch.amp.GradScaler("cuda")


def build_parts(config: TrainConfig, device: torch.device, on_scan: Callable | None = None, *,
                fresh: bool = True) -> Parts:
    """Build data, model, optimiser, schedule and loss for ``config`` (checks every mask).

    A ``fresh`` run starts from ``config.init`` / ``config.init_backbone`` when given (a
    resumed one takes its weights from its checkpoint instead)."""
    from segtools.models import build_model, get_arch

    meta, num_classes = resolve_classes(config)
    colours = config.palette
    samples = find_pairs(config.images, config.masks)
    if config.val_images is not None:
        train_samples, val_samples = samples, find_pairs(config.val_images, config.val_masks)
    else:
        train_samples, val_samples = split_validation(samples, config.val_split, config.seed)
    counts = scan_masks(train_samples, num_classes, meta.ignore_index, colours=colours, jobs=0)
    if val_samples:
        scan_masks(val_samples, num_classes, meta.ignore_index, colours=colours, jobs=0)
    if counts.pixels.sum() == 0:
        raise InputError("every training mask pixel is ignored: nothing to learn from")
    weights = None
    if config.class_weights:
        weights = read_class_weights(config.class_weights, counts, num_classes, config.class_weights_beta)
    preprocessing = Preprocessing.of(config.preprocessing, get_arch(config.arch).preprocessing)
    augment_config = config.augment_config()
    train_set = SegmentationDataset(train_samples, preprocessing, ignore_index=_pad_value(meta),
                                    augment_config=augment_config, seed=config.seed, patch=config.patch,
                                    min_foreground=config.min_foreground, background=config.background,
                                    colours=colours)
    val_set = (SegmentationDataset(val_samples, preprocessing, ignore_index=_pad_value(meta), colours=colours)
               if val_samples else None)
    limit = config.steps_per_epoch * config.batch if config.steps_per_epoch else None
    sampler = EpochSampler(len(train_set), config.seed, limit)
    train_loader = _loader(train_set, config, device, batch_size=config.batch, sampler=sampler,
                           drop_last=len(sampler) >= config.batch, collate_fn=collate)
    val_loader = _loader(val_set, config, device, batch_size=1, shuffle=False) if val_set is not None else None
    if fresh and config.init:  # the options the start checkpoint was built with, under the given ones
        from segtools.train.init import init_arch_options

        config.arch_options = init_arch_options(config.init, config.arch, config.arch_options)
    model = build_model(config.arch, num_classes, **config.arch_options)
    init_report = _initialise(model, config) if fresh else None
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(config, model)
    steps_per_epoch = len(train_loader)
    schedule = Schedule(config.schedule, config.lr, total_steps=max(1, config.epochs * steps_per_epoch),
                        min_lr=config.min_lr, step_size=max(1, config.lr_step * steps_per_epoch),
                        gamma=config.lr_gamma, warmup=config.warmup)
    weights_tensor = torch.as_tensor(weights, dtype=torch.float32, device=device) if weights is not None else None
    loss = build_loss(config.loss, config.loss_weights, ignore_index=meta.ignore_index, class_weights=weights_tensor,
                      focal_gamma=config.focal_gamma, focal_alpha=config.focal_alpha,
                      tversky_alpha=config.tversky_alpha, tversky_beta=config.tversky_beta,
                      label_smoothing=config.label_smoothing, ohem_thresh=config.ohem_thresh,
                      ohem_min_kept=config.ohem_min_kept)
    amp_dtype, scaler = _amp(config, device)
    use_aux = bool(config.arch_options.get("aux")) and hasattr(model, "forward_aux")
    return Parts(meta, num_classes, preprocessing, train_set, val_set, sampler, train_loader, val_loader, model,
                 optimizer, schedule, loss, scaler, amp_dtype, device, use_aux, config.aux_weight, weights,
                 init_report)


def _initialise(model: torch.nn.Module, config: TrainConfig) -> dict | None:
    from segtools.train.init import init_backbone, init_from_checkpoint

    if config.init:
        return init_from_checkpoint(model, config.init, config.arch)
    if config.init_backbone:
        return init_backbone(model, config.init_backbone)
    if config.freeze_backbone:
        raise UsageError(f"freeze_backbone={config.freeze_backbone} needs pretrained weights to keep: "
                         "give init=FILE|NAME or init_backbone=FILE|NAME")
    return None


def _pad_value(meta: ClassMeta) -> int:
    """The mask value written where crops leave the picture: the ignore index."""
    return int(meta.ignore_index)


def to_device(images: torch.Tensor, masks: torch.Tensor, device: torch.device, channels_last: bool):
    images = images.to(device, non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, masks.to(device, non_blocking=True)


def forward(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Logits N×C×H×W (accepts models that return torchvision's ``{"out": …}`` too)."""
    out = model(images)
    return out["out"] if isinstance(out, dict) else out


def compute_loss(parts: Parts, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """The loss of one batch (plus ``aux_weight``× the auxiliary head's, when it has one)."""
    if parts.use_aux:
        logits, aux_logits = parts.model.forward_aux(images)
        loss, terms = parts.loss.with_terms(logits, masks)
        aux_loss = parts.loss(aux_logits, masks)
        terms["aux"] = float(aux_loss.detach())
        return loss + parts.aux_weight * aux_loss, terms
    logits = forward(parts.model, images)
    return parts.loss.with_terms(logits, masks)
