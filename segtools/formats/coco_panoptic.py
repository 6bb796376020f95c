"""COCO panoptic: an RGB PNG whose pixel id is ``R + 256·G + 256²·B`` plus ``segments_info``.

Id 0 is void. Each segment has ``id``, ``category_id``, ``iscrowd``, ``area`` and ``bbox``
(COCO ``[x, y, w, h]``); categories carry ``isthing``. Converting to a semantic mask gives
each pixel its category's contiguous label (rank of the category id); the instance mask
numbers the *thing* segments 1..N per image (0 for stuff and void). Writing assigns segment
ids 1, 2, … in order of (label, instance) — panopticapi's random colours are not needed, as
ids only have to be unique within an image.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Collection, Sequence

import numpy as np

from segtools.errors import InputError, UsageError


def rgb_to_ids(rgb: np.ndarray, *, bgr: bool = False) -> np.ndarray:
    """H×W×3 (or ×4, the fourth channel ignored) → H×W uint32 segment ids ``R + 256·G + 256²·B``.

    ``bgr``: the channels are in OpenCV's order. 8-bit images on little-endian machines are
    packed by one colour conversion to RGBA whose four bytes, read as one uint32, are the id
    plus the alpha byte, masked off (no widening of each channel).

    >>> rgb_to_ids(np.array([[[1, 2, 3], [0, 0, 0]]], np.uint8)).tolist()
    [[197121, 0]]
    >>> rgb_to_ids(np.array([[[3, 2, 1]]], np.uint8), bgr=True).tolist()
    [[197121]]
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise InputError(f"a panoptic PNG is RGB, got shape {rgb.shape}")
    if rgb.dtype == np.uint8 and sys.byteorder == "little" and rgb.size:
        import cv2

        if rgb.shape[2] >= 4:
            packed = cv2.cvtColor(np.ascontiguousarray(rgb[..., :4]), cv2.COLOR_BGRA2RGBA) if bgr \
                else np.array(rgb[..., :4], order="C")
        else:
            packed = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_BGR2RGBA if bgr else cv2.COLOR_RGB2RGBA)
        packed = packed.view(np.uint32).reshape(rgb.shape[:2])
        packed &= 0xFFFFFF
        return packed
    channels = rgb[..., 2::-1] if bgr else rgb[..., :3]
    channels = channels.astype(np.uint32)
    return channels[..., 0] + 256 * channels[..., 1] + 65536 * channels[..., 2]


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
               ignore: int | None = 255, crowd: Collection[int] = (),
               stuff_crowd: Collection[int] = ()) -> tuple[np.ndarray, list[dict]]:
    """(id image uint32, segments_info) from semantic labels and instance numbers.

    Stuff classes become one segment per class; thing classes one per instance number
    (pixels of a thing class with instance 0 form one crowd segment, ``iscrowd=1``, and so
    do the instance numbers listed in ``crowd``). ``stuff_crowd``: the labels of stuff
    classes whose segment is ``iscrowd=1``.
    """
    crowd = {int(v) for v in crowd}
    stuff_crowd = {int(v) for v in stuff_crowd}
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
            is_crowd = number == 0 or number in crowd if cid in thing_ids else label in stuff_crowd
            segments.append({"id": int(seg_ids[k]), "category_id": int(cid), "area": int(counts[k]), "bbox": bbox,
                             "iscrowd": int(is_crowd)})
    return ids, segments


# ---------------------------------------------------------------- whole datasets


def dataset_to_masks(data: dict, png_root: Path, out_root: Path, summary, allow_overwrite: bool = False,
                     tick=None, strict: bool = False) -> None:
    """COCO panoptic JSON + PNG folder → ``out_root/<name>.png`` (semantic) and ``out_root/instances/<name>.png``.

    The semantic mask's metadata keeps the panoptic categories (``coco_categories``), the
    image's ``file_name`` (``coco_image``) and the stuff classes whose segment is a crowd
    (``stuff_crowd``); the instance mask's keeps ``instance_class`` and ``instance_crowd``, so
    :func:`masks_to_dataset` restores every segment (category, pixels, ``iscrowd``) and image
    name exactly. A PNG whose size differs from its ``images`` entry is counted (an error
    with ``strict``); the PNG's size is used. Several stuff segments of one class in one image
    become one segment (counted).
    """
    from segtools.formats import schema
    from segtools.formats.instances import instance_meta
    from segtools.formats.paths import inside, output_name
    from segtools.io.images import read_image
    from segtools.io.masks import write_label_mask
    from segtools.io.meta import ClassMeta

    schema.panoptic(data, "COCO panoptic JSON")
    categories = sorted(data["categories"], key=lambda c: int(c["id"]))
    label_of = {int(c["id"]): i for i, c in enumerate(categories)}
    things = {int(c["id"]) for c in categories if c.get("isthing")}
    names = tuple(str(c.get("name") or c["id"]) for c in categories)
    listed = data.get("images") if isinstance(data.get("images"), list) else []
    images = {entry["id"]: entry for entry in listed if isinstance(entry, dict) and _is_id(entry.get("id"))}
    # every name is checked before the first mask is written: no partial output
    paths = [(inside(png_root, entry["file_name"], f"annotations[{i}]: 'file_name'"),
              output_name(out_root, entry["file_name"], ".png", f"annotations[{i}]: 'file_name'"))
             for i, entry in enumerate(data["annotations"])]
    for i, entry in enumerate(data["annotations"]):
        name = entry["file_name"]
        segments = entry["segments_info"]
        source, target = paths[i]
        ids = rgb_to_ids(read_image(source))
        image = images.get(entry.get("image_id"), {}) if _is_id(entry.get("image_id")) else {}
        _check_size(ids.shape, image, name, summary, strict)
        semantic, instances = to_masks(ids, segments, label_of, things, 255, name)
        extra: dict = {"coco_categories": categories}
        if isinstance(image.get("file_name"), str):
            extra["coco_image"] = {"file_name": image["file_name"]}
        stuff = [s for s in segments if s.get("category_id") not in things and s.get("category_id") in label_of]
        stuff_labels = [label_of[s["category_id"]] for s in stuff]
        summary.add("stuff segments of one class in one image merged into one",
                    len(stuff_labels) - len(set(stuff_labels)), lossy=True)
        if any(s.get("iscrowd") for s in stuff):
            extra["stuff_crowd"] = sorted({label_of[s["category_id"]] for s in stuff if s.get("iscrowd")})
        meta = ClassMeta(names=names, extra=extra)
        numbered = instances > 0
        instance_class = np.full(int(instances.max(initial=0)) + 1, -1, np.int64)
        instance_class[instances[numbered]] = semantic[numbered]
        crowd_segments = [int(s["id"]) for s in segments if s.get("iscrowd")]
        crowd = np.unique(instances[numbered & np.isin(ids, crowd_segments)]) if crowd_segments else []
        write_label_mask(semantic, target, meta, allow_overwrite)
        write_label_mask(instances, output_name(out_root / "instances", name, ".png", "file_name"),
                         instance_meta(instance_class.tolist(), names, [int(v) for v in crowd]), allow_overwrite)
        summary.add("panoptic images converted")
        tick and tick(i)


def _is_id(value) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _check_size(shape: tuple, image: dict, name: str, summary, strict: bool) -> None:
    """Count (or, ``strict``, refuse) a panoptic PNG whose size is not its ``images`` entry's."""
    height, width = image.get("height"), image.get("width")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (height, width)):
        return  # no usable size listed: nothing to compare
    listed = height, width
    if listed != tuple(shape[:2]):
        if strict:
            raise InputError(f"{name}: the PNG is {shape[0]}x{shape[1]} but its images entry says "
                             f"{listed[0]}x{listed[1]} (HxW)")
        summary.add("panoptic PNGs whose size differs from their images entry (PNG size used)", lossy=True)


def _thing_labels(things: Collection[str], names: Sequence[str] | None) -> set[int]:
    """Labels of ``things`` given by name (case-insensitive) or label."""
    lookup = {n.lower(): k for k, n in enumerate(names or ())}
    labels = set()
    for thing in things:
        text = str(thing).strip()
        if text.isdigit():
            labels.add(int(text))
        elif text.lower() in lookup:
            labels.add(lookup[text.lower()])
        else:
            known = ", ".join(names) if names else "none: give the class names (classes), or labels"
            raise UsageError(f"things {text!r}: unknown class (known: {known})")
    return labels


def masks_to_dataset(pairs, json_path, summary, names: tuple[str, ...] | None = None, things: Collection[str] | None = None,
                     image_names: dict[str, str] | None = None, allow_overwrite: bool = False, tick=None) -> Path:
    """Semantic masks (with their instance masks, or None) → COCO panoptic JSON + PNG folder.

    PNGs go to the folder named like the JSON (``out.json`` → ``out/<mask name>.png``).
    Categories: ``coco_categories`` in the first mask's metadata when present (masks written by
    :func:`dataset_to_masks`), else ``category_id = label + 1`` named by ``names``, the mask's
    metadata or ``class_<label>``. Thing classes (``things``: names or labels): given, else those
    categories' ``isthing``, else the classes listed in each instance mask's ``instance_class``
    or, without that list, those that have instance numbers there.
    """
    from segtools.formats.instances import stored_classes
    from segtools.io.batch import pairing_key
    from segtools.io.images import encode_image
    from segtools.io.masks import read_label_mask
    from segtools.io.streams import check_output_path, write_bytes

    json_path = check_output_path(json_path, allow_overwrite)
    if json_path.suffix.lower() != ".json":
        raise UsageError(f"{json_path}: COCO panoptic output is a .json file (its PNGs go to {json_path.with_suffix('')}/)")
    png_root = json_path.with_suffix("")
    entries: list[dict] | None = None
    seen_things: set[int] = set()
    top = -1
    images, annotations = [], []
    for i, (semantic_item, instance_item) in enumerate(pairs):
        mask = read_label_mask(semantic_item.path)
        meta = mask.meta
        if i == 0 and names is None and meta is not None:
            entries = meta.extra.get("coco_categories") if meta.extra.get("coco_categories") else None
            names = meta.names
        if i == 0 and things is not None:
            things = _thing_labels(things, tuple(str(c.get("name")) for c in entries) if entries else names)
        ignore = meta.ignore_index if meta is not None else 255
        valid = mask.labels if ignore is None else mask.labels[mask.labels != ignore]
        top = max(top, int(valid.max()) if valid.size else -1)
        category_ids = [int(c["id"]) for c in entries] if entries else list(range(1, max(top, len(names or ())) + 2))
        instances, crowd, listed = np.zeros(mask.labels.shape, np.int64), set(), None
        if instance_item is not None:
            inst = read_label_mask(instance_item.path)
            instances = inst.labels
            if instances.shape != mask.labels.shape:
                raise InputError(f"{instance_item.path}: size {instances.shape} differs from {semantic_item.path}'s {mask.labels.shape}")
            listed, _, crowd = stored_classes(inst.meta, instance_item.path)
        if things is not None:
            thing_labels = set(things)
        elif entries:
            thing_labels = {k for k, c in enumerate(entries) if c.get("isthing")}
        elif listed is not None:
            thing_labels = {c for c in listed if c >= 0}
        else:
            thing_labels = set(np.unique(mask.labels[instances > 0]).tolist())
        seen_things |= thing_labels
        thing_ids = {category_ids[k] for k in thing_labels if k < len(category_ids)}
        stuff_crowd = meta.extra.get("stuff_crowd", []) if meta is not None else []
        ids, segments = from_masks(mask.labels, instances, category_ids, thing_ids, ignore, crowd, stuff_crowd)
        png_name = str(Path(semantic_item.rel).with_suffix(".png"))
        write_bytes(png_root / png_name, encode_image(ids_to_rgb(ids), "png"), allow_overwrite)
        height, width = mask.labels.shape
        recorded = meta.extra.get("coco_image") if meta is not None else None
        file_name = recorded["file_name"] if isinstance(recorded, dict) and isinstance(
            recorded.get("file_name"), str) else semantic_item.rel
        if image_names is not None:
            file_name = image_names.get(pairing_key(semantic_item.rel))
            if file_name is None:
                raise InputError(f"{semantic_item.path}: no photo with a matching name in the images folder")
        images.append({"id": i + 1, "file_name": file_name, "height": int(height), "width": int(width)})
        annotations.append({"image_id": i + 1, "file_name": png_name, "segments_info": segments})
        summary.add("panoptic segments written", len(segments))
        tick and tick(i)
    if not entries:
        count = max(top + 1, len(names or ()))
        entries = [{"id": k + 1, "name": names[k] if names and k < len(names) else f"class_{k}", "supercategory": ""}
                   for k in range(count)]

    def is_thing(label: int, entry: dict) -> bool:
        if things is not None:
            return label in things
        return bool(entry["isthing"]) if "isthing" in entry else label in seen_things

    categories = [{**c, "isthing": int(is_thing(k, c))} for k, c in enumerate(entries)]
    data = {"info": {"description": "written by segtools convert"}, "images": images, "annotations": annotations,
            "categories": categories}
    write_bytes(json_path, (json.dumps(data, separators=(",", ":")) + "\n").encode(), allow_overwrite)
    return json_path


def mask_pairs(specs: Sequence[str], instance_masks: str | None = None) -> list:
    """``(semantic item, instance item or None)`` pairs: the semantic masks of ``specs`` with the
    instance masks under ``instance_masks`` paired by name (default: ``<folder>/instances``, the
    layout :func:`dataset_to_masks` writes, when ``specs`` is one folder holding it)."""
    from segtools.io.batch import expand_inputs, pair_items
    from segtools.io.remote import below, is_folder, is_url

    if not instance_masks and len(specs) == 1 and is_folder(specs[0]) and is_folder(below(specs[0], "instances")):
        instance_masks = below(specs[0], "instances")
    semantic = expand_inputs(specs, extensions=(".png", ".npy"))
    if not instance_masks:
        return [(item, None) for item in semantic]
    if is_url(instance_masks):  # a prefix on a store: the semantic objects are those not below it
        prefix = instance_masks.rstrip("/") + "/"
        semantic = [it for it in semantic if not it.path.startswith(prefix)]
    else:
        inside = Path(instance_masks).resolve()
        semantic = [it for it in semantic if inside not in Path(it.path).resolve().parents]
    return pair_items(semantic, expand_inputs([instance_masks], extensions=(".png", ".npy")),
                      names=("semantic mask", "instance mask")).pairs


def png_folder(json_path: str, png_root: str | Path | None = None) -> Path:
    """The folder of a panoptic JSON's PNGs: ``png_root``, else the folder named like the JSON
    (on a store, a JSON's URL gives a prefix's URL, a ``str``)."""
    from segtools.io.remote import is_folder, is_url, redact

    if is_url(str(png_root or json_path)):
        url = str(png_root) if png_root else re.sub(r"\.[^./]*$", "", str(json_path))
        if not is_folder(url):
            raise InputError(f"{redact(url)}: no prefix of panoptic PNGs (give the prefix of the PNGs)")
        return url  # type: ignore[return-value]
    folder = Path(png_root) if png_root else Path(json_path).with_suffix("")
    if not folder.is_dir():
        raise InputError(f"{folder}: no folder of panoptic PNGs (give the folder of the PNGs as images)")
    return folder
