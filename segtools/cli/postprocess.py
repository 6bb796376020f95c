"""``segtools postprocess``: threshold score maps and clean label masks with morphology.

Parses the options into a :class:`~segtools.morphology.postprocess.PostprocessOptions`,
and runs :func:`segtools.morphology.postprocess.run_job` on each item; library messages
name parameters (``smooth=4``), shown here as the flags that set them (``--smooth 4``).

``--classes`` gives class names and palette, as in every command; ``--only`` the classes
to operate on. The old spellings (``--meta``, ``--classes`` with a list of classes) are
refused with a message that names the new one.
"""

from __future__ import annotations

from typing import List, Optional

import typer
from typing_extensions import Annotated

from segtools.cli.common import progress
from segtools.cli.options import ClassesOpt, DaskOpt, IgnoreOpt, JobsOpt, OutputOpt, OverwriteOpt, PaletteOpt, ShardOpt
from segtools.cli.postprocess_instances import MinInstanceAreaOpt, MinScoreOpt, NmsOpt, ResolveOverlapsOpt
from segtools.cli.video_opts import CodecOpt, EndOpt, EveryOpt, FpsLimitOpt, MaxFramesOpt, StartOpt
from segtools.errors import UsageError

ORDER_HELP = "map,smooth,open,close,erode,dilate,min-area,fill-holes,keep-largest"

#: Each library parameter → the flag that sets it (for messages).
FLAGS = {
    "threshold": "--threshold", "threshold_per_class": "--threshold", "min_confidence": "--min-confidence",
    "below": "--below", "relabel": "--map", "smooth": "--smooth", "open": "--open", "close": "--close",
    "erode": "--erode", "dilate": "--dilate", "kernel": "--kernel", "min_area": "--min-area",
    "min_area_per_class": "--min-area", "fill_holes": "--fill-holes", "keep_largest": "--keep-largest",
    "connectivity": "--connectivity", "only": "--only", "fill": "--fill", "background": "--background",
    "ignore_index": "--ignore-index", "order": "--order", "instances": "--instances", "classes": "--classes",
    "palette": "--palette",
}


def _size(name: str, text: str):
    return typer.Option(name, min=1, metavar="K", help=text + " K is odd, in pixels.")


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
    only: Annotated[Optional[str], typer.Option(
        "--only", metavar="CLASS,...",
        help="Operate on these classes only (names or indices); default: all but ignore and background.")] = None,
    fill: Annotated[str, typer.Option(
        "--fill", help="Removed pixels take the nearest kept class (nearest) or the background label (background).")] = "nearest",
    background: Annotated[str, typer.Option(
        "--background", metavar="CLASS|auto|none",
        help="Background label: not operated on by default, target of --fill/--below background. auto: 0 "
             "for binary masks and when class 0 is named 'background'.")] = "auto",
    ignore_index: IgnoreOpt = None,
    order: Annotated[Optional[str], typer.Option(
        "--order", metavar="STEP,...", help=f"Run the steps in this order instead of the default {ORDER_HELP}.")] = None,
    instances: Annotated[bool, typer.Option(
        "--instances", help="Last: write the connected components as an instance-id mask (kind=instance).")] = False,
    classes: ClassesOpt = None,
    palette: PaletteOpt = None,
    meta: Annotated[Optional[str], typer.Option("--meta", hidden=True, help="Old name of --classes.")] = None,
    jobs: JobsOpt = 1,
    overwrite: OverwriteOpt = False,
    every: EveryOpt = 1,
    start: StartOpt = None,
    end: EndOpt = None,
    max_frames: MaxFramesOpt = None,
    fps_limit: FpsLimitOpt = None,
    codec: CodecOpt = None,
    min_score: MinScoreOpt = None,
    min_instance_area: MinInstanceAreaOpt = None,
    nms: NmsOpt = None,
    resolve_overlaps: ResolveOverlapsOpt = False,
    dask: DaskOpt = None,
    shard: ShardOpt = None,
) -> None:
    """Clean up label masks: threshold or argmax score maps, then morphology, then write label masks (PNG, class metadata kept).

    Steps run in this order (change it with --order): map, smooth, open, close, erode, dilate, min-area, fill-holes, keep-largest. Thresholding a score map comes first, --instances last. Pixels removed from a class take the nearest kept class (or the background with --fill background); the ignore label is never changed and never spreads.

    Example:  segtools predict img.png --probs | segtools postprocess -t 0.5 --open 3 --min-area 64 > m.png

    Example:  segtools postprocess masks/ -o clean/ --min-area 100 --fill-holes 200 --jobs 2

    Video: a mask video (classes from NAME.classes.json beside it, or --classes) or, with -o out.mkv or a video option, a folder of frame masks; see docs/video.md.
    """
    from segtools.cli import postprocess_spec as spec
    from segtools.cli.options import parameters_as_flags
    from segtools.cli.options import output_targets, parse_ignore
    from segtools.io.batch import expand_inputs
    from segtools.morphology.postprocess import PostprocessOptions, postprocess_files

    from segtools.cli import postprocess_instances as instance_cli

    if instance_cli.requested(min_score, min_instance_area, nms, resolve_overlaps):
        return instance_cli.postprocess_instances(inputs, output, min_score=min_score,
                                                  min_instance_area=min_instance_area, nms=nms,
                                                  resolve_overlaps=resolve_overlaps, overwrite=overwrite)
    if meta is not None:
        raise UsageError(f"--meta is now --classes (class names/palette, as in every command): use --classes {meta}")
    default_threshold, thresholds = spec.class_values(threshold, "--threshold", float) if threshold else (None, {})
    default_area, areas = spec.class_values(min_area, "--min-area") if min_area else (0, {})
    options = PostprocessOptions(
        threshold=default_threshold, threshold_per_class=thresholds, min_confidence=min_confidence, below=below,
        relabel=spec.relabelling(relabel) if relabel else {}, smooth=smooth or 0, open=open_ or 0,
        close=close or 0, erode=erode or 0, dilate=dilate or 0, kernel=kernel, min_area=int(default_area or 0),
        min_area_per_class=areas, fill_holes=fill_holes or 0, keep_largest=keep_largest or 0,
        connectivity=connectivity, only=spec.class_list(only) if only else None, fill=fill,
        background=spec.background(background),
        ignore_index="auto" if ignore_index is None else parse_ignore(ignore_index),
        order=spec.steps(order) if order else None, instances=instances, classes=_class_names(classes),
        palette=palette)
    with parameters_as_flags(FLAGS):
        options.validate()
        specs = inputs or ["-"]
        from segtools.cli.video_opts import video_request

        video = video_request(specs, output, every=every, start=start, end=end, max_frames=max_frames, fps_limit=fps_limit, codec=codec,
                              overwrite=overwrite)
        if video is not None:
            from segtools.cli.video_tools import postprocess_video

            postprocess_video(video, options)
            return
        from segtools.cli.options import parse_shard, shard_items
        from segtools.io.cluster import use_dask

        items = shard_items(expand_inputs(specs), parse_shard(shard))
        targets = output_targets(items, specs, output, ".png", overwrite)
        with use_dask(dask), progress(len(items), "postprocess") as advance:
            postprocess_files([item.path for item in items], targets, options, jobs, overwrite, on_done=advance)


def _class_names(spec: Optional[str]):
    """``--classes``: a preset or a file; a list of classes (the old meaning) points to --only."""
    if spec is None:
        return None
    import os

    from segtools.io import presets
    from segtools.io.meta import load_classes

    if spec.strip().lower() not in presets.PRESETS and not os.path.exists(spec):
        raise UsageError(f"--classes {spec!r} is neither a class preset ({', '.join(presets.PRESETS)}) nor a file; "
                         f"--classes gives class names now, as in every command: to choose classes to operate on "
                         f"use --only {spec}")
    return load_classes(spec)


def register(app: typer.Typer) -> None:
    from segtools.cli.video_opts import names_no_video
    from segtools.io.remote import with_storage

    # s3://, gs://, memory://… inputs and output: each mask read and written by whoever runs it (a video: staged)
    app.command("postprocess")(with_storage(postprocess, streamed=("inputs", "output"), streams=names_no_video))
