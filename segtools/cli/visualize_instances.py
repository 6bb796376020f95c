"""``segtools visualize instances``: the instances of one image, from an instance mask or a
COCO results JSON, with their outlines and labels, and the TP/FP/FN view beside ground truth."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from segtools.cli.options import OutputOpt, OverwriteOpt

#: Each library parameter → the flag that sets it (for messages).
FLAGS = {"alpha": "--alpha", "thickness": "--thickness", "text_size": "--text-size", "gt": "--gt",
         "min_score": "--min-score", "image_id": "--image-id", "errors": "--errors",
         "iou_threshold": "--iou-threshold", "over": "--over", "image": "--over"}


def instances_command(
    pred: Annotated[str, typer.Argument(
        metavar="PRED", help="Instance mask (kind instance, with instance_class / instance_score) or a COCO "
        "results JSON [{image_id, category_id, segmentation, bbox, score}].")],
    over: Annotated[Optional[str], typer.Option("--over", "-i", help="The photo to draw on (black without one).")] = None,
    gt: Annotated[Optional[str], typer.Option(
        "--gt", help="Ground truth: an instance mask or a COCO instances JSON (class names, and --errors).")] = None,
    image_id: Annotated[Optional[str], typer.Option(
        "--image-id", help="The image of a JSON (default: the one named like --over in the ground truth, else the only one).")] = None,
    errors: Annotated[bool, typer.Option(
        "--errors", help="Ground truth beside the error view: TP green, FP red, FN blue (needs --gt).")] = False,
    min_score: Annotated[float, typer.Option("--min-score", min=0.0, max=1.0, help="Leave out instances scoring below this.")] = 0.0,
    iou_threshold: Annotated[float, typer.Option(
        "--iou-threshold", min=0.0, max=1.0, help="IoU a prediction needs to match a ground truth, for --errors.")] = 0.5,
    alpha: Annotated[float, typer.Option("--alpha", min=0.0, max=1.0, help="Opacity of the instance colours.")] = 0.5,
    thickness: Annotated[Optional[int], typer.Option(
        "--thickness", min=1, help="Outline width in pixels (default: from the image size).")] = None,
    text_size: Annotated[Optional[int], typer.Option(
        "--text-size", min=6, help="Label height in pixels (default: 3.2 % of the image's shorter side).")] = None,
    output: OutputOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Draw the instances of one image: a colour per instance, its outline, a 'class score' label.

    Instances are painted lowest score first (the most confident owns a contested pixel). With --errors: the ground truth beside TP/FP/FN at --iou-threshold, matched greedily by score within a category, as COCO matches.

    Example: segtools visualize instances results.json --over img.jpg --gt instances.json --errors -o errors.png
    """
    from segtools.cli.options import parameters_as_flags
    from segtools.io.images import write_image
    from segtools.io.streams import check_output_path
    from segtools.viz.instance_inputs import instance_picture

    if output not in (None, "-"):
        check_output_path(output, overwrite)
    with parameters_as_flags(FLAGS):
        picture = instance_picture(pred, image=over, gt=gt, image_id=_image_id(image_id), errors=errors,
                                   min_score=min_score, iou_threshold=iou_threshold, alpha=alpha,
                                   thickness=thickness, text_size=text_size)
    write_image(picture, output, overwrite)


def _image_id(text: Optional[str]):
    """A COCO image id: an integer when it reads as one (ids are usually numbers), else the text."""
    if text is None:
        return None
    return int(text) if text.strip().lstrip("-").isdigit() else text
