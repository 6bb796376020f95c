"""The reader of each source format: inputs + :class:`ConvertOptions` → one :class:`Dataset`.

Each reader finds its files, its categories and its image names or sizes, and hands out a
lazy record stream built on its format module's reader. :data:`READERS` maps the format
names :func:`segtools.formats.registry.detect` returns to them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

from segtools.errors import InputError, UsageError
from segtools.formats import Summary, cityscapes_polygons, cvat, results_dataset, sa1b
from segtools.formats.records import MASK_SOURCES, Categories, ConvertOptions, Dataset, image_names, image_sizes, pair_name

Reader = Callable[[Sequence[str], object, ConvertOptions, Summary], Dataset]


def _meta(options: ConvertOptions):
    from segtools.io.meta import load_classes

    spec = options.classes or options.palette
    return load_classes(spec) if spec else None


def _categories(meta) -> Categories:
    return Categories(names=meta.names) if meta is not None and meta.names else Categories()


def _images_root(options: ConvertOptions) -> Path | None:
    if options.images is None:
        return None
    root = Path(options.images)
    if not root.is_dir():
        raise InputError(f"{options.images}: no such folder of images")
    return root


def _skip_label(meta, spec: str) -> int:
    if meta is not None:
        return meta.class_index(spec)
    if not spec.isdigit():
        raise UsageError(f"skip {spec!r}: a class name needs the class names (classes); give a label value otherwise")
    return int(spec)


def read_mask_files(specs, payload, options: ConvertOptions, summary: Summary) -> Dataset:
    """Label masks, instance-id masks or Cityscapes instanceIds (``options.source``)."""
    from segtools.formats import masks
    from segtools.io.batch import expand_inputs

    meta = _meta(options)
    categories = _categories(meta)
    data = payload if isinstance(payload, bytes) else None
    items = expand_inputs(specs, extensions=(".png", ".npy")) if data is None else expand_inputs(specs)
    from segtools.formats import cityscapes  # a gtFine folder: one of each frame's four PNGs

    items, city_names, city_kind = cityscapes.pick_frame_files(items, options.source, summary)
    from segtools.formats import instance_codes  # MOTS, KITTI, ADE20K _seg.png

    items, code_kind = instance_codes.pick_files(items, options.source, summary)
    items = options.sharded(items)
    if city_names and meta is None:
        categories = Categories(names=city_names)
    ignore = meta.ignore_index if meta is not None else 255
    skip = [_skip_label(meta, s) for s in options.skip] if options.skip else ([ignore] if ignore is not None else [])
    images_root = _images_root(options)
    names = image_names(images_root)
    if city_kind is not None and names is None:
        names = cityscapes.photo_names(items)
    colours = meta if options.palette else None
    own_void = not options.skip and meta is None  # the masks' own metadata decides what is void
    reading = masks.MaskReading(
        colours, tuple(skip), "rle" if options.rle else "polygon", options.epsilon, options.holes,
        not options.per_class, skip_own_ignore=own_void,
        interpret=city_kind or code_kind or MASK_SOURCES.get(options.source, "auto"))
    records = lambda tick: masks.read_masks(  # noqa: E731
        items, categories, summary, reading, image_names=names, jobs=options.jobs, tick=tick, data=data)
    unlabelled = skip[0] if len(skip) == 1 and not own_void else None
    return Dataset("mask", len(items), categories, records, ticks_itself=True, fill=options.fill,
                   unlabelled=unlabelled, traced=True, images_root=images_root, items=items, specs=specs,
                   payload=data)


def read_coco_document(specs, payload, options: ConvertOptions, summary: Summary, rle: bool = False) -> Dataset:
    """A parsed COCO instances document, or (``rle``) a bare RLE or a list of them, as one image."""
    from segtools.formats import coco, coco_dataset, coco_layouts

    images_root = _images_root(options)
    if payload is None and not rle and os.path.isdir(specs[0]):  # a Roboflow or COCO export folder
        data, photos = coco_layouts.combined(Path(specs[0]), summary)
        images_root = photos if images_root is None else images_root
    else:
        data = coco_dataset.rle_as_coco(payload) if rle else payload
        coco.check(data, specs[0])
        data = data if rle else coco_layouts.drop_placeholder(data, summary)
    if options.image is not None:
        data = coco_dataset.pick_image(data, options.image)
    categories, records, total = coco_dataset.read_coco(data)
    fill = coco_dataset.unlabelled_value(data) if options.fill is None else options.fill
    return Dataset("coco", total, categories, lambda tick: records, fill=fill, unlabelled=fill,
                   images_root=images_root, specs=specs, document=data)


def read_rle_document(specs, payload, options: ConvertOptions, summary: Summary) -> Dataset:
    """A bare RLE ``{"size", "counts"}`` or a list of them: one image, category 1 'object'."""
    return read_coco_document(specs, payload, options, summary, rle=True)


def read_coco_stream(specs, payload, options: ConvertOptions, summary: Summary) -> Dataset:
    """A segtools-written COCO file, read line by line."""
    from segtools.formats import coco_dataset

    categories, records, total, header = coco_dataset.read_coco_streamed(specs[0])
    if options.image is not None:
        wanted = coco_dataset.pick_image({"images": header["images"], "annotations": []}, options.image)["images"][0]
        records = (r for r in records if r.image is wanted or r.image == wanted)
        total = 1
    fill = coco_dataset.unlabelled_value(header) if options.fill is None else options.fill
    return Dataset("coco", total, categories, lambda tick: records, fill=fill, unlabelled=fill,
                   images_root=_images_root(options), specs=specs)


def read_yolo_labels(specs, payload, options: ConvertOptions, summary: Summary) -> Dataset:
    """A YOLO dataset folder (Ultralytics, Roboflow or Darknet layout) or label files."""
    from segtools.formats import yolo, yolo_layouts
    from segtools.io.batch import expand_inputs

    meta = _meta(options)
    categories = _categories(meta)
    root = Path(specs[0]) if os.path.isdir(specs[0]) else None
    images_root = _images_root(options)
    if root is not None:
        found = yolo_layouts.layout(root, images_root)
        items, sizes = found.items, found.sizes
        if images_root is None and found.kind == "ultralytics" and (root / "images").is_dir():
            images_root = root / "images"
        elif images_root is None and found.kind in ("roboflow", "darknet"):
            images_root = root  # file names are relative to the dataset root
    else:
        found = None
        items = [it for it in expand_inputs(specs, extensions=(".txt",))
                 if Path(it.path).name not in yolo_layouts.NAME_FILES]
        sizes = image_sizes(images_root)
    items = options.sharded(items)
    yaml_path = yolo.find_yaml(root) if root is not None else None
    if meta is None and yaml_path is not None:
        categories = Categories(names=yolo.load_data_yaml(yaml_path)["names"])
    elif meta is None and found is not None and found.names is not None:
        categories = Categories(names=found.names)
        summary.add(f"class names from {Path(found.names_from).name}")
    if options.image is not None and os.path.isfile(options.image):
        picked = Path(options.image)
        sizes = {k: v for k, v in image_sizes(picked.parent).items() if v[0] == picked.name}
        if len(items) == 1:
            sizes = {str(Path(items[0].rel).with_suffix("")): v for v in sizes.values()}
    data = payload if isinstance(payload, bytes) and len(items) == 1 else None
    records = lambda tick: yolo.read_yolo(items, categories, summary, sizes, options.image_size,  # noqa: E731
                                          options.strict, data)
    return Dataset("yolo", len(items), categories, records, fill=options.fill, unlabelled=options.fill,
                   images_root=images_root, items=items, specs=specs)


def read_voc_objects(specs, payload, options: ConvertOptions, summary: Summary) -> Dataset:
    """Pascal VOC ``SegmentationObject`` + ``SegmentationClass`` pairs."""
    from segtools.formats import voc
    from segtools.io.meta import load_classes

    palette = options.palette
    if palette is None and options.classes is None and (found := voc.labelmap_beside(specs)) is not None:
        palette = str(found)  # CVAT's "Segmentation mask 1.1" export: colours and names in labelmap.txt
        summary.add(f"class names and colours from {found.name}")
    meta = load_classes(palette) if palette and not options.classes else _meta(options)
    pairs = options.sharded(voc.segmentation_pairs(specs), key=pair_name)
    categories = _categories(meta) if meta is not None else Categories(names=voc.class_names())
    names = image_names(_images_root(options))
    records = lambda tick: voc.read_segmentation(  # noqa: E731
        pairs, categories, summary, "rle" if options.rle else "polygon", options.epsilon, options.holes, names, tick,
        load_classes(palette, "--palette") if palette else None)
    return Dataset("voc-seg", len(pairs), categories, records, ticks_itself=True, fill=options.fill, traced=True,
                   images_root=_images_root(options), specs=specs)


def read_voc_xml(specs, payload, options: ConvertOptions, summary: Summary) -> Dataset:
    """Pascal VOC XML box annotations (1-based devkit boxes, or 0-based: ``voc_origin``)."""
    from segtools.formats import voc
    from segtools.io.batch import expand_inputs

    categories = _categories(_meta(options))
    items = options.sharded(expand_inputs(specs, extensions=(".xml",)))
    data = payload if isinstance(payload, bytes) else None
    images_root = _images_root(options)
    sizes = image_sizes(images_root)
    records = lambda tick: voc.read_voc(items, categories, summary, data, options.voc_origin, sizes,  # noqa: E731
                                        options.image_size, options.strict, tuple(options.skip))
    return Dataset("voc", len(items), categories, records, fill=options.fill, unlabelled=options.fill,
                   images_root=images_root, items=items, specs=specs)


def read_labelme_files(specs, payload, options: ConvertOptions, summary: Summary) -> Dataset:
    """labelme JSON files."""
    from segtools.formats import labelme
    from segtools.io.batch import expand_inputs

    meta = _meta(options)
    items = expand_inputs(specs, extensions=(".json",))
    data = payload if isinstance(payload, dict) else None
    skip = tuple(options.skip)
    fill = options.fill
    if meta is not None and meta.names:  # labelme's own labels.txt starts with __ignore__, _background_
        names = [n for n in meta.names if n != "__ignore__"]
        categories = Categories(names=names)
        if fill is None and "_background_" in names:  # as labelme2voc: uncovered pixels are background
            fill = names.index("_background_")
    else:  # one class list for the batch, fixed before any mask is written
        categories = Categories(names=labelme.scan_labels(items, data, skip))
    items = options.sharded(items)  # after the scan: every shard numbers the classes alike
    records = lambda tick: labelme.read_labelme(items, categories, summary, options.strict, data, skip)  # noqa: E731
    return Dataset("labelme", len(items), categories, records, fill=fill, unlabelled=fill,
                   images_root=_images_root(options), items=items, specs=specs)


def read_panoptic(specs, payload, options: ConvertOptions, summary: Summary) -> Dataset:
    """A COCO panoptic JSON (its PNGs are read by the mask writer, the only target)."""
    return Dataset("panoptic", len(payload.get("annotations") or []) if isinstance(payload, dict) else 0,
                   images_root=_images_root(options), specs=specs, document=payload)


READERS: dict[str, Reader] = {
    "mask": read_mask_files, "coco": read_coco_document, "rle": read_rle_document, "coco-stream": read_coco_stream,
    "yolo": read_yolo_labels, "voc-seg": read_voc_objects, "voc": read_voc_xml, "labelme": read_labelme_files,
    "panoptic": read_panoptic, "coco-results": results_dataset.read_results_source,
    "cvat": cvat.read_cvat_source, "cityscapes-polygons": cityscapes_polygons.read_polygons_source,
    "sa1b": sa1b.read_sa1b_source,
}
