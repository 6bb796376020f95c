"""Quality gates: thresholds on report metrics, and a regression gate against a baseline report.

Grammar (``--fail-under`` / ``--fail-over``, repeatable)::

    GATE   := METRIC "=" NUMBER | METRIC ":" CLASS "=" NUMBER
    METRIC := miou | pixel_accuracy (acc) | mean_dice (dice) | mean_class_accuracy (macc)
            | fw_iou | kappa | boundary_f1 (bf) | boundary_iou (biou) | hd95 | assd | nsd
            | ap | ap50 | ap75 | ap_small | ap_medium | ap_large | ar1 | ar10 | ar100
            | ar_small | ar_medium | ar_large            (instance reports)
            | pq | sq | rq | pq_things | … | rq_stuff     (panoptic reports)
    per class: iou | dice | precision | recall | accuracy | bf | biou | hd95 | assd | nsd
            | ap | ap50 | ar100 | pq | sq | rq
    CLASS  := a class name (case-insensitive) or index

``--fail-under`` fails when the value is below the threshold (higher is better);
``--fail-over`` when above (for distances, lower is better). An undefined value (NaN: the
class is absent, or boundary/distance metrics were not computed) fails its gate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from segtools.errors import InputError, UsageError

SUMMARY_ALIASES = {
    "miou": "miou", "iou": "miou", "pixel_accuracy": "pixel_accuracy", "acc": "pixel_accuracy",
    "accuracy": "pixel_accuracy", "mean_dice": "mean_dice", "dice": "mean_dice", "mdice": "mean_dice",
    "mean_class_accuracy": "mean_class_accuracy", "macc": "mean_class_accuracy", "fw_iou": "fw_iou",
    "fwiou": "fw_iou", "kappa": "kappa", "boundary_f1": "boundary_f1", "bf": "boundary_f1",
    "boundary_iou": "boundary_iou", "biou": "boundary_iou", "hd95": "hd95", "assd": "assd", "nsd": "nsd",
    **{key: key for key in ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large", "ar1", "ar10", "ar100",
                            "ar_small", "ar_medium", "ar_large", "pq", "sq", "rq", "pq_things", "sq_things",
                            "rq_things", "pq_stuff", "sq_stuff", "rq_stuff")},
}
CLASS_ALIASES = {
    "iou": "iou", "dice": "dice", "f1": "dice", "precision": "precision", "recall": "recall",
    "accuracy": "accuracy", "acc": "accuracy", "bf": "boundary_f1", "boundary_f1": "boundary_f1",
    "biou": "boundary_iou", "boundary_iou": "boundary_iou", "hd95": "hd95", "assd": "assd", "nsd": "nsd",
    "ap": "ap", "ap50": "ap50", "ar100": "ar100", "pq": "pq", "sq": "sq", "rq": "rq",
}
LOWER_IS_BETTER = {"hd95", "assd"}
BOUNDARY_METRICS = {"boundary_f1", "boundary_iou"}
DISTANCE_METRICS = {"hd95", "assd", "nsd"}
DEFAULT_BASELINE_METRICS = ("miou", "pixel_accuracy", "mean_dice", "ap", "pq")  # those a report has


@dataclass(frozen=True)
class Gate:
    """One parsed gate: ``key`` is the report field, ``cls`` the class (name or index) or None."""

    spec: str
    key: str
    cls: str | None
    threshold: float
    direction: str  # "min": value >= threshold passes; "max": value <= threshold passes

    @property
    def metric(self) -> str:
        return self.key if self.cls is None else f"{self.key}:{self.cls}"


GATE_NAMES = {"min": "fail-under gate", "max": "fail-over gate"}


def parse_gate(spec: str, direction: str = "min", names: dict[str, str] = GATE_NAMES) -> Gate:
    """Parse ``metric=value`` or ``metric:class=value``.

    ``names`` says what a gate of each direction is called in messages (the CLI passes its
    options, ``{"min": "--fail-under", "max": "--fail-over"}``).

    >>> parse_gate("iou:car=0.6")
    Gate(spec='iou:car=0.6', key='iou', cls='car', threshold=0.6, direction='min')
    """
    option = names[direction]
    name, sep, number = spec.partition("=")
    if not sep:
        raise UsageError(f"{option} {spec!r}: expected METRIC=VALUE or METRIC:CLASS=VALUE, e.g. miou=0.7 or iou:car=0.6")
    try:
        threshold = float(number)
    except ValueError:
        raise UsageError(f"{option} {spec!r}: {number!r} is not a number") from None
    metric, colon, cls = name.strip().partition(":")
    metric = metric.strip().lower()
    if colon:
        if metric not in CLASS_ALIASES or not cls.strip():
            raise UsageError(f"{option} {spec!r}: per-class metric must be one of "
                             f"{', '.join(sorted(set(CLASS_ALIASES)))} followed by :CLASS")
        key, cls_name = CLASS_ALIASES[metric], cls.strip()
    else:
        if metric not in SUMMARY_ALIASES:
            raise UsageError(f"{option} {spec!r}: unknown metric {metric!r}; known: "
                             f"{', '.join(sorted(set(SUMMARY_ALIASES)))}")
        key, cls_name = SUMMARY_ALIASES[metric], None
    if direction == "min" and key in LOWER_IS_BETTER:
        raise UsageError(f"{option} {spec!r}: lower {key} is better; use {names['max']} {name}={number}")
    return Gate(spec, key, cls_name, threshold, direction)


def _class_row(report: dict, cls: str) -> dict:
    if isinstance(report.get("per_class"), dict):  # instance / panoptic reports: {name: {metric: value}}
        by_name = report["per_class"]
        names, rows = list(by_name), list(by_name.values())
        report = {"class_names": names, "per_class": rows}
    names = report.get("class_names") or []
    rows = report.get("per_class") or []
    if cls.lstrip("-").isdigit():
        index = int(cls)
        if not 0 <= index < len(rows):
            raise InputError(f"gate class index {index} is out of range (0..{len(rows) - 1})")
        return rows[index]
    for row, name in zip(rows, names):
        if name.lower() == cls.lower():
            return row
    raise UsageError(f"gate class {cls!r} is not a class of this report; classes: {', '.join(names)}")


def metric_value(report: dict, key: str, cls: str | None = None) -> float:
    """The value of a (possibly per-class) metric in a report; NaN when absent or null."""
    source = report if cls is None else _class_row(report, cls)
    value = source.get(key)
    return math.nan if value is None else float(value)


def _result(gate_metric: str, kind: str, threshold: float, value: float, passed: bool, **extra) -> dict:
    margin = value - threshold
    return {"metric": gate_metric, "kind": kind, "threshold": threshold,
            "value": None if math.isnan(value) else value, "passed": passed,
            "margin": None if math.isnan(margin) else margin, **extra}


def evaluate_gates(report: dict, gates: list[Gate]) -> list[dict]:
    """Check each gate against the report; one result dict per gate."""
    results = []
    for gate in gates:
        value = metric_value(report, gate.key, gate.cls)
        if gate.direction == "min":
            passed = not math.isnan(value) and value >= gate.threshold
        else:
            passed = not math.isnan(value) and value <= gate.threshold
        results.append(_result(gate.metric, "fail-under" if gate.direction == "min" else "fail-over",
                               gate.threshold, value, passed))
    return results


def evaluate_baseline(report: dict, baseline: dict, max_drop: float, gates: list[Gate]) -> list[dict]:
    """Regression gates: each gated metric (or miou, pixel_accuracy, mean_dice when no gate
    is given) may be worse than in ``baseline`` by at most ``max_drop``."""
    wanted = [(g.key, g.cls) for g in gates] or [(key, None) for key in DEFAULT_BASELINE_METRICS]
    seen, results = set(), []
    for key, cls in wanted:
        if (key, cls) in seen:
            continue
        seen.add((key, cls))
        name = key if cls is None else f"{key}:{cls}"
        before = metric_value(baseline, key, cls)
        if math.isnan(before):
            continue  # nothing to regress from
        now = metric_value(report, key, cls)
        if key in LOWER_IS_BETTER:
            threshold = before + max_drop
            passed = not math.isnan(now) and now <= threshold
        else:
            threshold = before - max_drop
            passed = not math.isnan(now) and now >= threshold
        drop = math.nan if math.isnan(now) else (now - before if key in LOWER_IS_BETTER else before - now)
        results.append(_result(name, "baseline", threshold, now, passed, baseline=before,
                               drop=None if math.isnan(drop) else drop))
    return results


def describe_failure(result: dict) -> str:
    """One human phrase for a failed gate, e.g. ``miou 0.583 < 0.600 (short by 0.017)``."""
    value = result["value"]
    if value is None:
        return f"{result['metric']} is undefined (class absent or metric not computed)"
    if result["kind"] == "baseline":
        return (f"{result['metric']} {value:.4f} vs baseline {result['baseline']:.4f}: worse by "
                f"{abs(result['drop']):.4f} (more than max_drop={abs(result['threshold'] - result['baseline']):.4f})")
    sign = "<" if result["kind"] == "fail-under" else ">"
    return f"{result['metric']} {value:.4f} {sign} {result['threshold']:.4f} (by {abs(result['margin']):.4f})"
