"""Instance ground truth in dataset layouts: Cityscapes ``instanceIds`` and VOC SegmentationObject.

:func:`find_layout` recognises a ground-truth folder; :func:`layout_images` lists its images
(id, name, size, what to read) without decoding them, and :func:`layout_annotations` makes
one image's ground-truth annotations (RLE, area, bbox, iscrowd, category_id) in the worker,
through the readers ``segtools convert --to coco`` uses (:mod:`segtools.formats.instances`,
:mod:`segtools.formats.voc`), so the numbers equal COCOeval's on the converted file.

- **Cityscapes** (a folder holding ``*_instanceIds.png``, e.g. ``gtFine/``): value =
  ``labelId·1000 + n`` for an object, the plain labelId elsewhere; a thing class's plain
  labelId is a crowd (group) region. The categories are Cityscapes' 8 evaluated instance
  classes (person, rider, car, truck, bus, train, motorcycle, bicycle), numbered as
  ``convert`` numbers them: ``category_id = labelId + 1``; caravan and trailer, not
  evaluated by Cityscapes, are left out of the ground truth.
- **Pascal VOC** (a folder with ``SegmentationObject/`` and ``SegmentationClass/``):
  object numbers, 0 background and 255 void; an object's class is the majority class under
  it; the 20 classes are ``category_id = VOC index + 1`` (aeroplane 2 … tvmonitor 21).

Image ids are 1..N over the files in sorted order, as ``convert`` assigns them.
"""

from __future__ import annotations

import numpy as np

from segtools.errors import InputError

CITYSCAPES_THINGS = ("person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")
LAYOUTS = ("cityscapes", "voc")


def _is_instance_ids(rel: str) -> bool:
    return rel.lower().endswith("_instanceids.png")


def find_layout(gt_spec: str) -> str | None:
    """``cityscapes``, ``voc`` or None (not one of these layouts) for a ground-truth path.

    >>> find_layout("no/such/folder") is None
    True
    """
    from pathlib import Path

    from segtools.io.remote import is_url

    if is_url(gt_spec):
        return _find_layout_on_store(gt_spec)
    root = Path(gt_spec)
    if root.is_dir() and (root / "SegmentationObject").is_dir() and (root / "SegmentationClass").is_dir():
        return "voc"
    if root.name == "SegmentationObject" and root.is_dir() and (root.parent / "SegmentationClass").is_dir():
        return "voc"
    if _is_instance_ids(root.name) and root.is_file():
        return "cityscapes"
    if root.is_dir() and next((p for p in root.rglob("*") if _is_instance_ids(p.name)), None) is not None:
        return "cityscapes"
    return None


def _find_layout_on_store(url: str) -> str | None:
    """:func:`find_layout` of a prefix or object on a store (listings only, nothing read)."""
    from segtools.io.remote import below, is_folder, list_objects

    parent, name = url.rstrip("/").rsplit("/", 1) if "/" in url.rstrip("/") else (url, "")
    if is_folder(url) and is_folder(below(url, "SegmentationObject")) and is_folder(below(url, "SegmentationClass")):
        return "voc"
    if name == "SegmentationObject" and is_folder(url) and is_folder(below(parent, "SegmentationClass")):
        return "voc"
    if _is_instance_ids(name) and not url.endswith("/"):
        return "cityscapes"
    if is_folder(url):
        try:
            return "cityscapes" if list_objects(url, ("_instanceids.png",)) else None
        except InputError:  # no such objects below it
            return None
    return None


def layout_categories(layout: str, gt_spec: str | None = None) -> dict[int, str]:
    """Category id → name of a layout (ids as ``segtools convert --to coco`` numbers them);
    a VOC folder with a ``labelmap.txt`` at its root (CVAT's "Segmentation mask 1.1" export)
    has that file's classes, the first (background) left out.

    >>> layout_categories("cityscapes")[27]
    'car'
    >>> layout_categories("voc")[2], len(layout_categories("voc"))
    ('aeroplane', 20)
    """
    from segtools.formats import cityscapes, voc

    if layout == "cityscapes":
        names = cityscapes.label_names()
        return {names.index(n) + 1: n for n in CITYSCAPES_THINGS}
    labelmap = voc.labelmap_beside([gt_spec]) if gt_spec is not None else None
    if labelmap is not None:
        from segtools.io.meta import load_classes

        return {k + 1: name for k, name in enumerate(load_classes(str(labelmap)).names) if k > 0}
    return {k + 1: name for k, name in enumerate(voc.class_names()) if k > 0}


def _png_size(path: str) -> tuple[int, int]:
    import io

    from PIL import Image

    from segtools.io.remote import is_url
    from segtools.io.streams import read_head

    try:  # on a store, the head of the object (one ranged GET) holds the size
        with Image.open(io.BytesIO(read_head(path, 1 << 16)) if is_url(path) else path) as image:
            width, height = image.size
    except OSError as exc:
        raise InputError(f"{path}: not a readable PNG ({exc})") from None
    return int(height), int(width)


def layout_images(layout: str, gt_spec: str) -> list[tuple[int, str, tuple[int, int], tuple[str, ...]]]:
    """``(image id, pairing stem, (height, width), files to read)`` of every ground-truth image."""
    from segtools.formats import voc
    from segtools.io.batch import expand_inputs, pairing_key

    if layout == "cityscapes":
        items = [it for it in expand_inputs([gt_spec], extensions=(".png",), allow_stdin=False)
                 if _is_instance_ids(it.rel)]
        sources = [(it.rel, (it.path,)) for it in items]
    else:  # CVAT's export: its labelmap.txt travels with each image, for the RGB masks' colours
        labelmap = voc.labelmap_beside([gt_spec])
        more = (str(labelmap),) if labelmap is not None else ()
        sources = [(obj.rel, (obj.path, cls.path, *more)) for obj, cls in voc.segmentation_pairs([gt_spec])]
    if not sources:
        raise InputError(f"{gt_spec}: no ground-truth images in the {layout} layout")
    return [(index, pairing_key(rel).rsplit("/", 1)[-1], _png_size(files[0]), files)
            for index, (rel, files) in enumerate(sources, 1)]


def _check_cityscapes(values: np.ndarray, path: str) -> None:
    from segtools.formats import cityscapes

    distinct = np.unique(values.astype(np.int64))
    label = np.where(distinct >= 1000, distinct // 1000, distinct)
    things = cityscapes.thing_ids()
    bad = (label > 33) | (distinct < 0) | ((distinct >= 1000) & ~np.isin(label, things))
    if bad.any():
        value = int(distinct[bad][0])
        raise InputError(f"{path}: value {value} is no Cityscapes class (labelId {value // 1000 if value >= 1000 else value}"
                         f"{' has no instances' if 0 <= value // 1000 <= 33 and value >= 1000 else ' is outside 0..33'})")


def layout_annotations(layout: str, files: tuple[str, ...], categories,
                       fetched: dict | None = None) -> tuple[list[dict], tuple[int, int]]:
    """One image's ground-truth annotations (RLE) in ``categories``, and its size
    (``fetched``: the bytes of files already read, by path).

    Examples
    --------
    >>> import tempfile; from pathlib import Path; from PIL import Image
    >>> path = Path(tempfile.mkdtemp()) / "a_gtFine_instanceIds.png"
    >>> ids = np.full((4, 6), 7, np.uint16); ids[1:3, 1:4] = 26001; ids[0, 5] = 24
    >>> Image.fromarray(ids).save(path)
    >>> gt, size = layout_annotations("cityscapes", (str(path),), layout_categories("cityscapes"))
    >>> [(a["category_id"], a["area"], a["iscrowd"]) for a in gt], size
    ([(25, 1.0, 1), (27, 6.0, 0)], (4, 6))
    """
    from segtools.formats import instances, voc
    from segtools.io.masks import read_label_mask

    def read(path: str, colours=None) -> np.ndarray:
        return np.asarray(read_label_mask((fetched or {}).get(path, path), colours, name=path).labels)

    if layout == "cityscapes":
        values = read(files[0])
        _check_cityscapes(values, files[0])
        found = instances.cityscapes_annotations(values, "rle", name=files[0])
    else:
        from segtools.io.meta import load_classes

        colours = load_classes(files[2]) if len(files) > 2 else None  # RGB masks: CVAT's labelmap.txt
        objects = read(files[0], voc.object_colours() if colours is not None else None)
        classes = read(files[1], colours)
        if objects.shape != classes.shape:
            raise InputError(f"{files[0]}: SegmentationObject is {objects.shape[0]}×{objects.shape[1]} but its "
                             f"SegmentationClass {files[1]} is {classes.shape[0]}×{classes.shape[1]}")
        found = voc.segmentation_annotations(classes, objects, "rle")
        background = next((a for a in found if a["category_id"] == 1), None)
        if background is not None:
            raise InputError(f"{files[0]}: an object is mostly background (class 0) in {files[1]}; "
                             "every object needs a class")
    kept = [{**a, "area": float(a["area"])} for a in found if a["category_id"] in categories]
    return kept, tuple(int(v) for v in values.shape) if layout == "cityscapes" else tuple(objects.shape)
