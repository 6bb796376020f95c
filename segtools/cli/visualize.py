"""``segtools visualize``: pictures of masks, errors, score maps, confusion matrices, statistics.

``segtools visualize MASK …`` draws (it is ``segtools visualize draw MASK …``);
``segtools visualize confusion REPORT.json`` and ``segtools visualize stats MASKS…`` are the
two other subcommands. A first argument that is not a subcommand name goes to ``draw``.
"""

from __future__ import annotations

import sys
from typing import Annotated, List, Optional

import typer
from typer.core import TyperGroup

from segtools.cli.common import ClassesOpt, FormatOpt, JobsOpt, OutputOpt, OverwriteOpt, PaletteOpt, info, progress

DEFAULT_COMMAND = "draw"


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
    ignore_index: Annotated[Optional[int], typer.Option(
        "--ignore-index", help="Label value drawn as ignored (default: from metadata, else 255; -1 = none).")] = None,
    output: OutputOpt = None,
    ext: Annotated[str, typer.Option("--ext", help="Picture format for a batch under -o DIR: png or jpg.")] = "png",
    thumb_width: Annotated[int, typer.Option("--thumb-width", min=32, help="Report thumbnail width in pixels.")] = 360,
    allow_missing: Annotated[bool, typer.Option(
        "--allow-missing", help="Skip masks without a matching image or ground truth instead of failing.")] = False,
    jobs: JobsOpt = 1,
    overwrite: OverwriteOpt = False,
) -> None:
    """Draw masks: colourised, over an image, as error maps, panels, heatmaps or an HTML report.

    PNG goes to -o FILE or stdout; JPEG when -o ends in .jpg; a batch (folder, glob, several masks) needs -o DIR and keeps relative names.

    Example: segtools visualize pred.png --gt gt.png --over img.png --panel -o compare.png
    """
    from segtools.errors import UsageError
    from segtools.viz.render import DrawOptions

    if sum((errors, panel, report)) > 1:
        raise UsageError("choose one of --errors, --panel and --report")
    if ext.lower().lstrip(".") not in ("png", "jpg", "jpeg"):
        raise UsageError(f"--ext must be png or jpg, not {ext!r}")
    options = DrawOptions(
        mode="errors" if errors else "panel" if panel else "mask",
        classes=_load_classes(classes), colours=_load_classes(palette) if palette else None,
        ignore_index=None if ignore_index is not None and ignore_index < 0 else ignore_index,
        ignore_given=ignore_index is not None, alpha=alpha, contours=contours, thickness=thickness,
        legend=legend, class_name=class_name, instances=instances, ids=ids, transparent=transparent,
        colour_map=colour_map, text_size=text_size)
    if options.colours is None and options.classes is not None and options.classes.palette:
        options = _replace(options, colours=options.classes)
    if colour_map not in _colour_maps():
        raise UsageError(f"--colormap must be one of {', '.join(_colour_maps())}, not {colour_map!r}")
    triples = _pair_inputs(masks or ["-"], over, gt, allow_missing)
    if report:
        _write_report(triples, options, output, thumb_width, jobs, overwrite)
    else:
        _draw_all(triples, options, output, ext, jobs, overwrite, masks)


def _replace(options, **changes):
    from dataclasses import replace

    return replace(options, **changes)


def _colour_maps() -> tuple[str, ...]:
    from segtools.viz.heatmap import COLOUR_MAPS

    return COLOUR_MAPS


def _load_classes(spec: Optional[str]):
    if spec is None:
        return None
    from segtools.io.meta import load_classes

    return load_classes(spec)


def _pair_inputs(mask_specs: List[str], over: Optional[str], gt: Optional[str], allow_missing: bool):
    """(mask item, image path or None, gt path or None) for each item to draw."""
    from segtools.io.batch import expand_inputs, pair_items

    items = expand_inputs(mask_specs)
    images = gts = None
    if over is not None:
        pairing = pair_items(items, expand_inputs([over]), allow_missing=allow_missing, names=("mask", "image"))
        images = {left.path: right.path for left, right in pairing.pairs}
    if gt is not None:
        pairing = pair_items(items, expand_inputs([gt]), allow_missing=allow_missing, names=("mask", "ground truth"))
        gts = {left.path: right.path for left, right in pairing.pairs}
    triples = []
    for item in items:
        if (images is not None and item.path not in images) or (gts is not None and item.path not in gts):
            continue  # unpaired, skipped under --allow-missing
        triples.append((item, images[item.path] if images else None, gts[item.path] if gts else None))
    if len(triples) < len(items):
        info(f"skipping {len(items) - len(triples)} mask(s) without a partner")
    return triples


def _is_batch(triples, mask_specs: Optional[List[str]]) -> bool:
    import os

    specs = mask_specs or []
    return len(triples) > 1 or len(specs) > 1 or any(os.path.isdir(s) or s.startswith("@") for s in specs)


def _draw_all(triples, options, output, ext, jobs, overwrite, mask_specs) -> None:
    from segtools.errors import UsageError
    from segtools.io.batch import check_output_dir, output_path
    from segtools.io.parallel import pmap
    from segtools.io.streams import check_output_path
    from segtools.viz.render import DrawJob, format_for, run_job

    if not _is_batch(triples, mask_specs):
        item, image, gt = triples[0]
        if output not in (None, "-"):
            check_output_path(output, overwrite)
        run_job(DrawJob(item.path, image, gt, output, options, format_for(output), overwrite))
        return
    if output in (None, "-"):
        raise UsageError(f"{len(triples)} masks: give an output folder with -o DIR")
    out_dir = check_output_dir(output)
    suffix = ".jpg" if ext.lower().lstrip(".") in ("jpg", "jpeg") else ".png"
    jobs_list = [DrawJob(item.path, image, gt, str(output_path(item, out_dir, suffix)), options,
                         suffix.lstrip("."), overwrite) for item, image, gt in triples]
    with progress(len(jobs_list), "drawing") as advance:
        for _ in pmap(run_job, jobs_list, jobs, on_done=advance):
            pass
    info(f"wrote {len(jobs_list)} pictures to {out_dir}")


def _write_report(triples, options, output, thumb_width, jobs, overwrite) -> None:
    from segtools.errors import UsageError
    from segtools.io.parallel import pmap
    from segtools.io.streams import check_output_path, emit
    from segtools.viz.report import ReportJob, build_html, report_item, summarise

    if any(gt is None for _, _, gt in triples):
        raise UsageError("--report scores every image: add --gt GT (a file or folder)")
    if output not in (None, "-"):
        check_output_path(output, overwrite)
    jobs_list = [ReportJob(item.path, gt, image, item.rel, options, thumb_width) for item, image, gt in triples]
    with progress(len(jobs_list), "scoring") as advance:
        rows = list(pmap(report_item, jobs_list, jobs, on_done=advance))
    names = list(options.classes.names) if options.classes is not None and options.classes.names else None
    summary, palette = summarise(rows, names)
    page = build_html(rows, summary, palette)
    emit(page.encode("utf-8"), output, "an HTML report", overwrite)


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
    import math

    from segtools.io.images import write_image
    from segtools.io.streams import check_output_path, describe, read_bytes
    from segtools.viz.confusion import draw_confusion, load_report_confusion

    if output not in (None, "-"):
        check_output_path(output, overwrite)
    data = read_bytes(report_json)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        from segtools.errors import InputError

        raise InputError(f"{describe(report_json)}: not a JSON text file") from None
    confusion, names, report = load_report_confusion(text, describe(report_json))
    if title is None:
        miou = report.get("miou")
        view = {"row": "row-normalised %", "column": "column-normalised %", "none": "pixel counts"}.get(normalise, "")
        title = f"confusion ({view})" + (f" · mIoU {100 * miou:.1f}" if isinstance(miou, (int, float))
                                         and not math.isnan(miou) else "")
    picture = draw_confusion(confusion, names, normalise=normalise, cell=cell, colour_map=colour_map, title=title)
    write_image(picture, output, overwrite)


@visualize_app.command("stats")
def stats_command(
    masks: Annotated[Optional[List[str]], typer.Argument(
        metavar="MASK...", show_default=False,
        help="Label masks: files, folders, globs, @list.txt or - (stdin, the default).")] = None,
    classes: ClassesOpt = None,
    palette: PaletteOpt = None,
    ignore_index: Annotated[Optional[int], typer.Option(
        "--ignore-index", help="Label value not counted as a class (default: from metadata, else 255; -1 = none).")] = None,
    per_image: Annotated[bool, typer.Option("--per-image", help="Also give each image's statistics.")] = False,
    fmt: FormatOpt = "table",
    jobs: JobsOpt = 1,
) -> None:
    """Class statistics of label masks: pixels, share of labelled pixels, presence, per set and image.

    Example: segtools visualize stats masks/ --classes camvid --format json
    """
    from segtools.errors import UsageError
    from segtools.io.batch import expand_inputs
    from segtools.io.parallel import pmap
    from segtools.viz.palette import resolve_meta
    from segtools.viz.stats import ClassStatistics, StatsJob, count_job, statistics_csv, statistics_table

    if fmt not in ("table", "json", "csv"):
        raise UsageError(f"--format must be table, json or csv, not {fmt!r}")
    items = expand_inputs(masks or ["-"])
    colours = _load_classes(palette) if palette else None
    jobs_list = [StatsJob(item.path, item.rel, colours) for item in items]
    with progress(len(jobs_list), "counting") as advance:
        results = list(pmap(count_job, jobs_list, jobs, on_done=advance))
    own_meta = next((meta for _, _, meta in results if meta is not None), None)
    meta = resolve_meta(own_meta, _load_classes(classes),
                        None if ignore_index is not None and ignore_index < 0 else ignore_index,
                        ignore_index is not None)
    total = ClassStatistics()
    for _, counts, _ in results:
        total.add(counts)
    summary = statistics_table(total.pixels, meta, total.images_with, total.images)
    images = [dict(statistics_table(counts, meta), image=rel) for rel, counts, _ in results] if per_image else None
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
    table.add_column("share", justify="right")
    table.add_column("images with" if several else "present", justify="right")
    for row in stats["classes"]:
        presence = f"{row['images_with']}/{stats['images']}" if several else ("yes" if row["present"] else "no")
        table.add_row(str(row["index"]), row["name"], f"{row['pixels']:,}", f"{100 * row['share']:.2f}%", presence)
    ignored = stats["ignored_pixels"]
    caption = f"{stats['labelled_pixels']:,} labelled pixels"
    if stats["ignore_index"] is not None:
        caption += f"; {ignored:,} ignored (value {stats['ignore_index']})"
    table.caption = caption
    table.caption_justify = "left"
    console.print(table)
