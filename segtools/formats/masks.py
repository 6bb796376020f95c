"""Label masks as a source and a target: masks → records (one annotation per class part, or
per instance id), records → masks, and per-mask value maps (Cityscapes ids, colours).

How a mask's values are read — classes, instance ids or Cityscapes instanceIds — is
:func:`segtools.formats.instances.mask_kind`'s decision.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

from segtools.errors import InputError, OutputError
from segtools.formats import Summary, merge_counts
from segtools.formats import coco as cocolib
from segtools.formats.records import Categories, Record, Tick, stem_path


@dataclass(frozen=True)
class MaskReading:
    """How label masks become annotations (picklable: it travels to ``--jobs`` workers).

    ``colours``: class metadata whose palette reads RGB colour masks. ``skip``: labels not
    annotated. ``mode``: ``polygon`` or ``rle``. ``epsilon``: outline simplification in
    pixels. ``holes``: ``bridge`` or ``fill``. ``per_component``: one annotation per
    connected component (else one per class). ``skip_own_ignore``: also leave out each
    mask's own ignore index (from its metadata). ``interpret``: ``auto`` (from the metadata
    and the file), ``semantic``, ``instance`` or ``cityscapes`` (see
    :mod:`segtools.formats.instances`).
    """

    colours: Any = None
    skip: tuple[int, ...] = (255,)
    mode: str = "polygon"
    epsilon: float = 0.0
    holes: str = "bridge"
    per_component: bool = True
    skip_own_ignore: bool = False
    interpret: str = "auto"


def _mask_worker(path: str, reading: MaskReading, name: str = ""
                 ) -> tuple[tuple[int, int], list[dict], dict, set, tuple | None, int | None, str]:
    colours, skip, mode, epsilon, holes = reading.colours, reading.skip, reading.mode, reading.epsilon, reading.holes
    per_component, skip_own_ignore, interpret = reading.per_component, reading.skip_own_ignore, reading.interpret
    from segtools.formats import instances as instlib
    from segtools.io.masks import read_label_mask

    if interpret in ("mots", "kitti", "ade20k"):  # class and instance packed in one value
        from segtools.formats import instance_codes

        return instance_codes.annotate(path, reading, name)
    from segtools.io.remote import is_url

    if isinstance(path, str) and is_url(path):  # an object on a store: one GET, decoded and sniffed from its bytes
        from segtools.io.streams import read_bytes

        path, name = read_bytes(path), name or path
    mask = read_label_mask(path, colours, name=name or None)  # stdin bytes are named by their input
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


def read_masks(items, categories: Categories, summary: Summary, reading: MaskReading = MaskReading(), *,
               image_names: dict[str, str] | None = None, jobs: int = 1, tick: Tick | None = None,
               data: bytes | None = None) -> Iterator[Record]:
    """Records from label masks, read as ``reading`` says (streamed through ``pmap``: at most
    2·jobs masks in flight).

    ``data``: the bytes of a single mask already read (stdin), used instead of its path. With
    ``reading.skip_own_ignore`` the first own ignore index seen is recorded as
    ``categories.unlabelled``.
    """
    from segtools.io.batch import pairing_key
    from segtools.io.parallel import pmap

    skip, skip_own_ignore = reading.skip, reading.skip_own_ignore
    work = functools.partial(_mask_worker, reading=reading)
    next_id = 1
    paths = [data] if data is not None and len(items) == 1 else [item.path for item in items]
    if data is not None and len(items) == 1:
        work = functools.partial(work, name=items[0].path)
    for index, (item, result) in enumerate(zip(items, pmap(work, paths, jobs, on_done=tick))):
        (height, width), annotations, counts, lossy, names, own_ignore, kind = result
        merge_counts(summary, counts, lossy)
        if kind == "instance-without-classes":
            if categories.fixed and len(categories.by_id) > 1:
                raise InputError(f"{item.path}: an instance mask without a per-instance class list; give classes "
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
                raise InputError(f"{item.path}: no photo with a matching name in the images folder")
        for ann in annotations:
            if categories.fixed and ann["category_id"] not in categories.by_id:
                raise InputError(f"{item.path}: label {ann['category_id'] - 1} is not one of the "
                                 f"{len(categories.by_id)} classes ({categories.describe()}); fix the classes or skip it")
            categories.see(ann["category_id"], f"{item.path}: ")
            ann["id"], ann["image_id"] = next_id, index + 1
            next_id += 1
        yield Record({"id": index + 1, "file_name": file_name, "height": int(height), "width": int(width)}, annotations)


def write_masks(records: Iterable[Record], categories: Categories, output, summary: Summary, fill: int = 255,
                single: bool = False, allow_overwrite: bool = False, tick: Tick | None = None) -> int:
    """Label masks (PNG, class names in the metadata); one to ``output`` when ``single``."""
    from segtools.io.batch import check_output_dir
    from segtools.io.masks import write_label_mask
    from segtools.io.meta import ClassMeta

    root = None if single else check_output_dir(output) if output not in (None, "-") else None
    if not single and root is None:
        raise OutputError("several images: give an output folder for the masks (or pick one image)")
    written = 0
    for i, record in enumerate(records):
        h, w = int(record.image["height"]), int(record.image["width"])
        # categories found while reading (labelme, VOC) only ever append: earlier labels stay
        meta = ClassMeta(names=tuple(categories.names), ignore_index=fill_ignore(fill, categories.names, summary))
        labels = cocolib.annotations_to_labels(record.annotations, h, w, categories.label_of, fill, summary,
                                               f"{record.image.get('file_name')}: ")
        target = output if single else stem_path(root, record.image["file_name"], ".png")
        write_label_mask(labels, target, meta, allow_overwrite)
        written += 1
        tick and tick(i)
    return written


def fill_ignore(fill: int, names: Sequence[str], summary: Summary | None = None) -> int | None:
    """The ignore index of masks whose unannotated pixels get ``fill``.

    ``fill`` itself, unless it is one of the classes (``--fill 0`` for a background class):
    then those pixels *are* that class, the ignore index stays 255 (none when 255 is a class
    too), and the choice is said once per mask in ``summary``.

    >>> fill_ignore(255, ["bg", "car"]), fill_ignore(0, ["bg", "car"]), fill_ignore(0, ["c"] * 300)
    (255, 255, None)
    """
    if fill >= len(names):
        return fill
    ignore = 255 if len(names) <= 255 else None
    if summary is not None:
        summary.add(f"masks whose unannotated pixels are class {fill} {str(names[fill])[:40]!r} "
                    f"(fill is a class: the ignore index is {ignore if ignore is not None else 'none'})")
    return ignore


VALUE_MAPS = ("colour", "trainids", "labelids")


def map_values(items, targets: Sequence, to: str, summary: Summary, colours=None, palette=None,
               allow_overwrite: bool = False, data: bytes | None = None, tick: Tick | None = None) -> None:
    """Per-mask value maps, ``items[i]`` → ``targets[i]`` (None = stdout).

    ``to``: ``trainids`` (Cityscapes labelIds → trainIds), ``labelids`` (the way back,
    trainId 255 → labelId 0, counted as lossy) or ``colour`` (RGB through ``palette``, a
    ``ClassMeta`` with a palette, else each mask's own). ``colours``: the colour→class map
    of RGB input masks. ``data``: the bytes of a single mask already read (stdin).
    """
    import numpy as np

    from segtools.formats import cityscapes
    from segtools.io.colour import labels_to_colours
    from segtools.io.images import write_image
    from segtools.io.masks import read_label_mask, write_label_mask
    from segtools.io.meta import ClassMeta, load_classes

    if to not in VALUE_MAPS:
        raise ValueError(f"to must be one of {', '.join(VALUE_MAPS)}, not {to!r}")
    for i, (item, target) in enumerate(zip(items, targets)):
        mask = read_label_mask(data if data is not None and len(items) == 1 else item.path, colours, name=item.path)
        if to == "trainids":
            write_label_mask(cityscapes.label_to_train(mask.labels), target, load_classes("cityscapes"), allow_overwrite)
        elif to == "labelids":
            labels = cityscapes.train_to_label(mask.labels)
            summary.add("trainId 255 pixels written as labelId 0 'unlabeled'", int((mask.labels == 255).sum() > 0),
                        lossy=True)
            write_label_mask(labels, target, ClassMeta(ignore_index=0), allow_overwrite)
        else:
            meta = palette if palette is not None else mask.meta
            if meta is None or meta.palette is None:
                raise InputError(f"{item.path}: the mask carries no palette; give classes or a palette")
            write_image(labels_to_colours(mask.labels, meta.palette, void_of=meta).astype(np.uint8), target,
                        allow_overwrite)
        tick and tick(i)


def colour_masks_to_labels(items, output, single: bool, colours, summary: Summary, names=None,
                           allow_overwrite: bool = False, data: bytes | None = None, tick: Tick | None = None) -> None:
    """RGB colour masks → label masks through ``colours`` (a ``ClassMeta`` with a palette),
    keeping the palette and the ignore index in the metadata so the way back (``colour``)
    needs nothing more; ``names``: class names to write instead of the palette's."""
    from segtools.io.batch import check_output_dir
    from segtools.io.masks import read_label_mask, write_label_mask

    root = None if single else check_output_dir(output) if output not in (None, "-") else None
    if not single and root is None:
        raise OutputError("several masks: give an output folder")
    meta = colours.with_(names=tuple(names)) if names else colours
    for i, item in enumerate(items):
        mask = read_label_mask(data if data is not None and len(items) == 1 else item.path, colours, name=item.path)
        own = mask.meta if mask.meta is not None and mask.meta is not colours else meta
        summary.add("colour masks read through the palette", int(mask.meta is colours))
        target = output if single else stem_path(root, item.rel, ".png")
        write_label_mask(mask.labels, None if target == "-" else target, own, allow_overwrite)
        tick and tick(i)
