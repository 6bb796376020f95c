"""``segtools train``: train a segmentation model on image/mask pairs, or resume a run."""

from __future__ import annotations

import json
import math
from typing import List, Optional

import typer
from typing_extensions import Annotated

from segtools.cli.common import STATE, err_console, info, stderr_is_terminal
from segtools.cli.options import ClassesOpt, IgnoreOpt, PaletteOpt

#: options that --resume may change; every other one comes from the checkpoint
RESUMABLE = {"resume", "epochs", "device", "workers", "output", "ctx"}
#: library parameters named in errors, as their flags
_FLAGS = {name: "--" + name.replace("_", "-") for name in ("init", "init_backbone", "freeze_backbone", "backbone_lr", "ema",
                                                           "ohem_thresh", "ohem_min_kept")}

_DATA = "Data"
_MODEL = "Model and loss"
_OPTIM = "Optimisation"
_AUG = "Augmentation"
_RUN = "Run"


def _opt(*names: str, panel: str, **kwargs):
    return typer.Option(*names, rich_help_panel=panel, **kwargs)


def train(
    ctx: typer.Context,
    images: Annotated[Optional[List[str]], _opt("--images", panel=_DATA, help="Training images: folder, files, glob or @list.txt (repeatable).")] = None,
    masks: Annotated[Optional[List[str]], _opt("--masks", panel=_DATA, help="Their label masks, paired by file name.")] = None,
    val_images: Annotated[Optional[List[str]], _opt("--val-images", panel=_DATA, help="Validation images (else --val-split of the training pairs).")] = None,
    val_masks: Annotated[Optional[List[str]], _opt("--val-masks", panel=_DATA, help="Validation masks.")] = None,
    val_split: Annotated[float, _opt("--val-split", panel=_DATA, help="Fraction of pairs held out for validation when no --val-images (0 = none).")] = 0.1,
    classes: ClassesOpt = None,
    num_classes: Annotated[Optional[int], _opt("--num-classes", panel=_DATA, help="Number of classes when --classes is not given.")] = None,
    ignore_index: IgnoreOpt = None,
    palette: PaletteOpt = None,
    crop: Annotated[Optional[str], _opt("--crop", panel=_DATA, help="Random crop HEIGHTxWIDTH (pixels) after scaling, e.g. 360x480.")] = None,
    patch: Annotated[Optional[str], _opt("--patch", panel=_DATA, help="Cut a HEIGHTxWIDTH patch from large images first (before augmentation).")] = None,
    min_foreground: Annotated[float, _opt("--min-foreground", panel=_DATA, help="Prefer patches with at least this fraction of non-background, non-ignored pixels.")] = 0.0,
    background: Annotated[int, _opt("--background", panel=_DATA, help="The background class for --min-foreground.")] = 0,
    arch: Annotated[str, _opt("--arch", panel=_MODEL, help="Architecture (segtools weights list / models): unet, lraspp-mnv3, deeplabv3-resnet50, ...")] = "unet",
    arch_option: Annotated[Optional[List[str]], _opt("--arch-option", panel=_MODEL, help="KEY=VALUE architecture option, repeatable (e.g. depth=3, base_channels=32, aux=true).")] = None,
    loss: Annotated[str, _opt("--loss", panel=_MODEL, help="ce, dice, focal, tversky, ohem (hard-pixel CE), lovasz (Lovász-softmax), or a sum such as ce+lovasz.")] = "ce",
    loss_weights: Annotated[Optional[str], _opt("--loss-weights", panel=_MODEL, help="Weights of the --loss terms, e.g. 0.5,0.5.")] = None,
    class_weights: Annotated[Optional[str], _opt("--class-weights", panel=_MODEL, help="inverse, sqrt (square root of inverse), median, effective, or a FILE of one weight per class.")] = None,
    class_weights_beta: Annotated[float, _opt("--class-weights-beta", panel=_MODEL, help="β of the effective-number weights.")] = 0.999,
    focal_gamma: Annotated[float, _opt("--focal-gamma", panel=_MODEL, help="Focal loss γ.")] = 2.0,
    focal_alpha: Annotated[Optional[float], _opt("--focal-alpha", panel=_MODEL, help="Focal loss α (one number).")] = None,
    tversky_alpha: Annotated[float, _opt("--tversky-alpha", panel=_MODEL, help="Tversky α (weight of false positives).")] = 0.5,
    tversky_beta: Annotated[float, _opt("--tversky-beta", panel=_MODEL, help="Tversky β (weight of false negatives).")] = 0.5,
    label_smoothing: Annotated[float, _opt("--label-smoothing", panel=_MODEL, help="Cross-entropy label smoothing.")] = 0.0,
    ohem_thresh: Annotated[float, _opt("--ohem-thresh", panel=_MODEL, help="OHEM: pixels whose true-class probability is below this count.")] = 0.7,
    ohem_min_kept: Annotated[float, _opt("--ohem-min-kept", panel=_MODEL, help="OHEM: at least this fraction of the pixels count (the hardest).")] = 0.1,
    aux_weight: Annotated[float, _opt("--aux-weight", panel=_MODEL, help="Weight of the auxiliary head's loss (with --arch-option aux=true).")] = 0.4,
    init: Annotated[Optional[str], _opt("--init", panel=_MODEL, help="Start from a whole checkpoint: registry NAME or FILE of the same --arch (a new head when the class count differs; its architecture options unless --arch-option gives them).")] = None,
    init_backbone: Annotated[Optional[str], _opt("--init-backbone", panel=_MODEL, help="Start the backbone from pretrained weights: registry NAME (e.g. resnet50-imagenet, mnv3-large-imagenet) or FILE.")] = None,
    freeze_backbone: Annotated[int, _opt("--freeze-backbone", panel=_MODEL, help="Keep the pretrained backbone frozen for the first N epochs.")] = 0,
    backbone_lr: Annotated[float, _opt("--backbone-lr", panel=_MODEL, help="Learning-rate factor of the backbone (e.g. 0.1).")] = 1.0,
    epochs: Annotated[Optional[int], _opt("--epochs", panel=_OPTIM, help="Passes over the training set (default: 50; with --resume, the saved run's).")] = None,
    batch: Annotated[int, _opt("--batch", panel=_OPTIM, help="Images per optimisation step.")] = 8,
    steps_per_epoch: Annotated[Optional[int], _opt("--steps-per-epoch", panel=_OPTIM, help="Optimisation steps per epoch (default: one pass over the data).")] = None,
    optimizer: Annotated[str, _opt("--optimizer", panel=_OPTIM, help="sgd, adam or adamw.")] = "adamw",
    lr: Annotated[float, _opt("--lr", panel=_OPTIM, help="Peak learning rate.")] = 1e-3,
    weight_decay: Annotated[float, _opt("--weight-decay", panel=_OPTIM, help="Weight decay.")] = 1e-4,
    momentum: Annotated[float, _opt("--momentum", panel=_OPTIM, help="SGD momentum.")] = 0.9,
    schedule: Annotated[str, _opt("--schedule", panel=_OPTIM, help="Learning-rate schedule: poly, cosine, step or constant.")] = "poly",
    warmup: Annotated[int, _opt("--warmup", panel=_OPTIM, help="Linear warm-up, in optimisation steps.")] = 0,
    lr_step: Annotated[int, _opt("--lr-step", panel=_OPTIM, help="Epochs between decays (step schedule).")] = 30,
    lr_gamma: Annotated[float, _opt("--lr-gamma", panel=_OPTIM, help="Decay factor (step schedule).")] = 0.1,
    scale: Annotated[str, _opt("--scale", panel=_AUG, help="Random zoom range LOW,HIGH (e.g. 0.5,2.0).")] = "1,1",
    rotate: Annotated[float, _opt("--rotate", panel=_AUG, help="Random rotation up to ± this many degrees.")] = 0.0,
    hflip: Annotated[float, _opt("--hflip", panel=_AUG, help="Probability of a horizontal flip.")] = 0.5,
    vflip: Annotated[float, _opt("--vflip", panel=_AUG, help="Probability of a vertical flip.")] = 0.0,
    jitter: Annotated[float, _opt("--jitter", panel=_AUG, help="Colour jitter: brightness, contrast and saturation change up to ± this fraction.")] = 0.0,
    hue: Annotated[float, _opt("--hue", panel=_AUG, help="Hue shift up to ± this fraction of the colour wheel.")] = 0.0,
    elastic: Annotated[float, _opt("--elastic", panel=_AUG, help="Probability of an elastic deformation (U-Net paper).")] = 0.0,
    elastic_sigma: Annotated[float, _opt("--elastic-sigma", panel=_AUG, help="Elastic displacement std on a 3x3 grid, pixels.")] = 10.0,
    seed: Annotated[int, _opt("--seed", panel=_RUN, help="Seed for initialisation, data order and augmentation.")] = 0,
    device: Annotated[Optional[str], _opt("--device", panel=_RUN, help="auto, cpu, cuda, cuda:N or mps (default: auto).")] = None,
    amp: Annotated[bool, _opt("--amp", panel=_RUN, help="Mixed precision on CUDA (bf16 where supported, else fp16).")] = False,
    channels_last: Annotated[bool, _opt("--channels-last", panel=_RUN, help="channels_last memory format (faster convolutions on recent GPUs).")] = False,
    workers: Annotated[Optional[int], _opt("--workers", panel=_RUN, help="DataLoader worker processes (default: 0 = load in the main process).")] = None,
    ema: Annotated[Optional[float], _opt("--ema", panel=_OPTIM, help="Keep an exponential moving average of the weights with this decay (e.g. 0.999); it is validated and saved.")] = None,
    val_every: Annotated[int, _opt("--val-every", panel=_RUN, help="Validate every N epochs (and after the last).")] = 1,
    output: Annotated[Optional[str], _opt("--output", "-o", panel=_RUN, help="Run folder for last.pt, best.pt and log.jsonl.")] = None,
    resume: Annotated[Optional[str], _opt("--resume", panel=_RUN, help="Continue the run saved in this last.pt.")] = None,
    overwrite: Annotated[bool, _opt("--overwrite", panel=_RUN, help="Start again in a run folder that already holds a run.")] = False,
) -> None:
    """Train a segmentation model: checkpoints (last.pt, best.pt by validation mIoU) and a
    JSONL log go to -o DIR; a JSON summary goes to stdout.

    Example:  segtools train --images imgs/ --masks masks/ --arch lraspp-mnv3 --classes camvid --epochs 200 --crop 360x480 --batch 8 -o runs/camvid

    Example:  segtools train --resume runs/camvid/last.pt
    """
    from segtools.cli.options import parameters_as_flags, parse_ignore, parse_range, parse_size
    from segtools.errors import UsageError
    from segtools.train import loop
    from segtools.train.config import FROM_CLASSES, TrainConfig, class_options
    from segtools.train.losses import parse_loss_spec

    reporter = _Reporter()
    try:
        if resume is not None:
            _check_resume_options(ctx)
            result = loop.resume(resume, reporter, epochs=epochs, device=device, workers=workers, output=output)
        else:
            if not images or not masks:
                raise UsageError("give --images and --masks (or --resume last.pt)")
            if output is None:
                raise UsageError("give a run folder with -o DIR (checkpoints and the log go there)")
            classes_dict, ignore = class_options(classes, FROM_CLASSES if ignore_index is None else parse_ignore(ignore_index))
            with parameters_as_flags(_FLAGS):
                config = TrainConfig(
                    images=list(images), masks=list(masks), output=output, classes=classes_dict, num_classes=num_classes,
                    ignore_index=ignore, palette=palette, val_images=list(val_images) if val_images else None,
                    val_masks=list(val_masks) if val_masks else None, val_split=val_split,
                    arch=arch, arch_options=_arch_options(arch_option), epochs=epochs or 50, batch=batch,
                    steps_per_epoch=steps_per_epoch, crop=parse_size(crop, "--crop") if crop else None,
                    patch=parse_size(patch, "--patch") if patch else None, min_foreground=min_foreground,
                    background=background,
                    augment={"scale": list(parse_range(scale, "--scale")), "rotate": rotate, "hflip": hflip, "vflip": vflip,
                             "brightness": jitter, "contrast": jitter, "saturation": jitter, "hue": hue,
                             "elastic": elastic, "elastic_sigma": elastic_sigma},
                    loss=loss, loss_weights=[w for _, w in parse_loss_spec(loss, loss_weights)] if loss_weights else None,
                    focal_gamma=focal_gamma, focal_alpha=focal_alpha, tversky_alpha=tversky_alpha,
                    tversky_beta=tversky_beta, label_smoothing=label_smoothing, ohem_thresh=ohem_thresh,
                    ohem_min_kept=ohem_min_kept, aux_weight=aux_weight,
                    class_weights=class_weights, class_weights_beta=class_weights_beta, optimizer=optimizer, lr=lr,
                    weight_decay=weight_decay, momentum=momentum, schedule=schedule, warmup=warmup, lr_step=lr_step,
                    lr_gamma=lr_gamma, seed=seed, device=device or "auto", amp=amp, channels_last=channels_last,
                    workers=workers or 0, val_every=val_every, init=init, init_backbone=init_backbone,
                    freeze_backbone=freeze_backbone, backbone_lr=backbone_lr, ema=ema)
                result = loop.train(config, reporter, overwrite=overwrite)
    finally:
        reporter.close()
    best = result.best_metric
    summary = {"output": str(result.output), "last": str(result.last),
               "best": str(result.best) if result.best.exists() else None,
               "epochs": result.epochs, "steps": result.steps,
               "best_val_miou": best if reporter.validated and math.isfinite(best) else None}
    typer.echo(json.dumps(summary))


def _check_resume_options(ctx: typer.Context) -> None:
    try:
        from typer._click.core import ParameterSource
    except ImportError:  # older typer uses click itself
        from click.core import ParameterSource

    from segtools.errors import UsageError

    given = [name for name in ctx.params if name not in RESUMABLE
             and ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise UsageError(f"--resume continues the saved run with its own settings; {flags} cannot change "
                         "(only --epochs, --device, --workers and -o can)")


def _parse_value(text: str):
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _arch_options(items: Optional[List[str]]) -> dict:
    """``["depth=3", "aux=true"]`` → ``{"depth": 3, "aux": True}``."""
    from segtools.errors import UsageError

    options = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--arch-option {item!r}: give KEY=VALUE, e.g. depth=3")
        options[key.strip()] = _parse_value(value)
    return options


class _Reporter:
    """Turns the loop's events into stderr output: a progress bar per epoch (on a terminal),
    a one-line summary and a per-class Dice/IoU table after each validation."""

    def __init__(self) -> None:
        self.bar = None
        self.task = None
        self.validated = False

    def __call__(self, kind: str, event: dict) -> None:
        if STATE.quiet:
            if kind == "epoch" and event.get("report") is not None:
                self.validated = True
            return
        getattr(self, f"on_{kind}")(event)

    def on_start(self, event: dict) -> None:
        info(f"training on {event['device']}: {event['train_images']} training / {event['val_images']} validation "
             f"images, {event['batches_per_epoch']} steps per epoch, {event['parameters']:,} parameters; "
             f"writing to {event['output']}")
        if event["epoch"]:
            info(f"resuming after epoch {event['epoch']} of {event['epochs']}")
        init = event.get("init")
        if init:
            head = f"; new head: {len(init['new_head'])} tensors" if init.get("new_head") else ""
            info(f"initialised {init['loaded']} tensors from {init['source']}{head}")

    def on_step(self, event: dict) -> None:
        if not stderr_is_terminal():
            return
        if self.bar is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("loss {task.fields[loss]:.4f}"), TimeRemainingColumn(),
                                console=err_console(), transient=True)
            self.bar.start()
            self.task = self.bar.add_task("train", total=event["batches"], epoch=event["epoch"] + 1, loss=event["loss"])
        self.bar.update(self.task, completed=event["batch"], loss=event["loss"])

    def close(self) -> None:
        self._close_bar()

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def on_epoch(self, event: dict) -> None:
        self._close_bar()
        line = (f"epoch {event['epoch']}: loss {event['train_loss']:.4f}, lr {event['lr']:.3g}, "
                f"{event['train_seconds']:.1f} s")
        report = event.get("report")
        if report is not None:
            self.validated = True
            line += (f"; val loss {report['val_loss']:.4f}, mIoU {_frac(report['miou'])}, "
                     f"mean Dice {_frac(report['mean_dice'])}" + (" (best)" if event.get("best") else ""))
        info(line)
        if report is not None:
            self._table(report, event["epoch"])

    def _table(self, report: dict, epoch: int) -> None:
        from rich.table import Table

        table = Table(title=f"validation, epoch {epoch} (scores 0–1)", title_justify="left")
        table.add_column("class")
        table.add_column("Dice", justify="right")
        table.add_column("IoU", justify="right")
        table.add_column("GT pixels", justify="right")
        for row in report["per_class"]:
            table.add_row(row["name"], _frac(row["dice"]), _frac(row["iou"]), f"{row['gt_pixels']:,}")
        table.add_row("mean", _frac(report["mean_dice"]), _frac(report["miou"]), "", style="bold")
        err_console().print(table)

    def on_end(self, event: dict) -> None:
        self._close_bar()
        info(f"done: {event['epochs']} epochs, {event['steps']} steps; checkpoints in {event['output']}")


def _frac(value) -> str:
    """A score as the CLI writes scores everywhere: a fraction in [0, 1], three decimals."""
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def register(app: typer.Typer) -> None:
    app.command("train")(train)
