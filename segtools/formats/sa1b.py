"""SA-1B (Segment Anything) per-image JSON as a convert source.

One file per photo: ``{"image": {"image_id", "file_name", "height", "width"}, "annotations":
[{"id", "segmentation": {"size": [h, w], "counts": "…"}, "bbox", "area", "predicted_iou",
"stability_score", "point_coords", "crop_box"}, …]}`` — COCO compressed RLEs without
categories. Every mask is one object of the single category ``object`` (``--classes`` with
one name renames it); ``predicted_iou`` becomes the annotation's ``score`` and
``stability_score`` rides along. ``area`` and ``bbox`` are computed from the RLE.

SA-1B masks nest (a whole object, its parts, their sub-parts), so painting them into one
mask hides some: they are painted largest first, so every part stays visible over the
object it belongs to; what is still covered is counted by the instance-mask target.
"""

from __future__ import annotations

from typing import Iterator, Sequence

from segtools.errors import InputError
from segtools.formats import Summary
from segtools.formats.records import Categories, Record


def is_document(data) -> bool:
    """True for a parsed SA-1B file (an ``image`` object and an ``annotations`` list)."""
    return isinstance(data, dict) and isinstance(data.get("image"), dict) and isinstance(data.get("annotations"), list)


def frame_record(data, name: str, index: int, first_id: int, summary: Summary) -> Record:
    """The record of one parsed SA-1B file (``index``: its position, used where it has no id)."""
    from segtools.formats import rle as rlelib
    from segtools.formats import schema
    from segtools.io.jsondata import check_type, get_field

    if not is_document(data):
        raise InputError(f"{name}: not an SA-1B file (no 'image' object and 'annotations' list)")
    image = data["image"]
    height, width = schema.image_entry({"id": image.get("image_id", index + 1), **image}, f"{name}: 'image'")
    image_id = image.get("image_id", index + 1)
    file_name = image["file_name"]
    annotations = []
    for k, ann in enumerate(data["annotations"]):
        where = f"{name}: annotations[{k}]"
        check_type(ann, dict, where)
        segm = get_field(ann, "segmentation", where, dict)
        schema.rle(segm, f"{where}: 'segmentation'", (height, width))
        segm = rlelib.normalise(segm)
        entry = {"id": first_id + k, "image_id": image_id, "category_id": 1, "iscrowd": 0, "segmentation": segm,
                 "area": rlelib.area(segm), "bbox": rlelib.to_bbox(segm)}
        for source, target in (("predicted_iou", "score"), ("stability_score", "stability_score")):
            if isinstance(ann.get(source), (int, float)) and not isinstance(ann.get(source), bool):
                entry[target] = float(ann[source])
        annotations.append(entry)
    summary.add("SA-1B point_coords/crop_box not kept (the prompts SAM drew each mask from)",
                sum(1 for a in data["annotations"] if isinstance(a, dict) and ("point_coords" in a or "crop_box" in a)))
    annotations.sort(key=lambda a: -a["area"])  # largest first: parts stay visible over their object
    return Record({"id": image_id, "file_name": file_name, "height": height, "width": width}, annotations)


def read_sa1b(items, summary: Summary, data=None) -> Iterator[Record]:
    from segtools.formats import load_json

    next_id = 1
    for index, item in enumerate(items):
        record = frame_record(data if data is not None else load_json(item.path), item.path, index, next_id, summary)
        next_id += len(record.annotations)
        summary.add("SA-1B masks read (one category, largest painted first)", len(record.annotations))
        yield record


def read_sa1b_source(specs: Sequence[str], payload, options, summary: Summary):
    """The convert reader: SA-1B JSON files, or folders of them (``sa_*.json``)."""
    import os
    from pathlib import Path

    from segtools.formats.records import Dataset
    from segtools.io.batch import expand_inputs
    from segtools.io.meta import load_classes

    items = expand_inputs(specs, extensions=(".json",))
    if any(os.path.isdir(s) for s in specs):
        items = [it for it in items if Path(it.rel).name.startswith("sa_")] or items
    items = options.sharded(items)
    names = load_classes(options.classes).names if options.classes else None
    if names is not None and len(names) != 1:
        raise InputError(f"SA-1B masks have one category; classes lists {len(names)} names")
    data = payload if isinstance(payload, dict) and len(items) == 1 else None
    return Dataset("sa1b", len(items), Categories(names=names or ("object",)),
                   lambda tick: read_sa1b(items, summary, data), fill=options.fill, unlabelled=options.fill,
                   items=items, specs=specs)
