"""COCO instances files as datasets: the COCO source (a parsed file, or a segtools-written
one streamed line by line) and the COCO target (streamed through a scratch file).

Category ↔ label and painting order are :mod:`segtools.formats.coco`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

from segtools.errors import InputError
from segtools.formats import Summary
from segtools.formats import coco as cocolib
from segtools.formats.records import Categories, Record, Tick


def read_coco(data: dict) -> tuple[Categories, Iterator[Record], int]:
    """(categories, records, number of images) of a parsed, checked COCO document."""
    categories = Categories(entries=data["categories"])
    groups = cocolib.group_annotations(data)

    def records() -> Iterator[Record]:
        for image in data["images"]:
            cocolib.image_size(image, str(image.get("file_name", image.get("id"))))
            yield Record(image, groups.get(image.get("id"), []))

    return categories, records(), len(data["images"])


def read_coco_streamed(path) -> tuple[Categories, Iterator[Record], int, dict]:
    """Like :func:`read_coco` for a segtools-written file, reading annotations lazily."""
    header, pairs = cocolib.read_streamed(path)
    categories = Categories(entries=header["categories"])
    return categories, (Record(image, anns) for image, anns in pairs), len(header["images"]), header


STALE = "area/bbox in the file differed from the segmentation (recomputed)"
MISSING_BOX = "annotations without bbox (taken from the segmentation)"


def _geometry(ann: dict, height: int, width: int) -> tuple[int, list[float]] | None:
    """(area, bbox) of an annotation's rasterised segmentation (pycocotools area/toBbox), or None."""
    from segtools.formats import rle as rlelib

    segm = ann.get("segmentation")
    if not segm:
        return None
    encoded = rlelib.from_runs(*cocolib.segmentation_runs(segm, height, width, f"annotation {ann.get('id')}"),
                               height, width)
    return rlelib.area(encoded), rlelib.to_bbox(encoded)


def _stale_box(box, fresh: list[float], tolerance: float = 1.0) -> bool:
    """True when ``box`` is not a COCO box within ``tolerance`` px of ``fresh`` (a polygon's own
    box and its rasterised box differ by less than a pixel)."""
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        return True
    try:
        return any(abs(float(a) - b) > tolerance for a, b in zip(box, fresh))
    except (TypeError, ValueError):
        return True


def refresh_geometry(record: Record, summary: Summary, keep_close_boxes: bool = False) -> Record:
    """``record`` with each segmented annotation's ``area`` and ``bbox`` those of its segmentation.

    A missing or stale value is counted (stale: area off by more than a pixel's worth, or a
    box edge more than 1 px away). ``keep_close_boxes`` (box targets): a box within 1 px of
    the segmentation's — a polygon's own extent — is kept as it is; only missing or stale
    ones are replaced.
    """
    h, w = int(record.image["height"]), int(record.image["width"])
    for ann in record.annotations:
        fresh = _geometry(ann, h, w)
        if fresh is None:
            continue
        area, bbox = fresh
        if "bbox" not in ann:
            summary.add(MISSING_BOX)
        elif _stale_box(ann["bbox"], bbox) or not keep_close_boxes and not _close_area(ann.get("area"), area, bbox):
            summary.add(STALE)
        elif keep_close_boxes:
            continue
        ann["bbox"] = bbox
        if not keep_close_boxes:
            ann["area"] = area
    return record


def _close_area(value, area: int, bbox: list[float]) -> bool:
    """True when ``value`` is a plausible area of the segmentation (within its outline's pixels)."""
    try:
        return abs(float(value) - area) <= max(1.0, bbox[2] + bbox[3])
    except (TypeError, ValueError):
        return False


def _reencode(record: Record, mode: str, epsilon: float, summary: Summary) -> None:
    """Polygons → RLE for ``coco-rle``; RLE → polygons for ``coco`` (counted); area and bbox
    from the segmentation (:func:`refresh_geometry`)."""
    from segtools.formats import rle as rlelib

    h, w = int(record.image["height"]), int(record.image["width"])
    refresh_geometry(record, summary)
    for ann in record.annotations:
        segm = ann.get("segmentation")
        if not segm:
            continue
        if mode == "rle" and isinstance(segm, list):
            ann["segmentation"] = rlelib.encode(cocolib.segmentation_to_mask(segm, h, w, f"annotation {ann.get('id')}"))
            summary.add("polygons rasterised to RLE")
        elif mode == "rle" and isinstance(segm, dict):
            ann["segmentation"] = rlelib.normalise(segm)
        elif mode == "polygon" and isinstance(segm, dict):
            fields = cocolib.mask_annotation(rlelib.decode(segm), "polygon", epsilon, summary)
            if fields is None:
                summary.add("empty RLE annotations dropped", lossy=True)
                ann["segmentation"] = []
                continue
            ann["segmentation"] = fields["segmentation"]
            summary.add("crowd RLEs traced to polygons" if ann.get("iscrowd") else "RLEs traced to polygons",
                        lossy=epsilon > 0)


def write_coco(records: Iterable[Record], categories: Categories, output, summary: Summary, mode: str | None = None,
               epsilon: float = 0.0, allow_overwrite: bool = False, tick: Tick | None = None,
               unlabelled: int | None = None) -> None:
    """One COCO JSON; streamed through a scratch file when written to a path.

    ``unlabelled``: the label of pixels no annotation covers (the mask's ignore index), kept in
    ``info.segtools.unlabelled`` so converting back to masks restores it.
    """
    from segtools.io.streams import emit

    if output is None or str(output) == "-":
        records = list(records)  # read them all first: the masks may name the unlabelled value
        if unlabelled is None:
            unlabelled = categories.unlabelled
        images, annotations = [], []
        for i, record in enumerate(records):
            if mode:
                _reencode(record, mode, epsilon, summary)
            images.append(record.image)
            annotations += record.annotations
            tick and tick(i)
        data = {"info": _info(unlabelled), "images": images, "annotations": annotations,
                "categories": categories.to_coco()}
        emit(cocolib.dumps(data), output, "JSON")
        return
    writer = cocolib.StreamingWriter(output, allow_overwrite)
    try:
        for i, record in enumerate(records):
            if mode:
                _reencode(record, mode, epsilon, summary)
            writer.add_image(record.image)
            writer.add_annotations(record.annotations)
            tick and tick(i)
    except BaseException:
        writer.abort()
        raise
    writer.close(categories.to_coco(), _info(categories.unlabelled if unlabelled is None else unlabelled))


def _info(unlabelled: int | None) -> dict:
    info: dict = {"description": "written by segtools convert"}
    if unlabelled is not None:
        info["segtools"] = {"unlabelled": int(unlabelled)}
    return info


def unlabelled_value(data: dict, default: int = 255) -> int:
    """The fill label a segtools-written COCO file records, else ``default``."""
    try:
        return int(data["info"]["segtools"]["unlabelled"])
    except (KeyError, TypeError, ValueError):
        return default


def pick_image(data: dict, image: str) -> dict:
    """``data`` with only the image named ``image`` (its path, base name or id) and its annotations."""
    wanted = Path(image).name
    matches = [im for im in data["images"] if str(im.get("file_name")) == image
               or Path(str(im.get("file_name"))).name == wanted or str(im.get("id")) == image]
    if not matches:
        shown = ", ".join(str(im.get("file_name")) for im in data["images"][:3])
        raise InputError(f"image {image!r}: no such image in the COCO file (it has {len(data['images'])}, e.g. {shown})")
    ids = {m.get("id") for m in matches[:1]}
    return {**data, "images": matches[:1], "annotations": [a for a in data["annotations"] if a.get("image_id") in ids]}


def rle_as_coco(payload) -> dict:
    """A bare RLE (or a list of them) as a one-image COCO dict, category 1 'object'."""
    from segtools.formats import schema

    rles = payload if isinstance(payload, list) else [payload]
    if not rles or not all(isinstance(r, dict) and "size" in r and "counts" in r for r in rles):
        raise InputError("a JSON list must hold RLE dicts ({'size': [h, w], 'counts': ...})")
    h, w = schema.rle(rles[0], "RLE 1")
    for k, r in enumerate(rles[1:], 2):
        schema.rle(r, f"RLE {k}", (h, w))
    annotations = [{"id": i + 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": r} for i, r in enumerate(rles)]
    return {"images": [{"id": 1, "file_name": "mask.png", "height": h, "width": w}],
            "annotations": annotations, "categories": [{"id": 1, "name": "object"}]}


def check_photo_names(data: dict, images_root: Path, name: str) -> None:
    """Every image's ``file_name`` resolves inside ``images_root`` (checked before anything is written)."""
    from segtools.formats.paths import source_in

    for k, entry in enumerate(data["images"]):
        source_in(images_root, entry.get("file_name"), f"{name}: images[{k}]: 'file_name'")
