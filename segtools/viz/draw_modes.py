"""The four pictures of ``segtools visualize``: mask/overlay, error map, panel, score heatmap."""

from __future__ import annotations

import numpy as np

from segtools.errors import InputError, UsageError
from segtools.io.limits import label_table_size
from segtools.viz.colourise import colour_table, colourise
from segtools.viz.legend import LegendRow, attach, class_rows, draw_legend
from segtools.viz.draw_options import DrawOptions, Inputs
from segtools.viz.text import text_size_for


def _text_size(picture_shape: tuple[int, ...], options: DrawOptions) -> int:
    return options.text_size or text_size_for(picture_shape[0], picture_shape[1])


def num_classes_for(meta, *masks: np.ndarray) -> int:
    """Classes to score: the names' count when known, else up to the largest non-ignored value."""
    if meta.num_classes:
        return meta.num_classes
    largest = 0
    for mask in masks:
        values = mask if meta.ignore_index is None else mask[mask != meta.ignore_index]
        largest = max(largest, label_table_size(values, "label mask"))
    return max(largest, 1)


def per_class_iou(pred: np.ndarray, gt: np.ndarray, meta, name: str = "") -> np.ndarray:
    """IoU of each class for one image (NaN where the class is in neither mask)."""
    from segtools.metrics.confusion import confusion_and_missed
    from segtools.metrics.scores import class_scores

    confusion, missed = confusion_and_missed(pred, gt, num_classes_for(meta, pred, gt), meta.ignore_index,
                                             f"{name}: " if name else "")
    return class_scores(confusion, missed)["iou"]


def resolve_class(options: DrawOptions, meta, what: str) -> int | None:
    if options.class_name is None:
        return None
    index = meta.class_index(options.class_name)
    if index < 0:
        raise UsageError(f"class_name={options.class_name!r}: {what} class index must be >= 0")
    return index


def _class_label(meta, index: int) -> str:
    names = meta.names or ()
    return names[index] if index < len(names) else f"class_{index}"


def _palette(labels: np.ndarray, meta, gt: np.ndarray | None = None) -> np.ndarray:
    size = max(int(labels.max(initial=0)), int(gt.max(initial=0)) if gt is not None else 0) + 1
    probe = np.array([[size - 1]], np.int64)
    return colour_table(probe, meta)


def _check_size(inputs: Inputs, shape: tuple[int, int]) -> None:
    if inputs.gt is not None and inputs.gt.shape != shape:
        raise InputError(f"{inputs.name}: prediction is {shape[1]}×{shape[0]} px but the ground truth is "
                         f"{inputs.gt.shape[1]}×{inputs.gt.shape[0]} px; they must be the same size")
    if inputs.image is not None and inputs.image.shape[:2] != shape:
        raise InputError(f"{inputs.name}: mask is {shape[1]}×{shape[0]} px but the image is "
                         f"{inputs.image.shape[1]}×{inputs.image.shape[0]} px; give the image the mask was made from")


def _class_legend(inputs: Inputs, size: int, height: int) -> np.ndarray:
    labels, meta = inputs.labels, inputs.meta
    iou = per_class_iou(labels, inputs.gt, meta, inputs.name) if inputs.gt is not None else None
    rows = class_rows(labels, meta, _palette(labels, meta, inputs.gt), iou, inputs.gt)
    return draw_legend(rows, height, size, header="class · area %" + (" · IoU %" if iou is not None else ""))


def draw_mask(inputs: Inputs, options: DrawOptions) -> np.ndarray:
    """Colourised mask, or an overlay on the image (filled with alpha, or outlines)."""
    from segtools.viz.instances import draw_instance_ids
    from segtools.viz.overlay import overlay_labels

    labels, meta = inputs.labels, inputs.meta
    _check_size(inputs, labels.shape)
    if inputs.image is not None or options.contours:
        picture = overlay_labels(inputs.image, labels, meta, alpha=options.alpha, contours=options.contours,
                                 thickness=options.thickness, instances=inputs.instances)
    else:
        picture = colourise(labels, meta, instances=inputs.instances, transparent_ignore=options.transparent)
    size = _text_size(picture.shape, options)
    if inputs.instances and options.ids:
        picture = draw_instance_ids(picture, labels, size, meta.ignore_index)
    if options.legend and not inputs.instances:
        picture = attach(picture, _class_legend(inputs, size, picture.shape[0]))
    return picture


def draw_errors(inputs: Inputs, options: DrawOptions) -> np.ndarray:
    """Correct / wrong / ignored (or TP / FP / FN for ``class_name``) against the ground truth."""
    from segtools.viz.error_map import draw_error_map, error_codes, error_legend

    if inputs.gt is None:
        raise UsageError(f"{inputs.name}: an error map needs the ground truth (gt)")
    _check_size(inputs, inputs.labels.shape)
    class_index = resolve_class(options, inputs.meta, "the")
    codes = error_codes(inputs.labels, inputs.gt, inputs.meta.ignore_index, class_index)
    picture = draw_error_map(codes, inputs.image, one_class=class_index is not None, alpha=options.alpha)
    if options.legend is not False:
        name = "" if class_index is None else _class_label(inputs.meta, class_index)
        picture = attach(picture, _error_legend(codes, class_index, name, error_legend(class_index is not None),
                                                _text_size(picture.shape, options), picture.shape[0]))
    return picture


def _error_legend(codes: np.ndarray, class_index: int | None, class_name: str, entries, size: int,
                  height: int) -> np.ndarray:
    from segtools.viz import error_map as err

    counts = np.bincount(codes.ravel(), minlength=5)
    if class_index is None:
        shown = (err.CORRECT, err.WRONG, err.IGNORED)
        scored = max(int(counts[err.CORRECT] + counts[err.WRONG]), 1)
        shares = [counts[err.CORRECT] / scored, counts[err.WRONG] / scored, None]
    else:
        shown = (err.TRUE_POSITIVE, err.FALSE_POSITIVE, err.FALSE_NEGATIVE)
        union = max(int(counts[list(shown)].sum()), 1)
        shares = [counts[c] / union for c in shown]
    rows = [LegendRow(colour, (name,) + (() if share is None else (f"{100 * share:.1f}%",)))
            for (name, colour), share in zip(entries, shares)]
    header = "errors (% of labelled)" if class_index is None else f"{class_name} (% of union)"
    return draw_legend(rows, height, size, header=header)


def draw_panel(inputs: Inputs, options: DrawOptions) -> np.ndarray:
    """image | ground truth | prediction | errors, titled, with a class legend (IoU when GT given)."""
    from segtools.io.images import to_rgb8
    from segtools.viz.error_map import draw_error_map, error_codes
    from segtools.viz.panel import compose_panel

    labels, meta = inputs.labels, inputs.meta
    _check_size(inputs, labels.shape)
    tiles = []
    if inputs.image is not None:
        tiles.append(("image", to_rgb8(inputs.image)))
    if inputs.gt is not None:
        tiles.append(("ground truth", colourise(inputs.gt, meta, instances=inputs.instances)))
    tiles.append(("prediction", colourise(labels, meta, instances=inputs.instances)))
    if inputs.gt is not None:
        codes = error_codes(labels, inputs.gt, meta.ignore_index)
        tiles.append(("errors: green right, red wrong",
                      draw_error_map(codes, inputs.image, alpha=options.alpha)))
    if len(tiles) == 1:
        raise UsageError(f"{inputs.name}: a panel needs something to compare: an image and/or the ground truth (gt)")
    size = options.text_size or text_size_for(*labels.shape)
    picture = compose_panel(tiles, text_size=size)
    if options.legend is not False and not inputs.instances:
        picture = attach(picture, _class_legend(inputs, size, picture.shape[0]))
    return picture


def draw_heatmap(inputs: Inputs, options: DrawOptions) -> np.ndarray:
    """One class's probabilities through a colour map (over the image with alpha), with a colour bar."""
    from segtools.io.images import to_rgb8
    from segtools.viz.heatmap import class_scores, colour_bar, heatmap
    from segtools.viz.overlay import blend

    scores = inputs.scores
    class_index = resolve_class(options, inputs.meta, "the")
    plane = class_scores(scores, class_index, inputs.name)
    picture = heatmap(plane, options.colour_map)
    if inputs.image is not None:
        base = to_rgb8(inputs.image)
        if base.shape[:2] != plane.shape:
            raise InputError(f"{inputs.name}: score map is {plane.shape[1]}×{plane.shape[0]} px but the image is "
                             f"{base.shape[1]}×{base.shape[0]} px")
        picture = blend(base, picture, options.alpha)
    if options.legend is not False:
        if scores.ndim == 2:
            label = "p(foreground)"
        else:
            label = f"p({_class_label(inputs.meta, class_index)})"
        size = _text_size(picture.shape, options)
        picture = attach(picture, colour_bar(picture.shape[0], size, options.colour_map, label))
    return picture
