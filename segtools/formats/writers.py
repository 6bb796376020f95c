"""The writer of each target format: one :class:`Dataset` → files.

Each writer takes ``(dataset, target, output, options, summary, single, tick, targets)``
and calls its format module's writer. :data:`WRITERS` maps the target names to them.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from segtools.errors import UsageError
from segtools.formats import Summary, results_dataset
from segtools.formats.records import ConvertOptions, Dataset, Tick

Writer = Callable[[Dataset, str, Optional[str], ConvertOptions, Summary, bool, Optional[Tick], Sequence], None]


def _needs_records(dataset: Dataset, target: str) -> None:
    if dataset.format == "panoptic":
        raise UsageError("COCO panoptic converts to masks here (to mask): semantic labels, plus "
                         "instance numbers under instances/")
    if dataset.records is None:
        raise UsageError(f"cannot convert {dataset.format} files to {target}")


def _stream(dataset: Dataset, tick: Optional[Tick]):
    """(records, the writer's tick): a reader that reports progress itself gets the callback."""
    if dataset.ticks_itself:
        return dataset.records(tick), None
    return dataset.records(None), tick


def _folder(output: Optional[str], what: str) -> str:
    if not output or output == "-":
        raise UsageError(f"{what}: give an output folder")
    return output


def write_coco_target(dataset, target, output, options, summary, single, tick, targets) -> None:
    from segtools.formats import coco_dataset

    _needs_records(dataset, target)
    records, tick = _stream(dataset, tick)
    mode = None if dataset.traced else ("rle" if target == "coco-rle" else "polygon")
    coco_dataset.write_coco(records, dataset.categories, output, summary, mode, options.epsilon, options.overwrite,
                            tick, dataset.unlabelled)


def write_yolo_target(dataset, target, output, options, summary, single, tick, targets) -> None:
    from segtools.formats import coco_dataset, yolo

    _needs_records(dataset, target)
    out_dir = _folder(output, f"{target} writes a dataset folder (images/, labels/, data.yaml)")
    if dataset.document is not None and dataset.images_root is not None:  # before anything is written
        coco_dataset.check_photo_names(dataset.document, dataset.images_root, dataset.specs[0])
    records, tick = _stream(dataset, tick)
    if dataset.format == "coco" and target == "yolo":  # boxes: a missing or stale bbox from the segmentation
        records = (coco_dataset.refresh_geometry(r, summary, keep_close_boxes=True) for r in records)
    yolo.write_yolo(records, dataset.categories, out_dir, summary, target == "yolo-seg", options.holes,
                    options.epsilon, options.strict, dataset.images_root, tick, options.split_name,
                    tuple(options.split or ()))


def write_voc_target(dataset, target, output, options, summary, single, tick, targets) -> None:
    from segtools.formats import coco_dataset, voc

    _needs_records(dataset, target)
    out_dir = _folder(output, "voc writes Annotations/*.xml")
    records, tick = _stream(dataset, tick)
    if dataset.format == "coco":
        records = (coco_dataset.refresh_geometry(r, summary, keep_close_boxes=True) for r in records)
    voc.write_voc(records, dataset.categories, out_dir, summary, tick, 1 if options.voc_origin is None else options.voc_origin,
                  options.strict)


def write_mask_target(dataset, target, output, options, summary, single, tick, targets) -> None:
    from segtools.formats import coco_panoptic, masks
    from segtools.io.batch import check_output_dir

    if dataset.format == "panoptic":
        out_dir = check_output_dir(_folder(output, "masks from COCO panoptic are a folder"))
        png_root = coco_panoptic.png_folder(dataset.specs[0], dataset.images_root)
        coco_panoptic.dataset_to_masks(dataset.document, png_root, out_dir, summary, options.overwrite, tick,
                                       options.strict)
        return
    if dataset.format == "mask" and options.palette and dataset.items:  # colour masks: a value map, no tracing
        from segtools.io.meta import load_classes

        names = load_classes(options.classes).names if options.classes else None
        masks.colour_masks_to_labels(dataset.items, output, single, load_classes(options.palette, "--palette"), summary,
                                     names, options.overwrite, dataset.payload, tick)
        return
    _needs_records(dataset, target)
    records, tick = _stream(dataset, tick)
    fill = 255 if dataset.fill is None else dataset.fill
    masks.write_masks(records, dataset.categories, output, summary, fill, single, options.overwrite, tick)


def write_instances_target(dataset, target, output, options, summary, single, tick, targets) -> None:
    from segtools.formats.instances import write_instances

    _needs_records(dataset, target)
    records, tick = _stream(dataset, tick)
    write_instances(records, dataset.categories, output, summary, single, options.overwrite, tick)


def write_panoptic_target(dataset, target, output, options, summary, single, tick, targets) -> None:
    from segtools.formats import coco_panoptic
    from segtools.formats.records import image_names, pair_name
    from segtools.io.meta import load_classes

    if dataset.format != "mask" or "-" in dataset.specs:
        raise UsageError("panoptic is written from semantic mask files (plus instance masks); "
                         f"not {'stdin' if '-' in dataset.specs else dataset.format + ' input'}")
    if not output or output == "-":
        raise UsageError("panoptic writes a JSON file and a PNG folder beside it: give an output NAME.json")
    pairs = options.sharded(coco_panoptic.mask_pairs(dataset.specs, options.instance_masks), key=pair_name)
    meta = load_classes(options.classes) if options.classes else None
    names = image_names(dataset.images_root)
    coco_panoptic.masks_to_dataset(pairs, output, summary, meta.names if meta is not None else None, options.things,
                                   names, options.overwrite, tick)


def write_value_map(dataset, target, output, options, summary, single, tick, targets) -> None:
    from segtools.formats import masks
    from segtools.io.meta import load_classes

    if dataset.format != "mask":
        raise UsageError(f"{target} maps the values of label masks, not of {dataset.format} files")
    colours = load_classes(options.palette) if options.palette and target != "colour" else None
    palette = load_classes(options.classes or options.palette) if options.classes or options.palette else None
    masks.map_values(dataset.items, targets, target, summary, colours, palette, options.overwrite, dataset.payload,
                     tick)


WRITERS: dict[str, Writer] = {
    "coco": write_coco_target, "coco-rle": write_coco_target, "yolo": write_yolo_target,
    "yolo-seg": write_yolo_target, "voc": write_voc_target, "mask": write_mask_target,
    "instances": write_instances_target, "panoptic": write_panoptic_target, "colour": write_value_map,
    "trainids": write_value_map, "labelids": write_value_map, "coco-results": results_dataset.write_results_target,
}
