"""Class statistics of label masks: pixel counts, shares and presence, per image and over a set."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from segtools.io.meta import ClassMeta
from segtools.labels import value_counts
from segtools.viz.palette import class_names


@dataclass
class ClassStatistics:
    """Counts accumulated over masks: ``pixels[c]`` summed, ``images_with[c]`` masks containing c."""

    pixels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    images_with: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    images: int = 0

    def add(self, counts: np.ndarray) -> None:
        """Add one mask's counts (:func:`segtools.labels.value_counts`)."""
        size = max(len(self.pixels), len(counts))
        self.pixels = _grow(self.pixels, size)
        self.images_with = _grow(self.images_with, size)
        grown = _grow(np.asarray(counts, np.int64), size)
        self.pixels += grown
        self.images_with += grown > 0
        self.images += 1


def _grow(array: np.ndarray, size: int) -> np.ndarray:
    if len(array) >= size:
        return array
    out = np.zeros(size, np.int64)
    out[: len(array)] = array
    return out


def statistics_table(pixels: np.ndarray, meta: ClassMeta | None, images_with: np.ndarray | None = None,
                     images: int = 1) -> dict:
    """The statistics as a JSON-ready dict.

    Classes are ``0..C-1`` with C from the class names when known, else up to the largest value
    seen. ``share`` is the fraction of *labelled* pixels (the ignore value excluded);
    ``present`` says whether any pixel has the class; with several images ``images_with`` counts
    the masks that contain it. Values beyond the known classes (other than ignore) are listed as
    ``class_N`` so nothing is dropped silently.

    >>> stats = statistics_table(np.array([6, 0, 2, 2]), ClassMeta(ignore_index=3))
    >>> [(c["name"], c["pixels"], c["share"]) for c in stats["classes"]]
    [('class_0', 6, 0.75), ('class_1', 0, 0.0), ('class_2', 2, 0.25)]
    >>> stats["ignored_pixels"]
    2
    """
    pixels = np.asarray(pixels, np.int64)
    ignore = meta.ignore_index if meta is not None else 255
    known = meta.num_classes if meta is not None and meta.num_classes else None
    seen = [i for i in np.flatnonzero(pixels).tolist() if i != ignore]
    size = max(known or 0, (max(seen) + 1) if seen else 0)
    ignored = int(pixels[ignore]) if ignore is not None and 0 <= ignore < len(pixels) else 0
    total = int(pixels.sum())
    labelled = total - ignored
    names = class_names(meta, size)
    images_with = images_with if images_with is not None else (pixels > 0).astype(np.int64)
    classes = []
    for index in range(size):
        if index == ignore:
            continue
        count = int(pixels[index]) if index < len(pixels) else 0
        row = {"index": index, "name": names[index], "pixels": count,
               "share": count / labelled if labelled else 0.0, "present": count > 0}
        if images > 1:
            row["images_with"] = int(images_with[index]) if index < len(images_with) else 0
        classes.append(row)
    return {"images": images, "total_pixels": total, "labelled_pixels": labelled,
            "ignore_index": ignore, "ignored_pixels": ignored, "num_classes": size, "classes": classes}


@dataclass(frozen=True)
class StatsJob:
    """One mask to count: its path, its name in the batch, a colour map for RGB masks."""

    path: str
    rel: str
    colours: ClassMeta | None = None


def count_job(job: StatsJob) -> tuple[str, np.ndarray, ClassMeta | None]:
    """Read one mask and count its values (module level: runs in worker processes)."""
    from segtools.io.masks import read_label_mask

    mask = read_label_mask(job.path, job.colours)
    return job.rel, value_counts(mask.labels, job.path), mask.meta


def count_files(paths: list[str], names: list[str], colours: ClassMeta | None = None, jobs: int = 1,
                on_done=None) -> list[tuple[str, np.ndarray, ClassMeta | None]]:
    """(name, value counts, the mask's own metadata) of each mask, by up to ``jobs`` workers."""
    from segtools.io.parallel import pmap

    work = [StatsJob(path, name, colours) for path, name in zip(paths, names)]
    return list(pmap(count_job, work, jobs, on_done=on_done))


def statistics_meta(counted: list[tuple[str, np.ndarray, ClassMeta | None]], classes: ClassMeta | None = None,
                    ignore_index: int | None = None, ignore_given: bool = False) -> ClassMeta:
    """The class metadata the statistics use: ``classes``, else the first mask's own, with
    ``ignore_index`` when ``ignore_given``."""
    from segtools.viz.palette import resolve_meta

    own = next((meta for _, _, meta in counted if meta is not None), None)
    return resolve_meta(own, classes, ignore_index, ignore_given)


def statistics_report(counted: list[tuple[str, np.ndarray, ClassMeta | None]], classes: ClassMeta | None = None,
                      ignore_index: int | None = None, ignore_given: bool = False,
                      per_image: bool = False) -> tuple[dict, list[dict] | None]:
    """The statistics over the masks :func:`count_files` counted, and each mask's when
    ``per_image``. Class metadata: ``classes``, else the first mask's own; ``ignore_index``
    replaces its ignore value when ``ignore_given`` (``None``: every value is a class)."""
    meta = statistics_meta(counted, classes, ignore_index, ignore_given)
    total = ClassStatistics()
    for _, counts, _ in counted:
        total.add(counts)
    summary = statistics_table(total.pixels, meta, total.images_with, total.images)
    images = [dict(statistics_table(counts, meta), image=name) for name, counts, _ in counted] if per_image else None
    return summary, images


CSV_FIELDS = ("image", "index", "name", "pixels", "share", "present", "images_with")


def statistics_csv(summary: dict, images: list[dict] | None = None) -> str:
    """CSV text: one row per class over the set (``image`` = ``*``), then per image when given."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for stats, image in [(summary, "*")] + [(s, s["image"]) for s in images or []]:
        for row in stats["classes"]:
            writer.writerow(dict(row, image=image, share=f"{row['share']:.6g}",
                                 present=int(row["present"]), images_with=row.get("images_with", int(row["present"]))))
    return buffer.getvalue()


CHART_BAR_PX = 360


def share_chart(summary: dict, meta: ClassMeta | None, text_size: int = 16, bar_px: int = CHART_BAR_PX) -> np.ndarray:
    """A bar chart of class shares (H×W×3 RGB ``uint8``, white background) for people.

    One row per class of :func:`statistics_table`'s ``summary``: the class name, a bar in the
    class colour, its share of the labelled pixels in percent (the title says so). The
    largest share spans ``bar_px`` pixels and the others are to scale (``round(bar_px *
    share / largest)``), so small classes stay comparable; bars under 1 px are drawn 1 px
    wide when the class is present.
    """
    from PIL import Image

    from segtools.viz.colourise import colour_table
    from segtools.viz.text import draw_text, measure, title_bar

    rows = summary["classes"]
    size = max((row["index"] for row in rows), default=0) + 1
    palette = colour_table(np.array([[size - 1]], np.int64), meta)[:, :3]
    labels = [f"{row['index']} {row['name']}" for row in rows]
    values = [f"{100 * row['share']:.2f}" for row in rows]
    name_px = max([measure(text, text_size)[0] for text in labels] + [1])
    value_px = max([measure(text, text_size)[0] for text in values + ["100.00"]])
    row_px = int(round(text_size * 1.6))
    pad = max(4, text_size // 2)
    bar_left = pad + name_px + pad
    width = bar_left + bar_px + pad + value_px + pad
    body = np.full((max(1, len(rows)) * row_px + pad, width, 3), 255, np.uint8)
    largest = max((row["share"] for row in rows), default=0.0)
    for k, row in enumerate(rows):
        top = pad + k * row_px
        length = int(round(bar_px * row["share"] / largest)) if largest > 0 else 0
        length = max(length, 1) if row["pixels"] else length
        body[top + row_px // 6: top + row_px - row_px // 6, bar_left: bar_left + length] = palette[row["index"]]
    canvas = Image.fromarray(body)
    for k, (label, value) in enumerate(zip(labels, values)):
        middle = pad + k * row_px + row_px // 2
        draw_text(canvas, (bar_left - pad, middle), label, text_size, anchor="rm")
        draw_text(canvas, (width - pad, middle), value, text_size, anchor="rm")
    title = f"share of labelled pixels (%) · {summary['images']} mask(s)"
    return np.concatenate([title_bar(width, title, text_size), np.asarray(canvas)], axis=0)
