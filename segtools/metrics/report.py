"""The metrics report: accumulate per-image results, build the JSON report, merge shards, render.

A report carries, besides the scores, the summable state it was built from (``confusion``,
``missed``, ``images`` and ``accumulators``), so :func:`merge_reports` over shard reports
gives exactly the report of one run over the union.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from segtools.errors import InputError
from segtools.io.limits import MAX_CONFUSION_CLASSES, check_class_count
from segtools.metrics.boundary import COUNT_KEYS, boundary_scores
from segtools.metrics.distances import DISTANCE_KEYS, distance_means
from segtools.metrics.scores import SUMMARY_KEYS, class_scores, scores, summary_scores

@dataclass(frozen=True)
class PairResult:
    """One pair's summable counts: confusion (C×C), misses (C), optional boundary counts
    and distance sums (per-class arrays by key), and the mask shape (H, W)."""

    confusion: np.ndarray
    missed: np.ndarray
    shape: tuple[int, ...]
    boundary: dict | None = None
    distances: dict | None = None


REPORT_FORMAT = "segtools-metrics"


@dataclass
class MetricsRun:
    """Everything needed for a report, summed over images; memory O(C²), not O(images)."""

    class_names: list[str]
    ignore_index: tuple[int, ...]
    boundary: dict | None = None  # {"tolerance": px, "dilation_ratio": fraction}
    distances: dict | None = None  # {"spacing": [row, col], "tolerance": units}
    confusion: np.ndarray = field(init=False)
    missed: np.ndarray = field(init=False)
    images: int = 0
    boundary_counts: dict = field(init=False)
    distance_sums: dict = field(init=False)
    image_sums: dict = field(init=False)

    def __post_init__(self) -> None:
        size = check_class_count(len(self.class_names), "metrics: class names", MAX_CONFUSION_CLASSES)
        self.confusion = np.zeros((size, size), np.int64)
        self.missed = np.zeros(size, np.int64)
        self.boundary_counts = {key: np.zeros(size, np.int64) for key in COUNT_KEYS}
        self.distance_sums = {**{f"{k}_sum": np.zeros(size) for k in DISTANCE_KEYS}, "count": np.zeros(size, np.int64)}
        self.image_sums = {key: [0.0, 0] for key in SUMMARY_KEYS}

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def add_image(self, result: PairResult) -> dict:
        """Add one image's counts (a :class:`PairResult`);
        return its per-image summary scores."""
        self.confusion += result.confusion
        self.missed += result.missed
        self.images += 1
        for key, values in (result.boundary or {}).items():
            self.boundary_counts[key] += values
        for key, values in (result.distances or {}).items():
            self.distance_sums[key] += values
        per_class = class_scores(result.confusion, result.missed)
        summary = summary_scores(per_class)
        for key, value in summary.items():
            if not math.isnan(value):
                self.image_sums[key][0] += value
                self.image_sums[key][1] += 1
        return {"summary": summary, "iou": per_class["iou"]}

    def report(self, average: str = "dataset") -> dict:
        """The report dict (NaN as float; :func:`to_json` writes it as null)."""
        out = scores(self.confusion, self.class_names, self.missed)
        out = {"format": REPORT_FORMAT, "version": 1, "num_classes": out.pop("num_classes"),
               "class_names": out.pop("class_names"), "ignore_index": list(self.ignore_index),
               "images": self.images, "average": average, **out}
        if average == "image":
            out["image_average"] = {key: (total / count if count else math.nan)
                                    for key, (total, count) in self.image_sums.items()}
        if self.boundary is not None:
            per_class = boundary_scores(self.boundary_counts)
            for key, values in per_class.items():
                out[key] = _nanmean(values)
                for row, value in zip(out["per_class"], values):
                    row[key] = float(value)
            out["boundary"] = dict(self.boundary)
        if self.distances is not None:
            per_class = distance_means(self.distance_sums)
            for key, values in per_class.items():
                out[key] = _nanmean(values)
                for row, value in zip(out["per_class"], values):
                    row[key] = float(value)
            out["distances"] = dict(self.distances)
        out["gates"] = []
        out["accumulators"] = self.state()
        return out

    def state(self) -> dict:
        state: dict = {"image_sums": {k: list(v) for k, v in self.image_sums.items()}}
        if self.boundary is not None:
            state["boundary_counts"] = {k: v.tolist() for k, v in self.boundary_counts.items()}
        if self.distances is not None:
            state["distance_sums"] = {k: v.tolist() for k, v in self.distance_sums.items()}
        return state


def _nanmean(values: np.ndarray) -> float:
    finite = np.asarray(values, np.float64)
    finite = finite[~np.isnan(finite)]
    return float(finite.mean()) if finite.size else math.nan


def image_row(pred_name: str, gt_name: str, image_scores: dict, class_names: Sequence[str]) -> dict:
    """One ``--per-image`` row: mIoU, pixel accuracy and the worst class by IoU."""
    iou = image_scores["iou"]
    defined = ~np.isnan(iou)
    if defined.any():
        worst = int(np.flatnonzero(defined)[np.argmin(iou[defined])])
        worst_name, worst_iou = class_names[worst], float(iou[worst])
    else:
        worst_name, worst_iou = None, math.nan
    summary = image_scores["summary"]
    return {"pred": pred_name, "gt": gt_name, "miou": summary["miou"],
            "pixel_accuracy": summary["pixel_accuracy"], "worst_class": worst_name, "worst_iou": worst_iou}


# ------------------------------------------------------------------------------- merging


def load_report(text: str, source: str) -> dict:
    try:
        report = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: not a JSON report ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(report, dict) or "confusion" not in report or "class_names" not in report:
        raise InputError(f"{source}: not a segtools metrics report (no confusion/class_names); "
                         "write reports with `segtools metrics ... --format json`")
    return report


def _setting(report: dict, key: str):
    return json.dumps(report.get(key), sort_keys=True)


def merge_reports(reports: Sequence[dict], sources: Sequence[str]) -> tuple[MetricsRun, str]:
    """Sum the state of partial reports; returns the run and the averaging mode.

    Raises :class:`InputError` when the reports disagree on classes, ignore values or the
    boundary/distance settings.
    """
    if not reports:
        raise InputError("metrics merge: give at least one report")
    first = reports[0]
    for report, source in zip(reports[1:], sources[1:]):
        for key in ("class_names", "ignore_index", "boundary", "distances"):
            if _setting(report, key) != _setting(first, key):
                raise InputError(f"{source}: its {key} differ from {sources[0]}'s; only reports of the same "
                                 f"classes and settings can be merged")
    run = MetricsRun(list(first["class_names"]), tuple(first.get("ignore_index") or ()),
                     first.get("boundary"), first.get("distances"))
    for report, source in zip(reports, sources):
        confusion = np.asarray(report["confusion"], np.int64)
        if confusion.shape != run.confusion.shape:
            raise InputError(f"{source}: confusion is {confusion.shape}, expected {run.confusion.shape}")
        run.confusion += confusion
        run.missed += np.asarray(report.get("missed") or np.zeros(run.num_classes), np.int64)
        run.images += int(report.get("images", 0))
        state = report.get("accumulators") or {}
        for key, pair in (state.get("image_sums") or {}).items():
            if key in run.image_sums:
                run.image_sums[key][0] += pair[0]
                run.image_sums[key][1] += pair[1]
        for key, values in (state.get("boundary_counts") or {}).items():
            run.boundary_counts[key] += np.asarray(values, np.int64)
        for key, values in (state.get("distance_sums") or {}).items():
            run.distance_sums[key] = run.distance_sums[key] + np.asarray(values, run.distance_sums[key].dtype)
    averages = {r.get("average", "dataset") for r in reports}
    return run, ("image" if "image" in averages else "dataset")


# ----------------------------------------------------------------------------- rendering


def _clean(value):
    """NaN/inf → None, numpy scalars → Python, recursively (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


_ROWS = "\x00confusion rows\x00"


def to_json(report: dict) -> str:
    """Indented JSON, the confusion matrix one compact row per line (indenting every count
    of a large matrix takes json's pure-Python encoder seconds per thousand classes)."""
    if not isinstance(report, dict) or not len(report.get("confusion", ())):
        return json.dumps(_clean(report), indent=2, allow_nan=False) + "\n"
    rows = np.asarray(report["confusion"], np.int64).tolist()  # integer counts: nothing to clean
    text = json.dumps(_clean({**report, "confusion": _ROWS}), indent=2, allow_nan=False)
    body = ",\n    ".join(json.dumps(row, separators=(",", ":")) for row in rows)
    return text.replace(json.dumps(_ROWS), "[\n    " + body + "\n  ]", 1) + "\n"


def per_class_columns(report: dict) -> list[str]:
    columns = ["iou", "dice", "precision", "recall", "gt_pixels", "pred_pixels"]
    for key in ("boundary_f1", "boundary_iou", "hd95", "assd", "nsd"):
        if report["per_class"] and key in report["per_class"][0]:
            columns.append(key)
    return columns


def summary_items(report: dict) -> list[tuple[str, float]]:
    keys = list(SUMMARY_KEYS) + [k for k in ("boundary_f1", "boundary_iou", "hd95", "assd", "nsd") if k in report]
    items = [(key, report[key]) for key in keys]
    items += [(f"image_average.{k}", v) for k, v in (report.get("image_average") or {}).items()]
    return items


def to_csv(report: dict) -> str:
    """Long format, one number per row: ``metric,class,value`` (class empty for summaries)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["metric", "class", "value"])
    for key, value in summary_items(report):
        writer.writerow([key, "", _fmt_csv(value)])
    for row in report["per_class"]:
        for key in per_class_columns(report) + ["accuracy"]:
            writer.writerow([key, row["name"], _fmt_csv(row.get(key))])
    for gate in report.get("gates", []):
        writer.writerow([f"gate:{gate['kind']}:{gate['metric']}", "", "pass" if gate["passed"] else "fail"])
    return buffer.getvalue()


def _fmt_csv(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(float(value)) if isinstance(value, float) else str(value)


def format_number(value, key: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if key.endswith("pixels"):
        return f"{int(value):,}"
    if key in ("hd95", "assd"):
        return f"{value:.2f}"
    return f"{value:.4f}"


def to_markdown(report: dict) -> str:
    columns = per_class_columns(report)
    lines = ["| class | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for row in report["per_class"]:
        lines.append(f"| {row['name']} | " + " | ".join(format_number(row.get(c), c) for c in columns) + " |")
    lines += ["", "| metric | value |", "|---|---:|"]
    lines += [f"| {key} | {format_number(value, key)} |" for key, value in summary_items(report)]
    lines += ["", f"{report['images']} images, ignore index {report['ignore_index']}. "
              "— = class absent from both ground truth and prediction (left out of the means)."]
    return "\n".join(lines) + "\n"


def confusion_csv(report: dict) -> str:
    """The confusion matrix as CSV: a ``gt\\pred`` header row of class names, then one row
    per ground-truth class (its name, then its counts). Names are quoted by the ``csv``
    module, so a name holding ``,`` or ``"`` stays one cell.

    >>> print(confusion_csv({"class_names": ["sky", 'a "b", c'], "confusion": [[1, 2], [0, 3]]}), end="")
    gt\\pred,sky,"a ""b"", c"
    sky,1,2
    "a ""b"", c",0,3
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    names = list(report["class_names"])
    writer.writerow(["gt\\pred", *names])
    for name, row in zip(names, np.asarray(report["confusion"], np.int64).tolist()):
        writer.writerow([name, *row])
    return buffer.getvalue()


def confusion_bytes(report: dict, path: str) -> bytes:
    """The confusion matrix encoded for ``path``: int64 ``.npy`` for a ``.npy`` name, else
    :func:`confusion_csv` (UTF-8)."""
    if str(path).lower().endswith(".npy"):
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(report["confusion"], np.int64), allow_pickle=False)
        return buffer.getvalue()
    return confusion_csv(report).encode("utf-8")


class ImageRows:
    """Per-image rows (:func:`image_row`) streamed to ``path`` as CSV, or JSON lines for a
    ``.jsonl``/``.ndjson``/``.json`` name, through a temporary file renamed into place when
    the ``with`` block ends without an error. ``path=None`` writes nothing."""

    FIELDS = ("pred", "gt", "miou", "pixel_accuracy", "worst_class", "worst_iou")

    def __init__(self, path: str | None, overwrite: bool = False) -> None:
        self.path, self.overwrite, self.file = path, overwrite, None
        self.jsonl = bool(path) and str(path).lower().endswith((".jsonl", ".json", ".ndjson"))

    def __enter__(self) -> "ImageRows":
        if self.path:
            from segtools.io.streams import AtomicFile

            self.file = AtomicFile(self.path, self.overwrite, mode="w", encoding="utf-8", newline="")
            if not self.jsonl:
                self.csv = csv.writer(self.file.handle, lineterminator="\n")
                self.csv.writerow(self.FIELDS)
        return self

    def write(self, row: dict) -> None:
        """Write one row (NaN → empty cell / null)."""
        if self.file is None:
            return
        clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        if self.jsonl:
            self.file.handle.write(json.dumps(clean) + "\n")
        else:
            self.csv.writerow(["" if clean[k] is None else clean[k] for k in self.FIELDS])

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.file is not None:
            self.file.__exit__(exc_type, exc, tb)
