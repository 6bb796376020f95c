"""``segtools weights``: list, pull, import, info, export checkpoints; class-balancing weights."""

from __future__ import annotations

import json
import sys
from typing import List, Optional

import typer
from typing_extensions import Annotated

from segtools.cli.common import ClassesOpt, FormatOpt, JobsOpt, OutputOpt, err_console, info, stderr_is_terminal, STATE

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
    rows = []
    for entry in registry.all_entries().values():
        metrics = entry.metrics
        rows.append({
            "name": entry.name, "arch": entry.arch, "classes": entry.classes if isinstance(entry.classes, str) else "custom",
            "num_classes": entry.num_classes, "miou": metrics.get("miou"), "pixel_acc": metrics.get("pixel_acc"),
            "dice": metrics.get("dice"), "size_mb": entry.file_size_mb, "params": entry.num_params,
            "license": entry.license, "source": entry.source,
            "local": registry.is_available(entry), "path": str(registry.local_path(entry)), "url": entry.url,
        })
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2))
    elif fmt == "csv":
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        _print_table(rows)


def _print_table(rows: list) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="segtools weights", title_justify="left")
    for column in ("name", "arch", "classes", "mIoU", "pixel acc", "dice", "MB", "params", "license", "local"):
        table.add_column(column, justify="right" if column in ("mIoU", "pixel acc", "dice", "MB", "params") else "left")
    fmt = lambda v, spec: "" if v is None else format(v, spec)  # noqa: E731
    for r in rows:
        table.add_row(r["name"], r["arch"], f"{r['classes']} ({r['num_classes']})", fmt(r["miou"], ".1f"),
                      fmt(r["pixel_acc"], ".1f"), fmt(r["dice"], ".4f"), fmt(r["size_mb"], ".1f"),
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
    from segtools.weights.download import download

    entries = [registry.get_entry(name) for name in names]
    for entry in entries:
        path = registry.local_path(entry)
        if entry.source != "builtin" or not entry.url:
            info(f"{entry.name}: local ({entry.source}) at {path}; nothing to download")
            continue
        if path.is_file() and not force:
            info(f"{entry.name}: already at {path}")
            continue
        if force:
            path.unlink(missing_ok=True)
        with _download_bar(entry.name, entry.file_size_mb) as progress:
            result = download(entry.url, path, sha256=entry.sha256, hash_prefix=entry.hash_prefix,
                              timeout=timeout, progress=progress, offline=True if offline else None)
        if not (entry.sha256 or entry.hash_prefix):
            import logging

            logging.getLogger("segtools").warning(
                f"{entry.name}: no published checksum to verify against; sha256 {result.sha256}")
        info(f"{entry.name}: {result.size / 1e6:.1f} MB → {result.path}"
             + (" (resumed)" if result.resumed else ""))


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
    import re

    from segtools.errors import UsageError
    from segtools.weights import registry
    from segtools.weights.checkpoint import make_checkpoint, save_checkpoint, sha256_file
    from segtools.weights.loader import load_model

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise UsageError(f"--name {name!r}: use letters, digits, '.', '_' and '-'")
    if name in registry.imported_entries() and not force:
        raise UsageError(f"weights {name!r} are already imported; pass --force to replace them")
    loaded = load_model(weights=file, arch=arch, classes=classes)
    if not loaded.arch:
        raise UsageError(f"{file}: a TorchScript model runs as is (`segtools predict --model {file}`); nothing to import")
    classes_dict = loaded.classes.to_dict() if loaded.classes is not None else None
    target = registry.weights_dir() / f"{name}.pt"
    payload = make_checkpoint(loaded.arch, loaded.num_classes, loaded.model.state_dict(), classes=classes_dict,
                              preprocessing=loaded.preprocessing, arch_options=loaded.arch_options)
    save_checkpoint(target, payload)
    entry = registry.WeightsEntry(
        name=name, arch=loaded.arch, classes=classes_dict or "", num_classes=loaded.num_classes,
        preprocessing=loaded.preprocessing, sha256=sha256_file(target), arch_options=loaded.arch_options,
        num_params=sum(p.numel() for p in loaded.model.parameters()), path=str(target), source="imported",
        file_size_mb=round(target.stat().st_size / 1e6, 3), description=f"imported from {file}")
    registry.register_imported(entry)
    info(f"imported {file} as {name!r} ({loaded.arch}, {loaded.num_classes} classes) → {target}")


@weights_app.command("info")
def weights_info(
    target: Annotated[str, typer.Argument(help="Registry name or checkpoint file.")],
    arch: Annotated[Optional[str], typer.Option("--arch", help="Architecture of a plain state dict.")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Describe a checkpoint: architecture, parameters, classes, input size, sha256.

    Example: segtools weights info deeplabv3-mnv3-voc --format json
    """
    import os

    from segtools.weights import registry
    from segtools.weights.checkpoint import sha256_file
    from segtools.weights.loader import load_model

    _check_format(fmt, ("table", "json"))
    entry = None
    if not os.path.exists(target) and target in registry.all_entries():
        entry = registry.get_entry(target)
    loaded = load_model(model=target, arch=arch)
    path = loaded.path
    prep = loaded.preprocessing.to_dict()
    size_rule = (f"any; shorter side resized to {prep['resize_short']} px" if prep.get("resize_short")
                 else f"any; scaled ×{prep['resize_factor']}" if prep.get("resize_factor") else "any (native size)")
    report = {
        "name": entry.name if entry else None, "file": str(path), "sha256": sha256_file(path) if path else None,
        "file_bytes": path.stat().st_size if path else None, "arch": loaded.arch or "torchscript",
        "arch_options": loaded.arch_options, "num_classes": loaded.num_classes,
        "parameters": sum(p.numel() for p in loaded.model.parameters()),
        "class_names": list(loaded.classes.names) if loaded.classes is not None and loaded.classes.names else None,
        "input_size": size_rule, "preprocessing": prep,
        "license": entry.license if entry else None, "url": entry.url if entry else None,
        "metrics": entry.metrics if entry else None,
    }
    if fmt == "json":
        typer.echo(json.dumps(report, indent=2))
        return
    for key, value in report.items():
        if value not in (None, {}, ""):
            shown = ", ".join(map(str, value)) if isinstance(value, list) else value
            typer.echo(f"{key:>13}: {shown}")


@weights_app.command("export")
def export(
    target: Annotated[str, typer.Argument(help="Registry name or checkpoint file.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="torchscript or onnx.")] = "torchscript",
    output: OutputOpt = None,
    arch: Annotated[Optional[str], typer.Option("--arch", help="Architecture of a plain state dict.")] = None,
    size: Annotated[str, typer.Option("--size", help="Example input HxW for tracing/ONNX, e.g. 512 or 512x1024.")] = "256",
) -> None:
    """Export a checkpoint to TorchScript (runs without segtools' code) or ONNX.

    Example: segtools weights export lraspp-mnv3-voc --format torchscript -o lraspp.pt
    """
    from pathlib import Path

    from segtools.errors import UsageError
    from segtools.io.streams import check_output_path
    from segtools.tiling.grid import parse_size
    from segtools.weights.export import export_model
    from segtools.weights.loader import load_model

    if fmt not in ("torchscript", "onnx"):
        raise UsageError(f"--format {fmt!r}: choose torchscript or onnx")
    default_name = f"{Path(target).stem}.{'pt' if fmt == 'torchscript' else 'onnx'}"
    out = check_output_path(output or default_name)
    if fmt == "onnx":
        from segtools.weights.export import require_onnx

        require_onnx()
    loaded = load_model(model=target, arch=arch)
    export_model(loaded, out, fmt, parse_size(size, "--size"))
    info(f"wrote {out} ({fmt})")


@weights_app.command("classes")
def classes_cmd(
    masks: Annotated[List[str], typer.Argument(help="Label masks: files, folders, globs, @list.txt.")],
    method: Annotated[str, typer.Option("--method", "-m", help="inverse, median (Eigen & Fergus) or effective (Cui et al.).")] = "median",
    num_classes: Annotated[Optional[int], typer.Option("--num-classes", "-n", min=1, help="Number of classes (default: from --classes, the masks' metadata, or the largest label).")] = None,
    classes: ClassesOpt = None,
    ignore_index: Annotated[Optional[int], typer.Option("--ignore-index", help="Label to skip (default: from metadata, else 255).")] = None,
    beta: Annotated[float, typer.Option("--beta", help="Effective-number β in [0, 1).")] = 0.999,
    jobs: JobsOpt = 1,
) -> None:
    """Class-balancing loss weights from the pixel counts of label masks, as JSON.

    Example: segtools weights classes trainannot/ --classes camvid --method median > weights.json
    """
    from segtools.errors import UsageError
    from segtools.io.batch import expand_inputs
    from segtools.io.meta import load_classes
    from segtools.io.parallel import pmap
    from segtools.weights.classes import METHODS, class_weights, count_pixels

    if method not in METHODS:
        raise UsageError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    items = expand_inputs(masks)
    meta = load_classes(classes) if classes else None
    loaded = list(pmap(_read_labels, [it.path for it in items], jobs))
    if meta is None:
        meta = next((m for _, m in loaded if m is not None), None)
    ignore = ignore_index if ignore_index is not None else (meta.ignore_index if meta is not None else 255)
    names = list(meta.names) if meta is not None and meta.names else None
    if num_classes is None:
        num_classes = len(names) if names else _largest_label(loaded, ignore) + 1
    counts = count_pixels((labels for labels, _ in loaded), num_classes, ignore)
    weights = class_weights(counts, method, beta=beta)
    report = {
        "method": method, "num_classes": num_classes,
        "class_names": names[:num_classes] if names else None,
        "ignore_index": ignore, "images": counts.images, "ignored_pixels": counts.ignored,
        "pixels": counts.pixels.tolist(), "weights": [round(float(w), 6) for w in weights],
    }
    if method == "effective":
        report["beta"] = beta
    typer.echo(json.dumps(report, indent=2))


def _read_labels(path: str):
    from segtools.io.masks import read_label_mask

    mask = read_label_mask(path)
    return mask.labels, mask.meta


def _largest_label(loaded, ignore) -> int:
    import numpy as np

    top = -1
    for labels, _ in loaded:
        values = np.unique(labels)
        values = values[values != ignore] if ignore is not None else values
        if values.size:
            top = max(top, int(values.max()))
    return max(top, 0)


def register(app: typer.Typer) -> None:
    app.add_typer(weights_app, name="weights")
