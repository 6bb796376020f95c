"""Cityscapes label encodings: labelIds ⇄ trainIds ⇄ colour, and instanceIds.

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


def _lut(pairs: dict[int, int], default: int, size: int = 256) -> np.ndarray:
    table = np.full(size, default, np.int64)
    for key, value in pairs.items():
        table[key] = value
    return table


def label_to_train(label_ids: np.ndarray) -> np.ndarray:
    """labelIds → trainIds (uint8; unknown values raise)."""
    ids = np.asarray(label_ids)
    known = {lab.id: lab.train_id for lab in CITYSCAPES_LABELS if lab.id >= 0}
    bad = np.setdiff1d(np.unique(ids), list(known))
    if bad.size:
        raise InputError(f"not Cityscapes labelIds: values {bad[:5].tolist()} are outside 0..33")
    return _lut(known, 255)[ids].astype(np.uint8)


def train_to_label(train_ids: np.ndarray) -> np.ndarray:
    """trainIds → labelIds (255 → 0 'unlabeled')."""
    ids = np.asarray(train_ids)
    known = {lab.train_id: lab.id for lab in CITYSCAPES_LABELS if lab.train_id != 255 and lab.id >= 0}
    bad = np.setdiff1d(np.unique(ids), [*known, 255])
    if bad.size:
        raise InputError(f"not Cityscapes trainIds: values {bad[:5].tolist()} are outside 0..18 and 255")
    return _lut(known, 0)[ids].astype(np.uint8)


def label_colours(label_ids: np.ndarray) -> np.ndarray:
    """labelIds → H×W×3 uint8 colours of cityscapesScripts."""
    table = np.zeros((256, 3), np.uint8)
    for lab in CITYSCAPES_LABELS:
        if lab.id >= 0:
            table[lab.id] = lab.color
    return table[np.asarray(label_ids)]


def split_instance_ids(instance_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """instanceIds → (labelIds uint8, instance numbers; 0 where the pixel is no instance)."""
    ids = np.asarray(instance_ids).astype(np.int64)
    is_instance = ids >= 1000
    label_ids = np.where(is_instance, ids // 1000, ids)
    if label_ids.max(initial=0) > 33 or label_ids.min(initial=0) < 0:
        raise InputError("not Cityscapes instanceIds: class part outside 0..33")
    return label_ids.astype(np.uint8), np.where(is_instance, ids % 1000, 0)


def join_instance_ids(label_ids: np.ndarray, instances: np.ndarray) -> np.ndarray:
    """(labelIds, instance numbers) → instanceIds (int32; ``id·1000 + n`` where n > 0)."""
    label_ids = np.asarray(label_ids).astype(np.int32)
    instances = np.asarray(instances).astype(np.int32)
    if instances.max(initial=0) > 999:
        raise InputError("Cityscapes instanceIds hold at most 999 instances of a class per image")
    return np.where(instances > 0, label_ids * 1000 + instances, label_ids)
