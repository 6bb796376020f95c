"""``segtools convert``: masks and annotation formats, any to any, counting what is lost."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import typer
from typing_extensions import Annotated

from segtools.cli.common import ClassesOpt, JobsOpt, OutputOpt, OverwriteOpt, PaletteOpt, info

TARGETS = ("mask", "instances", "coco", "coco-rle", "panoptic", "yolo", "yolo-seg", "voc", "colour", "trainids",
           "labelids")
SOURCES = ("auto", "mask", "instances", "cityscapes-instances", "coco", "yolo", "voc", "voc-seg", "labelme", "rle",
           "panoptic")
MASK_SOURCES = {"auto": "auto", "mask": "semantic", "instances": "instance", "cityscapes-instances": "cityscapes"}


def convert(
    inputs: Annotated[Optional[List[str]], typer.Argument(
        help="Masks, a COCO/labelme/panoptic JSON, VOC XML, YOLO labels or a dataset folder; '-' = stdin.",
        show_default=False)] = None,
    to: Annotated[str, typer.Option("--to", "-t", help=f"Target: {', '.join(TARGETS)}.")] = "",
    source: Annotated[str, typer.Option("--from", help=f"Source format (default: recognised): {', '.join(SOURCES)}.")] = "auto",
    output: OutputOpt = None,
    images: Annotated[Optional[str], typer.Option(
        "--images", help="Folder of the photos: their names and sizes (YOLO → COCO), copied into a YOLO dataset.")] = None,
    image: Annotated[Optional[str], typer.Option(
        "--image", help="Pick one image of a COCO file by name (a path works; its size is read when needed).")] = None,
    image_size: Annotated[Optional[str], typer.Option("--image-size", help="WxH of every image, when no --images.")] = None,
    classes: ClassesOpt = None,
    palette: PaletteOpt = None,
    epsilon: Annotated[float, typer.Option("--epsilon", min=0.0, help="Simplify outlines (Douglas-Peucker, pixels); 0 = exact.")] = 0.0,
    holes: Annotated[Optional[str], typer.Option(
        "--holes", help="bridge (default: keep holes as zero-width keyholes) or fill (drop them, counted as lossy).")] = None,
    per_class: Annotated[bool, typer.Option("--per-class", help="One annotation per class per image, not per connected part.")] = False,
    skip: Annotated[Optional[List[str]], typer.Option("--skip", help="Class (name or index) not to annotate; default: the ignore index.")] = None,
    fill: Annotated[Optional[int], typer.Option("--fill", min=0, max=65535, help=(
        "Label for pixels no annotation covers (default: what the COCO file recorded, else 255)."))] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Coordinates outside the image are an error instead of clipped with a warning.")] = False,
    instance_masks: Annotated[Optional[str], typer.Option(
        "--instance-masks", help="--to panoptic: instance masks paired with the semantic masks by name.")] = None,
    things: Annotated[Optional[str], typer.Option(
        "--things", help="--to panoptic: thing classes, comma-separated names or labels (default: from the metadata).")] = None,
    jobs: JobsOpt = 1,
    overwrite: OverwriteOpt = False,
) -> None:
    """Convert label masks and annotations between formats, exactly where the target allows.

    Example: segtools convert masks/ --to coco --images images/ -o annotations.json

    More: segtools convert mask.png --to coco-rle · segtools convert ann.json --to mask --image 000123.jpg > m.png ·
    segtools convert annotations.json --to yolo-seg -o dataset/ · segtools convert dataset/ --to coco -o ann.json ·
    segtools convert instances/ --to coco -o ann.json · segtools convert VOC2012/ --to coco -o ann.json ·
    segtools convert masks/ --instance-masks inst/ --to panoptic -o panoptic.json
    """
    from segtools.errors import UsageError
    from segtools.formats import Summary

    if to not in TARGETS:
        raise UsageError(f"--to must be one of {', '.join(TARGETS)}" + (f", not {to!r}" if to else ""))
    if source not in SOURCES:
        raise UsageError(f"--from must be one of {', '.join(SOURCES)}, not {source!r}")
    if holes not in (None, "bridge", "fill"):
        raise UsageError(f"--holes must be bridge or fill, not {holes!r}")
    if (instance_masks or things) and to != "panoptic":
        raise UsageError("--instance-masks and --things only apply to --to panoptic")
    specs = inputs or ["-"]
    summary = Summary()
    kind, payload = _detect(specs, source)
    kind = "mask" if kind in MASK_SOURCES else kind  # --from instances etc. only change how values are read
    if to in ("colour", "trainids", "labelids"):
        _convert_labels(specs, to, output, classes, palette, overwrite, summary, payload if kind == "mask" else None)
    elif to == "panoptic":
        if kind != "mask" or "-" in specs:
            raise UsageError("--to panoptic reads semantic mask files (plus --instance-masks); "
                             f"not {'stdin' if '-' in specs else kind + ' input'}")
        _masks_to_panoptic(specs, output, instance_masks, things, classes, images, overwrite, summary)
    else:
        _convert_dataset(kind, payload, specs, to, output, images, image, image_size, classes, palette, epsilon,
                         holes, per_class, skip, fill, strict, jobs, overwrite, summary, source)
    _report(summary)


def _report(summary) -> None:
    import logging

    log = logging.getLogger("segtools")
    for event, count in sorted(summary.counts.items()):
        if event in summary.lossy:
            log.warning(f"lossy: {event}: {count}")
        else:
            info(f"{event}: {count}")


def _detect(specs: list[str], source: str):
    """(format, payload or None) of the inputs, from the bytes, not the names.

    The payload of a single input is what was read while recognising it, so it is read
    once (stdin cannot be read twice): the parsed document for JSON kinds, the bytes for
    masks, VOC XML and YOLO labels.
    """
    from segtools.errors import InputError
    from segtools.io.jsondata import parse_json
    from segtools.io.sniff import sniff
    from segtools.io.streams import read_bytes

    if source == "voc-seg":
        return source, None  # a folder pair, checked when paired
    if len(specs) == 1 and os.path.isdir(specs[0]):
        root = Path(specs[0])
        if source != "auto":
            return source, None
        if (root / "labels").is_dir() or any(root.glob("*.yaml")):
            return "yolo", None
        for ext, kind in ((".xml", "voc"), (".json", "labelme"), (".txt", "yolo")):
            if next(root.rglob(f"*{ext}"), None) is not None and next(root.rglob("*.png"), None) is None:
                return kind, None
        if (root / "SegmentationObject").is_dir() or root.name == "SegmentationObject":
            return "voc-seg", None
        return "mask", None
    if len(specs) > 1 or any(ch in specs[0] for ch in "*?[") or specs[0].startswith("@"):
        return (source if source != "auto" else "mask"), None
    if specs[0] != "-" and source in ("auto", "coco"):
        from segtools.formats.coco import is_streamed

        if is_streamed(specs[0]):
            return "coco-stream", None
    data = read_bytes(specs[0])
    head = sniff(data[:512])
    if head.format in ("png", "npy") and source in MASK_SOURCES:
        return "mask", data
    if head.format == "json" or data.lstrip()[:1] in (b"{", b"["):
        parsed = parse_json(data, "<stdin>" if specs[0] == "-" else specs[0])
        if source != "auto":
            return source, parsed
        if isinstance(parsed, dict) and "shapes" in parsed:
            return "labelme", parsed
        if isinstance(parsed, dict) and isinstance(parsed.get("annotations"), list):
            is_panoptic = any(isinstance(a, dict) and "segments_info" in a for a in parsed["annotations"][:5])
            return ("panoptic" if is_panoptic else "coco"), parsed
        if isinstance(parsed, dict) and {"size", "counts"} <= set(parsed) or isinstance(parsed, list):
            return "rle", parsed
        raise InputError(f"{specs[0]}: JSON that is neither COCO, COCO panoptic, labelme nor an RLE")
    if data.lstrip()[:1] == b"<":
        return "voc", data
    if head.format in ("text", "empty"):
        return "yolo", data
    raise InputError(f"{specs[0]}: not a mask or an annotation file (recognised: {head.format})")


def _classes_meta(classes, palette):
    from segtools.io.meta import load_classes

    return load_classes(classes) if classes else (load_classes(palette) if palette else None)


def _convert_dataset(kind, payload, specs, to, output, images, image, image_size, classes, palette, epsilon, holes,
                     per_class, skip, fill, strict, jobs, overwrite, summary, source="auto") -> None:
    from segtools.cli.common import progress
    from segtools.errors import InputError, UsageError
    from segtools.formats import dataset as ds
    from segtools.io.batch import expand_inputs

    meta = _classes_meta(classes, palette)
    categories = ds.Categories(names=meta.names) if meta is not None and meta.names else ds.Categories()
    images_root = Path(images) if images else None
    if images_root is not None and not images_root.is_dir():
        raise InputError(f"--images {images}: no such folder")
    size = _parse_size(image_size) if image_size else None
    yolo_like = to in ("yolo", "yolo-seg")
    holes = holes or "bridge"

    from_masks = False
    if kind == "mask":
        items = expand_inputs(specs, extensions=(".png", ".npy")) if payload is None else expand_inputs(specs)
        ignore = meta.ignore_index if meta is not None else 255
        skip_labels = [_label(meta, s) for s in skip] if skip else ([ignore] if ignore is not None else [])
        names = None
        if images_root is not None:
            names = {key: rel for key, (rel, _, _) in _image_keys(ds.image_sizes(images_root)).items()}
        total = len(items)
        mode = "rle" if to == "coco-rle" else "polygon"
        colours = meta if palette else None
        from_masks = not skip and meta is None  # the masks' own metadata decides what is void
        records = lambda tick: ds.read_masks(items, categories, summary, colours, skip_labels, mode, epsilon, holes,
                                            not per_class, names, jobs, tick, payload, skip_own_ignore=from_masks,
                                            interpret=MASK_SOURCES[source])
    elif kind in ("coco", "rle", "panoptic"):
        if kind == "panoptic":
            if to != "mask":
                raise UsageError("COCO panoptic converts to masks here (--to mask): semantic labels, plus "
                                 "instance numbers under instances/")
            _panoptic_to_masks(payload, specs[0], images_root, output, overwrite, summary)
            return
        data = _rle_as_coco(payload) if kind == "rle" else payload
        from segtools.formats import coco as cocolib

        cocolib.check(data, specs[0])
        if image is not None:
            data = _pick_image(data, image)
        if images_root is not None and yolo_like:  # every image path checked before anything is written
            from segtools.formats.paths import source_in

            for k, entry in enumerate(data["images"]):
                source_in(images_root, entry.get("file_name"), f"{specs[0]}: images[{k}]: 'file_name'")
        categories, coco_records, total = ds.read_coco(data)
        records = lambda tick: coco_records
        fill = ds.unlabelled_value(data) if fill is None else fill
    elif kind == "coco-stream":
        categories, coco_records, total, header = ds.read_coco_streamed(specs[0])
        if image is not None:
            wanted = _pick_image({"images": header["images"], "annotations": []}, image)["images"][0]
            coco_records = (r for r in coco_records if r.image is wanted or r.image == wanted)
            total = 1
        records = lambda tick: coco_records
        fill = ds.unlabelled_value(header) if fill is None else fill
    elif kind == "yolo":
        from segtools.formats import yolo as yololib

        root = Path(specs[0]) if os.path.isdir(specs[0]) else None
        label_root = root / "labels" if root is not None and (root / "labels").is_dir() else root
        items = expand_inputs([str(label_root)] if label_root else specs, extensions=(".txt",))
        items = [it for it in items if Path(it.path).name not in ("classes.txt",)]
        yaml_path = yololib.find_yaml(root) if root is not None else None
        if yaml_path is not None and meta is None:
            categories = ds.Categories(names=yololib.load_data_yaml(yaml_path)["names"])
        if images_root is None and root is not None and (root / "images").is_dir():
            images_root = root / "images"
        if image is not None and os.path.isfile(image):
            sizes = ds.image_sizes(Path(image).parent)
            sizes = {k: v for k, v in sizes.items() if v[0] == Path(image).name}
            sizes = {str(Path(items[0].rel).with_suffix("")): v for v in sizes.values()} if len(items) == 1 else sizes
        else:
            sizes = ds.image_sizes(images_root)
        total = len(items)
        label_bytes = payload if isinstance(payload, bytes) and len(items) == 1 else None
        records = lambda tick: ds.read_yolo(items, categories, summary, sizes, size, strict, label_bytes)
    elif kind == "voc-seg":
        from segtools.formats import instances as instlib

        pairs = instlib.voc_pairs(specs)
        total = len(pairs)
        categories = categories if meta is not None else ds.Categories(names=instlib.voc_names())
        names = {k: rel for k, (rel, _, _) in _image_keys(ds.image_sizes(images_root)).items()} if images_root else None
        records = lambda tick: instlib.read_voc_segmentation(pairs, categories, summary, "rle" if to == "coco-rle" else "polygon",
                                                             epsilon, holes, names, tick)
    elif kind == "voc":
        items = expand_inputs(specs, extensions=(".xml",))
        total = len(items)
        records = lambda tick: ds.read_voc(items, categories, summary, payload if isinstance(payload, bytes) else None)
    elif kind == "labelme":
        items = expand_inputs(specs, extensions=(".json",))
        total = len(items)
        records = lambda tick: ds.read_labelme(items, categories, summary, strict,
                                               payload if isinstance(payload, dict) else None)
    else:
        raise UsageError(f"cannot convert {kind} files to {to}")

    with progress(total, f"convert → {to}") as advance:
        source_ticks = kind in ("mask", "voc-seg")
        stream = records(advance if source_ticks else None)
        tick = None if source_ticks else advance
        if to in ("coco", "coco-rle"):
            # masks and VOC segmentation were annotated in the target's form already
            mode = None if kind in ("mask", "voc-seg") else ("rle" if to == "coco-rle" else "polygon")
            unlabelled = (skip_labels[0] if len(skip_labels) == 1 and not from_masks else None) if kind == "mask" else \
                (None if kind == "voc-seg" else fill)
            ds.write_coco(stream, categories, output, summary, mode, epsilon, overwrite, tick, unlabelled)
        elif yolo_like:
            if not output or output == "-":
                raise UsageError(f"--to {to} writes a dataset folder: give -o DIR")
            ds.write_yolo(stream, categories, output, summary, to == "yolo-seg", holes, epsilon, strict, images_root, tick)
        elif to == "voc":
            if not output or output == "-":
                raise UsageError("--to voc writes Annotations/*.xml: give -o DIR")
            ds.write_voc(stream, categories, output, summary, tick)
        elif to == "mask":
            single = total == 1 and (not output or output == "-" or not os.path.isdir(output) and output.lower().endswith((".png", ".npy")))
            ds.write_masks(stream, categories, output, summary, 255 if fill is None else fill, single, overwrite, tick)
        elif to == "instances":
            from segtools.formats.instances import write_instances

            single = total == 1 and (not output or output == "-" or not os.path.isdir(output) and output.lower().endswith((".png", ".npy")))
            write_instances(stream, categories, output, summary, single, overwrite, tick)


def _panoptic_to_masks(data: dict, json_path: str, png_root, output, overwrite, summary) -> None:
    """COCO panoptic JSON + PNG folder → semantic masks (DIR/name.png) and DIR/instances/name.png."""
    from segtools.cli.common import progress
    from segtools.errors import InputError, UsageError
    from segtools.formats import coco_panoptic
    from segtools.io.batch import check_output_dir

    if not output or output == "-":
        raise UsageError("--to mask from COCO panoptic writes a folder: give -o DIR")
    png_root = png_root or Path(json_path).with_suffix("")
    if not png_root.is_dir():
        raise InputError(f"{png_root}: no folder of panoptic PNGs (give it with --images DIR)")
    root = check_output_dir(output)
    with progress(len(data["annotations"]), "convert → mask") as advance:
        coco_panoptic.dataset_to_masks(data, png_root, root, summary, overwrite, advance)


def _masks_to_panoptic(specs, output, instance_masks, things, classes, images, overwrite, summary) -> None:
    """Semantic masks (+ instance masks paired by name) → COCO panoptic JSON and its PNG folder."""
    from segtools.cli.common import progress
    from segtools.errors import UsageError
    from segtools.formats import coco_panoptic
    from segtools.formats.dataset import image_sizes
    from segtools.io.batch import expand_inputs, pair_items

    if not output or output == "-":
        raise UsageError("--to panoptic writes a JSON file and a PNG folder beside it: give -o NAME.json")
    if not instance_masks and len(specs) == 1 and (Path(specs[0]) / "instances").is_dir():
        instance_masks = str(Path(specs[0]) / "instances")  # the layout --to mask writes from panoptic
    semantic = expand_inputs(specs, extensions=(".png", ".npy"))
    if instance_masks:
        inside = Path(instance_masks).resolve()
        semantic = [it for it in semantic if inside not in Path(it.path).resolve().parents]
        pairing = pair_items(semantic, expand_inputs([instance_masks], extensions=(".png", ".npy")),
                             names=("semantic mask", "instance mask"))
        pairs = pairing.pairs
    else:
        pairs = [(item, None) for item in semantic]
    meta = _classes_meta(classes, None)
    thing_labels = [t for t in things.split(",") if t.strip()] if things else None
    names = {key: rel for key, (rel, _, _) in _image_keys(image_sizes(Path(images))).items()} if images else None
    with progress(len(pairs), "convert → panoptic") as advance:
        coco_panoptic.masks_to_dataset(pairs, output, summary, meta.names if meta is not None else None, thing_labels,
                                       names, overwrite, advance)


def _label(meta, spec: str) -> int:
    from segtools.errors import UsageError

    if meta is not None:
        return meta.class_index(spec)
    if not spec.isdigit():
        raise UsageError(f"--skip {spec!r}: a class name needs --classes; give a label value otherwise")
    return int(spec)


def _image_keys(sizes: dict) -> dict:
    from segtools.io.batch import pairing_key

    return {pairing_key(rel): (rel, h, w) for rel, h, w in sizes.values()}


def _parse_size(text: str) -> tuple[int, int]:
    from segtools.errors import UsageError

    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--image-size {text!r}: expected WIDTHxHEIGHT, e.g. 640x480") from None
    if width <= 0 or height <= 0:
        raise UsageError(f"--image-size {text!r}: width and height must be positive")
    return height, width


def _pick_image(data: dict, image: str) -> dict:
    from segtools.errors import InputError

    wanted = Path(image).name
    matches = [im for im in data["images"] if str(im.get("file_name")) == image
               or Path(str(im.get("file_name"))).name == wanted or str(im.get("id")) == image]
    if not matches:
        shown = ", ".join(str(im.get("file_name")) for im in data["images"][:3])
        raise InputError(f"--image {image}: no such image in the COCO file (it has {len(data['images'])}, e.g. {shown})")
    ids = {m.get("id") for m in matches[:1]}
    return {**data, "images": matches[:1], "annotations": [a for a in data["annotations"] if a.get("image_id") in ids]}


def _rle_as_coco(payload) -> dict:
    """A bare RLE (or a list of them) as a one-image COCO dict, category 1 'object'."""
    from segtools.errors import InputError

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


def _convert_labels(specs, to, output, classes, palette, overwrite, summary, data=None) -> None:
    """Per-mask value maps: Cityscapes labelIds ⇄ trainIds, labels → RGB colours."""
    import numpy as np

    from segtools.errors import InputError, UsageError
    from segtools.formats import cityscapes
    from segtools.io.batch import check_output_dir, expand_inputs, output_path
    from segtools.io.images import write_image
    from segtools.io.masks import read_label_mask, write_label_mask
    from segtools.io.meta import ClassMeta, load_classes

    items = expand_inputs(specs, extensions=(".png", ".npy"))
    batch = len(items) > 1 or (output is not None and os.path.isdir(output))
    if batch and not output:
        raise UsageError("several masks: give -o DIR")
    root = check_output_dir(output) if batch else None
    colours = load_classes(palette) if palette and to != "colour" else None
    for item in items:
        mask = read_label_mask(data if data is not None and len(items) == 1 else item.path, colours)
        target = output_path(item, root, ".png") if batch else output
        if to == "trainids":
            write_label_mask(cityscapes.label_to_train(mask.labels), target,
                             load_classes("cityscapes"), overwrite)
        elif to == "labelids":
            labels = cityscapes.train_to_label(mask.labels)
            summary.add("trainId 255 pixels written as labelId 0 'unlabeled'", int((mask.labels == 255).sum() > 0), lossy=True)
            write_label_mask(labels, target, ClassMeta(ignore_index=0), overwrite)
        else:
            meta = load_classes(classes or palette) if (classes or palette) else mask.meta
            if meta is None or meta.palette is None:
                raise InputError(f"{item.path}: the mask carries no palette; give --classes or --palette")
            from segtools.io.colour import labels_to_colours

            write_image(labels_to_colours(mask.labels, meta.palette).astype(np.uint8), target, overwrite)


def register(app: typer.Typer) -> None:
    app.command("convert")(convert)
