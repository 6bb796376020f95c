"""Class statistics of label masks: pixel counts, shares and presence, per image and over a set."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from segtools.errors import InputError
from segtools.io.limits import label_table_size
from segtools.io.meta import ClassMeta
from segtools.viz.palette import class_names


def pixel_counts(labels: np.ndarray, name: str = "label mask") -> np.ndarray:
    """int64 counts of every value 0..max in an H×W label mask (one ``np.bincount``).

    >>> pixel_counts(np.array([[0, 2, 2]], np.uint8)).tolist()
    [1, 0, 2]
    """
    labels = np.asarray(labels)
    if labels.dtype == bool:
        labels = labels.view(np.uint8)
    if labels.dtype.kind not in "iu":
        raise InputError(f"class statistics need integer labels, not {labels.dtype}")
    size = label_table_size(labels, name)
    if labels.dtype == np.uint8:  # histogram without widening the array
        import cv2

        flat = np.ascontiguousarray(labels).reshape(-1, 1)
        if flat.size < (1 << 24):
            hist = cv2.calcHist([flat], [0], None, [256], [0, 256]).reshape(-1).astype(np.int64)
            return hist[: int(np.flatnonzero(hist).max(initial=0)) + 1]
    return np.bincount(labels.ravel(), minlength=size).astype(np.int64)


@dataclass
class ClassStatistics:
    """Counts accumulated over masks: ``pixels[c]`` summed, ``images_with[c]`` masks containing c."""

    pixels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    images_with: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    images: int = 0

    def add(self, counts: np.ndarray) -> None:
        """Add one mask's :func:`pixel_counts`."""
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
    ``class N`` so nothing is dropped silently.

    >>> stats = statistics_table(np.array([6, 0, 2, 2]), ClassMeta(ignore_index=3))
    >>> [(c["name"], c["pixels"], c["share"]) for c in stats["classes"]]
    [('class 0', 6, 0.75), ('class 1', 0, 0.0), ('class 2', 2, 0.25)]
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
    return job.rel, pixel_counts(mask.labels, job.path), mask.meta


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
