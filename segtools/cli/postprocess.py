"""``segtools postprocess``: threshold score maps and clean label masks with morphology."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import typer
from typing_extensions import Annotated

from segtools.cli.common import JobsOpt, OutputOpt, OverwriteOpt, PaletteOpt, progress

ORDER_HELP = "map,smooth,open,close,erode,dilate,min-area,fill-holes,keep-largest"


def _size(name: str, text: str):
    return typer.Option(name, min=1, metavar="K", help=text + " K is odd, in pixels.")


@dataclass(frozen=True)
class _Settings:
    """Everything one item needs (picklable, for --jobs)."""

    threshold: Optional[str]
    min_confidence: Optional[float]
    below: str
    relabel: Optional[str]
    smooth: int
    open: int
    close: int
    erode: int
    dilate: int
    kernel: str
    min_area: Optional[str]
    fill_holes: int
    keep_largest: int
    connectivity: int
    classes: Optional[str]
    fill: str
    background: str
    ignore_index: Optional[str]
    order: Optional[str]
    instances: bool
    meta: Optional[str]
    palette: Optional[str]
    overwrite: bool


def postprocess(
    inputs: Annotated[Optional[List[str]], typer.Argument(
        help="Label masks or score maps: files, folders, globs or @list.txt; stdin when omitted.")] = None,
    output: OutputOpt = None,
    threshold: Annotated[Optional[str], typer.Option(
        "--threshold", "-t", metavar="T|CLASS=T,...",
        help="Score maps: foreground threshold for a one-class (H×W) or two-class map; with more "
             "classes, the score a class needs to win the argmax (one number, or per class: car=0.3,road=0.6).")] = None,
    min_confidence: Annotated[Optional[float], typer.Option(
        "--min-confidence", min=0.0, max=1.0, help="Score maps: pixels whose best score is lower go to --below.")] = None,
    below: Annotated[str, typer.Option(
        "--below", help="Score maps: label for low-confidence pixels: ignore or background.")] = "ignore",
    relabel: Annotated[Optional[str], typer.Option(
        "--map", metavar="OLD:NEW,...", help="Relabel or merge classes first, e.g. 2:1,3:1 (names allowed).")] = None,
    smooth: Annotated[Optional[int], _size("--smooth", "Majority (mode) filter with a K×K window.")] = None,
    open_: Annotated[Optional[int], _size("--open", "Opening with a K×K kernel: removes specks and thin spurs.")] = None,
    close: Annotated[Optional[int], _size("--close", "Closing: fills gaps narrower than K (grows selected classes "
                                "into unselected ones only).")] = None,
    erode: Annotated[Optional[int], _size("--erode", "Erosion with a K×K kernel.")] = None,
    dilate: Annotated[Optional[int], _size("--dilate", "Dilation with a K×K kernel (into unselected classes only).")] = None,
    kernel: Annotated[str, typer.Option("--kernel", help="Kernel shape: square, ellipse or cross.")] = "square",
    min_area: Annotated[Optional[str], typer.Option(
        "--min-area", metavar="N|CLASS=N,...",
        help="Remove components smaller than N pixels (all classes, per class car=200, or both: 100,car=200).")] = None,
    fill_holes: Annotated[Optional[int], typer.Option(
        "--fill-holes", min=1, metavar="N", help="Fill holes of at most N pixels inside a class region.")] = None,
    keep_largest: Annotated[Optional[int], typer.Option(
        "--keep-largest", min=1, metavar="N", help="Keep only the N largest components of each class.")] = None,
    connectivity: Annotated[int, typer.Option(
        "--connectivity", help="Component connectivity: 8 or 4 (holes use the other one).")] = 8,
    classes: Annotated[Optional[str], typer.Option(
        "--classes", metavar="CLASS,...",
        help="Operate on these classes only (names or indices); default: all but ignore and background.")] = None,
    fill: Annotated[str, typer.Option(
        "--fill", help="Removed pixels take the nearest kept class (nearest) or the background label (background).")] = "nearest",
    background: Annotated[str, typer.Option(
        "--background", metavar="CLASS|auto|none",
        help="Background label: not operated on by default, target of --fill/--below background. auto: 0 "
             "for binary masks and when class 0 is named 'background'.")] = "auto",
    ignore_index: Annotated[Optional[str], typer.Option(
        "--ignore-index", metavar="N|none", help="Void label, never changed (default: the mask's own, else 255).")] = None,
    order: Annotated[Optional[str], typer.Option(
        "--order", metavar="STEP,...", help=f"Run the steps in this order instead of the default {ORDER_HELP}.")] = None,
    instances: Annotated[bool, typer.Option(
        "--instances", help="Last: write the connected components as an instance-id mask (kind=instance).")] = False,
    meta: Annotated[Optional[str], typer.Option(
        "--meta", help="Class names/palette to use: a preset (voc, cityscapes, camvid, ade20k, coco) or a file.")] = None,
    palette: PaletteOpt = None,
    jobs: JobsOpt = 1,
    overwrite: OverwriteOpt = False,
) -> None:
    """Clean up label masks: threshold or argmax score maps, then morphology, then write label masks (PNG, class metadata kept).

    Steps run in this order (change it with --order): map, smooth, open, close, erode, dilate, min-area, fill-holes, keep-largest. Thresholding a score map comes first, --instances last. Pixels removed from a class take the nearest kept class (or the background with --fill background); the ignore label is never changed and never spreads.

    Example:  segtools predict img.png --probs | segtools postprocess -t 0.5 --open 3 --min-area 64 > m.png

    Example:  segtools postprocess masks/ -o clean/ --min-area 100 --fill-holes 200 --jobs 2
    """
    from segtools.errors import UsageError
    from segtools.io.batch import check_output_dir, expand_inputs, output_path
    from segtools.io.parallel import pmap
    from segtools.io.streams import check_output_path

    sizes = [value or 0 for value in (smooth, open_, close, erode, dilate)]
    settings = _Settings(threshold, min_confidence, below, relabel, *sizes, kernel,
                         min_area, fill_holes or 0, keep_largest or 0, connectivity, classes, fill, background,
                         ignore_index, order, instances, meta, palette, overwrite)
    _check_settings(settings)
    specs = inputs or ["-"]
    items = expand_inputs(specs)
    batch = len(items) > 1 or any(_is_many(spec) for spec in specs)
    if batch:
        if output is None or output == "-":
            raise UsageError("several inputs need an output folder: -o DIR")
        out_dir = check_output_dir(output)
        jobs_list = [(item.path, str(output_path(item, out_dir, ".png")), settings) for item in items]
    else:
        if output is not None and output != "-":
            check_output_path(output, overwrite)
        jobs_list = [(items[0].path, output, settings)]
    with progress(len(jobs_list), "postprocess") as advance:
        for _ in pmap(_process_one, jobs_list, jobs, on_done=advance):
            pass


def _is_many(spec: str) -> bool:
    import os

    return spec.startswith("@") or os.path.isdir(spec) or any(ch in spec for ch in "*?[")


def _check_settings(settings: _Settings) -> None:
    """Catch bad option values before any file is read."""
    from segtools.errors import UsageError
    from segtools.morphology.pipeline import Cleanup

    if settings.below not in ("ignore", "background"):
        raise UsageError(f"--below must be ignore or background, not {settings.below!r}")
    Cleanup(smooth=settings.smooth, open=settings.open, close=settings.close, erode=settings.erode,
            dilate=settings.dilate, kernel=settings.kernel, connectivity=settings.connectivity,
            fill=settings.fill, background=0).validate()
    if settings.order:
        from segtools.morphology.pipeline import DEFAULT_ORDER

        for name in _split(settings.order):
            if name not in DEFAULT_ORDER:
                raise UsageError(f"--order: unknown step {name!r}; steps are {','.join(DEFAULT_ORDER)}")


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _process_one(job: tuple) -> None:
    """Read one input, clean it and write it (module level so --jobs can use processes)."""
    from segtools.io.limits import label_table_size
    from segtools.io.masks import ScoreMap, read_mask_or_scores, write_label_mask
    from segtools.io.meta import load_classes
    from segtools.morphology import spec
    from segtools.morphology.pipeline import Cleanup, clean_labels
    from segtools.morphology.refill import present_labels

    source, destination, settings = job
    data = read_mask_or_scores(source, settings.palette)
    meta = load_classes(settings.meta) if settings.meta else data.meta
    ignore = _ignore_index(settings.ignore_index, meta)
    if meta is not None:
        meta = meta.with_(ignore_index=ignore)
    if isinstance(data, ScoreMap):
        labels, meta, binary = _decode_scores(data, meta, ignore, settings)
    else:
        if settings.threshold is not None or settings.min_confidence is not None:
            from segtools.errors import UsageError

            raise UsageError(f"{data.name}: is a label mask; --threshold and --min-confidence apply to score maps")
        labels = data.labels
        label_table_size(labels, data.name)
        values = set(present_labels(labels).tolist()) - {ignore}
        binary = (meta is None or not meta.names) and values <= {0, 1}
    default_area, area_per_class = (spec.class_values(settings.min_area, meta, "--min-area")
                                    if settings.min_area else (0, {}))
    cleanup = Cleanup(
        relabel=spec.relabelling(settings.relabel, meta) if settings.relabel else {},
        smooth=settings.smooth, open=settings.open, close=settings.close, erode=settings.erode,
        dilate=settings.dilate, kernel=settings.kernel, min_area=int(default_area or 0),
        min_area_per_class=area_per_class, fill_holes=settings.fill_holes, keep_largest=settings.keep_largest,
        connectivity=settings.connectivity,
        classes=spec.class_list(settings.classes, meta) if settings.classes else None,
        fill=settings.fill, background=spec.background_label(settings.background, meta, binary),
        ignore_index=ignore, order=tuple(_split(settings.order)) if settings.order else None)
    labels = clean_labels(labels, cleanup)
    if settings.instances:
        labels, meta = _to_instances(labels, meta, cleanup)
    write_label_mask(labels, destination, meta, allow_overwrite=settings.overwrite)


def _ignore_index(option: Optional[str], meta) -> Optional[int]:
    from segtools.errors import UsageError
    from segtools.io.limits import MAX_CLASSES

    if option is None:
        return meta.ignore_index if meta is not None else 255
    if option.strip().lower() == "none":
        return None
    if not option.strip().isdigit() or int(option) >= MAX_CLASSES:
        raise UsageError(f"--ignore-index must be a label (0..{MAX_CLASSES - 1}) or none, not {option!r}")
    return int(option)


def _decode_scores(data, meta, ignore: Optional[int], settings: _Settings):
    """Score map → (labels, metadata, binary?) following --threshold/--min-confidence/--below."""
    from segtools.errors import UsageError
    from segtools.io.meta import ClassMeta
    from segtools.morphology import spec
    from segtools.morphology.scores import scores_to_labels

    scores = data.scores
    num_classes = 1 if scores.ndim == 2 else scores.shape[0]
    threshold = None
    if settings.threshold is not None:
        default, per_class = spec.class_values(settings.threshold, meta, "--threshold", float)
        if per_class:
            threshold = {k: per_class.get(k, default) for k in range(num_classes)} if default is not None else per_class
            threshold = {k: v for k, v in threshold.items() if v is not None}
        else:
            threshold = default
    binary = num_classes == 1 or (num_classes == 2 and isinstance(threshold, float))
    if settings.below == "ignore":
        if ignore is None:
            raise UsageError("--below ignore needs an ignore label: pass --ignore-index N or --below background")
        below = ignore
    else:
        below = spec.background_label(settings.background, meta, binary)
        if below is None:
            raise UsageError("--below background needs a background label: pass --background CLASS")
    labels = scores_to_labels(scores, threshold, settings.min_confidence, below, data.name)
    if binary:
        names = ("background", "foreground")
        if meta is not None and meta.names and len(meta.names) in (1, 2):
            names = ("background", meta.names[0]) if len(meta.names) == 1 else meta.names
        meta = ClassMeta(names=tuple(names), ignore_index=ignore)
    elif meta is None:
        meta = ClassMeta(ignore_index=ignore)
    return labels, meta, binary


def _to_instances(labels, meta, cleanup):
    """Connected components of the selected classes → instance ids (kind=instance)."""
    from segtools.io.meta import ClassMeta
    from segtools.morphology.components import label_instances
    from segtools.morphology.pipeline import selected_classes

    instances, instance_class = label_instances(labels, selected_classes(labels, cleanup), cleanup.connectivity)
    extra = {"instance_class": instance_class}
    if meta is not None and meta.names:
        extra["class_names"] = list(meta.names)
    return instances, ClassMeta(ignore_index=None, kind="instance", extra=extra)


def register(app: typer.Typer) -> None:
    app.command("postprocess")(postprocess)
