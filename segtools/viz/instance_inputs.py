"""Instances of one image from files, for drawing (:mod:`segtools.viz.instance_draw`).

Three sources become one :class:`~segtools.viz.instance_draw.InstanceSet`:

* an **instance-id mask** (``kind="instance"``: value = id, 0 = none; ``instance_class``,
  ``class_names``, ``instance_crowd`` and ``instance_score`` in its metadata). Category ids
  are ``instance_class[id] + 1`` as :mod:`segtools.formats.instances` numbers them;
* a **COCO results JSON** (``[{image_id, category_id, segmentation, bbox, score}]``): the
  detections of one image, chosen by ``image_id``;
* a **COCO instances JSON** (ground truth): one image, chosen by id or file name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segtools.errors import InputError, UsageError
from segtools.formats import rle as rlelib
from segtools.viz.instance_draw import InstanceSet


def from_instance_mask(ids: np.ndarray, meta, name: str = "instance mask") -> InstanceSet:
    """The instances of an H×W instance-id mask (0 = none) and its metadata.

    >>> from segtools.formats.instances import instance_meta
    >>> meta = instance_meta([-1, 0, 1], ["person", "car"])
    >>> s = from_instance_mask(np.array([[1, 1, 0, 2]]), meta)
    >>> s.category_ids.tolist(), [s.label(i) for i in range(len(s))]
    ([1, 2], ['person', 'car'])
    """
    from segtools.formats.instances import stored_classes

    ids = np.asarray(ids)
    classes, names, crowd = stored_classes(meta, name)
    present = np.unique(ids)
    present = present[present > 0]
    if classes is not None:
        bad = present[(present >= len(classes))]
        bad = bad if bad.size else present[np.asarray(classes)[present] < 0]
        if bad.size:
            raise InputError(f"{name}: instance id {int(bad[0])} has no class in the metadata's instance_class list "
                             f"({len(classes) - 1} instances)")
        category_ids = np.asarray(classes, np.int64)[present] + 1
    else:
        category_ids = np.ones(present.size, np.int64)
    scores = _stored_scores(meta, present, name)
    flat = ids.T.ravel()  # column-major, as RLE runs are
    order = np.argsort(flat, kind="stable")
    bounds = np.searchsorted(flat[order], np.concatenate([present, present + 1]))
    height, width = ids.shape
    rles = []
    for start, end in zip(bounds[: present.size].tolist(), bounds[present.size:].tolist()):
        pixels = order[start:end]
        rles.append(rlelib.from_runs(pixels, pixels + 1, height, width))
    label_names = {i + 1: n for i, n in enumerate(names)} if names else {}
    return InstanceSet(height, width, rles, category_ids, scores, np.isin(present, sorted(crowd)), label_names)


def _stored_scores(meta, present: np.ndarray, name: str) -> np.ndarray:
    """``instance_score[id]`` of each present id (NaN without scores), checked numeric in [0, 1]."""
    stored = (meta.extra if meta is not None else {}).get("instance_score")
    if stored is None:
        return np.full(present.size, np.nan)
    if not isinstance(stored, list) or any(v.__class__ not in (int, float) for v in stored):
        bad = next((v for v in stored if v.__class__ not in (int, float)), stored) if isinstance(stored, list) else stored
        raise InputError(f"{name}: instance_score must be a list of numbers, one per instance id; found {bad!r:.40}")
    scores = np.asarray(stored, np.float64)
    if present.size and int(present.max()) >= scores.size:
        raise InputError(f"{name}: instance id {int(present.max())} has no instance_score "
                         f"({scores.size - 1} scores)")
    return scores[present]


def _segment_rle(entry: dict, height: int, width: int, where: str) -> dict:
    """The RLE of a COCO annotation's segmentation (RLE or polygons), else of its box."""
    from segtools.formats import coco

    segmentation = entry.get("segmentation")
    if segmentation not in (None, []):
        return rlelib.from_runs(*coco.segmentation_runs(segmentation, height, width, where), height, width)
    box = entry.get("bbox")
    if box is None:
        raise InputError(f"{where}: neither a segmentation nor a bbox")
    x, y, w, h = (float(v) for v in box)
    mask = np.zeros((height, width), np.uint8)
    mask[max(int(round(y)), 0):max(int(round(y + h)), 0), max(int(round(x)), 0):max(int(round(x + w)), 0)] = 1
    return rlelib.encode(mask)


def from_results(results: list, image_id, height: int, width: int, names: dict | None = None,
                 source: str = "results") -> InstanceSet:
    """The detections of image ``image_id`` in a COCO results list, as an ``InstanceSet``.

    Each entry is checked (:func:`segtools.formats.schema.annotation`: ids, category,
    bbox, a numeric score, an RLE of the image's size); a bad one raises an
    :class:`~segtools.errors.InputError` naming ``source`` and its index.

    >>> m = np.zeros((2, 2), np.uint8); m[0] = 1
    >>> r = [{"image_id": 7, "category_id": 3, "segmentation": rlelib.encode(m), "score": 0.5}]
    >>> from_results(r, 7, 2, 2, {3: "cat"}).label(0)
    'cat 0.50'
    """
    from segtools.formats import schema
    from segtools.io.jsondata import check_type

    check_type(results, list, source)
    rles, categories, scores = [], [], []
    for k, entry in enumerate(results):
        where = f"{source}: [{k}]"
        schema.annotation(entry, where)
        if entry.get("image_id") != image_id:
            continue
        if "score" not in entry:
            raise InputError(f"{where}: a detection needs a 'score'")
        schema.segmentation(entry.get("segmentation"), height, width, where)
        rles.append(_segment_rle(entry, height, width, where))
        categories.append(int(entry["category_id"]))
        scores.append(float(entry["score"]))
    if names and categories:
        unknown = sorted(set(categories) - set(names))
        if unknown:
            raise InputError(f"{source}: category id {unknown[0]} of image {image_id} is not a category of the "
                             "ground truth")
    return InstanceSet(height, width, rles, categories, scores, np.zeros(len(rles), bool), dict(names or {}))


def coco_image(data: dict, image_id=None, file_name: str | None = None, source: str = "COCO JSON") -> dict:
    """The ``images`` entry of a COCO instances document with ``image_id``, else the one
    named ``file_name`` (its path or base name), else the only one."""
    images = data["images"]
    if image_id is not None:
        found = [im for im in images if str(im.get("id")) == str(image_id)]
        what = f"image id {image_id}"
    elif file_name is not None:
        base = Path(file_name).name
        found = [im for im in images if str(im.get("file_name")) == file_name
                 or Path(str(im.get("file_name"))).name == base]
        what = f"image {base!r}"
    else:
        found = images if len(images) == 1 else []
        what = f"which image? {len(images)} images; give image_id"
        if len(images) == 1:
            return images[0]
        raise UsageError(f"{source}: {what}")
    if not found:
        raise InputError(f"{source}: {what} is not in its 'images' ({len(images)} images)")
    return found[0]


def from_coco(data: dict, image: dict, source: str = "COCO JSON") -> InstanceSet:
    """The ground-truth instances of ``image`` (an entry of ``data["images"]``)."""
    from segtools.formats import coco

    height, width = coco.image_size(image, source)
    names = {int(c["id"]): str(c.get("name", c["id"])) for c in data["categories"]}
    rles, categories, crowd = [], [], []
    for k, ann in enumerate(data["annotations"]):
        if ann.get("image_id") != image.get("id"):
            continue
        rles.append(_segment_rle(ann, height, width, f"{source}: annotations[{k}]"))
        categories.append(int(ann["category_id"]))
        crowd.append(bool(ann.get("iscrowd", 0)))
    return InstanceSet(height, width, rles, categories, np.full(len(rles), np.nan), crowd, names)


def read_json_document(path: str):
    """The parsed JSON at ``path`` (strict: :func:`segtools.io.jsondata.parse_json`)."""
    from segtools.io.jsondata import parse_json
    from segtools.io.streams import describe, read_bytes

    return parse_json(read_bytes(path), describe(path))


def is_json(path: str) -> bool:
    """True when the file at ``path`` starts (after white space) with ``{`` or ``[``."""
    from segtools.io.streams import read_bytes

    head = read_bytes(path)[:64].lstrip()
    return head[:1] in (b"{", b"[")


def read_instances(path: str, *, image_id=None, file_name: str | None = None, size: tuple[int, int] | None = None,
                   names: dict | None = None) -> InstanceSet:
    """The instances of one image from an instance mask, a COCO instances JSON or a COCO
    results JSON (``image_id`` picks the image: needed for results unless they hold one
    image; ``size`` = (height, width) is needed for results, which carry no size)."""
    from segtools.io.masks import read_label_mask

    if not is_json(path):
        mask = read_label_mask(path)
        if mask.meta is not None and mask.meta.kind not in ("instance", None):
            raise InputError(f"{path}: a {mask.meta.kind} mask, not instances (kind 'instance')")
        return from_instance_mask(mask.labels, mask.meta, mask.name or path)
    data = read_json_document(path)
    if isinstance(data, dict):
        from segtools.formats import coco

        coco.check(data, path)
        return from_coco(data, coco_image(data, image_id, file_name, path), path)
    if image_id is None:
        ids = {entry.get("image_id") for entry in data if isinstance(entry, dict)}
        if len(ids) != 1:
            raise UsageError(f"{path}: detections of {len(ids)} images; give image_id")
        image_id = ids.pop()
    if size is None:
        raise UsageError(f"{path}: COCO results carry no image size; give the image (over) or the ground truth (gt)")
    return from_results(data, image_id, size[0], size[1], names, path)


def instance_picture(pred: str, *, image: str | None = None, gt: str | None = None, image_id=None,
                     errors: bool = False, min_score: float = 0.0, iou_threshold: float = 0.5, alpha: float = 0.5,
                     thickness: int | None = None, text_size: int | None = None) -> np.ndarray:
    """The picture ``segtools visualize instances`` draws for one image: the predicted
    instances over ``image`` (a path; black without one), or with ``errors`` the ground
    truth beside the TP/FP/FN view (needs ``gt``).

    ``pred`` and ``gt`` are instance masks or COCO JSON (results for ``pred``, instances for
    ``gt``); the image of a JSON is ``image_id``, else the one named like ``image`` in a
    ground-truth JSON, else the only one. A results JSON takes its size from the image or
    the ground truth and its class names from a ground-truth JSON or mask.
    """
    from segtools.io.images import read_image
    from segtools.viz.instance_draw import draw_instances, instance_error_panel

    if errors and gt is None:
        raise UsageError("the error view needs the ground truth: give gt=FILE")
    photo = read_image(image) if image is not None else None
    truth = None
    if gt is not None:
        truth = read_instances(gt, image_id=image_id, file_name=image)
        if image_id is None and is_json(gt):
            image_id = _gt_image_id(gt, image)
    size = photo.shape[:2] if photo is not None else (truth.height, truth.width) if truth is not None else None
    predicted = read_instances(pred, image_id=image_id, size=size, names=truth.names if truth is not None else None)
    if truth is not None and not predicted.names:
        predicted.names = truth.names
    if truth is not None and (truth.height, truth.width) != (predicted.height, predicted.width):
        raise InputError(f"{pred}: prediction is {predicted.width}×{predicted.height} px but the ground truth {gt} is "
                         f"{truth.width}×{truth.height} px")
    if errors:
        return instance_error_panel(photo, predicted, truth, iou_threshold=iou_threshold, min_score=min_score,
                                    alpha=alpha, thickness=thickness, text_size=text_size)
    return draw_instances(photo, predicted, min_score=min_score, alpha=alpha, thickness=thickness,
                          text_size=text_size)


def _gt_image_id(gt: str, image: str | None):
    data = read_json_document(gt)
    return coco_image(data, None, image, gt).get("id")
