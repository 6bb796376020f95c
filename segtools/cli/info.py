"""``segtools info``: what a mask, score map or image holds (file(1) for segmentation data)."""

from __future__ import annotations

import json
from typing import List

import typer
from typing import Annotated

from segtools.cli.options import PaletteOpt


def info(
    inputs: Annotated[List[str], typer.Argument(help="Files, folders, globs or @list.txt; '-' for stdin.")] = None,
    palette: PaletteOpt = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="Output format: table, json or csv (one row per input).")] = "table",
) -> None:
    """Say what each input is: kind (label mask, score map, image), size, dtype, label values
    with pixel counts, and the class metadata it carries.

    Example:  segtools info mask.png --format json
    """
    from segtools.errors import UsageError
    from segtools.io.inspect import describe_report, inspect_sources, reports_csv

    if fmt not in ("table", "json", "csv"):
        raise UsageError(f"--format must be table, json or csv, not {fmt!r}")
    reports = inspect_sources(inputs or ["-"], palette)
    if fmt == "json":
        typer.echo(json.dumps(reports if len(reports) > 1 else reports[0], indent=2))
    elif fmt == "csv":
        typer.echo(reports_csv(reports), nl=False)
    else:
        typer.echo("\n".join(describe_report(report) for report in reports))


def register(app: typer.Typer) -> None:
    app.command("info")(info)
