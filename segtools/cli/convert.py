"""``segtools convert``: masks and annotation formats, any to any, counting what is lost.

Parses the options, then three library calls (:mod:`segtools.formats.registry`): detect the
source, read it into one dataset, write it as the target; the summary goes to stderr.
"""

from __future__ import annotations

import os
from typing import List, Optional

import typer
from typing_extensions import Annotated

from segtools.cli.common import info
from segtools.cli.options import ClassesOpt, DaskOpt, JobsOpt, OutputOpt, OverwriteOpt, PaletteOpt, ShardOpt

TARGETS = ("mask", "instances", "coco", "coco-rle", "coco-results", "panoptic", "yolo", "yolo-seg", "voc", "colour",
           "trainids", "labelids")
SOURCES = ("auto", "mask", "instances", "cityscapes-instances", "coco", "coco-results", "yolo", "voc", "voc-seg",
           "labelme", "rle", "panoptic", "cvat", "cityscapes-polygons", "sa1b", "mots", "kitti", "ade20k")
VALUE_MAPS = ("colour", "trainids", "labelids")
MASK_EXTENSIONS = (".png", ".npy")


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
    image_size: Annotated[Optional[str], typer.Option(
        "--image-size", metavar="HEIGHTxWIDTH", help="Size of every image in pixels, when no --images (HEIGHTxWIDTH; it used to be WIDTHxHEIGHT).")] = None,
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
    voc_origin: Annotated[Optional[int], typer.Option(
        "--voc-origin", min=0, max=1, help=("VOC boxes count pixels from 1 (the devkit) or 0 (Roboflow, labelme); "
                                            "default: 0 when a box has a coordinate below 1, else 1; written as 1."))] = None,
    gt: Annotated[Optional[str], typer.Option(
        "--gt", metavar="COCO.json", help=("COCO results input: the ground-truth file they refer to "
                                           "(image names and sizes, categories)."))] = None,
    split: Annotated[Optional[str], typer.Option(
        "--split", metavar="train=F,val=F[,test=F]", help=(
            "Split the images (seeded, stratified by class presence, stable when files are added) into the "
            "target's split layout: YOLO images/<split>, COCO NAME_<split>.json, VOC ImageSets/Main/<split>.txt."))] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of --split.")] = 0,
    filters: Annotated[Optional[List[str]], typer.Option("--filter", help=(
        "Keep annotations: class=NAME[,NAME], area>=PX, area<=PX, crowd=0|1; images=annotated drops images "
        "left empty. Repeatable; what is left out is counted."))] = None,
    merge: Annotated[bool, typer.Option("--merge", help=(
        "Read each input as its own dataset and merge them: categories by name, ids renumbered."))] = False,
    jobs: JobsOpt = 1,
    overwrite: OverwriteOpt = False,
    dask: DaskOpt = None,
    shard: ShardOpt = None,
) -> None:
    """Convert label masks and annotations between formats, exactly where the target allows.

    Example: segtools convert masks/ --to coco --images images/ -o annotations.json

    More: segtools convert mask.png --to coco-rle · segtools convert ann.json --to mask --image 000123.jpg > m.png ·
    segtools convert annotations.json --to yolo-seg -o dataset/ · segtools convert dataset/ --to coco -o ann.json ·
    segtools convert instances/ --to coco -o ann.json · segtools convert VOC2012/ --to coco -o ann.json ·
    segtools convert masks/ --instance-masks inst/ --to panoptic -o panoptic.json
    """
    from segtools.cli.options import parameters_as_flags, parse_shard, parse_size
    from segtools.errors import UsageError
    from segtools.formats import Summary, registry

    if to not in TARGETS:
        raise UsageError(f"--to must be one of {', '.join(TARGETS)}" + (f", not {to!r}" if to else ""))
    if source not in SOURCES:
        raise UsageError(f"--from must be one of {', '.join(SOURCES)}, not {source!r}")
    if holes not in (None, "bridge", "fill"):
        raise UsageError(f"--holes must be bridge or fill, not {holes!r}")
    if (instance_masks or things) and to != "panoptic":
        raise UsageError("--instance-masks and --things only apply to --to panoptic")
    if to in ("yolo", "yolo-seg", "voc", "panoptic") and (not output or output == "-"):
        raise UsageError(f"--to {to} writes " + ("a JSON file and a PNG folder beside it: give -o NAME.json"
                                                 if to == "panoptic" else "a dataset folder: give -o DIR"))
    if shard is not None and (merge or split is not None):
        raise UsageError(f"--shard with {'--merge' if merge else '--split'}: both need every image at once; "
                         "convert whole, then shard the result")
    specs = inputs or ["-"]
    options = registry.ConvertOptions(
        images=images, image=image, image_size=parse_size(image_size, "--image-size") if image_size else None,
        classes=classes, palette=palette, epsilon=epsilon, holes=holes or "bridge", per_class=per_class,
        skip=tuple(skip or ()), fill=fill, strict=strict, instance_masks=instance_masks,
        things=[t for t in things.split(",") if t.strip()] if things else None, source=source,
        rle=to in ("coco-rle", "coco-results"), voc_origin=voc_origin, reference=gt, jobs=jobs, overwrite=overwrite,
        filters=tuple(filters or ()), seed=seed, shard=parse_shard(shard))
    summary = Summary()
    with parameters_as_flags(FLAGS):
        if split is not None:
            from segtools.formats.splits import parse_split

            options.split = parse_split(split)
        from segtools.io.cluster import use_dask

        with use_dask(dask):
            _run(specs, source, to, output, options, summary, overwrite, merge)
    _report(summary)


#: Library parameters → the flags that set them (messages are reworded by parameters_as_flags).
#: Not "images": prose such as "several images: give …" would be reworded too.
FLAGS = {"image_size": "--image-size", "voc_origin": "--voc-origin", "reference": "--gt",
         "split": "--split", "filter": "--filter", "skip": "--skip", "merge": "--merge", "shard": "--shard"}


def _run(specs, source, to, output, options, summary, overwrite, merge: bool = False) -> None:
    from segtools.cli.common import progress
    from segtools.cli.options import is_batch, output_targets
    from segtools.errors import UsageError
    from segtools.formats import registry

    if merge:
        from segtools.formats.splits import merge as merge_datasets

        if to in VALUE_MAPS or to == "panoptic":
            raise UsageError(f"--merge writes annotations; --to {to} maps masks one by one")
        parts = [registry.read(registry.detect([spec], source), [spec], options, summary) for spec in specs]
        dataset = merge_datasets(parts, summary, specs)
    else:
        dataset = registry.read(registry.detect(specs, source), specs, options, summary)
    targets = output_targets(dataset.items, specs, output, ".png", overwrite) if to in VALUE_MAPS else ()
    # one image to stdout or -o FILE.png|.npy; a batch, or an -o that names a folder, gets one file per image
    names_folder = bool(output) and output != "-" and (os.path.isdir(output) or not output.lower().endswith(MASK_EXTENSIONS))
    single = not is_batch(specs, dataset.total) and not names_folder
    if to in ("mask", "instances") and not single and dataset.format != "panoptic" and (not output or output == "-"):
        raise UsageError(f"{dataset.total} images (a dataset file, folder, pattern, list or several inputs): "
                         "give -o DIR for the masks (or --image NAME to pick one)")
    with progress(dataset.total, f"convert → {to}") as advance:
        registry.write(dataset, to, output, options, summary, single=single, tick=advance, targets=targets)


def _report(summary) -> None:
    import logging

    log = logging.getLogger("segtools")
    for event, count in sorted(summary.counts.items()):
        if event in summary.lossy:
            log.warning(f"lossy: {event}: {count}")
        else:
            info(f"{event}: {count}")


def register(app: typer.Typer) -> None:
    from segtools.io.remote import with_storage

    # s3://, gs://, memory://… a folder of masks on a store is read mask by mask where each is
    # converted (a Dask worker too); other layouts, the photos and the outputs are staged
    app.command("convert")(with_storage(convert, paths=("images", "image", "instance_masks", "gt"),
                                        streamed=("inputs",), streams=_streams_masks))


def _streams_masks(options: dict) -> bool:
    """Whether ``convert`` reads its storage inputs object by object: each a prefix, glob or
    object of masks only (``registry.store_holds_masks``)."""
    from segtools.formats.registry import store_holds_masks
    from segtools.io.remote import is_url

    inputs = [str(spec) for spec in options.get("inputs") or []]
    return bool(inputs) and all(is_url(spec) and store_holds_masks(spec) for spec in inputs)
