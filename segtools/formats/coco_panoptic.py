"""COCO panoptic: an RGB PNG whose pixel id is ``R + 256·G + 256²·B`` plus ``segments_info``.

Id 0 is void. Each segment has ``id``, ``category_id``, ``iscrowd``, ``area`` and ``bbox``
(COCO ``[x, y, w, h]``); categories carry ``isthing``. Converting to a semantic mask gives
each pixel its category's contiguous label (rank of the category id); the instance mask
numbers the *thing* segments 1..N per image (0 for stuff and void). Writing assigns segment
ids 1, 2, … in order of (label, instance) — panopticapi's random colours are not needed, as
ids only have to be unique within an image.
"""

from __future__ import annotations

import numpy as np

from segtools.errors import InputError


def rgb_to_ids(rgb: np.ndarray) -> np.ndarray:
    """H×W×3 uint8 → H×W uint32 segment ids."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise InputError(f"a panoptic PNG is RGB, got shape {rgb.shape}")
    rgb = rgb[..., :3].astype(np.uint32)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def ids_to_rgb(ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(ids).astype(np.uint32)
    if ids.max(initial=0) >= 1 << 24:
        raise InputError("panoptic segment ids must be below 256³")
    return np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], axis=-1).astype(np.uint8)


def to_masks(ids: np.ndarray, segments_info: list[dict], label_of: dict[int, int], thing_ids: set[int],
             fill: int = 255, name: str = "panoptic") -> tuple[np.ndarray, np.ndarray]:
    """(semantic labels, instance numbers) of a panoptic id image."""
    unique, inverse = np.unique(ids, return_inverse=True)
    by_id = {int(s["id"]): s for s in segments_info}
    labels_lut = np.full(unique.size, fill, np.int64)
    instance_lut = np.zeros(unique.size, np.int64)
    next_instance = 1
    for k, seg_id in enumerate(unique.tolist()):
        if seg_id == 0:
            continue
        seg = by_id.get(seg_id)
        if seg is None:
            raise InputError(f"{name}: segment id {seg_id} is in the PNG but not in segments_info")
        cid = seg.get("category_id")
        if cid not in label_of:
            raise InputError(f"{name}: segment {seg_id}: unknown category_id {cid!r}")
        labels_lut[k] = label_of[cid]
        if cid in thing_ids:
            instance_lut[k] = next_instance
            next_instance += 1
    inverse = inverse.reshape(ids.shape)
    top = max(fill, int(labels_lut.max(initial=0)))
    semantic = labels_lut[inverse].astype(np.uint8 if top <= 255 else np.uint16)
    instances = instance_lut[inverse].astype(np.uint8 if next_instance <= 256 else np.uint16)
    return semantic, instances


def from_masks(semantic: np.ndarray, instances: np.ndarray, category_ids: list[int], thing_ids: set[int],
               ignore: int | None = 255) -> tuple[np.ndarray, list[dict]]:
    """(id image uint32, segments_info) from semantic labels and instance numbers.

    Stuff classes become one segment per class; thing classes one per instance number
    (pixels of a thing class with instance 0 form one crowd segment, ``iscrowd=1``).
    """
    semantic = np.asarray(semantic).astype(np.int64)
    instances = np.asarray(instances).astype(np.int64)
    if semantic.shape != instances.shape:
        raise InputError(f"semantic {semantic.shape} and instance {instances.shape} masks differ in size")
    is_thing_label = np.zeros(max(len(category_ids), int(semantic.max(initial=0)) + 1), bool)
    for label, cid in enumerate(category_ids):
        is_thing_label[label] = cid in thing_ids
    inst = np.where(is_thing_label[semantic], instances, 0)
    key = semantic * (1 << 20) + inst
    valid = semantic != ignore if ignore is not None else np.ones(semantic.shape, bool)
    unique, inverse = np.unique(np.where(valid, key, -1), return_inverse=True)
    inverse = inverse.reshape(semantic.shape)
    first = 1 if unique.size and unique[0] == -1 else 0
    seg_ids = np.arange(unique.size, dtype=np.uint32) + (1 - first)
    seg_ids[:first] = 0
    ids = seg_ids[inverse]
    segments = []
    if unique.size > first:
        from segtools.formats import rle as rlelib

        counts = np.bincount(inverse.ravel(), minlength=unique.size)
        for k in range(first, unique.size):
            label, number = divmod(int(unique[k]), 1 << 20)
            if label >= len(category_ids):
                raise InputError(f"label {label} has no category (only {len(category_ids)} categories)")
            cid = category_ids[label]
            bbox = rlelib.to_bbox(rlelib.encode(inverse == k))
            segments.append({"id": int(seg_ids[k]), "category_id": int(cid), "area": int(counts[k]), "bbox": bbox,
                             "iscrowd": int(cid in thing_ids and number == 0)})
    return ids, segments
