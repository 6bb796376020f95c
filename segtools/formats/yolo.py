"""YOLO labels (Ultralytics/Roboflow): boxes ``cls cx cy w h`` and polygons ``cls x1 y1 …``.

One text file per image under ``labels/`` (same relative name as the image under
``images/``, extension ``.txt``), coordinates divided by the image width/height, class
indices from 0, and a ``data.yaml`` naming the classes. A line with 5 numbers is a box; a
line with an odd count ≥ 7 is a polygon (≥ 3 points).

YOLO has one simple polygon per object: an object of several parts is written as one
polygon whose parts are joined by zero-width bridges (as Ultralytics' own COCO converter
does); the holes of a mask are filled (``holes="fill"``, counted as lossy) unless
``holes="bridge"`` keeps them as keyholes (OpenCV's ``fillPoly``, which Ultralytics uses to
rasterise, honours them).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator, Sequence

import numpy as np

from segtools.errors import InputError
from segtools.formats import Summary
from segtools.formats import boxes as boxlib
from segtools.formats import polygons as polylib
from segtools.formats.records import Categories, Record, Tick, stem_path
from segtools.formats.yolo_yaml import (  # noqa: F401  (the data.yaml half of the format)
    MAX_YAML_BYTES, data_yaml, find_yaml, load_data_yaml, read_data_yaml)
from segtools.io.limits import MAX_CLASSES


def _num(value: float) -> str:
    text = f"{value:.10f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def box_line(label: int, yolo_box: Sequence[float]) -> str:
    return " ".join([str(int(label)), *(_num(v) for v in yolo_box)])


def polygon_line(label: int, normalised: np.ndarray) -> str:
    return " ".join([str(int(label)), *(_num(v) for v in np.asarray(normalised).reshape(-1))])


def annotation_lines(annotations: Sequence[dict], height: int, width: int, label_of: dict[int, int],
                     segments: bool, holes: str = "fill", epsilon: float = 0.0, strict: bool = False,
                     summary: Summary | None = None, where: str = "") -> list[str]:
    """YOLO lines for the COCO annotations of one image."""
    from segtools.formats import coco as cocolib
    from segtools.formats import polygon_clip

    summary = summary if summary is not None else Summary()
    lines = []
    objects = []  # (label, what, parts) of the polygon objects, checked for overlaps together below
    for ann in annotations:
        cid = ann.get("category_id")
        if cid not in label_of:
            raise InputError(f"{where}annotation {ann.get('id')}: unknown category_id {cid!r}")
        label = label_of[cid]
        what = f"{where}annotation {ann.get('id')}"
        if ann.get("iscrowd"):  # kept, as a pixel/box set; --filter crowd=0 leaves them out
            summary.add("crowd (iscrowd) flags dropped: written as ordinary objects (YOLO has no crowd flag)",
                        lossy=True)
        if not segments:
            if "bbox" not in ann:
                raise InputError(f"{what}: no 'bbox'")
            box, changed = boxlib.clip_coco(ann["bbox"], width, height)
            if changed.any():
                if strict:
                    raise InputError(f"{what}: box reaches outside the image ({width}×{height}; pass without --strict to clip it)")
                summary.add("boxes outside the image (clipped)", lossy=True)
            lines.append(box_line(label, boxlib.coco_to_yolo(box, width, height)[0]))
            continue
        segm = ann.get("segmentation")
        if isinstance(segm, list) and segm:
            parts = [polylib.as_points(p, f"{what}: polygon") for p in segm]
        elif isinstance(segm, dict):
            mask = cocolib.segmentation_to_mask(segm, height, width, what)
            traced = polylib.mask_to_polygons(mask, epsilon=epsilon, holes=holes)
            summary.add("RLE (crowd) masks traced to polygons", lossy=False)
            summary.add("holes filled (YOLO has no holes)", traced.holes_filled, lossy=True)
            parts = traced.polygons
            if not parts:
                summary.add("empty masks skipped", lossy=True)
                continue
        else:
            raise InputError(f"{what}: no polygon or RLE segmentation (use boxes: --to yolo)")
        objects.append((label, what, parts))
    overlaps = polygon_clip.overlapping([parts for _, _, parts in objects], height, width)
    for (label, what, parts), overlap in zip(objects, overlaps):
        if len(parts) > 1:
            parts, united = polygon_clip.unite_parts(parts, height, width, holes, bool(overlap))
            summary.add("overlapping parts of one object united (traced from its pixels)", int(united))
            summary.add("multi-part objects joined into one polygon", int(len(parts) > 1))
        if any(polygon_clip.outside(p, width, height) for p in parts):
            if strict:
                raise InputError(f"{what}: coordinates outside the image (pass without --strict to cut the polygon)")
            parts = [c for c in (polygon_clip.clip_to_image(p, width, height) for p in parts) if len(c) >= 3]
            summary.add("polygons cut at the image border")
            if not parts:
                summary.add("polygons outside the image (dropped)", lossy=True)
                continue
        ring = polylib.join_parts(parts) if len(parts) > 1 else parts[0]
        normalised = np.clip(ring / np.array([width, height], np.float64), 0.0, 1.0)
        lines.append(polygon_line(label, normalised))
    return lines


def parse_lines(text: str, name: str = "labels") -> list[tuple[int, np.ndarray]]:
    """``(class, values)`` per non-empty line; values are 4 (box) or 2·N (polygon) floats
    (a trailing confidence, :func:`parse_rows`, left out)."""
    return [(label, values) for label, values, _ in parse_rows(text, name)]


def parse_rows(text: str, name: str = "labels") -> list[tuple[int, np.ndarray, float | None]]:
    """``(class, values, confidence)`` per non-empty line. Ultralytics' ``save_conf`` adds a
    confidence after the coordinates: 5 values are a box and its confidence, an odd 2·N + 1
    (N ≥ 3) a polygon and its; the confidence must lie in [0, 1]. Otherwise it is None.

    >>> [(c, v.tolist(), s) for c, v, s in parse_rows("0 0.5 0.5 0.2 0.2 0.87\\n1 0.5 0.5 0.1 0.1")]
    [(0, [0.5, 0.5, 0.2, 0.2], 0.87), (1, [0.5, 0.5, 0.1, 0.1], None)]
    """
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        try:
            label = int(fields[0])
            values = np.array([float(v) for v in fields[1:]], np.float64)
        except ValueError:
            raise InputError(f"{name}:{number}: not a YOLO line (class then numbers): {line.strip()[:60]!r}") from None
        if label < 0:
            raise InputError(f"{name}:{number}: negative class {label}")
        if label >= MAX_CLASSES:
            raise InputError(f"{name}:{number}: class {label:,} is out of range (0..{MAX_CLASSES - 1:,}, "
                             "the 16-bit PNG limit)")
        score = None
        if len(values) in (5, 7) or (len(values) % 2 and len(values) > 7):
            score = float(values[-1])
            if not 0.0 <= score <= 1.0:
                raise InputError(f"{name}:{number}: {len(values)} values after the class: a box or polygon and a "
                                 f"confidence in [0, 1], but the last value is {values[-1]:g}")
            values = values[:-1]
        if len(values) == 4:
            pass
        elif len(values) % 2 or len(values) < 6:
            what = "fewer than 3 points" if len(values) < 6 and len(values) % 2 == 0 else f"{len(values)} coordinates"
            raise InputError(f"{name}:{number}: a YOLO line has 4 box values or ≥ 3 x y points, this one has {what}")
        if not np.isfinite(values).all():
            raise InputError(f"{name}:{number}: NaN or infinite coordinate")
        rows.append((label, values, score))
    return rows


def input_places(values: np.ndarray) -> int | None:
    """The fewest decimals (0..10) that write every value of a line exactly, i.e. how many the
    text had; None for more (no rounding then)."""
    for places in range(11):
        if np.array_equal(np.round(values, places), values):
            return places
    return None


def snap(pixels: np.ndarray, tolerance: float) -> np.ndarray:
    """Each value rounded to the fewest decimals that stay within ``tolerance`` of it: what a
    coordinate read with that uncertainty is (``82.99968`` ± 0.00048 → ``83``)."""
    pixels = np.asarray(pixels, np.float64)
    out = pixels.copy()
    pending = np.ones(pixels.shape, bool)
    for places in range(11):
        candidate = np.round(pixels, places)
        take = pending & (np.abs(candidate - pixels) <= tolerance)
        out[take] = candidate[take]
        pending &= ~take
        if not pending.any():
            break
    return out


def _snap_to_input(pixels: np.ndarray, values: np.ndarray, scale: float, spread: float) -> np.ndarray:
    places = input_places(values)
    if places is None:
        return pixels
    # each field is known to half a unit of its last decimal; a corner adds half a size
    return snap(pixels, spread * scale * 10.0 ** -places * (1 + 1e-9) + 1e-12)


def rows_to_annotations(rows, height: int, width: int, image_id: int, first_id: int,
                        num_classes: int | None = None, strict: bool = False,
                        summary: Summary | None = None, name: str = "labels") -> list[dict]:
    """COCO annotations (category_id = class + 1) from parsed YOLO rows.

    Pixel coordinates are rounded to the precision the text had (6 decimals of a 640 px
    image are 0.0006 px: ``82.99968`` is ``83``). Boxes reaching outside the image are
    clipped to it, polygons cut at its border (every in-image pixel kept), both counted;
    with ``strict`` either is an error.
    """
    from segtools.formats import polygon_clip
    from segtools.formats import rle as rlelib

    summary = summary if summary is not None else Summary()
    annotations = []
    scale = float(max(width, height))
    for label, values, *score in rows:
        if num_classes is not None and label >= num_classes:
            raise InputError(f"{name}: class {label} is not one of the dataset's {num_classes} class names")
        if len(values) == 4:
            box = boxlib.yolo_to_coco(values, width, height)[0]
            corners = _snap_to_input(np.array([box[0], box[1], box[0] + box[2], box[1] + box[3]]), values, scale, 0.75)
            clipped = np.clip(corners, 0, [width, height, width, height])
            if not np.array_equal(clipped, corners):
                if strict:
                    raise InputError(f"{name}: box reaches outside the image ({width}×{height}; pass without --strict to clip it)")
                summary.add("boxes outside the image (clipped)", lossy=True)
            x0, y0, x1, y1 = (float(v) for v in clipped)
            w, h = (float(v) for v in snap(np.array([x1 - x0, y1 - y0]), 1e-9))
            ann = {"segmentation": [], "area": w * h, "bbox": [x0, y0, w, h]}
        else:
            points = values.reshape(-1, 2) * np.array([width, height], np.float64)
            points = _snap_to_input(points, values, scale, 0.5)
            if polygon_clip.outside(points, width, height):
                if strict:
                    raise InputError(f"{name}: polygon reaches outside the image ({width}×{height}; pass without --strict to cut it)")
                points = polygon_clip.clip_to_image(points, width, height)
                summary.add("polygons cut at the image border")
                if len(points) < 3:
                    summary.add("polygons outside the image (dropped)", lossy=True)
                    continue
            encoded = polylib.polygon_to_rle(points, height, width)
            ann = {"segmentation": [polylib.flat(points, 3)], "area": rlelib.area(encoded), "bbox": rlelib.to_bbox(encoded)}
        if score and score[0] is not None:  # a confidence (Ultralytics save_conf): a detection
            ann["score"] = score[0]
        annotations.append({"id": first_id + len(annotations), "image_id": image_id,
                            "category_id": int(label) + 1, "iscrowd": 0, **ann})
    return annotations


# ---------------------------------------------------------------- dataset reader and writer


def read_yolo(label_items, categories: Categories, summary: Summary, images: dict[str, tuple[str, int, int]],
              image_size: tuple[int, int] | None = None, strict: bool = False,
              data: bytes | None = None) -> Iterator[Record]:
    """Records from YOLO label files; image sizes from ``images`` (or one ``image_size``);
    ``data``: the bytes of a single label file already read (stdin)."""
    from segtools.io.limits import check_size
    from segtools.io.streams import read_bytes

    next_id = 1
    for index, item in enumerate(label_items):
        stem = str(PurePosixPath(item.rel).with_suffix(""))
        if stem in images:
            file_name, height, width = images[stem]
        elif image_size is not None:
            (height, width), file_name = image_size, stem + ".jpg"
        else:
            raise InputError(f"{item.path}: no image '{stem}.*' to read the size from; give images (the photos folder) or image_size (height, width)")
        check_size(width, height, f"{item.path}: image {file_name}")
        text = (data if data is not None and len(label_items) == 1 else read_bytes(item.path)).decode("utf-8", "replace")
        rows = parse_rows(text, item.path)
        summary.add("YOLO lines with a confidence (Ultralytics save_conf)", sum(row[2] is not None for row in rows))
        annotations = rows_to_annotations(rows, height, width, index + 1, next_id,
                                          len(categories.ids) if categories.fixed else None,
                                                  strict, summary, item.path)
        for ann in annotations:
            categories.see(ann["category_id"], f"{item.path}: ")
        next_id += len(annotations)
        yield Record({"id": index + 1, "file_name": file_name, "height": height, "width": width}, annotations)


def write_yolo(records: Iterable[Record], categories: Categories, out_dir, summary: Summary, segments: bool,
               holes: str = "fill", epsilon: float = 0.0, strict: bool = False, images_root: Path | None = None,
               tick: Tick | None = None, split: str | None = None, splits: Sequence[str] = ()) -> None:
    """``images/``, ``labels/`` and ``data.yaml`` under ``out_dir``; with ``split``, this
    split's ``images/<split>/`` and ``labels/<split>/``, and a ``data.yaml`` naming ``splits``."""
    from segtools.io.batch import check_output_dir
    from segtools.io.streams import write_bytes

    root = base = check_output_dir(out_dir)
    tops: set = set()  # first folder of each file_name: train/, valid/… when the source had splits
    for i, record in enumerate(records):
        image = record.image
        parts = PurePosixPath(str(image.get("file_name", ""))).parts
        tops.add(parts[0] if len(parts) > 1 else None)
        h, w = int(image["height"]), int(image["width"])
        label_of = categories.label_of
        lines = annotation_lines(record.annotations, h, w, label_of, segments, holes, epsilon, strict, summary,
                                         f"{image.get('file_name')}: ")
        source = None
        if images_root is not None:  # checked before this image's label is written
            from segtools.formats.paths import source_in

            source = source_in(images_root, image["file_name"], f"image {image.get('id')}: 'file_name'")
        labels_dir, images_dir = (root / "labels" / split, root / "images" / split) if split else (root / "labels", root / "images")
        write_bytes(stem_path(labels_dir, image["file_name"], ".txt"), ("\n".join(lines) + "\n" if lines else "").encode())
        if source is not None and source.is_file():
            target = stem_path(images_dir, image["file_name"], source.suffix)
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                try:
                    os.link(source, target)
                except OSError:
                    shutil.copyfile(source, target)
        elif source is not None:
            summary.add("images not found in the images folder (labels written without them)", lossy=True)
        tick and tick(i)
    names = categories.names
    if split:
        folders = {name: f"images/{name}" for name in splits}
        text = data_yaml(names, str(base.resolve()), folders.get("train", "images/train"), folders.get("val"),
                         folders.get("test"))
    elif (folders := split_folders(tops)) is not None:  # e.g. a Roboflow export's train/ valid/ test/
        text = data_yaml(names, str(root.resolve()), *(f"images/{folders[k]}" if k in folders else None
                                                       for k in ("train", "val", "test")))
    else:
        text = data_yaml(names, path=str(root.resolve()))
    write_bytes(base / "data.yaml", text.encode())


def split_folders(tops: set) -> dict[str, str] | None:
    """``{"train": "train", "val": "valid", …}`` when every image sits in a folder named for
    a split (``train``, ``valid``/``val``, ``test``, or COCO's ``train2017``…) and one is a
    training split; else None.

    >>> sorted(split_folders({"train", "valid"}).items())
    [('train', 'train'), ('val', 'valid')]
    >>> split_folders({"train", None}) is None
    True
    """
    kinds = {}
    for top in tops:
        kind = next((k for k, prefixes in (("train", ("train",)), ("val", ("val",)), ("test", ("test",)))
                     if top is not None and top.lower().startswith(prefixes)), None)
        if kind is None or kind in kinds:
            return None
        kinds[kind] = top
    return kinds if "train" in kinds else None
