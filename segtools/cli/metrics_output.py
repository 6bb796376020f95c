"""How ``segtools metrics`` writes what it measured: report files in their formats, the rich
tables for people (semantic, instance and panoptic), saved states and confusion CSVs."""

from __future__ import annotations

import sys
from typing import Optional


def write_state(text: str, path: str, overwrite: bool) -> None:
    from segtools.io.streams import AtomicFile

    with AtomicFile(path, overwrite, mode="w", encoding="utf-8") as state:
        state.handle.write(text)


def print_task_table(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from segtools.metrics.tasks import CLASS_KEYS, format_value, summary_keys

    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 120)
    summary = Table(title=f"segtools metrics — {report['task']}", title_justify="left", show_header=False)
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    for key in summary_keys(report):
        summary.add_row(key, format_value(report.get(key)))
    console.print(summary)
    columns = CLASS_KEYS[report["task"]]
    table = Table(title="per class", title_justify="left")
    table.add_column("class")
    for column in columns:
        table.add_column(column, justify="right")
    for name, row in (report.get("per_class") or {}).items():
        table.add_row(str(name), *(format_value(row.get(c)) for c in columns))
    console.print(table)
    console.print("— = undefined (no ground truth of that class, or none in that area range).", highlight=False)
    for gate in report["gates"]:
        mark = "PASS" if gate["passed"] else "FAIL"
        console.print(f"gate {mark}: {gate['kind']} {gate['metric']} value {format_value(gate['value'])} "
                      f"threshold {format_value(gate['threshold'])}", highlight=False)


def write_text(text: str, output: Optional[str], overwrite: bool) -> None:
    if output and output != "-":
        from segtools.io.streams import write_bytes

        write_bytes(output, text.encode("utf-8"), overwrite)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def write_report(report: dict, fmt: str, output: Optional[str], overwrite: bool) -> None:
    from segtools.metrics import report as reportlib

    if fmt == "json":
        write_text(reportlib.to_json(report), output, overwrite)
    elif fmt == "csv":
        write_text(reportlib.to_csv(report), output, overwrite)
    elif fmt == "markdown":
        write_text(reportlib.to_markdown(report), output, overwrite)
    elif output and output != "-":
        write_text(reportlib.to_markdown(report), output, overwrite)
    else:
        print_table(report)


def print_table(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from segtools.metrics.report import format_number, per_class_columns, summary_items

    columns = per_class_columns(report)
    table = Table(title=f"segtools metrics — {report['images']} image(s)", title_justify="left")
    table.add_column("class")
    for column in columns:
        table.add_column(column, justify="right")
    for row in report["per_class"]:
        table.add_row(row["name"], *(format_number(row.get(c), c) for c in columns))
    summary = Table(show_header=False, box=None)
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    for key, value in summary_items(report):
        summary.add_row(key, format_number(value, key))
    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 120)
    console.print(table)
    console.print(summary)
    for note in (f"Ignore index: {report['ignore_index']}.",
                 "— = class absent from both ground truth and prediction, left out of the means.",
                 "A class only predicted scores 0."):   # one line each: a note never wraps mid-sentence
        console.print(note, highlight=False)
    for gate in report["gates"]:
        mark = "PASS" if gate["passed"] else "FAIL"
        console.print(f"gate {mark}: {gate['kind']} {gate['metric']} value {format_number(gate['value'])} "
                      f"threshold {format_number(gate['threshold'])}", highlight=False)


def write_confusion(report: dict, path: str, overwrite: bool) -> None:
    from segtools.io.streams import write_bytes
    from segtools.metrics.report import confusion_bytes

    write_bytes(path, confusion_bytes(report, path), overwrite)
