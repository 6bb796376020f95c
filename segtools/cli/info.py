"""``segtools info``: what a mask, score map or image holds (file(1) for segmentation data)."""

from __future__ import annotations

import json
from typing import List

import typer
from typing import Annotated

from segtools.cli.common import FormatOpt, PaletteOpt


def info(
    inputs: Annotated[List[str], typer.Argument(help="Files, folders, globs or @list.txt; '-' for stdin.")] = None,
    palette: PaletteOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Say what each input is: kind (label mask, score map, image), size, dtype, label values
    with pixel counts, and the class metadata it carries.

    Example:  segtools info mask.png --format json
    """
    from segtools.errors import UsageError
    from segtools.io.batch import expand_inputs
    from segtools.io.inspect import inspect_source

    if fmt not in ("table", "json"):
        raise UsageError(f"--format must be table or json, not {fmt!r}")
    items = expand_inputs(inputs or ["-"])
    reports = [inspect_source(item.path, palette) for item in items]
    if fmt == "json":
        typer.echo(json.dumps(reports if len(reports) > 1 else reports[0], indent=2))
        return
    for report in reports:
        typer.echo(_describe(report))


def _describe(report: dict) -> str:
    lines = [f"{report['source']}: {report['kind']} ({report['format']}, {report['bytes']:,} bytes)"]
    if "height" in report:
        lines.append(f"  size     {report['width']}x{report['height']}, {report['dtype']}"
                     + (f", {report['channels']} channels" if "channels" in report else ""))
    if "shape" in report:
        values = (f"values {report['min']:.4g}..{report['max']:.4g}" if report["min"] is not None
                  else "no finite values")
        if report.get("non_finite"):
            values += f", {report['non_finite']:,} NaN or infinite"
        lines.append(f"  shape    {report['shape']} {report['dtype']}, {values}")
    meta = report.get("meta") or {}
    names = meta.get("names")
    if "values" in report:
        total = sum(report["values"].values())
        parts = []
        for value, count in report["values"].items():
            label = names[value] if names and value < len(names) else (
                "ignore" if value == meta.get("ignore_index") else str(value))
            parts.append(f"{label}={100.0 * count / total:.1f}%" if label != str(value)
                         else f"{value}={100.0 * count / total:.1f}%")
        lines.append("  labels   " + ", ".join(parts[:40]) + (" ..." if len(parts) > 40 else ""))
    if meta:
        lines.append(f"  meta     kind={meta.get('kind')} ignore_index={meta.get('ignore_index')}"
                     + (f" classes={len(names)}" if names else ""))
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    app.command("info")(info)
