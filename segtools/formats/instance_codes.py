"""Masks that pack class and instance into one pixel value, as datasets ship them.

* **MOTS / KITTI-MOTS** ``instances/<seq>/<frame>.png`` (16-bit): ``class·1000 + id``, class
  1 car and 2 pedestrian, 0 background, 10000 an ignore region (no object: left out, counted).
  ``category_id`` = the class (``car``, ``pedestrian``).
* **KITTI semantic-instance** ``instance/*.png`` (16-bit): ``labelId·256 + id`` with
  Cityscapes labelIds; read as Cityscapes instanceIds are (stuff left out, a thing class
  without instance numbers one ``iscrowd`` object, ``category_id = labelId + 1``). KITTI's
  ``semantic/*.png`` (8-bit) are plain labelIds: one annotation per connected part of each
  labelId, with the 34 Cityscapes names.
* **ADE20K** ``*_seg.png`` (RGB): class ``R/10·256 + G`` (ADE20K's object index, 0 = none),
  instance from ``B``: every distinct (class, B) region with a class is one object,
  ``category_id`` = the class (names from ``--classes``, else ``class_<k>``). The
  ``*_parts_N.png`` files beside them are not read (counted).
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Sequence

import numpy as np

from segtools.errors import InputError
from segtools.formats import Summary

KINDS = ("mots", "kitti", "ade20k")
MOTS_CLASSES = ("car", "pedestrian")
MOTS_IGNORE = 10000


def mots_annotations(values: np.ndarray, reading, summary: Summary, name: str) -> list[dict]:
    """One annotation per ``class·1000 + id`` value (class 1 car, 2 pedestrian)."""
    from segtools.formats.instances import _compact, regions_to_annotations

    unique, index = _compact(np.asarray(values).astype(np.int64))
    classes = unique // 1000
    ignore = unique == MOTS_IGNORE
    summary.add("MOTS ignore regions (10000) left out", int(ignore.sum()))
    bad = unique[(unique > 0) & ~ignore & ((classes < 1) | (classes > len(MOTS_CLASSES)))]
    if bad.size:
        raise InputError(f"{name}: not MOTS ids (class·1000 + id, class 1 or 2): value {int(bad[0])}")
    regions = [(k + 1, int(classes[k]), 0) for k in np.flatnonzero((unique > 0) & ~ignore)]
    return regions_to_annotations(index, regions, reading.mode, reading.epsilon, summary, reading.holes)


def kitti_annotations(values: np.ndarray, reading, summary: Summary, name: str) -> list[dict]:
    """KITTI ``labelId·256 + id`` read as Cityscapes instanceIds (``labelId·1000 + id``)."""
    from segtools.formats.instances import cityscapes_annotations

    values = np.asarray(values).astype(np.int64)
    label_ids, numbers = values // 256, values % 256
    if label_ids.max(initial=0) > 33:
        raise InputError(f"{name}: not KITTI instance ids (labelId·256 + id with labelId 0..33)")
    recoded = np.where(numbers > 0, label_ids * 1000 + numbers, label_ids)
    return cityscapes_annotations(recoded, reading.mode, reading.epsilon, summary, reading.holes, name)


def ade20k_annotations(rgb: np.ndarray, reading, summary: Summary, name: str) -> list[dict]:
    """One annotation per (class, instance) region of an ADE20K ``_seg.png``."""
    from segtools.formats.instances import _compact, regions_to_annotations

    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise InputError(f"{name}: an ADE20K _seg.png is RGB (class in R and G, instance in B)")
    rgb = rgb[..., :3].astype(np.int64)
    classes = rgb[..., 0] // 10 * 256 + rgb[..., 1]
    unique, index = _compact(classes * 256 + rgb[..., 2])
    region_class = unique // 256
    regions = [(k + 1, int(region_class[k]), 0) for k in np.flatnonzero(region_class > 0)]
    return regions_to_annotations(index, regions, reading.mode, reading.epsilon, summary, reading.holes)


def annotate(path, reading, name: str = ""):
    """The mask worker's result tuple for one coded mask (see :func:`segtools.formats.masks._mask_worker`)."""
    from segtools.io.images import read_image

    where = name or (path if isinstance(path, str) else "mask")
    summary = Summary()
    if reading.interpret == "ade20k":
        array = read_image(path, name=where)
    else:
        from segtools.io.masks import read_label_mask

        array = read_label_mask(path, name=name or None).labels
    decode = {"mots": mots_annotations, "kitti": kitti_annotations, "ade20k": ade20k_annotations}[reading.interpret]
    if reading.interpret == "kitti" and array.dtype == np.uint8:  # semantic/*.png: plain labelIds
        from segtools.formats.coco import labels_to_annotations

        if int(array.max(initial=0)) > 33:
            raise InputError(f"{where}: not KITTI labelIds (values 0..33), found {int(array.max())}")
        annotations = labels_to_annotations(array, 0, 0, (), reading.mode, reading.epsilon, reading.per_component,
                                            summary, reading.holes)
    else:
        annotations = decode(array, reading, summary, where)  # every decoded object (the codes name no void label)
    names = MOTS_CLASSES if reading.interpret == "mots" else None
    if reading.interpret == "kitti":
        from segtools.formats.cityscapes import label_names

        names = label_names()
    return array.shape[:2], annotations, dict(summary.counts), summary.lossy, names, None, "instance"


def pick_files(items: Sequence, source: str, summary: Summary | None = None) -> tuple[list, str | None]:
    """(items, interpretation): ``--from`` mots/kitti/ade20k as given; otherwise ADE20K when
    every mask is a ``*_seg.png`` (its ``*_parts_N.png`` siblings left out, counted)."""
    if source in KINDS:
        kind = source
    else:
        names = [PurePosixPath(str(it.rel)).name for it in items]
        seg = [n.endswith("_seg.png") for n in names]
        parts = [("_parts_" in n) and n.endswith(".png") for n in names]
        if not any(seg) or not all(s or p for s, p in zip(seg, parts)):
            return list(items), None
        kind = "ade20k"
    if kind == "ade20k":
        kept = [it for it in items if "_parts_" not in PurePosixPath(str(it.rel)).name]
        if summary is not None:
            summary.add("ADE20K part masks (_parts_N.png) not read", len(items) - len(kept))
        items = kept
    return list(items), kind
