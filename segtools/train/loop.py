"""The training loop: data → model → loss → optimiser, validation, checkpoints, resume.

:func:`train` runs a :class:`~segtools.train.config.TrainConfig` from scratch;
:func:`resume` continues a run from its ``last.pt``. After every epoch the loop validates
(per-class Dice/IoU through the metrics core), appends a line to ``log.jsonl`` and writes
``last.pt`` — and ``best.pt`` when validation mIoU improved — atomically, each a complete
segtools checkpoint (architecture, classes, palette, preprocessing, weights, optimiser,
schedule step, RNG states, the run's settings).

Reproducibility: data order and augmentation depend only on (seed, epoch, sample); the
learning rate only on the step; torch's RNG state is saved and restored; CPU kernels are
deterministic. So ``resume`` after epoch k gives the same weights as an uninterrupted run.

The library reports progress through ``on_event(kind, info)`` (``start``, ``step``,
``epoch``, ``end``) and never prints; the CLI draws bars and tables from those events.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from segtools.errors import InputError, OutputError, SegtoolsError, UsageError
from segtools.inference.device import resolve_device
from segtools.models import parameter_count
from segtools.train import setup
from segtools.train.config import TrainConfig
from segtools.train.monitor import DiceMonitor
from segtools.train.schedule import set_lr

log = logging.getLogger("segtools")

EventHandler = Callable[[str, dict], None]
LAST, BEST, LOG = "last.pt", "best.pt", "log.jsonl"


class TrainingDiverged(SegtoolsError):
    """The loss became NaN or infinite; the run stopped before writing anything from it."""


@dataclass
class TrainResult:
    """What a finished run left behind."""

    output: Path
    epochs: int
    steps: int
    best_metric: float
    history: list[dict]

    @property
    def last(self) -> Path:
        return self.output / LAST

    @property
    def best(self) -> Path:
        return self.output / BEST


def _rng_state() -> dict:
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "numpy": {"keys": keys.tolist(), "pos": int(position), "has_gauss": int(has_gauss),
                      "cached_gaussian": float(cached)},
            "python": list(random.getstate()[1]),
            "cuda": [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else []}


def _restore_rng(state: dict | None) -> None:
    if not state:
        return
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy_state = state["numpy"]
    np.random.set_state(("MT19937", np.asarray(numpy_state["keys"], np.uint32), numpy_state["pos"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    random.setstate((3, tuple(state["python"]), None))


class _Run:
    """State shared by the epochs of one run (built by :func:`train` or :func:`resume`)."""

    def __init__(self, config: TrainConfig, on_event: EventHandler | None, fresh: bool = True) -> None:
        from segtools.train.ema import WeightAverage

        self.config = config
        self.emit = on_event or (lambda kind, info: None)
        self.output = Path(config.output)
        self.device = resolve_device(config.device)
        self.parts = setup.build_parts(config, self.device, fresh=fresh)
        self.average = WeightAverage(self.parts.model, config.ema) if config.ema else None
        self.step = 0
        self.epoch = 0
        self.best_metric = -math.inf
        self.history: list[dict] = []

    # ---- checkpoints
    def payload(self, metrics: dict) -> dict:
        from segtools.weights.checkpoint import make_checkpoint

        parts, config = self.parts, self.config
        raw = {k: v.detach().to("cpu").clone() for k, v in parts.model.state_dict().items()}
        # with a weight average, the averaged weights are the model; the raw ones resume the run
        state = raw if self.average is None else {k: v.detach().to("cpu").clone() for k, v in self.average.state.items()}
        extra = {} if self.average is None else {"train_state_dict": raw}
        return make_checkpoint(
            config.arch, parts.num_classes, state, classes=parts.meta.to_dict(),
            preprocessing=parts.preprocessing.to_dict(), arch_options=config.arch_options,
            optimizer=parts.optimizer.state_dict(),
            scheduler={**parts.schedule.to_dict(), "step": self.step},
            scaler=parts.scaler.state_dict() if parts.scaler is not None else None,
            epoch=self.epoch, step=self.step, metrics=metrics, best_metric=self.best_metric,
            train_args=config.to_dict(), rng=_rng_state(), **extra,
        )

    def save(self, metrics: dict, improved: bool) -> None:
        from segtools.weights.checkpoint import save_checkpoint

        payload = self.payload(metrics)
        save_checkpoint(self.output / LAST, payload)
        if improved:
            save_checkpoint(self.output / BEST, payload)

    def load(self, checkpoint: dict) -> None:
        parts = self.parts
        if self.average is not None and "train_state_dict" in checkpoint:
            parts.model.load_state_dict(checkpoint["train_state_dict"], strict=True)
            self.average.load(checkpoint["state_dict"])
        else:
            parts.model.load_state_dict(checkpoint["state_dict"], strict=True)
            if self.average is not None:
                self.average.load(checkpoint["state_dict"])
        parts.optimizer.load_state_dict(checkpoint["optimizer"])
        if parts.scaler is not None and checkpoint.get("scaler"):
            parts.scaler.load_state_dict(checkpoint["scaler"])
        self.epoch = int(checkpoint["epoch"])
        self.step = int(checkpoint.get("step", checkpoint.get("scheduler", {}).get("step", 0)))
        self.best_metric = float(checkpoint.get("best_metric", -math.inf))
        _restore_rng(checkpoint.get("rng"))

    # ---- one epoch
    def train_epoch(self) -> dict:
        parts, config = self.parts, self.config
        parts.model.train()
        if config.freeze_backbone:
            from segtools.train.init import set_backbone_frozen

            set_backbone_frozen(parts.model, self.epoch < config.freeze_backbone)
        parts.sampler.set_epoch(self.epoch)
        total_steps = len(parts.train_loader)
        loss_sum, term_sums, seen = 0.0, {}, 0
        started = time.perf_counter()
        for batch_number, (images, masks) in enumerate(parts.train_loader):
            rate = parts.schedule.lr_at(self.step)
            set_lr(parts.optimizer, rate)
            images, masks = setup.to_device(images, masks, self.device, config.channels_last)
            with parts.autocast():
                loss, terms = setup.compute_loss(parts, images, masks)
            if not torch.isfinite(loss.detach()):
                self._diverged(float(loss.detach()), batch_number)
            parts.optimizer.zero_grad(set_to_none=True)
            if parts.scaler is not None:
                parts.scaler.scale(loss).backward()
                parts.scaler.step(parts.optimizer)
                parts.scaler.update()
            else:
                loss.backward()
                parts.optimizer.step()
            if self.average is not None:
                self.average.update(parts.model, self.step)
            self.step += 1
            value = float(loss.detach())
            loss_sum += value * images.shape[0]
            seen += images.shape[0]
            for name, term in terms.items():
                term_sums[name] = term_sums.get(name, 0.0) + term * images.shape[0]
            self.emit("step", {"epoch": self.epoch, "batch": batch_number + 1, "batches": total_steps,
                               "step": self.step, "loss": value, "lr": rate})
        seconds = time.perf_counter() - started
        return {"train_loss": loss_sum / max(seen, 1),
                "loss_terms": {k: v / max(seen, 1) for k, v in term_sums.items()},
                "train_seconds": seconds, "images_per_second": seen / seconds if seconds > 0 else None,
                "lr": parts.schedule.lr_at(max(self.step - 1, 0))}

    def _diverged(self, value: float, batch_number: int) -> None:
        last = self.output / LAST
        kept = (f"the last good checkpoint is {last} (epoch {self.epoch})" if last.is_file()
                else "no checkpoint was written yet")
        raise TrainingDiverged(
            f"the loss became {value} at epoch {self.epoch + 1}, batch {batch_number + 1} (step {self.step}); "
            f"training stopped and {kept}; lower the learning rate (lr), add a warmup, or check the masks and class weights")

    def validate(self) -> dict | None:
        parts = self.parts
        if parts.val_loader is None:
            return None
        monitor = DiceMonitor(parts.num_classes, parts.meta.ignore_index, parts.meta.names)
        parts.model.eval()
        loss_sum, seen = 0.0, 0
        averaged = self.average.applied(parts.model) if self.average is not None else contextlib.nullcontext()
        with averaged, torch.inference_mode():
            for images, masks in parts.val_loader:
                images, masks_dev = setup.to_device(images, masks, self.device, self.config.channels_last)
                with parts.autocast():
                    logits = setup.forward(parts.model, images)
                    loss = parts.loss(logits, masks_dev)
                loss_sum += float(loss) * images.shape[0]
                seen += images.shape[0]
                monitor.update(logits.argmax(1).to("cpu", torch.uint8 if parts.num_classes <= 256 else torch.int32)
                               .numpy(), masks.numpy())
        report = monitor.report()
        report["val_loss"] = loss_sum / max(seen, 1)
        return report

    # ---- the whole run
    def run(self) -> TrainResult:
        config, parts = self.config, self.parts
        self.emit("start", {"device": str(self.device), "train_images": len(parts.train_set),
                            "val_images": len(parts.val_set) if parts.val_set is not None else 0,
                            "batches_per_epoch": len(parts.train_loader), "epoch": self.epoch,
                            "epochs": config.epochs, "parameters": parameter_count(parts.model),
                            "output": str(self.output), "class_names": list(parts.meta.names or []),
                            "init": parts.init_report})
        while self.epoch < config.epochs:
            record = self.train_epoch()
            self.epoch += 1
            report = self.validate() if (self.epoch % config.val_every == 0 or self.epoch == config.epochs) else None
            if report is not None:
                metric = report["miou"] if not math.isnan(report["miou"]) else -math.inf
            else:
                metric = -record["train_loss"] if parts.val_loader is None else -math.inf
            improved = metric > self.best_metric
            if improved:
                self.best_metric = metric
            entry = {"epoch": self.epoch, "step": self.step, **record}
            if report is not None:
                entry.update({"val_loss": report["val_loss"], "val_miou": report["miou"],
                              "val_mean_dice": report["mean_dice"], "val_pixel_accuracy": report["pixel_accuracy"],
                              "val_iou": [row["iou"] for row in report["per_class"]],
                              "val_dice": [row["dice"] for row in report["per_class"]]})
            entry["best"] = improved
            metrics = {k: v for k, v in entry.items() if k.startswith("val_") or k == "train_loss"}
            self.save(metrics, improved)
            _append_log(self.output / LOG, entry)
            self.history.append(entry)
            self.emit("epoch", {**entry, "report": report})
        result = TrainResult(self.output, self.epoch, self.step, self.best_metric, self.history)
        self.emit("end", {"output": str(self.output), "epochs": self.epoch, "steps": self.step,
                          "best_metric": self.best_metric})
        return result


def _append_log(path: Path, entry: dict) -> None:
    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(clean(entry), allow_nan=False) + "\n")


def _check_output(output: Path, overwrite: bool) -> None:
    if output.exists() and not output.is_dir():
        raise UsageError(f"{output}: exists and is not a folder; training writes a folder of checkpoints")
    if (output / LAST).exists() and not overwrite:
        raise UsageError(f"{output} already holds a run ({LAST}); resume it from {output / LAST}, "
                         "choose another output folder, or overwrite it to start again")


def _prepare_output(output: Path, overwrite: bool) -> None:
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{output}: cannot create the run folder ({exc.strerror or exc})") from None
    if overwrite:
        for name in (LOG, BEST, LAST):
            (output / name).unlink(missing_ok=True)


def train(config: TrainConfig, on_event: EventHandler | None = None, *, overwrite: bool = False) -> TrainResult:
    """Train from scratch as ``config`` says; checkpoints and the log go to ``config.output``.

    Raises
    ------
    InputError
        Missing or mismatched pairs, a mask value outside the classes, an empty data set.
    TrainingDiverged
        The loss became NaN/inf (``last.pt`` from the previous epoch is left as it was).
    """
    output = Path(config.output)
    _check_output(output, overwrite)
    with setup.reproducible(config.seed, config.deterministic):
        run = _Run(config, on_event)
        _prepare_output(output, overwrite)
        return run.run()


def resume(checkpoint_path: str | os.PathLike, on_event: EventHandler | None = None, *,
           epochs: int | None = None, device: str | None = None, workers: int | None = None,
           output: str | None = None) -> TrainResult:
    """Continue the run saved in ``checkpoint_path`` (its ``last.pt``) exactly where it stopped.

    ``epochs`` may extend the run; ``device``, ``workers`` and ``output`` may change where
    it runs and writes. Everything else comes from the checkpoint.
    """
    from segtools.weights.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(checkpoint_path)
    if not isinstance(checkpoint.get("train_args"), dict) or "optimizer" not in checkpoint:
        raise InputError(f"{checkpoint_path}: not a segtools training checkpoint (no train_args/optimizer "
                         "state); resume takes the last.pt of a `segtools train` run")
    data = dict(checkpoint["train_args"])
    if epochs is not None:
        data["epochs"] = epochs
    if device is not None:
        data["device"] = device
    if workers is not None:
        data["workers"] = workers
    data["output"] = output if output is not None else str(Path(checkpoint_path).parent)
    config = TrainConfig.from_dict(data)
    if int(checkpoint["epoch"]) >= config.epochs:
        raise UsageError(f"{checkpoint_path}: the run already finished its {checkpoint['epoch']} epoch(s); "
                         "give a larger number of epochs to train longer")
    with setup.reproducible(config.seed, config.deterministic):
        run = _Run(config, on_event, fresh=False)
        run.load(checkpoint)
        _prepare_output(Path(config.output), overwrite=False)
        return run.run()
