"""Instance-id masks ⇄ COCO instances.

Two kinds of instance mask become one COCO annotation per object:

* **segtools instance masks** (``kind="instance"`` in the PNG metadata, as ``segtools
  postprocess --instances`` writes them): value = instance id, 0 = no instance; the class of
  id ``i`` is ``meta.extra["instance_class"][i]`` (index 0 unused), class names in
  ``meta.extra["class_names"]``, crowd ids in ``meta.extra["instance_crowd"]``. A 16-bit PNG
  without segtools metadata is read the same way (no class list: one category).
* **Cityscapes instanceIds**: ``labelId·1000 + n`` for objects; values below 1000 are a plain
  labelId — skipped for stuff classes, and one ``iscrowd`` region for a thing class (a group
  of objects without instance numbers, detectron2's reading). ``category_id = labelId + 1``
  with all 34 labelIds listed, so converting back to masks gives labelIds.

Pascal VOC ``SegmentationObject`` pairs are read in :mod:`segtools.formats.voc` through
:func:`regions_to_annotations`, the region tracer shared by all three.

The way back, :func:`annotations_to_instances`, numbers the annotations of an image 1..N in
file order (a later one wins where two overlap, counted) and
:func:`encode_instance_png` writes them as a 16-bit grey PNG with the class list.
"""

from __future__ import annotations

import io
from pathlib import PurePosixPath
from typing import Iterable, Sequence

import numpy as np

from segtools.errors import InputError, OutputError
from segtools.formats import Summary
from segtools.formats import cityscapes
from segtools.formats import coco as cocolib
from segtools.formats import polygons as polylib
from segtools.formats import rle_regions
from segtools.formats.records import Categories, Record, Tick, stem_path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
INTERPRETATIONS = ("auto", "semantic", "instance", "cityscapes")


def mask_kind(mask, name: str, is_png: bool, forced: str = "auto") -> str:
    """``semantic``, ``instance`` or ``cityscapes``: how to read a label mask's values.

    Auto: metadata ``kind="instance"`` → instance; ``_instanceIds`` in the file name →
    cityscapes; a 16-bit PNG without segtools metadata → instance; else semantic.
    """
    if forced != "auto":
        return forced
    meta = mask.meta
    if meta is not None and meta.kind == "instance":
        return "instance"
    if "_instanceids" in PurePosixPath(str(name).replace("\\", "/")).name.lower():
        return "cityscapes"
    if meta is None and is_png and mask.labels.dtype == np.uint16:
        return "instance"
    return "semantic"


def is_png(source) -> bool:
    """True when ``source`` (bytes or a path) starts with the PNG signature."""
    if isinstance(source, bytes):
        return source[:8] == PNG_SIGNATURE
    with open(source, "rb") as handle:
        return handle.read(8) == PNG_SIGNATURE


def annotate_instance_mask(mask, kind: str, mode: str = "polygon", epsilon: float = 0.0,
                           summary: Summary | None = None, holes: str = "bridge"):
    """(annotations, class names or None, kind) of an instance or Cityscapes instanceIds mask.

    The kind comes back as ``instance-without-classes`` when the metadata has no class list.
    """
    if kind == "cityscapes":
        return cityscapes_annotations(mask.labels, mode, epsilon, summary, holes, mask.name), cityscapes.label_names(), kind
    classes, names, crowd = stored_classes(mask.meta, mask.name)
    annotations = instance_annotations(mask.labels, classes, crowd, mode, epsilon, summary, holes, mask.name)
    return annotations, names, ("instance" if classes is not None else "instance-without-classes")


def stored_classes(meta, name: str = "instance mask") -> tuple[list[int] | None, tuple[str, ...] | None, set[int]]:
    """(per-instance class list or None, class names or None, crowd ids) from instance metadata."""
    extra = meta.extra if meta is not None else {}
    classes = extra.get("instance_class")
    try:
        classes = [int(v) for v in classes] if classes is not None else None
        crowd = {int(v) for v in extra.get("instance_crowd", [])}
    except (TypeError, ValueError):
        raise InputError(f"{name}: malformed instance_class / instance_crowd in the metadata") from None
    names = extra.get("class_names") or (meta.names if meta is not None else None)
    return classes, (tuple(str(n) for n in names) if names else None), crowd


def region_boxes(index: np.ndarray) -> list:
    """Bounding slices of every region number (``boxes[n - 1]`` for number n; None when absent)."""
    from scipy import ndimage

    return ndimage.find_objects(np.asarray(index))


def crop_annotation(crop: np.ndarray, top: int, left: int, height: int, width: int, mode: str = "polygon",
                    epsilon: float = 0.0, summary: Summary | None = None, holes: str = "bridge") -> dict | None:
    """``segmentation``, ``area``, ``bbox`` of a binary crop placed at (top, left) in an H×W image.

    Exact polygons are traced inside the crop and shifted (cheap for many small objects);
    RLE, simplified or hole-filled outlines are computed on the full image.
    """
    crop = np.ascontiguousarray(crop, dtype=np.uint8)
    h, w = crop.shape
    if mode == "rle" or epsilon > 0 or holes == "fill":
        full = np.zeros((height, width), np.uint8)
        full[top: top + h, left: left + w] = crop
        return cocolib.mask_annotation(full, mode, epsilon, summary, holes)
    traced = polylib.mask_to_polygons(crop, holes=holes)
    if not traced.polygons:
        return None
    if summary is not None:
        summary.add("holes kept as keyhole bridges", traced.holes)
    offset = np.array([left, top], np.float64)
    bbox = [float(left), float(top), float(w), float(h)]
    # pycocotools' toBbox spans the whole height when a run wraps from one column's bottom to
    # the next column's top; the region must touch both edges for that to happen
    if top == 0 and h == height and (crop[-1, :-1] & crop[0, 1:]).any():
        bbox = [float(left), 0.0, float(w), float(height)]
    return {"segmentation": [polylib.flat(p + offset, 3) for p in traced.polygons], "area": int(crop.sum()),
            "bbox": bbox}


def regions_to_annotations(index: np.ndarray, regions: Sequence[tuple[int, int, int]], mode: str = "polygon",
                           epsilon: float = 0.0, summary: Summary | None = None, holes: str = "bridge") -> list[dict]:
    """One annotation per ``(region number, category_id, iscrowd)`` of an H×W region-number image."""
    height, width = index.shape
    if mode == "rle":  # every region's RLE in one pass over the runs
        numbers, rles, areas, bboxes = rle_regions.encode_regions(index)
        found = {int(n): (r, int(a), b) for n, r, a, b in zip(numbers.tolist(), rles, areas.tolist(), bboxes)}
        return [{"category_id": int(category_id), "iscrowd": int(iscrowd), "segmentation": found[number][0],
                 "area": found[number][1], "bbox": found[number][2]}
                for number, category_id, iscrowd in regions if number in found]
    boxes = region_boxes(index)
    annotations = []
    for number, category_id, iscrowd in regions:
        box = boxes[number - 1] if 0 < number <= len(boxes) else None
        if box is None:
            continue
        fields = crop_annotation(index[box] == number, box[0].start, box[1].start, height, width, mode, epsilon,
                                 summary, holes)
        if fields is None or fields["area"] == 0:
            if summary is not None:
                summary.add("parts that vanished when simplified (epsilon)", lossy=True)
            continue
        annotations.append({"category_id": int(category_id), "iscrowd": int(iscrowd), **fields})
    return annotations


def _compact(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct values, H×W int32 of 1-based positions in them): dense region numbers."""
    unique, inverse = np.unique(values, return_inverse=True)
    return unique, (inverse.reshape(values.shape) + 1).astype(np.int32)


def instance_annotations(ids: np.ndarray, instance_class: Sequence[int] | None, crowd: set[int] = frozenset(),
                         mode: str = "polygon", epsilon: float = 0.0, summary: Summary | None = None,
                         holes: str = "bridge", name: str = "instance mask") -> list[dict]:
    """Annotations of an instance-id mask; ``category_id = instance_class[id] + 1`` (1 without a list)."""
    values, index = _compact(np.asarray(ids))
    regions = []
    for position, value in enumerate(values.tolist(), 1):
        if value == 0:
            continue
        if instance_class is None:
            label = 0
        elif value >= len(instance_class) or instance_class[value] < 0:
            raise InputError(f"{name}: instance id {value} has no class in the metadata's instance_class "
                             f"list ({len(instance_class) - 1} instances)")
        else:
            label = instance_class[value]
        regions.append((position, label + 1, value in crowd))
    return regions_to_annotations(index, regions, mode, epsilon, summary, holes)


def cityscapes_annotations(instance_ids: np.ndarray, mode: str = "polygon", epsilon: float = 0.0,
                           summary: Summary | None = None, holes: str = "bridge",
                           name: str = "instanceIds") -> list[dict]:
    """Annotations of a Cityscapes instanceIds image (``category_id = labelId + 1``)."""
    values, index = _compact(np.asarray(instance_ids).astype(np.int64))
    label_ids, _ = cityscapes.split_instance_ids(values, name)
    is_thing = np.isin(label_ids, cityscapes.thing_ids())
    crowd = is_thing & (values < 1000)
    if summary is not None:
        summary.add("Cityscapes thing regions without instance numbers (written as iscrowd)", int(crowd.sum()))
        stuff = int((~is_thing & (values > 0)).sum())
        summary.add("Cityscapes stuff classes left out (COCO instances hold objects)", stuff, lossy=True)
    regions = [(k + 1, int(label_ids[k]) + 1, bool(crowd[k])) for k in np.flatnonzero(is_thing)]
    return regions_to_annotations(index, regions, mode, epsilon, summary, holes)


def annotations_to_instances(annotations: Sequence[dict], height: int, width: int, label_of: dict[int, int],
                             summary: Summary | None = None, where: str = "") -> tuple[np.ndarray, list[int], list[int]]:
    """(H×W instance ids, ``instance_class`` with -1 at index 0, crowd ids) of one image's annotations."""
    painted = [a for a in annotations if a.get("segmentation") not in ([], None)]
    if summary is not None:
        summary.add("box-only annotations (no mask to paint)", len(annotations) - len(painted), lossy=True)
    if len(painted) > 65535:
        raise OutputError(f"{where}{len(painted)} instances do not fit a 16-bit PNG (at most 65535)")
    flat = np.zeros(height * width, np.uint16)  # column-major, like the runs
    own_area = np.zeros(len(painted) + 1, np.int64)
    instance_class, crowd = [-1], []
    for number, ann in enumerate(painted, 1):
        cid = ann.get("category_id")
        if cid not in label_of:
            raise InputError(f"{where}annotation {ann.get('id')}: unknown category_id {cid!r} (not in 'categories')")
        starts, ends = cocolib.segmentation_runs(ann["segmentation"], height, width, f"{where}annotation {ann.get('id')}")
        covered = polylib.runs_to_indices(starts, ends)
        flat[covered] = number
        several = isinstance(ann["segmentation"], list) and len(ann["segmentation"]) > 1  # runs may overlap
        own_area[number] = np.unique(covered).size if several else covered.size
        instance_class.append(label_of[cid])
        if ann.get("iscrowd"):
            crowd.append(number)
    if summary is not None and painted:
        kept = np.bincount(flat, minlength=len(painted) + 1)
        summary.add("instances partly covered by later ones (later wins)", int(((kept < own_area) & (kept > 0)).sum()),
                    lossy=True)
        summary.add("instances hidden entirely by later ones", int(((kept == 0) & (own_area > 0)).sum()), lossy=True)
    return np.ascontiguousarray(flat.reshape(width, height).T), instance_class, crowd


def instance_meta(instance_class: list[int], class_names: Sequence[str], crowd: Sequence[int] = ()):
    """``ClassMeta`` of an instance mask, laid out as ``segtools postprocess --instances`` writes it."""
    from segtools.io.meta import ClassMeta

    extra: dict = {"instance_class": list(instance_class), "class_names": list(class_names)}
    if crowd:
        extra["instance_crowd"] = list(crowd)
    return ClassMeta(ignore_index=None, kind="instance", extra=extra)


def encode_instance_png(ids: np.ndarray, meta) -> bytes:
    """16-bit grey PNG of instance ids (whatever their count), metadata in the ``segtools`` iTXt chunk."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from segtools.io.meta import PNG_KEY

    ids = np.asarray(ids)
    if ids.size and int(ids.max()) > 65535:
        raise OutputError("instance ids above 65535 do not fit a 16-bit PNG; write a .npy instead")
    info = PngInfo()
    info.add_itxt(PNG_KEY, meta.to_json())
    buffer = io.BytesIO()
    Image.fromarray(ids.astype("<u2")).save(buffer, format="PNG", pnginfo=info, compress_level=6)
    return buffer.getvalue()


def write_instances(records: Iterable[Record], categories: Categories, output, summary: Summary,
                    single: bool = False, allow_overwrite: bool = False, tick: Tick | None = None) -> int:
    """Instance masks (16-bit PNG, ``kind=instance``, class list in the metadata), one per image."""
    from segtools.io.batch import check_output_dir
    from segtools.io.masks import write_label_mask
    from segtools.io.streams import emit

    root = None if single else check_output_dir(output) if output not in (None, "-") else None
    if not single and root is None:
        raise OutputError("several images: give an output folder for the instance masks (or pick one image)")
    written = 0
    for i, record in enumerate(records):
        h, w = int(record.image["height"]), int(record.image["width"])
        ids, instance_class, crowd = annotations_to_instances(record.annotations, h, w, categories.label_of, summary,
                                                              f"{record.image.get('file_name')}: ")
        meta = instance_meta(instance_class, categories.names, crowd)
        target = output if single else stem_path(root, record.image["file_name"], ".png")
        if target is not None and str(target).lower().endswith(".npy"):
            write_label_mask(ids, target, meta, allow_overwrite)
        else:
            emit(encode_instance_png(ids, meta), target, "a PNG mask", allow_overwrite)
        summary.add("instances written", len(instance_class) - 1)
        written += 1
        tick and tick(i)
    return written
