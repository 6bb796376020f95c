"""Prediction over files: read each image, predict, write a label mask or a score map.

What ``segtools predict`` runs once its options are parsed: :func:`legend` says what the
outputs' classes are, :func:`predict_files` streams images through a
:class:`~segtools.inference.predictor.Predictor` (consecutive same-size images share forward
passes) and writes each result as soon as it is ready, in input order.
"""

from __future__ import annotations

from typing import Callable, Sequence

from segtools.io.meta import ClassMeta


def legend(classes: ClassMeta | None, num_classes: int | None) -> ClassMeta:
    """The class metadata predictions carry: ``classes`` with a palette filled in, or, when
    nothing names the classes, numbered classes with the default palette (256 colours when
    the number of outputs is unknown too). The ignore index is ``None``: a model labels every
    pixel."""
    from segtools.io.meta import default_palette

    if classes is None:
        count = max(num_classes or 256, 2)
        return ClassMeta(names=None, palette=default_palette(count)[:count], ignore_index=None)
    if classes.palette is None and classes.names is not None:
        return classes.with_(palette=default_palette(len(classes.names))[: len(classes.names)])
    return classes


def predict_files(predictor, paths: Sequence[str], targets: Sequence[str | None], classes: ClassMeta, *,
                  probs: bool = False, overwrite: bool = False,
                  on_done: Callable[[int], None] | None = None) -> int:
    """Predict the image at each of ``paths`` and write it to the matching ``targets`` entry
    (``None``: stdout).

    Parameters
    ----------
    predictor : a :class:`~segtools.inference.predictor.Predictor`.
    paths : image files (or ``-`` for stdin).
    targets : one output path per input, ``None`` for stdout.
    classes : metadata written with every output (see :func:`legend`).
    probs : write class probabilities (``.npz`` score map; ``.npy`` or ``.tif`` when the target
        says so) instead of label masks (PNG; ``.npy`` or ``.tif`` when the target says so).
    overwrite : allow an output to replace an input file.
    on_done : called with each input's index once its output is written.

    Returns
    -------
    int
        The number of images predicted.
    """
    from segtools.io.images import read_image
    from segtools.io.remote import read_ahead

    if len(paths) != len(targets):
        raise ValueError(f"predict_files: {len(paths)} inputs but {len(targets)} targets")
    formats = [output_format(target, probs) for target in targets]  # refused before any forward pass
    images = (read_image(source, name=None if source is path else str(path))  # storage objects: fetched ahead
              for path, source in read_ahead(paths))
    count = 0
    for index, result in enumerate(predictor.predict_many(images, labels=not probs)):
        write_prediction(result, targets[index], formats[index], classes, probs=probs, overwrite=overwrite)
        count += 1
        if on_done is not None:
            on_done(index)
    return count


def output_format(target: str | None, probs: bool = False) -> str:
    """The format a prediction is written in at ``target`` (``None``: stdout, ``png`` labels or
    ``npz`` scores), from its extension: ``png``/``npy``/``tiff`` for labels,
    ``npz``/``npy``/``tiff`` for score maps.

    Raises
    ------
    UsageError
        An extension that is neither (``.jpg`` would blur the labels, ``.bmp`` is unknown).
    """
    from segtools.io.rasters import output_format as raster_format

    if target is None or str(target) == "-":
        return "npz" if probs else "png"
    return raster_format(target, "scores" if probs else "labels")


def write_prediction(result, target: str | None, fmt: str, classes: ClassMeta, *, probs: bool = False,
                     overwrite: bool = False) -> None:
    """Write one prediction (labels H×W or scores C×H×W) to ``target`` in ``fmt`` (see
    :func:`output_format`). TIFF goes through tifffile when it is installed (the ``tiff``
    extra); without it a label mask is written by Pillow and a score map needs tifffile.
    A TIFF carries no class names: those travel in PNG and ``.npz`` outputs."""
    from segtools.io.masks import write_label_mask, write_score_map

    if fmt != "tiff":
        (write_score_map if probs else write_label_mask)(result, target, classes, overwrite)
        return
    from segtools.io.streams import write_bytes

    write_bytes(target, encode_tiff(result, "scores" if probs else "labels"), overwrite)


def encode_tiff(array, kind: str) -> bytes:
    """TIFF bytes of a label mask (H×W integers) or a score map (C×H×W float32)."""
    import importlib.util
    import io

    from segtools.errors import require

    if kind == "scores" or importlib.util.find_spec("tifffile") is not None:
        from segtools.io.rasters import encode_raster

        require("tifffile", "tiff")
        return encode_raster(array, "tiff", kind)
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="TIFF")
    return buffer.getvalue()
