"""A self-contained HTML report over a set: summary metrics, then every image worst-first.

Thumbnails (overlay, ground truth, error map) are JPEG data URIs, so the one ``.html`` file
can be mailed or attached to a CI run. Rows are sorted by per-image mIoU, lowest first
(images with nothing to score last).
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field

import numpy as np

from segtools.labels import argmax_scores
from segtools.viz.draw_options import DrawOptions
from segtools.viz.render import read_inputs

THUMB_QUALITY = 85


@dataclass(frozen=True)
class ReportJob:
    """One image of the report: prediction, ground truth, optional photo, and the name to show."""

    mask: str
    gt: str
    image: str | None
    name: str
    options: DrawOptions
    thumb_width: int = 360


@dataclass
class ReportRow:
    """What one worker computed for one image."""

    name: str
    confusion: np.ndarray
    missed: np.ndarray
    class_names: list[str] | None
    palette: list[tuple[int, int, int]]
    thumbs: dict[str, bytes] = field(default_factory=dict)
    miou: float = math.nan
    pixel_accuracy: float = math.nan
    worst: str = ""
    worst_iou: float = math.nan


def _thumb(picture: np.ndarray, width: int) -> bytes:
    import cv2

    from segtools.io.images import encode_image

    height = max(1, int(round(picture.shape[0] * width / picture.shape[1])))
    if width < picture.shape[1]:
        picture = cv2.resize(picture, (width, height), interpolation=cv2.INTER_AREA)
    return encode_image(picture, "jpg", quality=THUMB_QUALITY)


def report_item(job: ReportJob) -> ReportRow:
    """Score and draw one image (module level: runs in worker processes)."""
    from segtools.metrics.confusion import confusion_and_missed
    from segtools.metrics.scores import class_scores, summary_scores
    from segtools.viz.colourise import colour_table, colourise
    from segtools.viz.draw_modes import num_classes_for
    from segtools.viz.error_map import draw_error_map, error_codes
    from segtools.viz.overlay import overlay_labels
    from segtools.viz.palette import class_names

    inputs = read_inputs(job.mask, job.image, job.gt, job.options)
    meta = inputs.meta
    labels = inputs.labels if inputs.scores is None else argmax_scores(inputs.scores)
    gt = inputs.gt
    size = num_classes_for(meta, labels, gt)
    confusion, missed = confusion_and_missed(labels, gt, size, meta.ignore_index, f"{job.name}: ")
    per_class = class_scores(confusion, missed)
    summary = summary_scores(per_class)
    iou = per_class["iou"]
    names = class_names(meta, size)
    row = ReportRow(job.name, confusion, missed, list(meta.names) if meta.names else None,
                    [tuple(int(v) for v in c) for c in colour_table(np.array([[size - 1]]), meta)[:size]],
                    miou=summary["miou"], pixel_accuracy=summary["pixel_accuracy"])
    if np.isfinite(iou).any():
        worst = int(np.nanargmin(iou))
        row.worst, row.worst_iou = names[worst], float(iou[worst])
    draw_labels = (lambda m: overlay_labels(inputs.image, m, meta, alpha=job.options.alpha)) \
        if inputs.image is not None else (lambda m: colourise(m, meta))
    codes = error_codes(labels, gt, meta.ignore_index)
    row.thumbs = {
        "prediction": _thumb(draw_labels(labels), job.thumb_width),
        "ground truth": _thumb(draw_labels(gt), job.thumb_width),
        "errors": _thumb(draw_error_map(codes, inputs.image, alpha=job.options.alpha), job.thumb_width),
    }
    return row


def pad_confusion(confusion: np.ndarray, size: int) -> np.ndarray:
    """A C×C matrix grown to size×size with zeros (classes the image did not reach)."""
    out = np.zeros((size, size), np.int64)
    out[: confusion.shape[0], : confusion.shape[1]] = confusion
    return out


def _pct(value: float) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def _data_uri(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:24px 0 8px}
table{border-collapse:collapse} td,th{padding:4px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
th{background:#f4f4f4;position:sticky;top:0} td.num{text-align:right;font-variant-numeric:tabular-nums}
.sw{display:inline-block;width:12px;height:12px;border:1px solid #888;margin-right:6px;vertical-align:-1px}
.bar{background:#e8e8e8;width:160px;height:10px;display:inline-block}
.bar span{background:#3b7dd8;height:10px;display:block}
.cards{display:flex;gap:24px;flex-wrap:wrap} .card{background:#f4f4f4;padding:8px 14px;border-radius:6px}
.card b{display:block;font-size:22px} img{display:block;max-width:100%}
figure{margin:0} figcaption{font-size:12px;color:#666}
"""


def worst_first(rows: list[ReportRow]) -> list[ReportRow]:
    """Rows by per-image mIoU, lowest first; images with nothing to score last."""
    return sorted(rows, key=lambda r: (math.isnan(r.miou), r.miou, r.name))


def build_html(rows: list[ReportRow], summary: dict, palette: list[tuple[int, int, int]],
               title: str = "segtools report", max_images: int | None = None) -> str:
    """The report page: summary cards, the per-class table, then images worst-first.

    Scores are shown in percent (the headers say so). Every image is listed and scored, but
    only the worst ``max_images`` carry their thumbnails (``None``: all), so a large set
    stays a page that opens quickly.
    """
    esc = html.escape
    ordered = worst_first(rows)
    shown = len(ordered) if max_images is None else min(max_images, len(ordered))
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>",
             f"<style>{_CSS}</style></head><body><h1>{esc(title)}</h1>",
             f"<p>{len(rows)} images · {summary['num_classes']} classes · sorted worst first by per-image mIoU · "
             f"scores in percent</p>",
             "<div class='cards'>"]
    for key, label in (("miou", "mIoU"), ("pixel_accuracy", "pixel accuracy"),
                       ("mean_class_accuracy", "mean class accuracy"), ("mean_dice", "mean Dice")):
        parts.append(f"<div class='card'>{label} (%)<b>{_pct(summary.get(key, math.nan))}</b></div>")
    parts.append("</div><h2>Per class</h2><table><tr><th>class</th><th>IoU (%)</th><th></th>"
                 "<th>precision (%)</th><th>recall (%)</th><th>GT pixels</th><th>predicted pixels</th></tr>")
    for entry in summary["per_class"]:
        colour = palette[entry["index"]] if entry["index"] < len(palette) else (0, 0, 0)
        width = 0 if math.isnan(entry["iou"]) else 100 * entry["iou"]
        parts.append(
            f"<tr><td><span class='sw' style='background:rgb{tuple(colour)}'></span>{esc(entry['name'])}</td>"
            f"<td class='num'>{_pct(entry['iou'])}</td><td><span class='bar'><span style='width:{width:.1f}%'>"
            f"</span></span></td><td class='num'>{_pct(entry['precision'])}</td>"
            f"<td class='num'>{_pct(entry['recall'])}</td><td class='num'>{entry['gt_pixels']:,}</td>"
            f"<td class='num'>{entry['pred_pixels']:,}</td></tr>")
    parts.append("</table><h2>Images, worst first</h2><p>Errors: <span class='sw' style='background:rgb(0,170,80)'>"
                 "</span>correct <span class='sw' style='background:rgb(230,30,30)'></span>wrong "
                 "<span class='sw' style='background:#000'></span>ignored</p>")
    if shown < len(ordered):
        parts.append(f"<p>Pictures of the worst {shown} of {len(ordered)} images (max_images={max_images}); "
                     "the others are listed with their scores.</p>")
    parts.append("<table><tr><th>#</th><th>image</th><th>mIoU (%)</th><th>pixel acc. (%)</th>"
                 "<th>worst class (IoU %)</th><th>prediction</th><th>ground truth</th><th>errors</th></tr>")
    for rank, row in enumerate(ordered, 1):
        cells = "<td>–</td>" * len(row.thumbs) if rank > shown else "".join(f"<td><figure><img src='{_data_uri(jpeg)}' alt='{esc(kind)} of {esc(row.name)}'>"
                        f"</figure></td>" for kind, jpeg in row.thumbs.items())
        worst = f"{esc(row.worst)} ({_pct(row.worst_iou)})" if row.worst else "–"
        parts.append(f"<tr><td class='num'>{rank}</td><td>{esc(row.name)}</td><td class='num'>{_pct(row.miou)}</td>"
                     f"<td class='num'>{_pct(row.pixel_accuracy)}</td><td>{worst}</td>{cells}</tr>")
    parts.append("</table></body></html>\n")
    return "".join(parts)


def summarise(rows: list[ReportRow], class_names_given: list[str] | None) -> tuple[dict, list]:
    """Summary scores over all rows (confusions summed) and the palette to show."""
    from segtools.metrics.scores import scores
    from segtools.viz.palette import class_names

    size = max(r.confusion.shape[0] for r in rows)
    confusion = sum((pad_confusion(r.confusion, size) for r in rows), np.zeros((size, size), np.int64))
    missed = np.zeros(size, np.int64)
    for r in rows:
        missed[: len(r.missed)] += r.missed
    names = class_names_given or next((r.class_names for r in rows if r.class_names), None)
    names = [names[i] if names and i < len(names) else class_names(None, size)[i] for i in range(size)]
    report = scores(confusion, names, missed)
    report["images"] = len(rows)
    palette = max((r.palette for r in rows), key=len)
    return report, palette


def report_page(triples, options: DrawOptions, thumb_width: int = 360, jobs: int = 1, on_done=None,
                max_images: int | None = None) -> str:
    """The HTML report over (mask item, image or ``None``, ground truth) triples (see
    :func:`segtools.viz.render.pair_inputs`), scored and drawn by up to ``jobs`` workers;
    thumbnails of the worst ``max_images`` only (``None``: all)."""
    from segtools.errors import UsageError
    from segtools.io.parallel import pmap

    if any(gt is None for _, _, gt in triples):
        raise UsageError("a report scores every image: give each mask its ground truth (gt)")
    work = [ReportJob(item.path, gt, image, item.rel, options, thumb_width) for item, image, gt in triples]
    rows = list(pmap(report_item, work, jobs, on_done=on_done))
    names = list(options.classes.names) if options.classes is not None and options.classes.names else None
    summary, palette = summarise(rows, names)
    if max_images is not None:
        if max_images < 0:
            raise UsageError(f"max_images={max_images}: must be 0 or more")
        for row in worst_first(rows)[max_images:]:
            row.thumbs = dict.fromkeys(row.thumbs, b"")  # the pictures are not shown: let them go
    return build_html(rows, summary, palette, max_images=max_images)
