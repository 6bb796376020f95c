"""``segtools info``: what a mask, score map or image holds (file(1) for segmentation data).

Start-up matters here (one file per call, in shell loops): annotations are real objects,
not strings, so typer reads them without evaluating each one again; the annotation
readers are imported only for a file that is not a mask, image or array.
"""

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
    with pixel counts, and the class metadata it carries; for an annotation file (COCO,
    COCO panoptic, COCO results, labelme, Pascal VOC or CVAT XML, YOLO labels or a YOLO
    dataset folder) its images, categories and annotations counted by kind.

    Example:  segtools info mask.png --format json · segtools info instances_val2017.json
    """
    from segtools.errors import UsageError
    from segtools.io.inspect import describe_report, reports_csv

    if fmt not in ("table", "json", "csv"):
        raise UsageError(f"--format must be table, json or csv, not {fmt!r}")
    reports = [_report(spec, palette) for spec in _sources(inputs or ["-"])]
    is_annotation = [isinstance(r, dict) and r.get("format") in ANNOTATION_FORMATS for r in reports]
    if fmt == "json":
        import json

        typer.echo(json.dumps(reports if len(reports) > 1 else reports[0], indent=2))
    elif fmt == "csv":
        typer.echo(_annotations().annotations_csv(reports) if all(is_annotation) else reports_csv(reports), nl=False)
    else:
        typer.echo("\n".join(_annotations().annotation_text(r) if a else describe_report(r)
                              for r, a in zip(reports, is_annotation)))


ANNOTATION_FORMATS = ("json", "xml", "text", "folder")


def _sources(specs: List[str]) -> list:
    """Each input: a YOLO or COCO export folder stays whole; everything else as the batch rule expands it."""
    import os
    from pathlib import Path

    from segtools.io.batch import expand_inputs

    out: list = []
    for spec in specs:
        root = Path(spec)
        if os.path.isdir(spec) and _annotations().dataset_folder(root) is not None:
            out.append(root)
        else:
            out.extend(item.path for item in expand_inputs([spec]))
    return out


def _annotations():
    from segtools.formats import describe

    return describe


def _report(source, palette) -> dict:
    from pathlib import Path

    from segtools.io.inspect import inspect_source
    from segtools.io.sniff import sniff
    from segtools.io.streams import describe, read_bytes, read_head

    if isinstance(source, Path):
        return _annotations().describe_folder(source)
    data = read_bytes(source) if source == "-" else read_head(Path(source), 4096)
    head = sniff(data[:512])
    if head.is_image_file or head.format in ("npy", "npz"):  # a mask, image or array: no annotation reader
        return inspect_source(data if source == "-" else source, palette)
    annotations = _annotations()
    empty_labels = not data.strip() and source != "-" and str(source).lower().endswith(".txt")
    if not (annotations.is_annotation_source(data) or empty_labels):
        return inspect_source(data if source == "-" else source, palette)
    return annotations.describe_annotations(data if source == "-" else read_bytes(source), describe(source))


def register(app: typer.Typer) -> None:
    app.command("info")(info)
