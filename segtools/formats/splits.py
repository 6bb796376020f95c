"""Dataset work around a conversion: filter, skip, merge several inputs, and split.

* :func:`parse_filters` / :func:`filter_records`: keep annotations by class, area, crowd
  flag, and drop images left without any (``images=annotated``); what is left out is counted.
* :func:`merge`: several datasets as one — categories reconciled by *name* (the union, in
  order of first appearance), images and annotations renumbered, an image named in several
  inputs kept once with the annotations of all.
* :func:`parse_split` / :func:`assign_splits`: ``train=0.8,val=0.2[,test=…]``, seeded,
  stratified by class presence, stable when files are added; :func:`write_split` writes
  each target's own split layout (YOLO ``images/<split>``, ``labels/<split>`` and a
  ``data.yaml`` naming them; one COCO file per split; VOC ``ImageSets/Main/<split>.txt``).

**How images are split.** Each image gets a number in [0, 1) from a hash of ``seed`` and
its file name — nothing else — and belongs to a stratum: the rarest class it holds (fewest
images; ties by class order), or "no annotation". Within a stratum images are ordered by
their number and cut at the fractions (largest remainders). Adding images shifts each cut
by at most one place per added image of that stratum, so images keep their split unless
they sat next to a cut (or the added files change which of their classes is the rarest).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np

from segtools.errors import InputError, UsageError
from segtools.formats import Summary
from segtools.formats.records import Categories, Dataset, Record

SPLIT_NAMES = ("train", "val", "test")
SPLIT_TARGETS = ("yolo", "yolo-seg", "coco", "coco-rle", "voc")
#: Inputs whose ``--skip`` is applied to the records (masks, labelme and VOC XML skip while reading).
SKIPPED_HERE = ("coco", "rle", "yolo", "voc-seg")

# ---------------------------------------------------------------- filters


@dataclass(frozen=True)
class Filters:
    """What ``--filter`` keeps: ``classes`` (names or labels; None = all), ``area`` bounds in
    pixels (inclusive), ``crowd`` (0 or 1; None = both), ``annotated_only`` images."""

    classes: Optional[tuple[str, ...]] = None
    area_min: float = 0.0
    area_max: float = float("inf")
    crowd: Optional[int] = None
    annotated_only: bool = False

    @property
    def active(self) -> bool:
        return self != Filters()


_AREA = re.compile(r"^area\s*(>=|<=|>|<)\s*([0-9.eE+-]+)$")


def parse_filters(specs: Sequence[str]) -> Filters:
    """``class=a,b`` · ``area>=N`` · ``area<=N`` · ``crowd=0|1`` · ``images=annotated``.

    >>> parse_filters(["class=car,person", "area>=50", "crowd=0"])
    Filters(classes=('car', 'person'), area_min=50.0, area_max=inf, crowd=0, annotated_only=False)
    """
    classes, low, high, crowd, annotated = None, 0.0, float("inf"), None, False
    for spec in specs:
        text = spec.strip()
        area = _AREA.match(text)
        key, _, value = text.partition("=")
        if area:
            try:
                number = float(area.group(2))
            except ValueError:
                raise UsageError(f"filter={spec!r}: the area must be a number of pixels") from None
            if area.group(1) in (">=", ">"):
                low = max(low, number + (1e-9 if area.group(1) == ">" else 0.0))
            else:
                high = min(high, number - (1e-9 if area.group(1) == "<" else 0.0))
        elif key.strip() in ("class", "classes") and value.strip():
            classes = tuple(c.strip() for c in value.split(",") if c.strip())
        elif key.strip() == "crowd" and value.strip() in ("0", "1"):
            crowd = int(value)
        elif key.strip() == "images" and value.strip() == "annotated":
            annotated = True
        else:
            raise UsageError(f"filter={spec!r}: give class=NAME[,NAME], area>=PIXELS, area<=PIXELS, crowd=0|1 "
                             "or images=annotated")
    return Filters(classes, low, high, crowd, annotated)


def _category_ids(categories: Categories, wanted: Sequence[str], what: str) -> set[int]:
    """Category ids of class names or labels (label = rank of the id)."""
    ids = set()
    by_label = dict(enumerate(categories.ids))
    for spec in wanted:
        if spec.isdigit() and int(spec) in by_label and spec not in categories.names:
            ids.add(by_label[int(spec)])
            continue
        matches = [cid for cid, name in categories.by_id.items() if name == spec]
        if not matches:
            raise UsageError(f"{what}={spec!r}: no such class (known: {', '.join(categories.names[:12]) or 'none'})")
        ids.update(matches)
    return ids


def filter_records(records: Iterable[Record], categories: Categories, filters: Filters,
                   summary: Summary) -> Iterator[Record]:
    """The records with only the annotations ``filters`` keeps (counted as left out)."""
    keep_ids = _category_ids(categories, filters.classes, "filter") if filters.classes is not None else None
    for record in records:
        kept = []
        for ann in record.annotations:
            area = float(ann.get("area", 0.0) or 0.0)
            if keep_ids is not None and ann.get("category_id") not in keep_ids:
                continue
            if not filters.area_min <= area <= filters.area_max:
                continue
            if filters.crowd is not None and int(bool(ann.get("iscrowd", 0))) != filters.crowd:
                continue
            kept.append(ann)
        summary.add("annotations left out by --filter", len(record.annotations) - len(kept), lossy=True)
        if filters.annotated_only and not kept:
            summary.add("images left out by --filter (no annotation left)", lossy=True)
            continue
        yield Record(record.image, kept)


def skip_records(records: Iterable[Record], categories: Categories, skip: Sequence[str],
                 summary: Summary) -> Iterator[Record]:
    """The records without annotations of the classes ``skip`` (names or labels), counted."""
    ids = _category_ids(categories, skip, "skip")
    for record in records:
        kept = [a for a in record.annotations if a.get("category_id") not in ids]
        summary.add("objects of skipped classes left out", len(record.annotations) - len(kept))
        yield Record(record.image, kept)


def count_keypoints(records: Iterable[Record], summary: Summary) -> Iterator[Record]:
    """Pass records through, counting the COCO keypoints no target here keeps."""
    for record in records:
        with_points = sum(1 for a in record.annotations if a.get("keypoints") and a.get("num_keypoints", 1))
        summary.add("COCO keypoints left out (annotations with keypoints; their masks and boxes kept)", with_points,
                    lossy=True)
        yield record


def prepare(dataset: Dataset, skip: Sequence[str], filters: Filters, summary: Summary) -> Dataset:
    """``dataset`` with the record-level steps a reader does not do itself: ``skip`` for COCO
    and YOLO inputs (the mask, labelme and VOC readers skip while reading) and ``filters``."""
    if dataset.records is None:
        if filters.active:
            raise UsageError(f"filter: {dataset.format} input is not converted through annotations; no --filter here")
        return dataset
    inner = dataset.records
    skips_here = skip and dataset.format in SKIPPED_HERE

    def records(tick):
        stream = inner(tick)
        if skips_here:
            stream = skip_records(stream, dataset.categories, skip, summary)
        if filters.active:
            stream = filter_records(stream, dataset.categories, filters, summary)
        return stream

    dataset.records = records
    return dataset


#: Readers that take their own shard of the files they read (before any file is decoded).
SHARDED_BY_READER = ("mask", "yolo", "voc-seg", "voc", "labelme", "cityscapes-polygons", "sa1b")


def shard(dataset: Dataset, options) -> Dataset:
    """``dataset`` limited to ``options.shard``: the images k of the sorted inputs with
    k mod N = I. Readers of one file per image choose their files themselves; a document
    (COCO, CVAT, COCO results, an RLE) is read whole and its records kept by the sorted rank of
    their ``file_name``; a panoptic JSON keeps its annotations by ``file_name``.
    Categories are the whole input's in every shard where the input names them (a document,
    ``classes``, labelme's scan of the whole batch); masks without names list the labels a
    shard met, named ``class_<label>`` alike in every shard, so shard outputs merge by name."""
    if options.shard is None or dataset.format in SHARDED_BY_READER:
        return dataset
    if dataset.records is None:
        annotations = dataset.document.get("annotations") if isinstance(dataset.document, dict) else None
        if isinstance(annotations, list) and all(isinstance(a, dict) for a in annotations):
            chosen = options.sharded(annotations, key=lambda a: str(a.get("file_name")))
            dataset.document = {**dataset.document, "annotations": chosen}
            dataset.total = len(chosen)
        return dataset
    records = options.sharded(list(dataset.records(None)), key=lambda r: str(r.image.get("file_name")))
    dataset.records, dataset.total, dataset.ticks_itself = (lambda tick: iter(records)), len(records), False
    return dataset


def counting_dropped(dataset: Dataset, target: str, summary: Summary) -> Dataset:
    """``dataset`` counting, as its records are written, what ``target`` cannot hold and no
    writer counts: COCO keypoints outside a COCO target."""
    if dataset.records is None or target in ("coco", "coco-rle", "coco-results"):
        return dataset
    inner = dataset.records
    dataset.records = lambda tick: count_keypoints(inner(tick), summary)
    return dataset


# ---------------------------------------------------------------- merging


def merge(datasets: Sequence[Dataset], summary: Summary, names: Sequence[str] = ()) -> Dataset:
    """One dataset of several: categories by name, ids renumbered (records read here, once)."""
    if not datasets:
        raise UsageError("merge: no inputs")
    categories = Categories()
    images: dict[str, Record] = {}
    for number, dataset in enumerate(datasets):
        if dataset.records is None:
            raise UsageError(f"merge: {dataset.format} input cannot be merged (it is not read as annotations)")
        where = f"{names[number]}: " if number < len(names) else ""
        remap = {cid: categories.id_of_name(name, where) for cid, name in sorted(dataset.categories.by_id.items())}
        for record in dataset.records(None):
            for cid in {a.get("category_id") for a in record.annotations}:  # found while reading
                if cid not in remap:
                    remap[cid] = categories.id_of_name(dataset.categories.by_id[cid], where)
            anns = [{**a, "category_id": remap[a["category_id"]]} for a in record.annotations]
            name = str(record.image.get("file_name"))
            if name in images:
                seen = images[name].image
                if (seen["height"], seen["width"]) != (record.image["height"], record.image["width"]):
                    raise InputError(f"{where}image {name!r} is {record.image['width']}×{record.image['height']}, "
                                     f"but {seen['width']}×{seen['height']} in an earlier input")
                images[name].annotations.extend(anns)
                summary.add("images named in several inputs (kept once, annotations joined)")
            else:
                images[name] = Record(dict(record.image), anns)
    summary.add("categories after merging by name", len(categories.by_id))
    records = list(images.values())
    next_id = 1
    for index, record in enumerate(records, 1):
        record.image["id"] = index
        for ann in record.annotations:
            ann["id"], ann["image_id"] = next_id, index
            next_id += 1
    roots = {d.images_root for d in datasets}
    return Dataset("merged", len(records), categories, lambda tick: iter(records),
                   images_root=roots.pop() if len(roots) == 1 else None)


# ---------------------------------------------------------------- splits


def parse_split(text: str) -> dict[str, float]:
    """``train=0.8,val=0.2`` → ``{"train": 0.8, "val": 0.2}`` (fractions summing to 1;
    percentages ``train=80,val=20`` too).

    >>> parse_split("train=0.8,val=0.1,test=0.1")
    {'train': 0.8, 'val': 0.1, 'test': 0.1}
    """
    fractions: dict[str, float] = {}
    for part in str(text).split(","):
        name, sep, value = part.strip().partition("=")
        name = name.strip().lower()
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if not sep or name not in SPLIT_NAMES or number < 0 or name in fractions:
            raise UsageError(f"split={text!r}: give train=F,val=F[,test=F] with fractions (or percentages) "
                             "summing to 1 (100)")
        fractions[name] = number
    total = sum(fractions.values())
    if abs(total - 100) < 1e-6:
        fractions = {k: v / 100 for k, v in fractions.items()}
    elif abs(total - 1) > 1e-6:
        raise UsageError(f"split={text!r}: the fractions sum to {total:g}, not 1 (or 100)")
    if "train" not in fractions:
        raise UsageError(f"split={text!r}: name a train split")
    return fractions


def _unit(seed: int, name: str) -> float:
    digest = hashlib.sha256(f"{seed}\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _cuts(n: int, fractions: Sequence[float]) -> list[int]:
    """How many of ``n`` go to each split (largest remainders)."""
    exact = np.asarray(fractions, np.float64) * n
    counts = np.floor(exact).astype(int)
    short = n - counts.sum()
    for k in np.argsort(-(exact - counts), kind="stable")[:short]:
        counts[k] += 1
    return counts.tolist()


def assign_splits(records: Sequence[Record], fractions: dict[str, float], seed: int = 0) -> list[str]:
    """The split of each record (see the module doc)."""
    present = [sorted({a["category_id"] for a in r.annotations}) for r in records]
    frequency: dict[int, int] = {}
    for classes in present:
        for cid in classes:
            frequency[cid] = frequency.get(cid, 0) + 1
    strata: dict = {}
    for index, classes in enumerate(present):
        key = min(classes, key=lambda c: (frequency[c], c)) if classes else None
        strata.setdefault(key, []).append(index)
    names, shares = list(fractions), list(fractions.values())
    out = [names[0]] * len(records)
    for members in strata.values():
        members.sort(key=lambda i: (_unit(seed, str(records[i].image.get("file_name"))),
                                    str(records[i].image.get("file_name"))))
        start = 0
        for name, count in zip(names, _cuts(len(members), shares)):
            for i in members[start:start + count]:
                out[i] = name
            start += count
    return out


def split_output(output: str, split: str, target: str) -> str:
    """Where a split goes: COCO ``x.json`` → ``x_train.json``; folder targets keep ``output``."""
    if target in ("coco", "coco-rle"):
        path = Path(output)
        return str(path.with_name(f"{path.stem}_{split}{path.suffix or '.json'}"))
    return output


def write_split(dataset: Dataset, target: str, output: Optional[str], fractions: dict[str, float], seed: int,
                write_one, summary: Summary) -> dict[str, int]:
    """Assign splits and write each through ``write_one(records, split, output)``; returns the
    number of images per split. VOC also gets ``ImageSets/Main/<split>.txt``."""
    from segtools.io.streams import write_bytes

    if target not in SPLIT_TARGETS:
        raise UsageError(f"split: {target} has no split layout (splits are written for {', '.join(SPLIT_TARGETS)})")
    if not output or output == "-":
        raise UsageError("split: give an output (-o) to write the splits under")
    if dataset.records is None:
        raise UsageError(f"split: {dataset.format} input is not converted through annotations")
    records = list(dataset.records(None))
    splits = assign_splits(records, fractions, seed)
    counts = {}
    for name in fractions:
        chosen = [r for r, s in zip(records, splits) if s == name]
        counts[name] = len(chosen)
        summary.add(f"images in the {name} split", len(chosen))
        write_one(chosen, name, split_output(output, name, target))
        if target == "voc":
            stems = [PurePosixPath(str(r.image["file_name"])).with_suffix("").as_posix() for r in chosen]
            write_bytes(Path(output) / "ImageSets" / "Main" / f"{name}.txt",
                        "".join(f"{s}\n" for s in stems).encode())
    return counts
