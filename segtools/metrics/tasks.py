"""Which evaluation a pair of inputs asks for (semantic, instance or panoptic), and the
report, shard state, merge and renderings of the instance and panoptic evaluations.

The evaluations themselves live in :mod:`segtools.metrics.instance` (COCO AP) and
:mod:`segtools.metrics.panoptic` (PQ); this module only recognises, dispatches and renders.
A *state* (``evaluation.state()``, a JSON object with ``"task"``) is what a shard saves;
:func:`merge_states` adds states up into the evaluation of one run over all their images.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path
from typing import BinaryIO, Callable, Sequence

from segtools.errors import InputError, UsageError

TASKS = ("semantic", "instance", "panoptic")
INSTANCE_KEYS = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large",
                 "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large")
PANOPTIC_KEYS = ("pq", "sq", "rq", "pq_things", "sq_things", "rq_things", "pq_stuff", "sq_stuff", "rq_stuff")
CLASS_KEYS = {"instance": ("ap", "ap50", "ar100"), "panoptic": ("pq", "sq", "rq")}
REPORT_FORMAT = "segtools-metrics"


def _open(path: Path | str) -> BinaryIO:
    """A file, or an object on a store (a URL), open for reading."""
    from segtools.io.remote import is_url, open_object

    return open_object(str(path)) if is_url(str(path)) else open(path, "rb")


def _head(path: Path | str, size: int = 1 << 16) -> bytes:
    with _open(path) as handle:
        return handle.read(size)


def _first_file(spec: str) -> Path | str | None:
    from segtools.io.remote import first_object, is_url

    if is_url(spec):
        return first_object(spec, (".png", ".json"))
    path = Path(spec)
    if path.is_file():
        return path
    if path.is_dir():
        return next((p for p in sorted(path.iterdir()) if p.is_file() and p.suffix.lower() in (".png", ".json")), None)
    return None


def _has_instances_folder(spec: str) -> bool:
    from segtools.io.remote import is_prefix, is_url, join

    if is_url(spec):
        return is_prefix(spec) and is_prefix(join(spec, "instances").rstrip("/"))
    return Path(spec).is_dir() and (Path(spec) / "instances").is_dir()


# a JSON string (escapes included), one not closed before the end of the text read so far, or a bracket or colon
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|(?P<open>"[^"\\]*(?:\\.[^"\\]*)*\\?\Z)|[{}\[\]:]')
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_SCAN_CHUNK = 1 << 16
_QUOTES = bytes(int(b == 34) for b in range(256))  # '"' → 1
_BRACKETS = bytes({91: 1, 123: 1, 93: 255, 125: 255}.get(b, 0) for b in range(256))  # '[{' → 1, ']}' → -1


def _skip_value(buffer: bytes, start: int, stream: BinaryIO) -> tuple[bytes, int] | None:
    """(text, position just after it) of the array or object opening at ``buffer[start]``,
    found by counting brackets outside strings over whole chunks at once (escaped
    characters blanked first, so every remaining quote opens or closes a string);
    ``None`` when the stream ends first."""
    import numpy as np

    text, depth, quoted, carry = buffer[start:], 0, 0, b""
    while True:
        text = carry + text
        blank = _ESCAPE.sub(b"__", text)  # same length: positions still match ``text``
        carry = b""
        if blank.endswith(b"\\"):  # an escape whose second byte is in the next chunk
            carry, text, blank = text[-1:], text[:-1], blank[:-1]
        quotes = np.frombuffer(blank.translate(_QUOTES), np.uint8)
        inside = np.bitwise_xor.accumulate(quotes) ^ np.uint8(quoted) if quotes.size else quotes
        steps = np.frombuffer(blank.translate(_BRACKETS), np.int8) * (1 - inside).view(np.int8)
        depths = np.cumsum(steps, dtype=np.int64) + depth
        if depths.size and depths.min() <= 0:
            return text + carry, int(np.flatnonzero(depths <= 0)[0]) + 1
        if depths.size:
            depth, quoted = int(depths[-1]), int(inside[-1])
        text = stream.read(_SCAN_CHUNK)
        if not text:
            return None


def _key_text(token: bytes) -> str:
    try:
        return json.loads(token)
    except ValueError:  # not UTF-8, or a bad escape: the parse proper will say so
        return token[1:-1].decode("utf-8", "replace")


def first_annotation_keys(stream: BinaryIO) -> set[str] | None:
    """The keys of the first entry of a JSON document's top-level ``annotations`` list,
    read from ``stream`` only up to that entry's end.

    A streaming scan, not a parse: other top-level values (``images``, ``info``, …) are
    skipped by counting brackets outside strings, in chunks of 64 KiB, so a COCO file of
    any size costs only the bytes before its first annotation ends (what follows is not
    read, and need not even be valid). ``set()`` for an empty list, ``None`` when the
    document has no such list (or is not a JSON object).

    >>> import io
    >>> sorted(first_annotation_keys(io.BytesIO(b'{"images": [{"id": 1}], "annotations": '
    ...                                          b'[{"id": 1, "segments_info": [{"id": 2}]}, {"id": 3}')))
    ['id', 'segments_info']
    """
    buffer, position, depth = b"", 0, 0
    key: bytes | None = None  # the last string read: a key when a colon follows
    state = "top"  # then "next" (the value of the top-level 'annotations' comes), "list" (inside it)
    keys: set[str] = set()
    while True:
        match = _TOKEN.search(buffer, position)
        if match is None or match.group("open") is not None:  # more text needed
            chunk = stream.read(_SCAN_CHUNK)
            if not chunk:
                return None
            buffer, position = buffer[match.start() if match else len(buffer):] + chunk, 0
            continue
        token, position = match.group(), match.end()
        if state == "next" and token != b"[":
            return None  # 'annotations' is not a list
        if token[:1] == b'"':
            key = token
            continue
        if token == b":":
            if depth == 1 and key == b'"annotations"':
                state = "next"
            elif depth == 3 and state == "list" and key is not None:
                keys.add(_key_text(key))
        elif token in (b"{", b"["):
            if depth == 0 and token != b"{":
                return None
            if depth == 1 and state == "top":  # another top-level value: skipped whole
                skipped = _skip_value(buffer, match.start(), stream)
                if skipped is None:
                    return None
                buffer, position = skipped
            else:
                depth += 1
                state = "list" if state == "next" else state
        else:
            depth -= 1
            if state == "list" and depth <= 2:
                return keys  # the first entry ended, or the list ended without one
            if depth <= 0:
                return None
        key = None


def _json_kind(path: Path | str) -> str | None:
    """``panoptic``/``instance`` for a COCO JSON file (whose first annotation has, or has not,
    ``segments_info``), ``results`` for a JSON list, ``None`` for anything else. Only the
    file's head is read (:func:`first_annotation_keys`); the evaluation reads it all."""
    head = _head(path).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head[:1] == b"[":
        return "results"
    if head[:1] != b"{":
        return None
    with _open(path) as handle:
        keys = first_annotation_keys(handle)
    return "panoptic" if keys and "segments_info" in keys else "instance"


def _mask_kind(path: Path | str) -> str | None:
    from segtools.io.meta import read_mask_meta

    try:
        meta = read_mask_meta(str(path))
    except Exception:  # not a mask we can read the metadata of: the semantic path will say why
        return None
    return getattr(meta, "kind", None)


def detect_task(pred_spec: str, gt_spec: str) -> str:
    """``semantic``, ``instance`` or ``panoptic``, recognised from the inputs.

    A ground-truth JSON whose annotations carry ``segments_info`` is panoptic, any other
    COCO JSON instance; a JSON list of predictions (COCO results) is instance; a folder of
    masks with an ``instances/`` subfolder (``convert --to mask`` of a panoptic set) is
    panoptic; masks whose metadata says ``kind="instance"`` are instance; else semantic.

    >>> detect_task("-", "-")
    'semantic'
    """
    gt, pred = _first_file(gt_spec), _first_file(pred_spec)
    for path in (gt, pred):
        if path is not None and (str(path).lower().endswith(".json") or _head(path, 1) in (b"{", b"[")):
            kind = _json_kind(path)
            if kind is not None:
                return "instance" if kind == "results" else kind
    if _has_instances_folder(gt_spec):
        return "panoptic"
    if any(path is not None and _mask_kind(path) == "instance" for path in (gt, pred)):
        return "instance"
    return "semantic"


def task_report(task: str, evaluation, extra: dict | None = None) -> dict:
    """The JSON report of an instance or panoptic evaluation: its summary keys, ``per_class``,
    the state a later ``metrics merge`` adds up, and ``gates`` (filled by the caller)."""
    if task not in ("instance", "panoptic"):
        raise UsageError(f"task={task!r}: a task report is instance or panoptic")
    summary = dict(evaluation.summary())
    report = {"format": REPORT_FORMAT, "version": 1, "task": task, **(extra or {}), **summary}
    report["gates"] = []
    report["state"] = evaluation.state()
    return report


def evaluation_from_state(state: dict, source: str = "state"):
    """The instance or panoptic evaluation a state (or a report carrying one) holds."""
    if isinstance(state, dict) and isinstance(state.get("state"), dict):
        state = state["state"]
    task = state.get("task") if isinstance(state, dict) else None
    if task == "instance":
        from segtools.metrics.instance import InstanceEvaluation

        return task, InstanceEvaluation.from_state(state)
    if task == "panoptic":
        from segtools.metrics.panoptic import PanopticEvaluation

        return task, PanopticEvaluation.from_state(state)
    raise InputError(f"{source}: not an instance or panoptic state (no 'task' of instance or panoptic)")


def state_task(data) -> str | None:
    """The task of a saved state or task report, ``None`` for a semantic report."""
    if isinstance(data, dict) and isinstance(data.get("state"), dict):
        data = data["state"]
    task = data.get("task") if isinstance(data, dict) else None
    return task if task in ("instance", "panoptic") else None


def one_task(reports: Sequence, sources: Sequence[str]) -> str | None:
    """The task of the parsed reports or states to merge (``None``: semantic reports), or a
    :class:`UsageError` naming the first one of another task than the first.

    >>> one_task([{"task": "panoptic"}, {"state": {"task": "panoptic"}}], ["a.json", "b.json"])
    'panoptic'
    """
    kinds = [state_task(report) or "semantic" for report in reports]

    def what(kind: str) -> str:
        return "a semantic report" if kind == "semantic" else f"an {kind} state" if kind == "instance" else f"a {kind} state"

    for kind, source in zip(kinds[1:], sources[1:]):
        if kind != kinds[0]:
            raise UsageError(f"metrics merge: {source} is {what(kind)} and {sources[0]} {what(kinds[0])}: "
                             "merge the shards of one task")
    return None if not kinds or kinds[0] == "semantic" else kinds[0]


def merge_states(states: Sequence[dict], sources: Sequence[str]):
    """(task, evaluation): the states of shards added up; all must be of one task
    (:func:`one_task`)."""
    if not states:
        raise UsageError("merge: no states to merge")
    one_task(states, sources)
    task, merged = evaluation_from_state(states[0], sources[0])
    for state, source in zip(states[1:], sources[1:]):
        merged.merge(evaluation_from_state(state, source)[1])
    return task, merged


def summary_keys(report: dict) -> tuple[str, ...]:
    return INSTANCE_KEYS if report["task"] == "instance" else PANOPTIC_KEYS


def _number(value) -> str:
    if value is None or isinstance(value, float) and math.isnan(value):
        return ""
    return repr(float(value)) if isinstance(value, float) else str(value)


def to_csv(report: dict) -> str:
    """Long format, ``metric,class,value`` (class empty for the summary), as semantic reports."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["metric", "class", "value"])
    for key in summary_keys(report):
        writer.writerow([key, "", _number(report.get(key))])
    for name, row in (report.get("per_class") or {}).items():
        for key in CLASS_KEYS[report["task"]]:
            writer.writerow([key, name, _number(row.get(key))])
    for gate in report.get("gates", []):
        writer.writerow([f"gate:{gate['kind']}:{gate['metric']}", "", "pass" if gate["passed"] else "fail"])
    return buffer.getvalue()


def format_value(value) -> str:
    """Four decimals; ``—`` for undefined (None, NaN, or COCO's -1 for "no ground truth")."""
    if value is None or isinstance(value, float) and (math.isnan(value) or value == -1.0):
        return "—"
    return f"{float(value):.4f}"


def to_markdown(report: dict) -> str:
    columns = CLASS_KEYS[report["task"]]
    lines = ["| metric | value |", "|---|---:|"]
    lines += [f"| {key} | {format_value(report.get(key))} |" for key in summary_keys(report)]
    lines += ["", "| class | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for name, row in (report.get("per_class") or {}).items():
        lines.append(f"| {name} | " + " | ".join(format_value(row.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def to_json(report: dict) -> str:
    from segtools.metrics.report import to_json as semantic_json

    return semantic_json(report) if "task" not in report else json.dumps(_jsonable(report), indent=2) + "\n"


def _jsonable(value):
    from segtools.metrics.report import _clean

    return _clean(value)


def evaluate_task(task: str, pred_spec: str, gt_spec: str, *, iou_type: str = "segm", iou_thresholds: str | None = None,
                  max_dets: str | None = None, area_ranges: str | None = None, pred_folder: str | None = None,
                  gt_folder: str | None = None, jobs: int = 1,
                  on_missing: Callable[[str], None] | None = None,
                  shard: tuple[int, int] | None = None) -> tuple[object, dict]:
    """(evaluation, report extras) of an instance or panoptic task over the files.

    ``iou_type``, ``iou_thresholds``, ``max_dets`` and ``area_ranges`` (option strings,
    :meth:`segtools.metrics.instance.Protocol.parse`) are for instances; ``pred_folder`` and
    ``gt_folder`` (the PNG folders of COCO panoptic JSON) for panoptic. ``on_missing``: count
    a ground-truth image without a prediction mask as one without detections, and name it to
    this callback (instances; else it is an error). ``shard`` (I, N): only shard I of N of
    the ground-truth images (merge the shards' states for the whole run).
    """
    if task == "instance":
        from dataclasses import replace

        from segtools.metrics.instance import Protocol
        from segtools.metrics.instance_io import evaluate_instance_files

        if pred_folder or gt_folder:
            raise UsageError("pred_folder and gt_folder are for panoptic evaluation, not instances")
        if iou_type not in ("segm", "bbox"):
            raise UsageError(f"iou_type={iou_type!r}: choose segm or bbox")
        protocol = replace(Protocol.parse(iou_thresholds, max_dets, area_ranges), iou_type=iou_type)
        evaluation = evaluate_instance_files(pred_spec, gt_spec, protocol, jobs=jobs, on_missing=on_missing,
                                             shard=shard)
        return evaluation, {"iou_type": iou_type}
    if task == "panoptic":
        from segtools.metrics.panoptic_io import evaluate_panoptic_files

        given = [name for name, value in (("iou_thresholds", iou_thresholds), ("max_dets", max_dets),
                                          ("area_ranges", area_ranges)) if value is not None]
        if on_missing is not None:
            raise UsageError("allow_missing: panoptic evaluation needs a prediction for every ground-truth image")
        if given or iou_type != "segm":
            raise UsageError(f"{given[0] if given else 'iou_type'}=…: an instance option; panoptic quality "
                             "matches at IoU > 0.5 by definition")
        return evaluate_panoptic_files(pred_spec, gt_spec, pred_folder, gt_folder, jobs=jobs, shard=shard), {}
    raise UsageError(f"task={task!r}: choose one of {', '.join(TASKS)}")
