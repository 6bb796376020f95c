"""COCO results files (``loadRes``'s list of detections) as a convert source and target.

Reading goes through :func:`segtools.formats.coco_results.check_results`, the strict reader
``metrics --task instance`` uses, so both accept exactly the same files. A results file names
no image sizes or categories: they come from the ground truth it refers to (``reference``, a
COCO instances file: names, sizes, categories), else each image's size from its RLEs or
``image_size`` and the categories from ``category_id`` (``label = category_id - 1``, named by
``names`` when given). Images are ``<image_id>`` without a ground truth.

Detections are painted lowest score first, so where two overlap the most confident one owns
the pixel (as a model's instance mask paints them). A detection without a segmentation stays
a box (``segmentation: []``): it paints nothing, and that is counted.

Writing gives every annotation as ``{image_id, category_id, segmentation (compressed RLE),
bbox, score}``; a box-only annotation keeps only its box, and one without a score gets 1.0,
counted.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Sequence

from segtools.errors import InputError
from segtools.formats import Summary
from segtools.formats.records import Categories, Record, Tick


def _images_and_categories(data: list, name: str, reference: dict | None, names: Sequence[str] | None,
                           image_size: tuple[int, int] | None) -> tuple[dict, Categories]:
    from segtools.formats import schema

    if reference is not None:
        images = {im["id"]: im for im in reference["images"]}
        return images, Categories(entries=reference["categories"])
    images: dict = {}
    categories = Categories(names=names) if names else Categories()
    for k, entry in enumerate(data):
        where = f"{name}: [{k}]"
        if not isinstance(entry, dict) or "image_id" not in entry:
            continue  # check_results names it
        image_id = schema.check_id(entry["image_id"], f"{where}: 'image_id'")
        segm = entry.get("segmentation")
        size = schema.rle(segm, f"{where}: 'segmentation'") if isinstance(segm, dict) else None
        known = images.get(image_id)
        if size is not None and known is not None and "height" in known and (known["height"], known["width"]) != size:
            raise InputError(f"{where}: an RLE of size {size[0]}x{size[1]}, but image {image_id!r} has "
                             f"{known['height']}x{known['width']} in an earlier detection")
        if known is None or "height" not in known:
            known = {"id": image_id, "file_name": str(image_id)}
            if size is not None or image_size is not None:
                known["height"], known["width"] = size if size is not None else image_size
            images[image_id] = known
        cid = entry.get("category_id")
        if isinstance(cid, int) and not isinstance(cid, bool) and cid >= 1:
            categories.see(cid, f"{where}: ")
    for image_id, image in images.items():
        if "height" not in image:
            raise InputError(f"{name}: image {image_id!r} has only polygons or boxes, so its size is unknown; "
                             "give its ground truth, reference=COCO.json, or image_size=HxW")
    return images, categories


def read_results(data, name: str, summary: Summary, reference: dict | None = None,
                 names: Sequence[str] | None = None,
                 image_size: tuple[int, int] | None = None) -> tuple[Categories, Iterator[Record], int]:
    """(categories, records, number of images) of a parsed COCO results list."""
    from segtools.formats import coco_results
    from segtools.formats import rle as rlelib

    if not isinstance(data, list):
        raise InputError(f"{name}: a COCO results file is a JSON list of detections")
    images, categories = _images_and_categories(data, name, reference, names, image_size)
    sizes = {image_id: (int(im["height"]), int(im["width"])) for image_id, im in images.items()}
    if reference is not None:  # image_id may be each photo's file-name stem (Ultralytics)
        data = coco_results.ids_from_stems(data, name, sizes, {i: im.get("file_name", "") for i, im in images.items()})
    grouped = coco_results.check_results(data, name, sizes, categories.ids, "segm")
    boxes_only = {}
    for entry in data:  # what loadRes filled in from a box is a box again here
        boxes_only.setdefault(entry["image_id"], []).append(entry.get("segmentation") in (None, []))

    def records() -> Iterator[Record]:
        next_id = 1
        for image_id, image in images.items():
            annotations = []
            for detection, box_only in zip(grouped.get(image_id, []), boxes_only.get(image_id, [])):
                ann = {"id": next_id, "image_id": image_id, "category_id": detection["category_id"], "iscrowd": 0,
                       "score": detection["score"], "bbox": detection["bbox"]}
                if box_only:
                    ann.update(segmentation=[], area=float(detection["bbox"][2] * detection["bbox"][3]))
                else:
                    ann.update(segmentation=detection["segmentation"], area=rlelib.area(detection["segmentation"]))
                annotations.append(ann)
                next_id += 1
            summary.add("detections without a segmentation (boxes)", sum(boxes_only.get(image_id, [])))
            annotations.sort(key=lambda a: a["score"])  # the most confident paints last and wins
            yield Record(dict(image), annotations)

    return categories, records(), len(images)


def write_results(records: Iterable[Record], output, summary: Summary, allow_overwrite: bool = False,
                  tick: Tick | None = None) -> int:
    """A COCO results list of every annotation (RLE segmentations); returns how many."""
    import json

    from segtools.formats import coco as cocolib
    from segtools.formats import rle as rlelib
    from segtools.io.streams import emit

    detections = []
    for i, record in enumerate(records):
        h, w = int(record.image["height"]), int(record.image["width"])
        for ann in record.annotations:
            entry: dict = {"image_id": record.image["id"], "category_id": ann["category_id"]}
            segm = ann.get("segmentation")
            if segm:
                encoded = rlelib.from_runs(*cocolib.segmentation_runs(segm, h, w, f"annotation {ann.get('id')}"), h, w)
                entry["segmentation"] = encoded
                entry["bbox"] = rlelib.to_bbox(encoded)
            elif ann.get("bbox") is not None:
                entry["bbox"] = [float(v) for v in ann["bbox"]]
                summary.add("box-only annotations written as box detections")
            else:
                summary.add("annotations with neither segmentation nor bbox dropped", lossy=True)
                continue
            if ann.get("iscrowd"):
                summary.add("crowd flags dropped (a results file has none)", lossy=True)
            if isinstance(ann.get("score"), (int, float)) and not isinstance(ann.get("score"), bool):
                entry["score"] = float(ann["score"])
            else:
                entry["score"] = 1.0
                summary.add("annotations without a score written with score 1.0")
            detections.append(entry)
        tick and tick(i)
    emit((json.dumps(detections, separators=(",", ":")) + "\n").encode(), output, "JSON", allow_overwrite)
    summary.add("detections written", len(detections))
    return len(detections)


def read_results_source(specs, payload, options, summary: Summary):
    """The convert reader: a parsed results list (``options.reference``: its ground truth)."""
    from segtools.formats import coco
    from segtools.formats.records import Dataset
    from segtools.io.meta import load_classes

    reference = coco.load(options.reference) if getattr(options, "reference", None) else None
    names = load_classes(options.classes).names if options.classes else None
    name = "<stdin>" if specs[0] == "-" else specs[0]
    categories, records, total = read_results(payload, name, summary, reference, names, options.image_size)
    fill = 255 if options.fill is None else options.fill
    return Dataset("coco", total, categories, lambda tick: records, fill=fill, unlabelled=fill, specs=specs)


def write_results_target(dataset, target, output, options, summary, single, tick, targets) -> None:
    """The convert writer of ``coco-results``."""
    from segtools.errors import UsageError

    if dataset.records is None:
        raise UsageError(f"cannot convert {dataset.format} files to {target}")
    records = dataset.records(tick if dataset.ticks_itself else None)
    write_results(records, output, summary, options.overwrite, None if dataset.ticks_itself else tick)
