"""``segtools visualize``: pictures of masks, errors, score maps, confusion matrices, statistics.

``segtools visualize MASK …`` draws (it is ``segtools visualize draw MASK …``);
``segtools visualize confusion REPORT.json`` and ``segtools visualize stats MASKS…`` are the
two other subcommands. A first argument that is not a subcommand name goes to ``draw``.

Each command parses its options, calls :mod:`segtools.viz` (``render.pair_inputs`` /
``draw_files``, ``report.report_page``, ``confusion``, ``stats.count_files`` /
``statistics_report``) and prints; library messages name parameters (``alpha=1.5``),
shown here as the flags that set them.
"""

from __future__ import annotations

import sys
from typing import Annotated, List, Optional

import typer
from typer.core import TyperGroup

from segtools.cli.common import info, progress
from segtools.cli.options import (ClassesOpt, DaskOpt, FormatOpt, IgnoreOpt, JobsOpt, OutputOpt, OverwriteOpt,
                                  PaletteOpt, ShardOpt)
from segtools.cli.video_opts import CodecOpt, EndOpt, EveryOpt, FpsLimitOpt, MaxFramesOpt, StartOpt
from segtools.cli.video_opts import names_no_video
from segtools.io.remote import storage

DEFAULT_COMMAND = "draw"

#: Each library parameter → the flag that sets it (for messages).
FLAGS = {
    "alpha": "--alpha", "thickness": "--thickness", "class_name": "--class", "colour_map": "--colormap",
    "normalise": "--normalise", "text_size": "--text-size", "ignore_index": "--ignore-index", "gt": "--gt",
    "image": "--over", "classes": "--classes", "palette": "--palette", "cell": "--cell",
    "max_images": "--max-images",
}


class _DrawByDefault(TyperGroup):
    """A command group whose first argument may be a path: anything but a subcommand name
    (or --help) is handed to ``draw``."""

    def parse_args(self, ctx, args):
        if not args and sys.stdin.isatty():
            args = ["--help"]
        elif not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)

    def list_commands(self, ctx):
        return [DEFAULT_COMMAND] + [name for name in self.commands if name != DEFAULT_COMMAND]


visualize_app = typer.Typer(
    cls=_DrawByDefault,
    help=(
        "Pictures of masks, errors, score maps, confusion matrices and class statistics.\n\n"
        "'segtools visualize MASK …' is short for 'segtools visualize draw MASK …' "
        "(see 'segtools visualize draw --help').\n\n"
        "Example:  segtools predict img.png | segtools visualize --over img.png -o overlay.png"
    ),
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=False,
)


def register(app: typer.Typer) -> None:
    app.add_typer(visualize_app, name="visualize")


@visualize_app.command("draw")
# s3://, gs://, memory://… masks, images and -o: each read and written by whoever draws it (a video: staged)
@storage(inputs="masks", paths=("over", "gt"), streamed=("masks", "over", "gt", "output"), streams=names_no_video)
def draw_command(
    masks: Annotated[Optional[List[str]], typer.Argument(
        metavar="MASK...", show_default=False,
        help="Label mask(s) or score map(s): file, folder, glob, @list.txt or - (stdin, the default).")] = None,
    over: Annotated[Optional[str], typer.Option(
        "--over", "-i", help="Image (or folder of images) to draw on; paired with masks by file name.")] = None,
    gt: Annotated[Optional[str], typer.Option(
        "--gt", help="Ground truth mask (or folder): per-class IoU in the legend, error maps, panels, reports.")] = None,
    errors: Annotated[bool, typer.Option(
        "--errors", help="Draw the error map against --gt: correct / wrong / ignored (TP/FP/FN with --class).")] = False,
    panel: Annotated[bool, typer.Option(
        "--panel", help="A panel: image | ground truth | prediction | errors, with titles and a legend.")] = False,
    report: Annotated[bool, typer.Option(
        "--report", help="One self-contained HTML report for a set (needs --gt): worst images first.")] = False,
    alpha: Annotated[float, typer.Option("--alpha", min=0.0, max=1.0, help="Opacity of colours over the image.")] = 0.5,
    contours: Annotated[bool, typer.Option("--contours", help="Outline the regions instead of filling them.")] = False,
    thickness: Annotated[Optional[int], typer.Option(
        "--thickness", min=1, help="Outline width in pixels (default: from the image size).")] = None,
    legend: Annotated[Optional[bool], typer.Option(
        "--legend/--no-legend", help="Legend with class names, area and IoU (default: on for panels, error maps "
        "and heatmaps; off for plain masks and overlays, which keep the image size).")] = None,
    class_name: Annotated[Optional[str], typer.Option(
        "--class", "-c", help="One class (name or index): heatmap of a score map, TP/FP/FN with --errors.")] = None,
    instances: Annotated[Optional[bool], typer.Option(
        "--instances/--semantic", help="Values are instance ids (distinct colours, ids at centroids); default: "
        "from the mask's metadata, or instance for 16-bit masks without class names.")] = None,
    ids: Annotated[bool, typer.Option("--ids/--no-ids", help="Write instance ids at their centroids.")] = True,
    transparent: Annotated[bool, typer.Option(
        "--transparent", help="Ignored pixels transparent (RGBA PNG) instead of black, when not over an image.")] = False,
    colour_map: Annotated[str, typer.Option(
        "--colormap", help="Colour map for heatmaps: viridis, magma, inferno, plasma, turbo, jet, hot, gray.")] = "viridis",
    text_size: Annotated[Optional[int], typer.Option(
        "--text-size", min=6, help="Text height in pixels (default: 3.2 % of the image's shorter side).")] = None,
    classes: ClassesOpt = None,
    palette: PaletteOpt = None,
    ignore_index: IgnoreOpt = None,
    output: OutputOpt = None,
    ext: Annotated[str, typer.Option("--ext", help="Picture format for a batch under -o DIR: png or jpg.")] = "png",
    thumb_width: Annotated[int, typer.Option("--thumb-width", min=32, help="Report thumbnail width in pixels.")] = 360,
    max_images: Annotated[int, typer.Option(
        "--max-images", min=0, help="Report: pictures of the worst N images only (all are listed and scored).")] = 24,
    allow_missing: Annotated[bool, typer.Option(
        "--allow-missing", help="Skip masks without a matching image or ground truth instead of failing.")] = False,
    jobs: JobsOpt = 1,
    overwrite: OverwriteOpt = False,
    every: EveryOpt = 1,
    start: StartOpt = None,
    end: EndOpt = None,
    max_frames: MaxFramesOpt = None,
    fps_limit: FpsLimitOpt = None,
    codec: CodecOpt = None,
    dask: DaskOpt = None,
    shard: ShardOpt = None,
) -> None:
    """Draw masks: colourised, over an image, as error maps, panels, heatmaps or an HTML report.

    PNG goes to -o FILE or stdout; JPEG when -o ends in .jpg; a batch (folder, glob, several masks) needs -o DIR and keeps relative names.

    Example: segtools visualize pred.png --gt gt.png --over img.png --panel -o compare.png

    Video: a mask video or a folder of frame masks, over a video (--over clip.mp4, frames paired by index), to -o out.mp4 or -o DIR; see docs/video.md.
    """
    from segtools.cli.options import parameters_as_flags, parse_ignore
    from segtools.errors import UsageError
    from segtools.viz.draw_options import DrawOptions
    from segtools.viz.heatmap import COLOUR_MAPS

    if sum((errors, panel, report)) > 1:
        raise UsageError("choose one of --errors, --panel and --report")
    if (errors or report) and gt is None:
        raise UsageError(f"--{'errors' if errors else 'report'} needs the ground truth: add --gt GT (a file or folder)")
    if panel and gt is None and over is None:
        raise UsageError("--panel needs something to compare: add --over IMAGE and/or --gt GT")
    if colour_map not in COLOUR_MAPS:
        raise UsageError(f"--colormap must be one of {', '.join(COLOUR_MAPS)}, not {colour_map!r}")
    class_meta = _load_classes(classes)
    from segtools.cli.video_opts import video_request

    video = video_request(masks or ["-"], output, every=every, start=start, end=end, max_frames=max_frames,
                          fps_limit=fps_limit, codec=codec, overwrite=overwrite, over=over)
    if video is not None:
        from segtools.cli.video_tools import visualize_video

        if errors or panel or report or gt is not None:
            raise UsageError("--errors, --panel, --report and --gt work on images; a video is drawn plain or --over")
        with parameters_as_flags(FLAGS):
            visualize_video(video, over, class_meta, _load_classes(palette) if palette else None, alpha=alpha,
                            contours=contours, thickness=thickness, ext=ext)
        return
    with parameters_as_flags(FLAGS):
        options = DrawOptions(
            mode="errors" if errors else "panel" if panel else "mask", classes=class_meta,
            colours=_load_classes(palette) if palette else (class_meta if class_meta and class_meta.palette else None),
            ignore_index=parse_ignore(ignore_index) if ignore_index is not None else None,
            ignore_given=ignore_index is not None, alpha=alpha, contours=contours, thickness=thickness,
            legend=legend, class_name=class_name, instances=instances, ids=ids, transparent=transparent,
            colour_map=colour_map, text_size=text_size)
        from segtools.cli.options import parse_shard
        from segtools.io.cluster import use_dask

        shard_of = parse_shard(shard)
        if report:
            triples = _pair(masks, over, gt, allow_missing, shard_of)
            with use_dask(dask):
                _write_report(triples, options, output, thumb_width, max_images, jobs, overwrite)
            return
    with use_dask(dask):
        _draw(masks, over, gt, allow_missing, options, output, ext, jobs, overwrite, shard_of)


def _pair(masks, over, gt, allow_missing, shard=None):
    from segtools.cli.options import shard_items
    from segtools.io.batch import expand_inputs
    from segtools.viz.render import pair_inputs

    triples, skipped = pair_inputs(expand_inputs(masks or ["-"]), over, gt, allow_missing)
    if skipped:
        info(f"skipping {skipped} mask(s) without a partner")
    return shard_items(triples, shard, key=lambda triple: triple[0].rel)


def _draw(masks, over, gt, allow_missing, options, output, ext, jobs, overwrite, shard=None) -> None:
    """Draw every mask (or score map) with ``options``: one picture per item."""
    from segtools.cli.options import is_batch, output_targets, parameters_as_flags
    from segtools.errors import UsageError
    from segtools.viz.render import draw_files

    if ext.lower().lstrip(".") not in ("png", "jpg", "jpeg"):
        raise UsageError(f"--ext must be png or jpg, not {ext!r}")
    specs = masks or ["-"]
    with parameters_as_flags(FLAGS):
        triples = _pair(masks, over, gt, allow_missing, shard)
        suffix = ".jpg" if ext.lower().lstrip(".") in ("jpg", "jpeg") else ".png"
        targets = output_targets([item for item, _, _ in triples], specs, output, suffix, overwrite)
        with progress(len(triples), "drawing") as advance:
            written = draw_files(triples, targets, options, jobs, overwrite, on_done=advance)
    if is_batch(specs, len(triples)):
        info(f"wrote {written} pictures to {output}")


def _load_classes(spec: Optional[str]):
    if spec is None:
        return None
    from segtools.io.meta import load_classes

    return load_classes(spec)


def _write_report(triples, options, output, thumb_width, max_images, jobs, overwrite) -> None:
    from segtools.io.streams import check_output_path, emit
    from segtools.viz.report import report_page

    if output not in (None, "-"):
        check_output_path(output, overwrite)
    with progress(len(triples), "scoring") as advance:
        page = report_page(triples, options, thumb_width, jobs, on_done=advance, max_images=max_images)
    emit(page.encode("utf-8"), output, "an HTML report", overwrite)


@visualize_app.command("heatmap")
def heatmap_command(
    scores: Annotated[Optional[List[str]], typer.Argument(
        metavar="SCORES...", show_default=False,
        help="Score map(s) (.npz or float .npy, C×H×W or H×W): file, folder, glob, @list.txt or - (stdin).")] = None,
    class_name: Annotated[Optional[str], typer.Option(
        "--class", "-c", help="The class to draw (name or index); needed for C×H×W maps.")] = None,
    over: Annotated[Optional[str], typer.Option(
        "--over", "-i", help="Image (or folder of images) to draw on; paired with score maps by file name.")] = None,
    alpha: Annotated[float, typer.Option("--alpha", min=0.0, max=1.0, help="Opacity of the heatmap over the image.")] = 0.5,
    colour_map: Annotated[str, typer.Option(
        "--colormap", help="Colour map: viridis, magma, inferno, plasma, turbo, jet, hot, gray.")] = "viridis",
    legend: Annotated[bool, typer.Option("--legend/--no-legend", help="Colour bar beside the picture.")] = True,
    text_size: Annotated[Optional[int], typer.Option(
        "--text-size", min=6, help="Text height in pixels (default: 3.2 % of the image's shorter side).")] = None,
    output: OutputOpt = None,
    ext: Annotated[str, typer.Option("--ext", help="Picture format for a batch under -o DIR: png or jpg.")] = "png",
    allow_missing: Annotated[bool, typer.Option(
        "--allow-missing", help="Skip score maps without a matching image instead of failing.")] = False,
    jobs: JobsOpt = 1,
    overwrite: OverwriteOpt = False,
) -> None:
    """Draw one class's probabilities of a score map through a colour map, with a colour bar.

    The same picture as 'segtools visualize SCORES.npz --class NAME', but a label mask is refused and a C×H×W map without --class is an error rather than its argmax.

    Example: segtools visualize heatmap scores.npz --class car --over img.png -o car.png
    """
    from segtools.cli.options import parameters_as_flags
    from segtools.errors import UsageError
    from segtools.viz.draw_options import DrawOptions
    from segtools.viz.heatmap import COLOUR_MAPS

    if colour_map not in COLOUR_MAPS:
        raise UsageError(f"--colormap must be one of {', '.join(COLOUR_MAPS)}, not {colour_map!r}")
    with parameters_as_flags(FLAGS):
        options = DrawOptions(mode="heatmap", alpha=alpha, legend=legend, class_name=class_name,
                              colour_map=colour_map, text_size=text_size)
    _draw(scores, over, None, allow_missing, options, output, ext, jobs, overwrite)


from segtools.cli.visualize_instances import instances_command  # noqa: E402

visualize_app.command("instances")(instances_command)


@visualize_app.command("confusion")
def confusion_command(
    report_json: Annotated[str, typer.Argument(
        metavar="REPORT", help="JSON written by 'segtools metrics --format json' (or - for stdin).")] = "-",
    normalise: Annotated[str, typer.Option(
        "--normalise", "--normalize", help="row (recall view, default), column (precision view) or none (counts).")] = "row",
    cell: Annotated[Optional[int], typer.Option("--cell", min=4, help="Cell size in pixels (default: 720/C).")] = None,
    colour_map: Annotated[str, typer.Option("--colormap", help="Colour map: viridis, magma, turbo, …")] = "viridis",
    title: Annotated[Optional[str], typer.Option("--title", help="Title above the matrix (default: with mIoU).")] = None,
    output: OutputOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Draw the confusion matrix of a metrics report as a heatmap with class names.

    Rows are ground truth, columns prediction; row-normalised by default, so the diagonal is each class's recall in percent.

    Example: segtools visualize confusion report.json -o confusion.png
    """
    from segtools.cli.options import parameters_as_flags
    from segtools.io.images import write_image
    from segtools.io.streams import check_output_path, describe, read_bytes
    from segtools.viz.confusion import confusion_title, draw_confusion, load_report_confusion

    if output not in (None, "-"):
        check_output_path(output, overwrite)
    with parameters_as_flags(FLAGS):
        confusion, names, report = load_report_confusion(read_bytes(report_json), describe(report_json))
        picture = draw_confusion(confusion, names, normalise=normalise, cell=cell, colour_map=colour_map,
                                 title=confusion_title(report, normalise) if title is None else title)
    write_image(picture, output, overwrite)


@visualize_app.command("stats")
def stats_command(
    masks: Annotated[Optional[List[str]], typer.Argument(
        metavar="MASK...", show_default=False,
        help="Label masks: files, folders, globs, @list.txt or - (stdin, the default).")] = None,
    classes: ClassesOpt = None,
    palette: PaletteOpt = None,
    ignore_index: IgnoreOpt = None,
    per_image: Annotated[bool, typer.Option("--per-image", help="Also give each image's statistics.")] = False,
    fmt: FormatOpt = "table",
    chart: Annotated[Optional[str], typer.Option(
        "--output", "-o", help="Also draw a bar chart of the class shares (percent) to this PNG/JPEG file.")] = None,
    text_size: Annotated[Optional[int], typer.Option(
        "--text-size", min=6, help="Chart text height in pixels (default 16).")] = None,
    jobs: JobsOpt = 1,
    overwrite: OverwriteOpt = False,
) -> None:
    """Class statistics of label masks: pixels, share of labelled pixels, presence, per set and image.

    Shares are fractions 0–1 in json and csv; the table and the chart (-o chart.png) show percent.

    Example: segtools visualize stats masks/ --classes camvid -o shares.png
    """
    from segtools.cli.options import parse_ignore
    from segtools.errors import UsageError
    from segtools.io.batch import expand_inputs
    from segtools.viz.stats import count_files, share_chart, statistics_csv, statistics_meta, statistics_report

    if fmt not in ("table", "json", "csv"):
        raise UsageError(f"--format must be table, json or csv, not {fmt!r}")
    if chart is not None:
        from segtools.io.streams import check_output_path

        if chart == "-":
            raise UsageError("-o - would mix the chart with the statistics on stdout: give a file name")
        check_output_path(chart, overwrite)
    ignore = parse_ignore(ignore_index) if ignore_index is not None else None
    class_meta = _load_classes(classes)
    items = expand_inputs(masks or ["-"])
    with progress(len(items), "counting") as advance:
        counted = count_files([item.path for item in items], [item.rel for item in items],
                              _load_classes(palette) if palette else None, jobs, on_done=advance)
    summary, images = statistics_report(counted, class_meta, ignore, ignore_index is not None, per_image)
    if chart is not None:
        from segtools.io.images import write_image

        meta = statistics_meta(counted, class_meta, ignore, ignore_index is not None)
        write_image(share_chart(summary, meta, text_size or 16), chart, overwrite)
    if fmt == "json":
        import json

        if images is not None:
            summary["per_image"] = images
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    elif fmt == "csv":
        sys.stdout.write(statistics_csv(summary, images))
    else:
        _print_statistics(summary, images)


def _print_statistics(summary: dict, images: Optional[list]) -> None:
    from rich.console import Console

    console = Console(highlight=False)
    for stats in (images or []):
        _print_one(console, stats, f"{stats['image']}")
    _print_one(console, summary, f"{summary['images']} mask(s)" if summary["images"] > 1 else "")


def _print_one(console, stats: dict, title: str) -> None:
    from rich.table import Table

    several = stats["images"] > 1
    table = Table(title=title or None, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("class")
    table.add_column("pixels", justify="right")
    table.add_column("share (0–1)", justify="right")
    table.add_column("images with" if several else "present", justify="right")
    for row in stats["classes"]:
        presence = f"{row['images_with']}/{stats['images']}" if several else ("yes" if row["present"] else "no")
        table.add_row(str(row["index"]), row["name"], f"{row['pixels']:,}", f"{row['share']:.4f}", presence)
    ignored = stats["ignored_pixels"]
    caption = f"{stats['labelled_pixels']:,} labelled pixels"
    if stats["ignore_index"] is not None:
        caption += f"; {ignored:,} ignored (value {stats['ignore_index']})"
    table.caption = caption
    table.caption_justify = "left"
    console.print(table)
