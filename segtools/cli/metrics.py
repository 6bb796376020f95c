"""``segtools metrics``: dataset-level confusion-matrix metrics and CI quality gates.

Two forms share one command (and one option list):

    segtools metrics PRED GT [options]        measure predictions against ground truth
    segtools metrics merge REPORT... [options] sum partial JSON reports from shards
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional

import typer
from typing_extensions import Annotated

from segtools.cli.common import progress
from segtools.cli import metrics_output as report_out
from segtools.cli.options import ClassesOpt, DaskOpt, JobsOpt, OverwriteOpt, PaletteOpt, ShardOpt, parse_ignore

FORMATS = ("table", "json", "csv", "markdown")
# not the shared OutputOpt/FormatOpt: a report is one file, never a batch folder, and has four formats
ReportOpt = Annotated[Optional[str], typer.Option("--output", "-o", help="Write the report to FILE; stdout when omitted.")]
ReportFormatOpt = Annotated[str, typer.Option("--format", "-f", help="Report format: table, json, csv or markdown.")]


@dataclass(frozen=True)
class _Measuring:
    """The options that say what to measure (all but inputs, outputs and gates)."""

    num_classes: Optional[int] = None
    classes: Optional[str] = None
    ignore_index: Optional[List[str]] = None
    label_map: Optional[str] = None
    pred_label_map: Optional[str] = None
    palette: Optional[str] = None
    allow_missing: bool = False
    average: str = "dataset"
    boundary: bool = False
    boundary_tolerance: float = 2.0
    boundary_dilation: float = 0.02
    distances: bool = False
    spacing: str = "1"
    nsd_tolerance: float = 1.0


def metrics(
    inputs: Annotated[List[str], typer.Argument(
        metavar="PRED GT | merge REPORT...",
        help="Predictions and ground truth (file, folder, glob, @list.txt; '-' for PRED from stdin), "
             "or 'merge' and partial JSON reports.")],
    num_classes: Annotated[Optional[int], typer.Option("--num-classes", "-n", min=1, help="Number of classes C (labels 0..C-1).")] = None,
    classes: ClassesOpt = None,
    ignore_index: Annotated[Optional[List[str]], typer.Option(
        "--ignore-index", help="Ground-truth value to skip (repeatable; 'none' for no ignore). Default: from --classes or the masks, else 255.")] = None,
    label_map: Annotated[Optional[str], typer.Option(
        "--label-map", help="Remap ground-truth values first: 'cityscapes' (labelIds→trainIds), 'ade20k' (0→255, k→k−1), '7:0,8:1', or a JSON/text file.")] = None,
    pred_label_map: Annotated[Optional[str], typer.Option("--pred-label-map", help="Remap prediction values first (same forms).")] = None,
    palette: PaletteOpt = None,
    allow_missing: Annotated[bool, typer.Option("--allow-missing", help="Skip predictions without ground truth and the reverse (warns); instances: a ground-truth image without a prediction mask counts as no detections.")] = False,
    average: Annotated[str, typer.Option("--average", help="dataset (one confusion over all pixels) or image (also the mean of per-image scores).")] = "dataset",
    boundary: Annotated[bool, typer.Option("--boundary", help="Also boundary F1 and Boundary IoU, per class and mean.")] = False,
    boundary_tolerance: Annotated[float, typer.Option("--boundary-tolerance", min=0, help="Boundary F1 match distance in pixels.")] = 2.0,
    boundary_dilation: Annotated[float, typer.Option("--boundary-dilation", min=0, help="Boundary IoU band width, fraction of the image diagonal.")] = 0.02,
    distances: Annotated[bool, typer.Option("--distances", help="Also HD95, ASSD and normalised surface Dice per class.")] = False,
    spacing: Annotated[str, typer.Option("--spacing", help="Pixel size 'ROW,COL' (or one number) in physical units, for --distances.")] = "1",
    nsd_tolerance: Annotated[float, typer.Option("--nsd-tolerance", min=0, help="Normalised surface Dice tolerance τ, physical units.")] = 1.0,
    task: Annotated[str, typer.Option(
        "--task", help="semantic, instance (COCO AP) or panoptic (PQ); auto: recognised from the inputs.")] = "auto",
    iou_type: Annotated[str, typer.Option("--iou-type", help="Instance AP on masks (segm) or boxes (bbox).")] = "segm",
    iou_thresholds: Annotated[Optional[str], typer.Option(
        "--iou-thresholds", help="Instance IoU thresholds: 'START:STOP:STEP' or 'A,B,…' (default COCO's 0.5:0.95:0.05).")] = None,
    max_dets: Annotated[Optional[str], typer.Option("--max-dets", help="Instance detections per image: 'A,B,C' (default 1,10,100).")] = None,
    area_ranges: Annotated[Optional[str], typer.Option(
        "--area-ranges", help="Instance area ranges 'name=LO:HI,…' in px² (default COCO's all, small, medium, large).")] = None,
    pred_folder: Annotated[Optional[str], typer.Option("--pred-folder", help="PNG folder of a COCO panoptic PRED JSON (default: beside it, named by its stem).")] = None,
    gt_folder: Annotated[Optional[str], typer.Option("--gt-folder", help="PNG folder of a COCO panoptic GT JSON (default: beside it, named by its stem).")] = None,
    save_state: Annotated[Optional[str], typer.Option(
        "--save-state", help="Write this shard's summable state to FILE (JSON) for 'metrics merge'.")] = None,
    fmt: ReportFormatOpt = "table",
    output: ReportOpt = None,
    per_image: Annotated[Optional[str], typer.Option("--per-image", help="Write one row per image to FILE (.csv, or .jsonl).")] = None,
    save_confusion: Annotated[Optional[str], typer.Option("--save-confusion", help="Write the confusion matrix to FILE (.csv or .npy).")] = None,
    fail_under: Annotated[Optional[List[str]], typer.Option(
        "--fail-under", help="Gate METRIC=V or METRIC:CLASS=V: exit 1 when below (e.g. miou=0.7, iou:car=0.6). Repeatable.")] = None,
    fail_over: Annotated[Optional[List[str]], typer.Option("--fail-over", help="Gate for lower-is-better metrics (hd95=5). Repeatable.")] = None,
    baseline: Annotated[Optional[str], typer.Option("--baseline", help="A stored JSON report to compare with (regression gate).")] = None,
    max_drop: Annotated[float, typer.Option("--max-drop", min=0, help="With --baseline: the most a gated metric may get worse.")] = 0.0,
    jobs: JobsOpt = 0,
    overwrite: OverwriteOpt = False,
    dask: DaskOpt = None,
    shard: ShardOpt = None,
) -> None:
    """Exact, dataset-level segmentation metrics from one int64 confusion matrix, with quality gates.

    Per class: IoU, Dice, precision, recall, accuracy, pixel counts. Overall: mIoU, pixel accuracy, mean class accuracy, mean Dice, frequency-weighted IoU, Cohen's kappa. A class absent from both ground truth and prediction is NaN (— / null) and left out of the means; a class only predicted scores 0. Gates on boundary or distance metrics turn on --boundary / --distances.

    Example:  segtools metrics pred/ gt/ --classes camvid --fail-under miou=0.6 --format json > report.json

    Example:  segtools metrics merge shard-*.json --fail-under iou:car=0.6
    """
    from segtools.errors import UsageError
    from segtools.metrics import gates as gatelib

    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if average not in ("dataset", "image"):
        raise UsageError(f"--average must be dataset or image, not {average!r}")
    flags = {"min": "--fail-under", "max": "--fail-over"}
    gates = ([gatelib.parse_gate(s, "min", flags) for s in fail_under or []]
             + [gatelib.parse_gate(s, "max", flags) for s in fail_over or []])
    boundary = boundary or any(g.key in gatelib.BOUNDARY_METRICS for g in gates)
    distances = distances or any(g.key in gatelib.DISTANCE_METRICS for g in gates)
    outputs = _check_outputs(output, per_image, save_confusion, overwrite)
    if save_state not in (None, "-"):
        from segtools.io.streams import check_output_path

        check_output_path(save_state, overwrite)
    elif save_state == "-":
        raise UsageError("--save-state takes a file name; the report goes to stdout")
    baseline_report = _load_baseline(baseline) if baseline else None
    instance_options = {"--iou-thresholds": iou_thresholds, "--max-dets": max_dets, "--area-ranges": area_ranges,
                        "--pred-folder": pred_folder, "--gt-folder": gt_folder,
                        "--iou-type": iou_type if iou_type != "segm" else None}
    semantic_options = {"--num-classes": num_classes, "--classes": classes, "--ignore-index": ignore_index,
                        "--label-map": label_map, "--pred-label-map": pred_label_map, "--palette": palette,
                        "--per-image": per_image, "--save-confusion": save_confusion, "--boundary": boundary,
                        "--distances": distances}
    if task not in ("auto", "semantic", "instance", "panoptic"):
        raise UsageError(f"--task must be auto, semantic, instance or panoptic, not {task!r}")
    from segtools.cli.options import parse_shard
    from segtools.io.cluster import use_dask

    shard_of = parse_shard(shard)
    report = None
    if inputs and inputs[0] == "merge":
        report = _merge_tasks(inputs[1:], semantic_options)
    elif len(inputs) == 2:
        from segtools.metrics.tasks import detect_task

        chosen = detect_task(inputs[0], inputs[1]) if task == "auto" else task
        if chosen != "semantic":
            with use_dask(dask):
                report = _measure_task(chosen, inputs, semantic_options, instance_options, jobs, allow_missing,
                                       shard_of)
    if report is not None:
        _finish_task(report, gates, baseline_report, max_drop, fmt, outputs["output"], save_state, overwrite)
        return
    given = [name for name, value in instance_options.items() if value]
    if given:
        raise UsageError(f"{', '.join(given)}: only for --task instance or panoptic")

    if inputs and inputs[0] == "merge":
        measuring = {"--num-classes": num_classes, "--classes": classes, "--ignore-index": ignore_index,
                     "--label-map": label_map, "--pred-label-map": pred_label_map, "--palette": palette,
                     "--per-image": per_image}
        given = [name for name, value in measuring.items() if value]
        if given:
            raise UsageError(f"{', '.join(given)}: only when measuring masks, not with 'metrics merge'")
        run, average_used = _merge(inputs[1:])
        report = run.report("image" if average == "image" else average_used)
    else:
        if len(inputs) != 2:
            raise UsageError(f"expected PRED and GT (or 'merge REPORT...'), got {len(inputs)} argument(s)")
        request = _Measuring(num_classes, classes, ignore_index, label_map, pred_label_map, palette, allow_missing,
                             average, boundary, boundary_tolerance, boundary_dilation, distances, spacing,
                             nsd_tolerance)
        with use_dask(dask):
            report = _measure(inputs[0], inputs[1], request, outputs, jobs, overwrite, shard_of)
    report["gates"] = gatelib.evaluate_gates(report, gates)
    if baseline_report is not None:
        report["gates"] += gatelib.evaluate_baseline(report, baseline_report, max_drop, gates)
    report_out.write_report(report, fmt, outputs["output"], overwrite)
    if save_confusion:
        report_out.write_confusion(report, save_confusion, overwrite)
    if save_state:
        from segtools.metrics.report import to_json

        report_out.write_state(to_json(report), save_state, overwrite)  # a semantic report is its own state
    _fail_on_gates(report)


def _fail_on_gates(report: dict) -> None:
    from segtools.metrics import gates as gatelib

    failed = [g for g in report["gates"] if not g["passed"]]
    if failed:
        from segtools.cli.options import in_flags
        from segtools.errors import GateFailed

        raise GateFailed(in_flags(f"{len(failed)} of {len(report['gates'])} quality gate(s) failed: "
                                  + "; ".join(gatelib.describe_failure(g) for g in failed), {"max_drop": "--max-drop"}))


def _measure_task(task: str, inputs: List[str], semantic_options: dict, instance_options: dict, jobs: int,
                  allow_missing: bool = False, shard: Optional[tuple[int, int]] = None) -> dict:
    from segtools.errors import UsageError
    from segtools.metrics.tasks import evaluate_task, task_report

    given = [name for name, value in semantic_options.items() if value]
    if given:
        raise UsageError(f"{', '.join(given)}: only for semantic masks, not with --task {task}")
    flags = {"iou_type": "--iou-type", "iou_thresholds": "--iou-thresholds", "max_dets": "--max-dets",
             "area_ranges": "--area-ranges", "pred_folder": "--pred-folder", "gt_folder": "--gt-folder",
             "jobs": "--jobs", "allow_missing": "--allow-missing", "shard": "--shard"}
    from segtools.cli.options import parameters_as_flags

    missing: list = []
    with parameters_as_flags(flags):
        evaluation, extra = evaluate_task(
            task, inputs[0], inputs[1], iou_type=instance_options["--iou-type"] or "segm",
            iou_thresholds=instance_options["--iou-thresholds"], max_dets=instance_options["--max-dets"],
            area_ranges=instance_options["--area-ranges"], pred_folder=instance_options["--pred-folder"],
            gt_folder=instance_options["--gt-folder"], jobs=jobs,
            on_missing=missing.append if allow_missing else None, shard=shard)
    if missing:
        import logging

        logging.getLogger("segtools").warning(
            "%d ground-truth image(s) without a prediction mask, counted as no detections (first: %s)",
            len(missing), missing[0])
    return task_report(task, evaluation, extra)


def _merge_tasks(sources: List[str], semantic_options: dict) -> Optional[dict]:
    """The merged report when the sources are instance or panoptic states; ``None`` for
    semantic reports (merged by :func:`_merge`)."""
    from segtools.errors import UsageError
    from segtools.io.batch import expand_inputs
    from segtools.io.jsondata import parse_json
    from segtools.io.streams import read_bytes
    from segtools.metrics.tasks import merge_states, one_task, task_report

    if not sources:
        raise UsageError("metrics merge: give the partial reports to merge (e.g. shard-*.json)")
    items = expand_inputs(sources, extensions=(".json",))
    states = [parse_json(read_bytes(item.path), item.path) for item in items]
    if one_task(states, [item.path for item in items]) is None:
        return None
    first = states[0]
    given = [name for name, value in semantic_options.items() if value]
    if given:
        raise UsageError(f"{', '.join(given)}: only for semantic masks, not with instance or panoptic states")
    task, evaluation = merge_states(states, [item.path for item in items])
    extra = {"iou_type": first.get("iou_type")} if first.get("iou_type") else {}
    return task_report(task, evaluation, extra)


def _finish_task(report: dict, gates, baseline_report, max_drop, fmt, output, save_state, overwrite) -> None:
    import json

    from segtools.metrics import gates as gatelib
    from segtools.metrics import tasks

    report["gates"] = gatelib.evaluate_gates(report, gates)
    if baseline_report is not None:
        report["gates"] += gatelib.evaluate_baseline(report, baseline_report, max_drop, gates)
    if fmt == "json":
        report_out.write_text(tasks.to_json(report), output, overwrite)
    elif fmt == "csv":
        report_out.write_text(tasks.to_csv(report), output, overwrite)
    elif fmt == "markdown" or (output and output != "-"):
        report_out.write_text(tasks.to_markdown(report), output, overwrite)
    else:
        report_out.print_task_table(report)
    if save_state:
        report_out.write_state(json.dumps(report["state"]) + "\n", save_state, overwrite)
    _fail_on_gates(report)


def _check_outputs(output, per_image, save_confusion, overwrite) -> dict:
    from segtools.errors import UsageError
    from segtools.io.streams import check_output_path

    paths = {"output": output, "per_image": per_image, "save_confusion": save_confusion}
    given = [p for p in paths.values() if p and p != "-"]
    if len(set(map(os.path.abspath, given))) != len(given):
        raise UsageError("--output, --per-image and --save-confusion must be different files")
    for value in given:
        check_output_path(value, overwrite)
    if save_confusion == "-" or per_image == "-":
        raise UsageError("--per-image and --save-confusion take a file name; the report goes to stdout")
    return paths


def _load_baseline(path: str) -> dict:
    from segtools.io.streams import read_bytes
    from segtools.metrics.report import load_report

    return load_report(read_bytes(path).decode("utf-8", "replace"), f"--baseline {path}")


def _merge(sources: List[str]):
    from segtools.errors import UsageError
    from segtools.io.batch import expand_inputs
    from segtools.io.streams import read_bytes
    from segtools.metrics.report import load_report, merge_reports

    if not sources:
        raise UsageError("metrics merge: give the partial reports to merge (e.g. shard-*.json)")
    items = expand_inputs(sources, extensions=(".json",))
    reports = [load_report(read_bytes(item.path).decode("utf-8", "replace"), item.path) for item in items]
    return merge_reports(reports, [item.path for item in items])


def _resolve_classes(gt_path: str, num_classes, classes, ignore_index):
    """Class names and ignore values from the options, else the first ground truth's metadata."""
    from segtools.errors import UsageError
    from segtools.io.limits import MAX_CONFUSION_CLASSES
    from segtools.io.meta import ClassMeta, load_classes, read_mask_meta

    meta = load_classes(classes, "--classes") if classes else read_mask_meta(gt_path)
    names = list(meta.names) if meta is not None and meta.names else None
    if num_classes is not None:
        if num_classes > MAX_CONFUSION_CLASSES:
            raise UsageError(f"--num-classes {num_classes}: at most {MAX_CONFUSION_CLASSES:,} classes "
                             "(a C×C confusion matrix is made)")
        if names is not None and len(names) != num_classes and classes:
            raise UsageError(f"--num-classes {num_classes} contradicts --classes {classes} ({len(names)} classes)")
        if names is None or len(names) != num_classes:
            names = [f"class_{i}" for i in range(num_classes)]
    if names is None:
        raise UsageError("how many classes? give --num-classes N or --classes voc|cityscapes|camvid|ade20k|FILE "
                         "(the ground truth carries no class metadata)")
    if ignore_index:
        ignore = _parse_ignore(ignore_index)
    elif meta is not None and isinstance(meta, ClassMeta):
        ignore = () if meta.ignore_index is None else (meta.ignore_index,)
    else:
        ignore = (255,)
    return names, ignore


def _parse_ignore(values: List[str]) -> tuple[int, ...]:
    """Repeated (or comma-separated) ``--ignore-index`` values, each read by
    :func:`~segtools.cli.options.parse_ignore`; ``none`` (or -1) alone means no value."""
    from segtools.errors import UsageError

    parsed = [parse_ignore(v) for part in values for v in part.split(",") if v.strip()]
    if None in parsed:
        if len(parsed) > 1:
            raise UsageError("--ignore-index none cannot be combined with other values")
        return ()
    return tuple(sorted(set(parsed)))


def _check_finite(**options: float) -> None:
    import math

    from segtools.errors import UsageError

    for option, value in options.items():
        if not math.isfinite(value):
            raise UsageError(f"{option} {value}: give a finite number")


def _parse_spacing(text: str) -> tuple[float, float]:
    import math

    from segtools.errors import UsageError

    try:
        values = [float(v) for v in text.replace("x", ",").split(",") if v.strip()]
    except ValueError:
        values = []
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or not all(math.isfinite(v) and v > 0 for v in values):
        raise UsageError(f"--spacing {text!r}: give one or two positive numbers, ROW,COL (e.g. 0.5,0.5)")
    return values[0], values[1]


def _measure(pred_spec: str, gt_spec: str, request: _Measuring, outputs: dict, jobs: int, overwrite: bool,
             shard: Optional[tuple[int, int]] = None) -> dict:
    import logging

    from segtools.formats.cityscapes import semantic_frame_files
    from segtools.io.batch import expand_inputs, pair_items
    from segtools.metrics.evaluate import MeasureOptions, load_label_map, measure_pairs
    from segtools.metrics.report import ImageRows

    spacing = _parse_spacing(request.spacing)
    _check_finite(**{"--boundary-tolerance": request.boundary_tolerance,
                     "--boundary-dilation": request.boundary_dilation, "--nsd-tolerance": request.nsd_tolerance})
    preds = expand_inputs([pred_spec])
    # a Cityscapes gtFine folder: its train ids, or its label ids when --label-map remaps them
    truths = semantic_frame_files(expand_inputs([gt_spec], allow_stdin=False), raw_ids=request.label_map is not None)
    pairing = pair_items(preds, truths, allow_missing=request.allow_missing)
    _check_outputs(**outputs, overwrite=overwrite)  # again, now that the inputs are known
    if pairing.only_left or pairing.only_right:
        logging.getLogger("segtools").warning(
            "skipped %d prediction(s) without ground truth and %d ground truth(s) without prediction",
            len(pairing.only_left), len(pairing.only_right))
    names, ignore = _resolve_classes(pairing.pairs[0][1].path, request.num_classes, request.classes,
                                     request.ignore_index)
    options = MeasureOptions(
        num_classes=len(names), ignore_index=ignore, palette=request.palette,
        gt_label_map=load_label_map(request.label_map, "--label-map") if request.label_map else None,
        pred_label_map=load_label_map(request.pred_label_map, "--pred-label-map") if request.pred_label_map else None,
        boundary=(request.boundary_tolerance, request.boundary_dilation) if request.boundary else None,
        distances=(spacing, request.nsd_tolerance) if request.distances else None)
    from segtools.cli.options import shard_items

    pairs = [(pred.path, gt.path) for pred, gt in shard_items(pairing.pairs, shard, key=lambda pair: pair[0].rel)]
    with ImageRows(outputs["per_image"], overwrite) as rows, progress(len(pairs), "metrics") as advance:
        run = measure_pairs(pairs, names, options, jobs, on_done=advance, on_image=rows.write)
    return run.report(request.average)


def register(app: typer.Typer) -> None:
    from segtools.io.remote import with_storage

    # s3://, gs://, memory://… inputs and outputs: masks, panoptic PNGs and instance masks are
    # read by whoever measures them (a Dask worker too), the JSON documents by this process
    app.command("metrics")(with_storage(metrics, paths=("pred_folder", "gt_folder", "baseline"),
                                        outputs=("save_state", "per_image", "save_confusion"),
                                        streamed=("inputs", "output", "pred_folder", "gt_folder"),
                                        streams=_streams_items))


def _streams_items(options: dict) -> bool:
    """Whether ``metrics`` reads its storage URLs item by item: a measure of two specs (any
    task), not ``merge``, whose states are staged. A task recognised here is kept in
    ``options`` (the command's keyword arguments), so the inputs on the store are not
    inspected a second time."""
    inputs = options.get("inputs") or []
    if len(inputs) != 2 or inputs[0] == "merge":
        return False
    if (options.get("task") or "auto") == "auto":
        from segtools.metrics.tasks import detect_task

        options["task"] = detect_task(inputs[0], inputs[1])
    return True
