"""Strict checks of COCO-shaped documents read from files (instances, results, panoptic).

A COCO file comes from anywhere, so every field a conversion uses is checked, up front and
before anything is written or allocated: types without coercion (``true`` is not 1, ``1.5``
is not an id, ``"5"`` is not a number), declared image sizes within the pixel budget
(:func:`segtools.io.limits.check_size`), polygon coordinates finite and near the image,
RLE counts that cover exactly their declared size, file names that are usable names, class
counts within :data:`segtools.io.limits.MAX_CLASSES`. Every failure is one
:class:`~segtools.errors.InputError` that names the file and the entry.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from segtools.errors import InputError
from segtools.io.jsondata import check_int, check_type, get_field, get_int, type_name

MAX_ID = 2**63 - 1


def check_id(value: Any, what: str) -> int | str:
    """An image id: an integer (COCO) or a non-empty string (some exporters write those)."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{what} must be an integer or a string, got {type_name(value)}")
    return check_int(value, what, -MAX_ID, MAX_ID)


def image_entry(image: Any, where: str) -> tuple[int, int]:
    """``(height, width)`` of a COCO ``images`` entry, its id and file name checked."""
    from segtools.formats.paths import check_name
    from segtools.io.limits import check_size

    check_type(image, dict, where)
    if "id" not in image:
        raise InputError(f"{where}: missing field 'id'")
    check_id(image["id"], f"{where}: 'id'")
    check_name(get_field(image, "file_name", where, str), f"{where}: 'file_name'")  # COCO requires it; outputs are named by it
    height = get_int(image, "height", where, 1)
    width = get_int(image, "width", where, 1)
    check_size(width, height, where)
    return height, width


def categories(entries: Any, where: str) -> list[dict]:
    """The ``categories`` list: objects with unique integer ``id`` and string ``name``."""
    from segtools.io.limits import check_class_count

    check_type(entries, list, f"{where}: 'categories'")
    check_class_count(len(entries), f"{where}: 'categories'")
    seen: set[int] = set()
    for k, entry in enumerate(entries):
        at = f"{where}: categories[{k}]"
        cid = get_int(entry, "id", at, -MAX_ID, MAX_ID)
        if cid in seen:
            raise InputError(f"{at}: category id {cid} is listed twice")
        seen.add(cid)
        get_field(entry, "name", at, str, None)
        if "isthing" in entry:
            check_type(entry["isthing"], (int, bool), f"{at}: 'isthing'")
    return entries


_NUMBERS = {int, float}


def segmentation(segm: Any, height: int, width: int, where: str, batch: list | None = None) -> None:
    """A COCO ``segmentation``: ``[]``/null (box only), polygons, or an RLE of the image's size.

    With ``batch``, well-typed polygons are appended as ``(polygon, height, width, where)``
    for :func:`check_polygons` (one vectorised bounds check for a whole file) instead of
    being checked one by one.
    """
    from segtools.formats import polygons as polylib

    if segm is None or segm == []:
        return
    if isinstance(segm, list):
        for k, polygon in enumerate(segm):
            at = f"{where}: segmentation[{k}]"
            check_type(polygon, list, at)
            plain = len(polygon) >= 6 and not len(polygon) % 2 and {v.__class__ for v in polygon} <= _NUMBERS
            if batch is not None and plain:
                batch.append((polygon, height, width, at))
            else:
                polylib.as_points(polygon, at, height, width)
        return
    if isinstance(segm, dict):
        rle(segm, f"{where}: segmentation", (height, width))
        return
    raise InputError(f"{where}: 'segmentation' must be a list of polygons or an RLE object, got {type_name(segm)}")


def rle(value: Any, where: str, size: tuple[int, int] | None = None) -> tuple[int, int]:
    """``(height, width)`` of an RLE object whose ``counts`` cover exactly its ``size``."""
    from segtools.formats import rle as rlelib
    from segtools.io.limits import check_size

    shape = get_field(value, "size", where, list)
    if len(shape) != 2:
        raise InputError(f"{where}: 'size' must be [height, width], got {len(shape)} values")
    height, width = (check_int(v, f"{where}: 'size'", 0) for v in shape)
    if size is not None and (height, width) != tuple(size):
        raise InputError(f"{where}: RLE size {[height, width]} differs from the image's {list(size)}")
    if size is None:
        check_size(width, height, where)
    counts = get_field(value, "counts", where, (str, list))
    if isinstance(counts, list) and any(c.__class__ is not int for c in counts):
        bad = next(c for c in counts if c.__class__ is not int)
        raise InputError(f"{where}: uncompressed RLE counts must be integers, got {type_name(bad)} {bad!r:.40}")
    if isinstance(counts, list) and any(c < 0 or c > 2**32 - 1 for c in counts):
        raise InputError(f"{where}: uncompressed RLE counts must lie in 0..2³²-1")
    try:
        rlelib.rle_counts(value)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    return height, width


def check_polygons(batch: list) -> None:
    """Bounds of every ``(flat polygon, height, width, where)`` at once (see :func:`segmentation`)."""
    from itertools import chain

    from segtools.formats import polygons as polylib

    if not batch:
        return
    lengths = np.array([len(b[0]) for b in batch])
    values = np.fromiter(chain.from_iterable(b[0] for b in batch), np.float64, int(lengths.sum()))
    size = np.repeat(np.array([(b[2], b[1]) for b in batch], np.float64), lengths // 2, axis=0).ravel()
    margin = polylib.OUTSIDE_MARGIN * np.maximum(np.repeat(np.array([max(b[1], b[2], 64) for b in batch]), lengths), 0)
    bad = ~np.isfinite(values) | (values < -margin) | (values > size + margin)
    if bad.any():
        polygon, height, width, where = batch[int(np.searchsorted(np.cumsum(lengths), np.flatnonzero(bad)[0], "right"))]
        polylib.as_points(polygon, where, height, width)  # raises the message for this polygon


def annotation(ann: Any, where: str, sizes: dict | None = None, batch: list | None = None) -> None:
    """One ``annotations`` entry: ids, category, optional bbox/iscrowd, its segmentation
    (checked against its image's size when ``sizes`` maps image ids to ``(height, width)``)."""
    check_type(ann, dict, where)
    if "id" in ann and ann["id"].__class__ is not int:
        check_id(ann["id"], f"{where}: 'id'")
    image_id = ann.get("image_id")
    if image_id.__class__ is not int:  # the common case needs no further look
        check_id(image_id, f"{where}: 'image_id'")
    if ann.get("category_id").__class__ is not int:
        get_int(ann, "category_id", where, -MAX_ID, MAX_ID)
    if ann.get("bbox") is not None:
        box = get_field(ann, "bbox", where, list)
        if len(box) != 4:
            raise InputError(f"{where}: 'bbox' must be [x, y, width, height], got {len(box)} values")
        if not {v.__class__ for v in box} <= _NUMBERS:
            for value in box:
                check_type(value, float, f"{where}: 'bbox'")
    if "iscrowd" in ann and ann["iscrowd"] not in (0, 1) or ann.get("iscrowd").__class__ is bool:
        get_int(ann, "iscrowd", where, 0, 1)
    if "score" in ann:
        get_field(ann, "score", where, float)
    size = sizes.get(image_id) if sizes is not None else None
    if size is not None:
        segmentation(ann.get("segmentation"), size[0], size[1], where, batch)
    elif ann.get("segmentation") not in (None, []):
        check_type(ann["segmentation"], (list, dict), f"{where}: 'segmentation'")


def instances(data: Any, name: str) -> dict:
    """A whole COCO instances document, checked (see the module doc); returns it."""
    check_type(data, dict, name)
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise InputError(f"{name}: not a COCO instances file (no '{key}' list)")
        check_type(data[key], list, f"{name}: '{key}'")
    categories(data["categories"], name)
    sizes: dict = {}
    for k, image in enumerate(data["images"]):
        sizes[image.get("id") if isinstance(image, dict) else None] = image_entry(image, f"{name}: images[{k}]")
    batch: list = []
    for k, ann in enumerate(data["annotations"]):
        annotation(ann, f"{name}: annotations[{k}]", sizes, batch)
    check_polygons(batch)
    return data


def panoptic(data: Any, name: str, segments: bool = True) -> dict:
    """A COCO panoptic document: ``annotations`` with ``file_name`` and ``segments_info``.

    With ``segments=False`` each ``segments_info`` is only checked to be a list; its entries
    are left to :func:`panoptic_segments`, called per image where that image is read (so a
    parallel reader checks them in its workers, once).
    """
    from segtools.formats.paths import check_name

    check_type(data, dict, name)
    categories(get_field(data, "categories", name, list), name)
    for k, entry in enumerate(get_field(data, "annotations", name, list)):
        at = f"{name}: annotations[{k}]"
        check_name(get_field(entry, "file_name", at, str), f"{at}: 'file_name'")
        listed = get_field(entry, "segments_info", at, list)
        if segments:
            panoptic_segments(listed, at)
    return data


def panoptic_segments(segments: list, at: str) -> list:
    """One annotation's ``segments_info`` (at ``at``): integer ``id`` 1..2²⁴−1, ``category_id``,
    optional ``iscrowd`` 0 or 1; else :class:`InputError` naming the entry and field.

    Well-formed lists pass one vectorised check; any other runs the field-by-field getters,
    which name the first bad entry.

    >>> panoptic_segments([{"id": 1, "category_id": 3, "iscrowd": 0}], "a.json: annotations[0]")
    [{'id': 1, 'category_id': 3, 'iscrowd': 0}]
    >>> panoptic_segments([{"id": 0, "category_id": 3}], "a.json: annotations[0]")
    Traceback (most recent call last):
    ...
    segtools.errors.InputError: a.json: annotations[0]: segments_info[0]: 'id' = 0 is out of range (1..16777215)
    """
    if _segments_well_formed(segments):
        return segments
    for j, segment in enumerate(segments):
        where = f"{at}: segments_info[{j}]"
        get_int(segment, "id", where, 1, 2**24 - 1)
        get_int(segment, "category_id", where, -MAX_ID, MAX_ID)
        if "iscrowd" in segment:
            get_int(segment, "iscrowd", where, 0, 1)
    return segments


def _segments_well_formed(segments: list) -> bool:
    """True when every entry is an object with plain-int fields in range (a subset of what
    the getters accept: ``3.0`` and the like go the slow way, which accepts them)."""
    if not segments:
        return True
    if {type(s) for s in segments} != {dict}:
        return False
    ids = [s.get("id") for s in segments]
    cats = [s.get("category_id") for s in segments]
    crowd = [s.get("iscrowd", 0) for s in segments]
    if {type(v) for v in ids} | {type(v) for v in cats} | {type(v) for v in crowd} != {int}:
        return False
    ids_a, cats_a, crowd_a = (np.array(v, np.int64) if max(map(abs, v)) < 2**62 else None for v in (ids, cats, crowd))
    if ids_a is None or cats_a is None or crowd_a is None:
        return False
    return bool((ids_a >= 1).all() and (ids_a <= 2**24 - 1).all() and (np.abs(cats_a) <= MAX_ID).all()
                and ((crowd_a == 0) | (crowd_a == 1)).all())
