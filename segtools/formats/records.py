"""The one internal dataset representation every reader yields and every writer takes.

A :class:`Record` is one image entry (``id``, ``file_name``, ``height``, ``width``) with its
COCO annotations (``category_id``, ``segmentation`` polygons or RLE or ``[]`` for a box,
``bbox``, ``area``, ``iscrowd``); :class:`Categories` are the dataset's classes. Readers
stream records one image at a time and writers consume them one at a time, so converting a
folder of masks never holds more than a few masks (the ``jobs`` window) in memory. The
readers and writers live with their formats; :mod:`segtools.formats.registry` names them,
with the :class:`ConvertOptions` a conversion is told and the :class:`Dataset` it carries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator, Optional, Sequence

from segtools.errors import InputError, UsageError
from segtools.io.limits import check_class_count

Tick = Callable[[int], None]
PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class Record:
    image: dict
    annotations: list[dict] = field(default_factory=list)


class Categories:
    """COCO categories by id; label = rank of the id. Unnamed ids get ``class_<label>``.

    >>> cats = Categories(entries=[{"id": 3, "name": "car"}, {"id": 1, "name": "person"}])
    >>> cats.names, cats.label_of
    (['person', 'car'], {1: 0, 3: 1})
    """

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


def stem_path(root: Path, file_name: str, extension: str) -> Path:
    """The output for the image ``file_name`` under ``root`` (:func:`paths.output_name`)."""
    from segtools.formats.paths import output_name

    return output_name(root, file_name, extension, "file_name")


def image_sizes(images_root: Path | None) -> dict[str, tuple[str, int, int]]:
    """``relative stem → (rel path, height, width)`` for the photos under a folder (headers only)."""
    from segtools.io.batch import expand_inputs
    from segtools.io.sniff import sniff

    if images_root is None:
        return {}
    sizes = {}
    for item in expand_inputs([str(images_root)], extensions=PHOTO_EXTENSIONS):
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


def image_names(images_root: Path | None) -> dict[str, str] | None:
    """``pairing key → rel path`` of the photos under a folder (None without one): how
    masks find the name of their photo."""
    from segtools.io.batch import Item, pairing_key, without_labels

    if images_root is None:
        return None
    # photos and their masks in one folder (Roboflow): the photos
    photos = without_labels([Item(rel, rel) for rel, _, _ in image_sizes(images_root).values()])
    return {pairing_key(item.rel): item.rel for item in photos}


# ---------------------------------------------------------------- what a conversion carries

TARGETS = ("mask", "instances", "coco", "coco-rle", "coco-results", "panoptic", "yolo", "yolo-seg", "voc", "colour",
           "trainids", "labelids")
MASK_SOURCES = {"auto": "auto", "mask": "semantic", "instances": "instance", "cityscapes-instances": "cityscapes",
                "mots": "mots", "kitti": "kitti", "ade20k": "ade20k"}
SOURCES = ("auto", "mask", "instances", "cityscapes-instances", "coco", "coco-results", "yolo", "voc", "voc-seg",
           "labelme", "rle", "panoptic", "cvat", "cityscapes-polygons", "sa1b", "mots", "kitti", "ade20k")
HOLES = ("bridge", "fill")


def pair_name(pair) -> str:
    """The relative name a pair of inputs (semantic + instance mask, VOC object + class mask)
    is sorted and sharded by: its first item's."""
    return pair[0].rel


@dataclass
class ConvertOptions:
    """Everything a conversion may be told besides its inputs, target and output.

    ``images``: folder of the photos (names, sizes; copied into YOLO datasets). ``image``:
    pick one image of a COCO file (path, base name or id). ``image_size``: (height, width)
    of every image when there are no photos. ``classes`` / ``palette``: class metadata (a
    preset or a file). ``epsilon``: outline simplification in pixels. ``holes``: ``bridge``
    or ``fill``. ``per_class``: one annotation per class per image. ``skip``: classes (names
    or labels) not annotated. ``fill``: label of pixels no annotation covers. ``strict``:
    coordinates outside the image are errors. ``instance_masks`` / ``things``: for the
    panoptic target. ``source``: ``--from`` (how mask values are read). ``voc_origin``: VOC
    boxes are 1-based pixel indices (1, the devkit) or 0-based corners (0); None reads it
    from the boxes and writes 1.
    """

    images: Optional[str] = None
    image: Optional[str] = None
    image_size: Optional[tuple[int, int]] = None
    classes: Optional[str] = None
    palette: Optional[str] = None
    epsilon: float = 0.0
    holes: str = "bridge"
    per_class: bool = False
    skip: Sequence[str] = ()
    fill: Optional[int] = None
    strict: bool = False
    instance_masks: Optional[str] = None
    things: Optional[Sequence[str]] = None
    source: str = "auto"
    voc_origin: Optional[int] = None  # VOC box indices from 1 (the devkit) or 0; None: guessed when read
    split: Optional[dict] = None  # {"train": 0.8, "val": 0.2}: write each split in the target's layout
    seed: int = 0  # of the split
    filters: Sequence[str] = ()  # --filter specs (formats.splits.parse_filters)
    split_name: Optional[str] = None  # set while one split is written
    reference: Optional[str] = None  # COCO results input: the ground-truth COCO file they refer to
    rle: bool = False  # trace masks to RLE (the coco-rle target) instead of polygons
    jobs: int = 1
    overwrite: bool = False
    shard: Optional[tuple[int, int]] = None  # (I, N): only images k of the sorted inputs with k mod N = I

    def sharded(self, items: Sequence, key=lambda item: item.rel) -> list:
        """``items`` of this run's ``shard`` (all of them without one), sorted by ``key`` first
        when there is one: :func:`segtools.io.batch.select_shard`."""
        from segtools.io.batch import select_shard

        return select_shard(items, self.shard, key)

    def __post_init__(self) -> None:
        if self.holes not in HOLES:
            raise UsageError(f"holes must be bridge or fill, not {self.holes!r}")
        if self.voc_origin not in (None, 0, 1):
            raise UsageError(f"voc_origin must be 0 or 1, not {self.voc_origin!r}")
        if self.source not in SOURCES:
            raise UsageError(f"source must be one of {', '.join(SOURCES)}, not {self.source!r}")


@dataclass
class Detected:
    """A recognised source format, and what was read while recognising it (stdin is read
    once): the parsed document for JSON kinds, the bytes for masks, VOC XML and YOLO labels."""

    format: str
    payload: object = None


@dataclass
class Dataset:
    """The internal representation every reader yields: categories and records (a stream,
    started with the progress callback when the reader reports progress itself)."""

    format: str
    total: int
    categories: Categories = field(default_factory=lambda: Categories())
    records: Optional[Callable[[Optional[Tick]], Iterator[Record]]] = None
    ticks_itself: bool = False
    fill: Optional[int] = None
    unlabelled: Optional[int] = None
    traced: bool = False  # segmentations were made in the target's form already (masks, VOC objects)
    images_root: Optional[Path] = None
    items: list = field(default_factory=list)
    specs: Sequence[str] = ()
    payload: object = None
    document: Optional[dict] = None
