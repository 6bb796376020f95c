"""Error maps: where a prediction agrees with the ground truth, and where it does not."""

from __future__ import annotations

import numpy as np

from segtools.errors import InputError

# codes of an error map (H×W uint8)
CORRECT, WRONG, IGNORED = 0, 1, 2
TRUE_NEGATIVE, TRUE_POSITIVE, FALSE_POSITIVE, FALSE_NEGATIVE, IGNORED_ONE = 0, 1, 2, 3, 4

#: RGB of each code: correct green, wrong red, ignored black.
ERROR_COLOURS = ((0, 170, 80), (230, 30, 30), (0, 0, 0))
#: RGB of each code for one class: TN none (black), TP green, FP red, FN blue, ignored black.
CLASS_ERROR_COLOURS = ((0, 0, 0), (0, 170, 80), (230, 30, 30), (30, 110, 255), (0, 0, 0))
ERROR_NAMES = ("correct", "wrong", "ignored")
CLASS_ERROR_NAMES = ("true negative", "true positive", "false positive", "false negative", "ignored")


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> None:
    if pred.shape != gt.shape:
        raise InputError(
            f"prediction is {pred.shape[1]}×{pred.shape[0]} px but the ground truth is "
            f"{gt.shape[1]}×{gt.shape[0]} px; they must be the same size"
        )


def error_codes(pred: np.ndarray, gt: np.ndarray, ignore_index: int | None = 255,
                class_index: int | None = None) -> np.ndarray:
    """H×W uint8 codes comparing ``pred`` with ``gt``.

    Without ``class_index``: :data:`CORRECT`, :data:`WRONG` or :data:`IGNORED` (the ground
    truth is ``ignore_index``). A prediction of ``ignore_index`` at a labelled pixel is wrong,
    as in the confusion matrix. With ``class_index`` c: :data:`TRUE_POSITIVE` (both c),
    :data:`FALSE_POSITIVE` (pred c, gt not), :data:`FALSE_NEGATIVE` (gt c, pred not),
    :data:`TRUE_NEGATIVE` (neither) or :data:`IGNORED_ONE`.

    >>> error_codes(np.array([[1, 2, 0]]), np.array([[1, 1, 255]])).tolist()
    [[0, 1, 2]]
    >>> error_codes(np.array([[1, 1, 0, 0]]), np.array([[1, 0, 1, 0]]), class_index=1).tolist()
    [[1, 2, 3, 0]]
    """
    pred, gt = np.asarray(pred), np.asarray(gt)
    _check_pair(pred, gt)
    ignored = gt == ignore_index if ignore_index is not None else np.zeros(gt.shape, bool)
    if class_index is None:
        codes = (pred != gt).astype(np.uint8)
        codes[ignored] = IGNORED
        return codes
    in_pred, in_gt = pred == class_index, gt == class_index
    codes = np.zeros(gt.shape, np.uint8)
    codes[in_pred & in_gt] = TRUE_POSITIVE
    codes[in_pred & ~in_gt] = FALSE_POSITIVE
    codes[~in_pred & in_gt] = FALSE_NEGATIVE
    codes[ignored] = IGNORED_ONE
    return codes


def draw_error_map(codes: np.ndarray, image: np.ndarray | None = None, *, one_class: bool = False,
                   alpha: float = 0.5) -> np.ndarray:
    """Colour an error map: H×W×3 RGB ``uint8``.

    Without ``image`` every code is drawn opaque in its colour. Over an image, wrong pixels
    (or FP/FN) are blended with ``alpha``, correct ones (TP) with ``alpha / 2`` for the whole
    map so that errors stand out, and ignored pixels and true negatives show the image
    darkened to half.
    """
    from segtools.io.images import to_rgb8
    from segtools.viz.overlay import blend

    table = np.asarray(CLASS_ERROR_COLOURS if one_class else ERROR_COLOURS, np.uint8)
    colours = table[codes]
    if image is None:
        return colours
    base = to_rgb8(np.asarray(image))
    if base.shape[:2] != codes.shape:
        raise InputError(f"image is {base.shape[1]}×{base.shape[0]} px but the masks are "
                         f"{codes.shape[1]}×{codes.shape[0]} px")
    quiet = (codes == IGNORED_ONE) | (codes == TRUE_NEGATIVE) if one_class else codes == IGNORED
    dimmed = np.where(quiet[..., None], base // 2, base).astype(np.uint8)
    if one_class:
        return blend(dimmed, colours, alpha, ~quiet)
    out = blend(dimmed, colours, alpha, codes == WRONG)
    return blend(out, colours, alpha / 2, codes == CORRECT)


def error_legend(one_class: bool = False) -> list[tuple[str, tuple[int, int, int]]]:
    """(name, colour) pairs for a legend of the error map."""
    if one_class:
        return [(CLASS_ERROR_NAMES[i], CLASS_ERROR_COLOURS[i]) for i in (1, 2, 3)]
    return [(ERROR_NAMES[i], ERROR_COLOURS[i]) for i in (0, 1, 2)]
