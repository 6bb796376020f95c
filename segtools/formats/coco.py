"""COCO instances JSON: read, rasterise to label masks, build from label masks, stream-write.

Category ↔ label: labels are the *rank* of the category id among the file's sorted
category ids (``0..K-1``, detectron2's "contiguous id"). Written files use
``category_id = label + 1`` and list every class, so the ranks come back as the labels.
Pixels no annotation covers get ``fill`` (default 255, the ignore index).

Annotations are painted in file order (a later one wins where two overlap); crowd
annotations are painted like the others.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from segtools.errors import InputError
from segtools.formats import Summary
from segtools.formats import polygons as polylib
from segtools.formats import rle as rlelib
from segtools.formats import rle_regions


def load(source, name: str | None = None) -> dict:
    """Parse and check a COCO instances JSON (path, ``-`` or bytes)."""
    from segtools.formats import load_json
    from segtools.io.streams import describe

    name = name or describe(source)
    return check(load_json(source, name), name)


def check(data, name: str = "COCO JSON") -> dict:
    """``data`` when it is a well-formed COCO instances document (:func:`schema.instances`)."""
    from segtools.formats import schema

    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise InputError(f"{name}: not a COCO instances file (no 'annotations' list)")
    return schema.instances(data, name)


def image_size(image: dict, name: str = "image") -> tuple[int, int]:
    """``(height, width)`` of a COCO image entry, checked (types, pixel budget)."""
    from segtools.formats import schema

    return schema.image_entry(image, name)


def segmentation_runs(segmentation, height: int, width: int, where: str = "annotation") -> tuple[np.ndarray, np.ndarray]:
    """Column-major ``[start, end)`` runs of a COCO ``segmentation`` (polygons or either RLE form)."""
    if isinstance(segmentation, list):
        if not segmentation:
            raise InputError(f"{where}: empty segmentation")
        polys = [polylib.as_points(p, f"{where}: polygon", height, width) for p in segmentation]
        return polylib.polygon_runs(polys, height, width)
    if isinstance(segmentation, dict):
        from segtools.formats import schema

        schema.rle(segmentation, where, (height, width))
        return rlelib.runs(segmentation)
    raise InputError(f"{where}: segmentation must be a polygon list or an RLE dict")


def segmentation_to_mask(segmentation, height: int, width: int, where: str = "annotation") -> np.ndarray:
    """H×W uint8 of a COCO ``segmentation``: polygon list, compressed RLE or uncompressed RLE."""
    flat = np.zeros(height * width, np.uint8)
    flat[polylib.runs_to_indices(*segmentation_runs(segmentation, height, width, where))] = 1
    return flat.reshape(width, height).T


def group_annotations(data: dict) -> dict[int, list[dict]]:
    groups: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        groups.setdefault(ann.get("image_id"), []).append(ann)
    return groups


def annotations_to_labels(annotations: Sequence[dict], height: int, width: int, label_of: dict[int, int],
                          fill: int = 255, summary: Summary | None = None, where: str = "") -> np.ndarray:
    """Paint annotations into an H×W label mask (labels = ``label_of[category_id]``).

    Every polygon of the image is rasterised in one pass (runs), then annotations are
    painted in file order, so thousands of small annotations cost their pixels.
    """
    top = max([fill, *label_of.values()], default=fill)
    flat = np.full(height * width, fill, np.uint8 if top <= 255 else np.uint16)  # column-major
    painted, polygons, polygon_owner = [], [], []
    for ann in annotations:
        cid = ann.get("category_id")
        if cid not in label_of:
            raise InputError(f"{where}annotation {ann.get('id')}: unknown category_id {cid!r} (not in 'categories')")
        if "segmentation" not in ann or ann["segmentation"] in ([], None):
            if summary is not None:
                summary.add("box-only annotations (no mask to paint)", lossy=True)
            continue
        segm = ann["segmentation"]
        what = f"{where}annotation {ann.get('id')}"
        if isinstance(segm, list):
            points = [polylib.as_points(p, f"{what}: polygon", height, width) for p in segm]
            if summary is not None and any(_outside(p, height, width) for p in points):
                summary.add("polygons reaching outside the image (clipped)", lossy=True)
            polygons += points
            polygon_owner += [len(painted)] * len(points)
            painted.append((label_of[cid], None))
        else:
            painted.append((label_of[cid], segmentation_runs(segm, height, width, what)))
    which, starts, ends = polylib.polygon_runs_each(polygons, height, width)
    owner = np.asarray(polygon_owner, np.int64)[which]
    bounds = np.searchsorted(owner, np.arange(len(painted) + 1))  # owners ascend with the polygons
    for number, (label, runs) in enumerate(painted):
        if runs is None:
            runs = starts[bounds[number]: bounds[number + 1]], ends[bounds[number]: bounds[number + 1]]
        flat[polylib.runs_to_indices(*runs)] = label
    return np.ascontiguousarray(flat.reshape(width, height).T)


def _outside(polygon, height: int, width: int) -> bool:
    points = np.asarray(polygon, np.float64).reshape(-1, 2)
    return bool((points < 0).any() or (points[:, 0] > width).any() or (points[:, 1] > height).any())


def mask_annotation(mask: np.ndarray, mode: str = "polygon", epsilon: float = 0.0,
                    summary: Summary | None = None, holes: str = "bridge") -> dict | None:
    """``segmentation``, ``area`` and ``bbox`` for one binary mask (None when it traces empty).

    ``mode`` ``"polygon"`` traces the pixel outline (holes kept with keyhole bridges, see
    :mod:`segtools.formats.polygons`); ``"rle"`` writes a compressed RLE (always exact).
    Area and bbox are those of the rasterised segmentation (pycocotools ``area``/``toBbox``).
    """
    h, w = mask.shape
    if mode == "rle":
        segm = rlelib.encode(mask)
        encoded = segm
    else:
        traced = polylib.mask_to_polygons(mask, epsilon=epsilon, holes=holes)
        if not traced.polygons:
            return None
        if summary is not None:
            summary.add("holes kept as keyhole bridges", traced.holes - traced.holes_filled)
            summary.add("holes filled (YOLO has no holes)", traced.holes_filled, lossy=True)
            summary.add("outlines simplified (Douglas-Peucker epsilon)", len(traced.polygons) if epsilon > 0 else 0, lossy=True)
        segm = [polylib.flat(p, 3) for p in traced.polygons]
        if epsilon > 0 or traced.holes_filled:
            encoded = rlelib.encode(polylib.polygons_to_mask(segm, h, w))
        else:
            encoded = rlelib.encode(mask)  # exact outline: the rasterisation is the mask
    return {"segmentation": segm, "area": rlelib.area(encoded), "bbox": rlelib.to_bbox(encoded)}


def labels_to_annotations(labels: np.ndarray, image_id: int, first_id: int, skip: Sequence[int] = (),
                          mode: str = "polygon", epsilon: float = 0.0, per_component: bool = True,
                          summary: Summary | None = None, holes: str = "bridge") -> list[dict]:
    """COCO annotations (category_id = label + 1) for the classes of a label mask.

    One annotation per 8-connected part of each class (``per_component``), or one per class.
    Each part is traced inside its own bounding box, so many small parts stay cheap.
    """
    annotations = []
    skipped = {int(v) for v in skip}
    for value in (int(v) for v in np.unique(labels)):
        if value in skipped:
            continue
        class_mask = (labels == value).astype(np.uint8)
        parts = _component_annotations(class_mask, mode, epsilon, summary, holes) if per_component else \
            [mask_annotation(class_mask, mode, epsilon, summary, holes)]
        for fields in parts:
            if fields is None or fields["area"] == 0:
                if summary is not None:
                    summary.add("parts that vanished when simplified (epsilon)", lossy=True)
                continue
            annotations.append({"id": first_id + len(annotations), "image_id": image_id,
                                "category_id": value + 1, "iscrowd": 0, **fields})
    return annotations


def _component_annotations(class_mask: np.ndarray, mode: str, epsilon: float, summary: Summary | None,
                           holes: str) -> list[dict | None]:
    import cv2

    height, width = class_mask.shape
    rows, cols = np.flatnonzero(class_mask.any(1)), np.flatnonzero(class_mask.any(0))
    if rows.size == 0:
        return []
    y0, x0 = int(rows[0]), int(cols[0])
    count, parts, stats, _ = cv2.connectedComponentsWithStats(
        np.ascontiguousarray(class_mask[y0: rows[-1] + 1, x0: cols[-1] + 1]), connectivity=8)
    stats[:, 0] += x0
    stats[:, 1] += y0
    if mode == "rle":  # every part's RLE in one pass over the runs, not one full image per part
        index = np.zeros((height, width), np.int32)
        index[y0: rows[-1] + 1, x0: cols[-1] + 1] = parts
        _, rles, areas, boxes = rle_regions.encode_regions(index)
        return [{"segmentation": r, "area": int(a), "bbox": b} for r, a, b in zip(rles, areas.tolist(), boxes)]
    # pycocotools' toBbox spans the full height when a run wraps from one column's bottom
    # to the next column's top; keep that quirk so bboxes match it exactly
    wraps: set = set()
    if y0 == 0 and rows[-1] == height - 1:
        bottom, top = parts[-1, :-1], parts[0, 1:]
        wraps = set(np.unique(bottom[(bottom == top) & (bottom > 0)]).tolist())
    out: list[dict | None] = []
    for k in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[k])
        crop = (parts[y - y0: y - y0 + h, x - x0: x - x0 + w] == k).astype(np.uint8)
        if epsilon > 0 or holes == "fill":
            full = np.zeros((height, width), np.uint8)
            full[y: y + h, x: x + w] = crop
            out.append(mask_annotation(full, mode, epsilon, summary, holes))
            continue
        traced = polylib.mask_to_polygons(crop, holes=holes)
        if summary is not None:
            summary.add("holes kept as keyhole bridges", traced.holes)
        offset = np.array([x, y], np.float64)
        bbox = [float(x), 0.0, float(w), float(height)] if k in wraps else [float(x), float(y), float(w), float(h)]
        out.append({"segmentation": [polylib.flat(p + offset, 3) for p in traced.polygons], "area": area, "bbox": bbox})
    return out


class StreamingWriter:
    """Writes one COCO JSON without holding every annotation: they go to a temp file first.

    Images (small dicts) stay in memory; annotations are appended to a scratch file as they
    come, and :meth:`close` assembles the final JSON next to the target and renames it in
    place (atomic: readers never see a half-written file).
    """

    def __init__(self, path: str | os.PathLike, allow_overwrite: bool = False) -> None:
        from segtools.io.streams import check_output_path

        self.path = check_output_path(path, allow_overwrite)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.images: list[dict] = []
        self._scratch = tempfile.TemporaryFile("w+", encoding="utf-8")
        self.count = 0

    def add_image(self, image: dict) -> None:
        self.images.append(image)

    def add_annotations(self, annotations: Sequence[dict]) -> None:
        for ann in annotations:
            self._scratch.write(("," if self.count else "") + json.dumps(ann, separators=(",", ":")) + "\n")
            self.count += 1

    def close(self, categories: list[dict], info: dict | None = None) -> Path:
        from segtools.io.streams import AtomicFile

        try:
            with AtomicFile(self.path, allow_overwrite=True, mode="w", encoding="utf-8") as target:
                out = target.handle
                out.write('{"info":' + json.dumps(info or {"description": "written by segtools convert"}))
                out.write(',"categories":' + json.dumps(categories))
                out.write(',"images":' + json.dumps(self.images))
                out.write(',"annotations":[\n')
                self._scratch.seek(0)
                for line in self._scratch:
                    out.write(line)
                out.write("]}\n")
        finally:
            self._scratch.close()
        return self.path

    def abort(self) -> None:
        self._scratch.close()


STREAM_MARK = b'{"info":'
STREAM_HEAD_END = b'"annotations":[\n'


def is_streamed(path: str | os.PathLike) -> bool:
    """True for a COCO file laid out by :class:`StreamingWriter` (one annotation per line)."""
    try:
        with open(path, "rb") as handle:
            head = handle.readline(64 << 20)
    except OSError:
        return False
    return head.startswith(STREAM_MARK) and head.endswith(STREAM_HEAD_END)


def read_streamed(path: str | os.PathLike) -> tuple[dict, Iterator[tuple[dict, list[dict]]]]:
    """Header (info, categories, images) and a lazy ``(image, annotations)`` stream.

    Memory stays bounded by one image's annotations: the file is read line by line, which
    works because :class:`StreamingWriter` writes annotations in image order, one per line.
    """
    from segtools.formats import schema
    from segtools.io.jsondata import parse_json
    from segtools.io.streams import mark_input

    mark_input(path)
    with open(path, "rb") as handle:
        head = handle.readline()
    header = parse_json(head + b"]}", f"{path}: header")
    check(header, str(path))
    sizes = {image.get("id"): (image["height"], image["width"]) for image in header["images"]}

    def records() -> Iterator[tuple[dict, list[dict]]]:
        images = header["images"]
        position = 0
        pending: list[dict] = []
        with open(path, "rb") as handle:
            handle.readline()
            for number, line in enumerate(handle, 2):
                line = line.strip()
                if line in (b"]}", b""):
                    continue
                ann = parse_json(line.lstrip(b","), f"{path}:{number}")
                schema.annotation(ann, f"{path}:{number}", sizes)
                while position < len(images) and images[position].get("id") != ann.get("image_id"):
                    yield images[position], pending
                    pending, position = [], position + 1
                if position == len(images):
                    raise InputError(f"{path}:{number}: annotation for image {ann.get('image_id')!r}, "
                                     "which is not listed (or not in image order)")
                pending.append(ann)
        while position < len(images):
            yield images[position], pending
            pending, position = [], position + 1

    return header, records()


def dumps(data: dict) -> bytes:
    """Compact JSON bytes for a COCO dict (newline-terminated)."""
    return (json.dumps(data, separators=(",", ":")) + "\n").encode("utf-8")
