"""COCO results files (``[{image_id, category_id, segmentation, bbox, score}]``), read strictly.

What detectron2, mmdet and Ultralytics write and pycocotools' ``COCO.loadRes`` reads. Each
detection is checked against the ground truth it is scored on, up front: its ``image_id``
and ``category_id`` must be the ground truth's, its ``score`` a number, its ``bbox``
``[x, y, width, height]``, its ``segmentation`` polygons or an RLE of its image's size.
Every failure is one :class:`~segtools.errors.InputError` naming the file and the entry.

The fields ``loadRes`` fills in are filled in the same way: when the *first* detection has
a ``bbox``, every detection's ``area`` is its box's ``width × height`` (and a detection
without a segmentation gets its box as a polygon); otherwise ``area`` is the mask's area and
a missing ``bbox`` is the mask's box. Polygons become RLE with their image's size.
"""

from __future__ import annotations

from typing import Any, Collection

from segtools.errors import InputError
from segtools.io.jsondata import get_field, type_name

__all__ = ["read_results", "check_results", "ids_from_stems"]


def read_results(path: str, sizes: dict, category_ids: Collection[int], iou_type: str = "segm",
                 file_names: dict | None = None) -> dict[Any, list]:
    """The detections of a COCO results file, checked, grouped by image id.

    Parameters
    ----------
    path : the results JSON (a list of detection objects).
    sizes : ground-truth image id → ``(height, width)`` in pixels: the images a detection may name.
    category_ids : the ground truth's category ids.
    iou_type : ``segm`` (every detection needs a mask, from its segmentation or its box) or ``bbox``.
    file_names : ground-truth image id → ``file_name``; given, a file whose ``image_id`` s are
        those names' stems (Ultralytics) is read against them (:func:`ids_from_stems`).

    Returns
    -------
    dict
        image id → detections in file order, each ``{category_id, score, bbox, area}`` plus
        ``segmentation`` (an RLE dict) where there is one.

    Raises
    ------
    InputError
        Not a JSON list, or an entry with an image or category not in the ground truth, a
        non-numeric score, a malformed RLE or one of another size than its image.
    """
    from segtools.io.jsondata import parse_json
    from segtools.io.streams import read_bytes

    data = parse_json(read_bytes(path), path)  # a file or an object on a store; a failure names it
    return check_results(data, path, sizes, category_ids, iou_type, file_names)


def ids_from_stems(data: list, name: str, sizes: dict, file_names: dict) -> list:
    """``data`` with each ``image_id`` the ground truth's, when the file names images by the
    stem of their ``file_name`` instead — as Ultralytics' ``save_json`` does (``"street_01"``,
    or ``139`` for ``000000000139.jpg``) — and not by id. Only when *every* detection names
    a ground-truth stem (one image each) and some name no id; otherwise ``data`` unchanged.

    >>> ids_from_stems([{"image_id": "b"}, {"image_id": 7}], "r.json", {1: (4, 4), 2: (4, 4)},
    ...                {1: "x/b.jpg", 2: "000007.png"})
    [{'image_id': 1}, {'image_id': 2}]
    """
    from segtools.io.batch import pairing_key

    def known(entry) -> bool:
        value = entry.get("image_id") if isinstance(entry, dict) else None
        return isinstance(value, (int, str)) and not isinstance(value, bool) and value in sizes

    if all(known(e) for e in data):
        return data
    by_stem: dict = {}
    for image_id, file_name in file_names.items():
        stem = pairing_key(str(file_name)).rsplit("/", 1)[-1]
        for key in {stem, str(int(stem)) if stem.isdigit() else stem}:
            by_stem[key] = image_id if by_stem.get(key, image_id) == image_id else None  # None: two images
    ids, missed = [], None
    for k, entry in enumerate(data):
        value = entry.get("image_id") if isinstance(entry, dict) else None
        found = None
        if isinstance(value, (str, int)) and not isinstance(value, bool):  # "x_leftImg8bit" pairs as "x"
            found = by_stem.get(str(value), by_stem.get(pairing_key(f"{value}.png")))
        if found is None and missed is None:
            missed = (k, value)
        ids.append(found)
    if missed is not None:
        if not any(found is not None and not known(entry) for entry, found in zip(data, ids)):
            return data  # not a file of stems: each unknown id is reported as such
        raise InputError(f"{name}: [{missed[0]}]: image_id {missed[1]!r} is neither an image id nor the file-name "
                         "stem of one image of the ground truth (the other detections name stems)")
    import logging

    logging.getLogger("segtools").info(f"{name}: image_id is each image's file-name stem (as Ultralytics writes it)")
    return [{**entry, "image_id": image_id} for entry, image_id in zip(data, ids)]


def check_results(data: Any, name: str, sizes: dict, category_ids: Collection[int],
                  iou_type: str = "segm", file_names: dict | None = None) -> dict[Any, list]:
    """:func:`read_results` of an already parsed document (``name`` for messages).

    >>> out = check_results([{"image_id": 1, "category_id": 2, "bbox": [0, 0, 2, 3], "score": 0.5}],
    ...                     "r.json", {1: (4, 4)}, {2})
    >>> out[1][0]["area"], out[1][0]["segmentation"]["size"]
    (6.0, [4, 4])
    """
    from segtools.formats import rle as rlelib
    from segtools.formats import schema
    from segtools.formats.coco import segmentation_runs

    if not isinstance(data, list):
        raise InputError(f"{name}: a COCO results file is a JSON list of detections, got {type_name(data)}")
    if file_names:
        data = ids_from_stems(data, name, sizes, file_names)
    categories = set(int(c) for c in category_ids)
    box_areas = bool(data) and isinstance(data[0], dict) and data[0].get("bbox") not in (None, [])
    batch: list = []
    for k, entry in enumerate(data):
        where = f"{name}: [{k}]"
        if not isinstance(entry, dict):
            raise InputError(f"{where}: a detection must be an object, got {type_name(entry)}")
        if "image_id" not in entry:
            raise InputError(f"{where}: missing field 'image_id'")
        image_id = schema.check_id(entry["image_id"], f"{where}: 'image_id'")
        if image_id not in sizes:
            raise InputError(f"{where}: image_id {image_id!r} is not an image of the ground truth")
        schema.annotation(entry, where, sizes, batch)
        if entry.get("category_id") not in categories:
            raise InputError(f"{where}: category_id {entry.get('category_id')!r} is not a category of the ground truth")
        get_field(entry, "score", where, float)
        if box_areas and entry.get("bbox") in (None, []):
            raise InputError(f"{where}: missing field 'bbox' (the first detection has one, so every one needs it)")
        if not box_areas and entry.get("segmentation") in (None, []):
            raise InputError(f"{where}: missing field 'segmentation' (and the first detection has no 'bbox')")
    schema.check_polygons(batch)
    grouped: dict[Any, list] = {}
    for k, entry in enumerate(data):
        image_id = entry["image_id"]
        height, width = sizes[image_id]
        segm, box = entry.get("segmentation"), entry.get("bbox")
        if segm in (None, []) and iou_type == "segm":
            x, y, w, h = box
            segm = [[x, y, x, y + h, x + w, y + h, x + w, y]]
        if isinstance(segm, list) and segm and (iou_type == "segm" or box in (None, [])):
            segm = rlelib.from_runs(*segmentation_runs(segm, height, width, f"{name}: [{k}]"), height, width)
        detection = {"category_id": entry["category_id"], "score": float(entry["score"])}
        if isinstance(segm, dict):
            detection["segmentation"] = segm
        if box_areas:
            detection["bbox"] = [float(v) for v in box]
            detection["area"] = float(box[2]) * float(box[3])
        else:
            detection["bbox"] = [float(v) for v in box] if box not in (None, []) else rlelib.to_bbox(segm)
            if iou_type == "bbox":  # segm: the evaluation takes the mask's area from its runs
                detection["area"] = float(rlelib.area(segm))
        grouped.setdefault(image_id, []).append(detection)
    return grouped
