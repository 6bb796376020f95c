"""Whole-dataset conversion: every reader yields COCO-shaped records, every writer takes them.

A :class:`Record` is one image entry (``id``, ``file_name``, ``height``, ``width``) with its
COCO annotations (``category_id``, ``segmentation`` polygons or RLE or ``[]`` for a box,
``bbox``, ``area``, ``iscrowd``). Readers stream records one image at a time, writers
consume them one at a time, so converting a folder of masks never holds more than a few
masks (the ``--jobs`` window) in memory.
"""

from __future__ import annotations

import functools
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Iterator, Sequence


from segtools.errors import InputError, OutputError
from segtools.formats import Summary, merge_counts
from segtools.formats import coco as cocolib
from segtools.io.limits import check_class_count

Tick = Callable[[int], None]


@dataclass
class Record:
    image: dict
    annotations: list[dict] = field(default_factory=list)


class Categories:
    """COCO categories by id; label = rank of the id. Unnamed ids get ``class_<label>``."""

    def __init__(self, names: Sequence[str] | None = None, entries: Sequence[dict] | None = None) -> None:
        self.fixed = names is not None or entries is not None
        self.unlabelled: int | None = None  # the masks' ignore index, when they carried one
        self.by_id: dict[int, str] = {}
        if entries is not None:
            self.by_id = {int(c["id"]): str(c.get("name", c["id"])) for c in entries}
        elif names is not None:
            self.by_id = {i + 1: str(n) for i, n in enumerate(names)}

    def adopt(self, names: Sequence[str]) -> None:
        """Fix the names from a mask's own metadata (the first mask that carries them)."""
        self.by_id = {i + 1: str(n) for i, n in enumerate(names)}
        self.fixed = True

    def see(self, category_id: int, where: str = "") -> None:
        if category_id not in self.by_id:
            if self.fixed:
                raise InputError(f"{where}unknown category {category_id!r} (known: {self.describe()})")
            check_class_count(category_id, f"{where}category {category_id}")
            for cid in range(1, category_id + 1):  # mask labels: keep ids contiguous
                self.by_id.setdefault(cid, f"class_{cid - 1}")

    def describe(self) -> str:
        shown = ", ".join(f"{c}={n}" for c, n in list(sorted(self.by_id.items()))[:8])
        return shown + (", ..." if len(self.by_id) > 8 else "")

    def id_of_name(self, name: str, where: str = "") -> int:
        for cid, known in self.by_id.items():
            if known == name:
                return cid
        if self.fixed:
            raise InputError(f"{where}unknown category {name!r} (known: {', '.join(self.names) or 'none'})")
        cid = max(self.by_id, default=0) + 1
        check_class_count(len(self.by_id) + 1, f"{where}category {name[:60]!r}")
        self.by_id[cid] = name
        return cid

    @property
    def ids(self) -> list[int]:
        return sorted(self.by_id)

    @property
    def names(self) -> list[str]:
        return [self.by_id[c] for c in self.ids]

    @property
    def label_of(self) -> dict[int, int]:
        return {cid: i for i, cid in enumerate(self.ids)}

    def to_coco(self) -> list[dict]:
        return [{"id": c, "name": self.by_id[c], "supercategory": ""} for c in self.ids]


# ---------------------------------------------------------------- readers


def _mask_worker(path: str, colours, skip: tuple[int, ...], mode: str, epsilon: float, holes: str,
                 per_component: bool, skip_own_ignore: bool = False, interpret: str = "auto", name: str = ""
                 ) -> tuple[tuple[int, int], list[dict], dict, set, tuple | None, int | None, str]:
    from segtools.formats import instances as instlib
    from segtools.io.masks import read_label_mask

    mask = read_label_mask(path, colours)
    summary = Summary()
    kind = instlib.mask_kind(mask, name if isinstance(path, bytes) else path, instlib.is_png(path), interpret)
    if kind != "semantic":  # instance ids: one annotation per id, classes from the metadata
        annotations, names, kind = instlib.annotate_instance_mask(mask, kind, mode, epsilon, summary, holes)
        annotations = [a for a in annotations if a["category_id"] - 1 not in skip]
        return mask.labels.shape, annotations, dict(summary.counts), summary.lossy, names, None, kind
    own_ignore = mask.meta.ignore_index if mask.meta is not None else None
    if skip_own_ignore and own_ignore is not None:
        skip = tuple(skip) + (own_ignore,)  # the mask's own void label is never an object
    annotations = cocolib.labels_to_annotations(mask.labels, 0, 0, skip, mode, epsilon, per_component, summary, holes)
    names = mask.meta.names if mask.meta is not None else None
    return mask.labels.shape, annotations, dict(summary.counts), summary.lossy, names, own_ignore, kind


def read_masks(items, categories: Categories, summary: Summary, colours=None, skip: Sequence[int] = (255,),
               mode: str = "polygon", epsilon: float = 0.0, holes: str = "bridge", per_component: bool = True,
               image_names: dict[str, str] | None = None, jobs: int = 1, tick: Tick | None = None,
               data: bytes | None = None, skip_own_ignore: bool = False, interpret: str = "auto") -> Iterator[Record]:
    """Records from label masks (streamed through ``pmap``: at most 2·jobs masks in flight).

    ``data``: the bytes of a single mask already read (stdin), used instead of its path.
    ``skip_own_ignore``: also leave out each mask's own ignore index (from its metadata), and
    record the first one seen as ``categories.unlabelled``.
    ``interpret``: ``auto`` (from the metadata and the file), ``semantic``, ``instance`` or
    ``cityscapes`` (see :mod:`segtools.formats.instances`).
    """
    from segtools.io.batch import pairing_key
    from segtools.io.parallel import pmap

    work = functools.partial(_mask_worker, colours=colours, skip=tuple(skip), mode=mode, epsilon=epsilon,
                             holes=holes, per_component=per_component, skip_own_ignore=skip_own_ignore,
                             interpret=interpret)
    next_id = 1
    paths = [data] if data is not None and len(items) == 1 else [item.path for item in items]
    if data is not None and len(items) == 1:
        work = functools.partial(work, name=items[0].path)
    for index, (item, result) in enumerate(zip(items, pmap(work, paths, jobs, on_done=tick))):
        (height, width), annotations, counts, lossy, names, own_ignore, kind = result
        merge_counts(summary, counts, lossy)
        if kind == "instance-without-classes":
            if categories.fixed and len(categories.by_id) > 1:
                raise InputError(f"{item.path}: an instance mask without a per-instance class list; give --classes "
                                 "with one name (every instance gets it)")
            names = names if names and len(names) == 1 else ("object",)
            summary.add("instance masks without a class list (one category)")
        if skip_own_ignore and categories.unlabelled is None:  # the first mask decides for the set
            categories.unlabelled = own_ignore if own_ignore is not None else (skip[0] if skip else None)
        if names and not categories.fixed:
            categories.adopt(names)
        file_name = item.rel
        if image_names is not None:
            file_name = image_names.get(pairing_key(item.rel))
            if file_name is None:
                raise InputError(f"{item.path}: no image with a matching name in --images")
        for ann in annotations:
            if categories.fixed and ann["category_id"] not in categories.by_id:
                raise InputError(f"{item.path}: label {ann['category_id'] - 1} is not one of the "
                                 f"{len(categories.by_id)} classes ({categories.describe()}); fix --classes or --skip it")
            categories.see(ann["category_id"], f"{item.path}: ")
            ann["id"], ann["image_id"] = next_id, index + 1
            next_id += 1
        yield Record({"id": index + 1, "file_name": file_name, "height": int(height), "width": int(width)}, annotations)


def read_coco(data: dict) -> tuple[Categories, Iterator[Record], int]:
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


def image_sizes(images_root: Path | None, summary: Summary | None = None) -> dict[str, tuple[str, int, int]]:
    """``pairing key → (rel path, height, width)`` for the images under a folder (headers only)."""
    from segtools.io.batch import expand_inputs
    from segtools.io.sniff import sniff

    if images_root is None:
        return {}
    sizes = {}
    for item in expand_inputs([str(images_root)], extensions=(".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")):
        with open(item.path, "rb") as handle:
            head = sniff(handle.read(65536))
        if head.width is None or head.height is None:
            from PIL import Image, UnidentifiedImageError

            try:
                with Image.open(item.path) as image:  # reads the header only
                    head_w, head_h = image.size
            except (OSError, UnidentifiedImageError) as exc:
                raise InputError(f"{item.path}: cannot read the image size ({exc})") from None
        else:
            head_h, head_w = head.height, head.width
        sizes[str(PurePosixPath(item.rel).with_suffix(""))] = (item.rel, int(head_h), int(head_w))
    return sizes


def read_yolo(label_items, categories: Categories, summary: Summary, images: dict[str, tuple[str, int, int]],
              image_size: tuple[int, int] | None = None, strict: bool = False,
              data: bytes | None = None) -> Iterator[Record]:
    """Records from YOLO label files; image sizes from ``images`` (or one ``image_size``);
    ``data``: the bytes of a single label file already read (stdin)."""
    from segtools.formats import yolo as yololib
    from segtools.io.limits import check_size
    from segtools.io.streams import read_bytes

    next_id = 1
    for index, item in enumerate(label_items):
        stem = str(PurePosixPath(item.rel).with_suffix(""))
        if stem in images:
            file_name, height, width = images[stem]
        elif image_size is not None:
            (height, width), file_name = image_size, stem + ".jpg"
        else:
            raise InputError(f"{item.path}: no image '{stem}.*' to read the size from; give --images DIR or --image-size WxH")
        check_size(width, height, f"{item.path}: image {file_name}")
        text = (data if data is not None and len(label_items) == 1 else read_bytes(item.path)).decode("utf-8", "replace")
        rows = yololib.parse_lines(text, item.path)
        annotations = yololib.rows_to_annotations(rows, height, width, index + 1, next_id, len(categories.ids) or None,
                                                  strict, summary, item.path)
        for ann in annotations:
            categories.see(ann["category_id"], f"{item.path}: ")
        next_id += len(annotations)
        yield Record({"id": index + 1, "file_name": file_name, "height": height, "width": width}, annotations)


def read_voc(xml_items, categories: Categories, summary: Summary, data: bytes | None = None) -> Iterator[Record]:
    """Records from VOC XML files; ``data``: the bytes of a single input already read (stdin)."""
    from segtools.formats import boxes as boxlib
    from segtools.formats import voc as voclib
    from segtools.io.streams import read_bytes

    next_id = 1
    for index, item in enumerate(xml_items):
        ann = voclib.parse(data if data is not None and len(xml_items) == 1 else read_bytes(item.path), item.path)
        annotations = []
        for obj in ann.objects:
            box = boxlib.voc_to_coco(obj.box)[0]
            annotations.append({"id": next_id, "image_id": index + 1, "category_id": categories.id_of_name(obj.name, f"{item.path}: "),
                                "segmentation": [], "area": float(box[2] * box[3]), "bbox": [float(v) for v in box],
                                "iscrowd": 0})
            summary.add("VOC 'difficult' flags dropped", int(obj.difficult), lossy=True)
            next_id += 1
        yield Record({"id": index + 1, "file_name": ann.filename or item.rel, "height": ann.height, "width": ann.width}, annotations)


def read_labelme(json_items, categories: Categories, summary: Summary, strict: bool = False,
                 data: dict | None = None) -> Iterator[Record]:
    """Records from labelme files; ``data``: the parsed document of a single input already
    read (stdin can be read only once)."""
    from segtools.formats import labelme as labelmelib
    from segtools.formats import polygons as polylib

    next_id = 1
    for index, item in enumerate(json_items):
        document = data if data is not None and len(json_items) == 1 else labelmelib.load(item.path)
        (height, width), objects = labelmelib.objects(document, item.path, summary, strict=strict)
        annotations = []
        for obj in objects:
            annotations.append({"id": next_id, "image_id": index + 1, "category_id": categories.id_of_name(obj.label, f"{item.path}: "),
                                "segmentation": [polylib.flat(p, 3) for p in obj.polygons],
                                "area": obj.area, "bbox": obj.bbox, "iscrowd": 0})
            next_id += 1
        file_name = document.get("imagePath") or str(PurePosixPath(item.rel).with_suffix(".jpg"))
        yield Record({"id": index + 1, "file_name": file_name, "height": height, "width": width}, annotations)


# ---------------------------------------------------------------- writers


def _reencode(record: Record, mode: str, epsilon: float, summary: Summary) -> None:
    """Polygons → RLE for ``coco-rle``; RLE → polygons for ``coco`` (counted)."""
    from segtools.formats import rle as rlelib

    h, w = int(record.image["height"]), int(record.image["width"])
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


def _stem_path(root: Path, file_name: str, extension: str) -> Path:
    """The output for the image ``file_name`` under ``root`` (:func:`paths.output_name`)."""
    from segtools.formats.paths import output_name

    return output_name(root, file_name, extension, "file_name")


def write_yolo(records: Iterable[Record], categories: Categories, out_dir, summary: Summary, segments: bool,
               holes: str = "fill", epsilon: float = 0.0, strict: bool = False, images_root: Path | None = None,
               tick: Tick | None = None) -> None:
    """``images/``, ``labels/`` and ``data.yaml`` under ``out_dir``."""
    from segtools.formats import yolo as yololib
    from segtools.io.batch import check_output_dir
    from segtools.io.streams import write_bytes

    root = check_output_dir(out_dir)
    for i, record in enumerate(records):
        image = record.image
        h, w = int(image["height"]), int(image["width"])
        label_of = categories.label_of
        lines = yololib.annotation_lines(record.annotations, h, w, label_of, segments, holes, epsilon, strict, summary,
                                         f"{image.get('file_name')}: ")
        source = None
        if images_root is not None:  # checked before this image's label is written
            from segtools.formats.paths import source_in

            source = source_in(images_root, image["file_name"], f"image {image.get('id')}: 'file_name'")
        write_bytes(_stem_path(root / "labels", image["file_name"], ".txt"), ("\n".join(lines) + "\n" if lines else "").encode())
        if source is not None and source.is_file():
            target = _stem_path(root / "images", image["file_name"], source.suffix)
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                try:
                    os.link(source, target)
                except OSError:
                    shutil.copyfile(source, target)
        elif source is not None:
            summary.add("images not found under --images (labels written without them)", lossy=True)
        tick and tick(i)
    names = categories.names
    write_bytes(root / "data.yaml", yololib.data_yaml(names, path=str(root.resolve())).encode())


def write_voc(records: Iterable[Record], categories: Categories, out_dir, summary: Summary, tick: Tick | None = None) -> None:
    """``Annotations/<name>.xml`` (boxes) under ``out_dir``."""
    from segtools.formats import voc as voclib
    from segtools.io.batch import check_output_dir
    from segtools.io.streams import write_bytes

    root = check_output_dir(out_dir)
    for i, record in enumerate(records):
        masks = sum(1 for a in record.annotations if a.get("segmentation"))
        summary.add("masks/polygons reduced to boxes (VOC XML)", masks, lossy=True)
        xml = voclib.to_xml(voclib.from_coco(record.image, record.annotations, categories.by_id))
        write_bytes(_stem_path(root / "Annotations", record.image["file_name"], ".xml"), xml.encode())
        tick and tick(i)


def write_masks(records: Iterable[Record], categories: Categories, output, summary: Summary, fill: int = 255,
                single: bool = False, allow_overwrite: bool = False, tick: Tick | None = None) -> int:
    """Label masks (PNG, class names in the metadata); one to ``output`` when ``single``."""
    from segtools.io.batch import check_output_dir
    from segtools.io.masks import write_label_mask
    from segtools.io.meta import ClassMeta

    root = None if single else check_output_dir(output) if output not in (None, "-") else None
    if not single and root is None:
        raise OutputError("several images: give -o DIR for the masks (or --image NAME to pick one)")
    written = 0
    for i, record in enumerate(records):
        h, w = int(record.image["height"]), int(record.image["width"])
        # categories found while reading (labelme, VOC) only ever append: earlier labels stay
        meta = ClassMeta(names=tuple(categories.names), ignore_index=fill)
        labels = cocolib.annotations_to_labels(record.annotations, h, w, categories.label_of, fill, summary,
                                               f"{record.image.get('file_name')}: ")
        target = output if single else _stem_path(root, record.image["file_name"], ".png")
        write_label_mask(labels, target, meta, allow_overwrite)
        written += 1
        tick and tick(i)
    return written
