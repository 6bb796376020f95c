"""Cityscapes label encodings: labelIds ⇄ trainIds, and instanceIds.

``labelIds`` are 0..33 (``-1`` license plate never appears in images); ``trainIds`` are the
19 evaluated classes 0..18 with 255 for the rest; ``instanceIds`` store ``labelId·1000 +
instance`` for objects of "thing" classes and the plain labelId elsewhere. trainIds → labelIds
is not one-to-one for 255 (many labelIds are ignored): it becomes labelId 0 (unlabeled),
counted as lossy by the caller.
"""

from __future__ import annotations

import numpy as np

from segtools.errors import InputError
from segtools.io.presets import CITYSCAPES_LABELS
from segtools.labels import remap_labels


def label_to_train(label_ids: np.ndarray) -> np.ndarray:
    """labelIds → trainIds (uint8; unknown values raise)."""
    ids = np.asarray(label_ids)
    known = {lab.id: lab.train_id for lab in CITYSCAPES_LABELS if lab.id >= 0}
    bad = np.setdiff1d(np.unique(ids), list(known))
    if bad.size:
        raise InputError(f"not Cityscapes labelIds: values {bad[:5].tolist()} are outside 0..33")
    return remap_labels(ids, list(known), list(known.values())).astype(np.uint8)


def train_to_label(train_ids: np.ndarray) -> np.ndarray:
    """trainIds → labelIds (255 → 0 'unlabeled')."""
    ids = np.asarray(train_ids)
    known = {lab.train_id: lab.id for lab in CITYSCAPES_LABELS if lab.train_id != 255 and lab.id >= 0}
    bad = np.setdiff1d(np.unique(ids), [*known, 255])
    if bad.size:
        raise InputError(f"not Cityscapes trainIds: values {bad[:5].tolist()} are outside 0..18 and 255")
    return remap_labels(ids, [*known, 255], [*known.values(), 0]).astype(np.uint8)


def label_names() -> tuple[str, ...]:
    """Names of Cityscapes labelIds 0..33 (index = labelId)."""
    names = {lab.id: lab.name for lab in CITYSCAPES_LABELS if lab.id >= 0}
    return tuple(names[i] for i in range(len(names)))


def thing_ids() -> np.ndarray:
    """labelIds of the classes annotated per instance (human and vehicle categories)."""
    return np.array(sorted(lab.id for lab in CITYSCAPES_LABELS if lab.id >= 0 and lab.category in ("human", "vehicle")))


def split_instance_ids(instance_ids: np.ndarray, name: str = "instanceIds") -> tuple[np.ndarray, np.ndarray]:
    """instanceIds → (labelIds uint8, instance numbers; 0 where the pixel is no instance)."""
    ids = np.asarray(instance_ids).astype(np.int64)
    is_instance = ids >= 1000
    label_ids = np.where(is_instance, ids // 1000, ids)
    if label_ids.max(initial=0) > 33 or label_ids.min(initial=0) < 0:
        raise InputError(f"{name}: not Cityscapes instanceIds (class part outside 0..33)")
    return label_ids.astype(np.uint8), np.where(is_instance, ids % 1000, 0)
