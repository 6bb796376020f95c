"""``segtools weights``: list, pull, import, info, export checkpoints; class-balancing weights."""

from __future__ import annotations

import json
import sys
from typing import List, Optional

import typer
from typing_extensions import Annotated

from segtools.cli.common import STATE, err_console, info, stderr_is_terminal
from segtools.cli.options import ClassesOpt, FormatOpt, IgnoreOpt, JobsOpt, OutputOpt, OverwriteOpt

weights_app = typer.Typer(
    help="Checkpoints: the registry, downloads, import, inspection, export; class-balancing weights.\n\n"
         "Example:  segtools weights pull deeplabv3-mnv3-voc",
    no_args_is_help=True,
)


def _check_format(fmt: str, allowed=("table", "json", "csv")) -> str:
    from segtools.errors import UsageError

    if fmt not in allowed:
        raise UsageError(f"--format {fmt!r}: choose one of {', '.join(allowed)}")
    return fmt


@weights_app.command("list")
def list_weights(fmt: FormatOpt = "table") -> None:
    """List known checkpoints with their published accuracy and whether they are local.

    Example: segtools weights list --format json
    """
    from segtools.weights import registry

    _check_format(fmt)
    rows = [registry.summary(entry) for entry in registry.all_entries().values()]
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2))
    elif fmt == "csv":
        import csv

        from segtools.weights.registry import PUBLISHED

        flat = [{**{k: v for k, v in r.items() if k != "published"},
                 **{key: r["published"].get(key) for key, _ in PUBLISHED}} for r in rows]
        writer = csv.DictWriter(sys.stdout, fieldnames=list(flat[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(flat)
    else:
        _print_table(rows)


def _print_table(rows: list) -> None:
    from rich.console import Console
    from rich.table import Table

    from segtools.weights.registry import PUBLISHED

    short = dict(PUBLISHED)
    table = Table(title="segtools weights (published accuracy as fractions, 0–1)", title_justify="left")
    for column in ("name", "task", "arch", "classes", "published", "MB", "params", "license", "local"):
        table.add_column(column, justify="right" if column in ("MB", "params") else "left")
    fmt = lambda v, spec: "" if v is None else format(v, spec)  # noqa: E731
    for r in rows:
        figures = " · ".join(f"{short[k]} {v:.3f}" for k, v in r["published"].items())
        table.add_row(r["name"], r["task"], r["arch"], f"{r['classes']} ({r['num_classes']})", figures,
                      fmt(r["size_mb"], ".1f"),
                      fmt(r["params"] and r["params"] / 1e6, ".1f") + ("M" if r["params"] else ""),
                      r["license"], "yes" if r["local"] else "no")
    console = Console(file=sys.stdout)
    if not console.is_terminal:
        console = Console(file=sys.stdout, width=160)
    console.print(table)


@weights_app.command("pull")
def pull(
    names: Annotated[List[str], typer.Argument(help="Registry names (see `segtools weights list`).")],
    force: Annotated[bool, typer.Option("--force", help="Download again even when the file is cached.")] = False,
    offline: Annotated[bool, typer.Option("--offline", help="Never touch the network (also SEGTOOLS_OFFLINE=1).")] = False,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds without data before giving up.")] = 30.0,
) -> None:
    """Download checkpoints into $SEGTOOLS_HOME/weights, resuming and verifying them.

    Example: segtools weights pull lraspp-mnv3-voc
    """
    from segtools.weights import registry

    for entry in [registry.get_entry(name) for name in names]:
        with _download_bar(entry.name, entry.file_size_mb) as progress:
            pulled = registry.pull(entry, force=force, timeout=timeout, progress=progress,
                                   offline=True if offline else None)
        if pulled.status == "local":
            info(f"{entry.name}: local ({entry.source}) at {pulled.path}; nothing to download")
        elif pulled.status == "cached":
            info(f"{entry.name}: already at {pulled.path}")
        else:
            result = pulled.download
            info(f"{entry.name}: {result.size / 1e6:.1f} MB → {result.path}" + (" (resumed)" if result.resumed else ""))


class _download_bar:
    """A rich download bar on stderr when it is a terminal; yields progress(done, total)."""

    def __init__(self, name: str, size_mb: Optional[float]) -> None:
        self.name, self.size = name, int(size_mb * 1e6) if size_mb else None
        self.bar = None

    def __enter__(self):
        if STATE.quiet or not stderr_is_terminal():
            return None
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

        self.bar = Progress(TextColumn(self.name), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                            TimeRemainingColumn(), console=err_console(), transient=True)
        self.bar.start()
        task = self.bar.add_task(self.name, total=self.size)
        return lambda done, total: self.bar.update(task, completed=done, total=total or self.size)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


@weights_app.command("import")
def import_weights(
    file: Annotated[str, typer.Argument(help="Checkpoint: state dict (.pth/.pt), segtools checkpoint or .safetensors.")],
    name: Annotated[str, typer.Option("--name", help="Registry name to give it.")],
    arch: Annotated[Optional[str], typer.Option("--arch", help="Architecture (needed for plain state dicts).")] = None,
    classes: ClassesOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an imported entry of the same name.")] = False,
) -> None:
    """Register a local checkpoint under a name (checked by loading it into its architecture).

    Example: segtools weights import unet_carvana_scale0.5_epoch2.pth --name carvana --arch unet
    """
    from segtools.weights.loader import import_checkpoint

    entry = import_checkpoint(file, name, arch=arch, classes=classes, force=force)
    info(f"imported {file} as {name!r} ({entry.arch}, {entry.num_classes} classes) → {entry.path}")


@weights_app.command("info")
def weights_info(
    target: Annotated[str, typer.Argument(help="Registry name or checkpoint file.")],
    arch: Annotated[Optional[str], typer.Option("--arch", help="Architecture of a plain state dict.")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Describe a checkpoint: architecture, parameters, classes, input size, sha256.

    Example: segtools weights info deeplabv3-mnv3-voc --format json
    """
    from segtools.weights.describe import describe

    _check_format(fmt, ("table", "json"))
    report = describe(target, arch)
    if fmt == "json":
        typer.echo(json.dumps(report, indent=2))
        return
    for key, value in report.items():
        if value not in (None, {}, ""):
            shown = ", ".join(map(str, value)) if isinstance(value, list) else value
            if key == "local":
                shown = "yes" if value else f"no (get it with `segtools weights pull {target}`)"
            typer.echo(f"{key:>13}: {shown}")


@weights_app.command("export")
def export(
    target: Annotated[str, typer.Argument(help="Registry name or checkpoint file.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="torchscript or onnx.")] = "torchscript",
    output: OutputOpt = None,
    arch: Annotated[Optional[str], typer.Option("--arch", help="Architecture of a plain state dict.")] = None,
    size: Annotated[str, typer.Option("--size", help="Example input HEIGHTxWIDTH in pixels for tracing/ONNX, e.g. 512 or 512x1024.")] = "256",
) -> None:
    """Export a checkpoint to TorchScript (runs without segtools' code) or ONNX.

    Example: segtools weights export lraspp-mnv3-voc --format torchscript -o lraspp.pt
    """
    from pathlib import Path

    from segtools.cli.options import in_flags, parse_size
    from segtools.errors import UsageError
    from segtools.io.streams import check_output_path
    from segtools.weights.export import export_model
    from segtools.weights.loader import load_model

    if fmt not in ("torchscript", "onnx"):
        raise UsageError(f"--format {fmt!r}: choose torchscript or onnx")
    default_name = f"{Path(target).stem}.{'pt' if fmt == 'torchscript' else 'onnx'}"
    out = check_output_path(output or default_name)
    if fmt == "onnx":
        from segtools.weights.export import require_onnx

        require_onnx()
    example_size = parse_size(size, "--size")
    loaded = load_model(model=target, arch=arch)
    if loaded.note:
        info(in_flags(loaded.note, {"model": "weights"}))
    export_model(loaded, out, fmt, example_size)
    info(f"wrote {out} ({fmt})")


@weights_app.command("average")
def average(
    checkpoints: Annotated[List[str], typer.Argument(help="Checkpoint files of one architecture (two or more).")],
    output: Annotated[Optional[str], typer.Option(
        "--output", "-o", help="The averaged checkpoint (.pt, or .safetensors without training state).")] = None,
    weights: Annotated[Optional[str], typer.Option(
        "--weights", metavar="W,W,...", help="One weight per checkpoint (normalised to sum 1); default: equal.")] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Average checkpoints' weights: a fine-tune with its start (WiSE-FT), a model soup, a run's last epochs.

    Example: segtools weights average base.pt finetuned.pt --weights 0.25,0.75 -o soup.pt
    """
    from segtools.cli.options import parameters_as_flags
    from segtools.errors import UsageError
    from segtools.io.streams import check_output_path
    from segtools.weights.average import average_checkpoints, parse_weights
    from segtools.weights.checkpoint import save_checkpoint

    if not output or output == "-":
        raise UsageError("-o FILE: the averaged checkpoint is written to a file")
    check_output_path(output, overwrite)  # a bad name fails before any reading
    with parameters_as_flags({"weights": "--weights", "checkpoints": "CHECKPOINTS"}):
        shares = parse_weights(weights, len(checkpoints))
        payload = average_checkpoints(checkpoints, shares)
    out = check_output_path(output, overwrite)  # now the checkpoints read are known inputs
    save_checkpoint(out, payload)
    info(f"wrote {out} ({payload['arch']}, " + ", ".join(f"{w:g}×{c}" for c, w in zip(checkpoints, shares)) + ")")


@weights_app.command("classes")
def classes_cmd(
    masks: Annotated[List[str], typer.Argument(help="Label masks: files, folders, globs, @list.txt.")],
    method: Annotated[str, typer.Option("--method", "-m", help="inverse, median (Eigen & Fergus) or effective (Cui et al.).")] = "median",
    num_classes: Annotated[Optional[int], typer.Option("--num-classes", "-n", min=1, help="Number of classes (default: from --classes, the masks' metadata, or the largest label).")] = None,
    classes: ClassesOpt = None,
    ignore_index: IgnoreOpt = None,
    beta: Annotated[float, typer.Option("--beta", help="Effective-number β in [0, 1).")] = 0.999,
    jobs: JobsOpt = 1,
) -> None:
    """Class-balancing loss weights from the pixel counts of label masks, as JSON.

    Example: segtools weights classes trainannot/ --classes camvid --method median > weights.json
    """
    from segtools.cli.options import parse_ignore
    from segtools.errors import UsageError
    from segtools.io.batch import expand_inputs
    from segtools.io.meta import load_classes
    from segtools.weights.classes import FROM_CLASSES, METHODS, weights_from_masks

    if method not in METHODS:
        raise UsageError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    ignore = FROM_CLASSES if ignore_index is None else parse_ignore(ignore_index)
    paths = [item.path for item in expand_inputs(masks)]
    report = weights_from_masks(paths, method, num_classes=num_classes, classes=load_classes(classes) if classes else None,
                                ignore_index=ignore, beta=beta, jobs=jobs)
    typer.echo(json.dumps(report, indent=2))


def register(app: typer.Typer) -> None:
    app.add_typer(weights_app, name="weights")
