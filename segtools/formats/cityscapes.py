"""Cityscapes label encodings: labelIds ⇄ trainIds, and instanceIds.

``labelIds`` are 0..33 (``-1`` license plate never appears in images); ``trainIds`` are the
19 evaluated classes 0..18 with 255 for the rest; ``instanceIds`` store ``labelId·1000 +
instance`` for objects of "thing" classes and the plain labelId elsewhere. trainIds → labelIds
is not one-to-one for 255 (many labelIds are ignored): it becomes labelId 0 (unlabeled),
counted as lossy by the caller.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Sequence

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


# ---------------------------------------------------------------- a gtFine folder: one file per frame

#: The files cityscapesScripts writes for each frame, by suffix (``trainIds`` is how some
#: converters name ``labelTrainIds``; it is read as them).
FRAME_FILE = re.compile(r"^(?P<frame>.+)_(?P<set>gtFine|gtCoarse)_(?P<kind>color|labelIds|labelTrainIds|trainIds|instanceIds)"
                        r"\.png$")


def frame_files(items: Sequence) -> tuple[dict[tuple[str, str], dict[str, object]], list]:
    """Group a folder's Cityscapes files by frame: ((folder, frame) → {kind: item}, the items
    that are no Cityscapes file). Kinds are ``color``, ``labelIds``, ``labelTrainIds`` and
    ``instanceIds``.

    >>> from types import SimpleNamespace as It
    >>> frames, others = frame_files([It(rel="a/x_gtFine_color.png"), It(rel="a/x_gtFine_trainIds.png"), It(rel="b.png")])
    >>> {k: sorted(v) for k, v in frames.items()}, [o.rel for o in others]
    ({('a', 'x_gtFine'): ['color', 'labelTrainIds']}, ['b.png'])
    """
    frames: dict[tuple[str, str], dict[str, object]] = {}
    others = []
    for item in items:
        rel = PurePosixPath(str(item.rel))
        match = FRAME_FILE.match(rel.name)
        if match is None:
            others.append(item)
            continue
        kind = "labelTrainIds" if match["kind"] == "trainIds" else match["kind"]
        frames.setdefault((str(rel.parent), match["frame"] + "_" + match["set"]), {})[kind] = item
    return frames, others


def semantic_frame_files(items: Sequence, raw_ids: bool = False) -> list:
    """``items`` with one file per Cityscapes frame for reading semantic labels: the train
    ids, or with ``raw_ids`` (the values are remapped next, ``--label-map cityscapes``) the
    label ids, each falling back to the other; colour previews and instance ids are dropped
    beside either. Frames with neither, and files of other datasets, are kept as they are,
    in the order given.

    >>> from types import SimpleNamespace as It
    >>> names = ["a_gtFine_color.png", "a_gtFine_labelIds.png", "a_gtFine_labelTrainIds.png", "b_gtFine_labelIds.png"]
    >>> [it.rel for it in semantic_frame_files([It(rel=n) for n in names])]
    ['a_gtFine_labelTrainIds.png', 'b_gtFine_labelIds.png']
    >>> [it.rel for it in semantic_frame_files([It(rel=n) for n in names], raw_ids=True)]
    ['a_gtFine_labelIds.png', 'b_gtFine_labelIds.png']
    """
    frames, _ = frame_files(items)
    order = ("labelIds", "labelTrainIds") if raw_ids else ("labelTrainIds", "labelIds")
    dropped = set()
    for files in frames.values():
        best = next((k for k in order if k in files), None)
        if best is not None:
            dropped |= {id(it) for k, it in files.items() if k != best}
    return [it for it in items if id(it) not in dropped]


def train_names() -> tuple[str, ...]:
    """Names of trainIds 0..18."""
    names = {lab.train_id: lab.name for lab in CITYSCAPES_LABELS if lab.train_id not in (255, -1)}
    return tuple(names[i] for i in range(len(names)))


def pick_frame_files(items: Sequence, source: str = "auto", summary=None) -> tuple[list, tuple[str, ...] | None, str | None]:
    """One file per Cityscapes frame out of a gtFine/gtCoarse folder's four PNGs, for ``convert``.

    ``source`` ``cityscapes-instances`` or ``instances`` takes ``_instanceIds.png``; anything
    else ``_labelIds.png`` (``_labelTrainIds.png`` where a frame has no labelIds; with ``auto``
    a frame that has only ``_instanceIds.png`` is read from it). The
    ``_color.png`` previews are never read. Returns (the items to read, the class names of
    the files picked — labelIds or trainIds names, None for instanceIds — and the Cityscapes
    interpretation ``cityscapes``/``semantic``, or None when no item is a Cityscapes file).
    Files of other names are kept as they are. Counted in ``summary``.
    """
    frames, others = frame_files(items)
    if not frames:
        return list(items), None, None
    wanted = "instanceIds" if source in ("cityscapes-instances", "instances") else "labelIds"
    # a semantic reading falls back to trainIds; a frame given only as instanceIds is read as them
    order = [wanted] if wanted == "instanceIds" else ["labelIds", "labelTrainIds"] + (
        ["instanceIds"] if source == "auto" else [])
    picked, kinds = [], set()
    for (parent, frame), files in sorted(frames.items()):
        kind = next((k for k in order if k in files), None)
        if kind is None:
            have = ", ".join(f"_{k}.png" for k in sorted(files))
            where = frame if parent in ("", ".") else f"{parent}/{frame}"
            raise InputError(f"{where}: no _{wanted}.png for this Cityscapes frame (it has {have}; "
                             "colour previews are not read)")
        kinds.add(kind)
        picked.append(files[kind])
        if summary is not None:
            summary.add(f"Cityscapes frames read from _{kind}.png (the frame's other files not read)")
            summary.add("Cityscapes files beside them not read", len(files) - 1)
    if len(kinds) > 1:
        raise InputError("the Cityscapes frames are not all of one kind (" + ", ".join(
            f"_{k}.png" for k in sorted(kinds)) + "); convert them separately")
    kind = kinds.pop()
    names = None if kind == "instanceIds" else label_names() if kind == "labelIds" else train_names()
    return others + picked, names, ("cityscapes" if kind == "instanceIds" else "semantic")


def photo_names(items: Sequence) -> dict[str, str]:
    """Pairing key → the frame's photo name (``<frame>_leftImg8bit.png``, same folder), what
    Cityscapes-to-COCO converters put in ``file_name``."""
    from segtools.io.batch import pairing_key

    out = {}
    for item in items:
        rel = PurePosixPath(str(item.rel))
        match = FRAME_FILE.match(rel.name)
        photo = rel.parent / f"{match['frame']}_leftImg8bit.png" if match is not None else rel
        out[pairing_key(str(item.rel))] = str(photo)
    return out
