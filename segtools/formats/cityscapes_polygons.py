"""Cityscapes ``*_gtFine_polygons.json`` as a convert source.

Each file is one frame: ``{"imgHeight": H, "imgWidth": W, "objects": [{"label": "car",
"polygon": [[x, y], …], "deleted": 0, …}, …]}``, objects in drawing order (cityscapesScripts'
``json2labelImg`` paints them in that order, a later one over an earlier one).

* Vertices are integer pixel indices; a pixel's centre is ``(x + 0.5, y + 0.5)`` in COCO's
  corner-origin coordinates, so every vertex is shifted by half a pixel, as detectron2's
  Cityscapes loader does. (``json2labelImg`` draws with Pillow, which also colours the
  outline's pixels, so its masks can differ along borders.)
* ``category_id = labelId + 1`` with all 34 labelIds listed (as for instanceIds), so
  ``--to mask`` gives labelIds.
* A ``…group`` label (``cargroup``) is its class as one ``iscrowd`` object; ``deleted``
  objects, and labels without a labelId (``license plate``), are left out — both counted.
* ``file_name`` is the frame's photo, ``<frame>_leftImg8bit.png`` in the same relative folder.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Iterator, Sequence

import numpy as np

from segtools.errors import InputError
from segtools.formats import Summary
from segtools.formats.records import Categories, Record

SUFFIX = re.compile(r"_(gtFine|gtCoarse)_polygons\.json$")


def label_ids() -> dict[str, int]:
    """Cityscapes label name → labelId (0..33)."""
    from segtools.io.presets import CITYSCAPES_LABELS

    return {lab.name: lab.id for lab in CITYSCAPES_LABELS if lab.id >= 0}


def photo_name(rel: str) -> str:
    """``a/b_gtFine_polygons.json`` → ``a/b_leftImg8bit.png``."""
    posix = PurePosixPath(rel)
    stem = SUFFIX.sub("", posix.name)
    if stem == posix.name:
        stem = posix.stem
    return str(posix.parent / f"{stem}_leftImg8bit.png")


def frame_annotations(data, name: str, summary: Summary, image_id: int, first_id: int,
                      ids: dict[str, int] | None = None) -> tuple[tuple[int, int], list[dict]]:
    """((height, width), COCO annotations) of one parsed polygons file."""
    from segtools.formats import polygons as polylib
    from segtools.io.jsondata import check_type, get_field, get_int
    from segtools.io.limits import check_size

    ids = ids if ids is not None else label_ids()
    check_type(data, dict, name)
    height, width = get_int(data, "imgHeight", name, 1), get_int(data, "imgWidth", name, 1)
    check_size(width, height, name)
    annotations = []
    for k, obj in enumerate(get_field(data, "objects", name, list)):
        where = f"{name}: objects[{k}]"
        check_type(obj, dict, where)
        label = get_field(obj, "label", where, str)
        if obj.get("deleted"):
            summary.add("Cityscapes objects marked deleted (left out)")
            continue
        crowd = label not in ids and label.endswith("group") and label[: -len("group")] in ids
        label_id = ids.get(label[: -len("group")] if crowd else label)
        if label_id is None:
            summary.add(f"Cityscapes objects without a labelId left out ({label[:40]})", lossy=True)
            continue
        try:
            points = np.asarray(get_field(obj, "polygon", where, list), np.float64)
        except (TypeError, ValueError):
            raise InputError(f"{where}: 'polygon' must be a list of [x, y] pairs") from None
        if points.ndim != 2 or points.shape[1:] != (2,) or len(points) < 3:
            raise InputError(f"{where}: 'polygon' must hold at least 3 [x, y] pairs")
        polygon = polylib.as_points(points + 0.5, where)
        annotations.append({"id": first_id + len(annotations), "image_id": image_id, "category_id": label_id + 1,
                            "iscrowd": int(crowd), "segmentation": [polylib.flat(polygon, 3)]})
    summary.add("Cityscapes group objects (written as iscrowd)", sum(a["iscrowd"] for a in annotations))
    return (height, width), annotations


def read_polygon_files(items, summary: Summary, data=None) -> Iterator[Record]:
    """One record per polygons file (``data``: the one file's parsed JSON, read from stdin)."""
    from segtools.formats import load_json
    from segtools.formats.coco_dataset import _geometry

    ids = label_ids()
    next_id = 1
    for index, item in enumerate(items):
        parsed = data if data is not None else load_json(item.path)
        (height, width), annotations = frame_annotations(parsed, item.path, summary, index + 1, next_id, ids)
        for ann in annotations:
            ann["area"], ann["bbox"] = _geometry(ann, height, width)
        next_id += len(annotations)
        yield Record({"id": index + 1, "file_name": photo_name(item.rel), "height": height, "width": width},
                     annotations)


def read_polygons_source(specs: Sequence[str], payload, options, summary: Summary):
    """The convert reader: polygons files, or folders searched for ``*_polygons.json``."""
    import os

    from segtools.formats import cityscapes
    from segtools.formats.records import Dataset
    from segtools.io.batch import expand_inputs

    if options.classes:
        raise InputError("Cityscapes polygons carry their own label names (classes cannot rename them)")
    items = expand_inputs(specs, extensions=(".json",))
    if any(os.path.isdir(s) for s in specs):
        items = [it for it in items if SUFFIX.search(Path(it.rel).name)]
        if not items:
            raise InputError(f"{specs[0]}: no *_gtFine_polygons.json files in this folder")
    items = options.sharded(items)
    data = payload if isinstance(payload, dict) and len(items) == 1 else None
    categories = Categories(names=cityscapes.label_names())
    return Dataset("cityscapes-polygons", len(items), categories,
                   lambda tick: read_polygon_files(items, summary, data), fill=options.fill,
                   unlabelled=options.fill, items=items, specs=specs)
