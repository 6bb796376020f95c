"""Label masks and score maps: read from and write to the pipe contract's formats.

Label mask: H×W integers, one class per pixel. Written as an 8-bit palette PNG while every
value fits in a byte, else a 16-bit grey PNG; 8-bit grey PNG and integer ``.npy`` are read
too. Class metadata (:class:`ClassMeta`) rides in an ``iTXt`` chunk keyed ``segtools``.

Score map: float probabilities, C×H×W (or H×W for one foreground class). segtools writes an
uncompressed ``.npz`` holding ``scores`` and ``meta`` (the class metadata as a JSON string),
which is what travels through pipes; a plain float ``.npy`` is read (and written on request)
without metadata.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

import numpy as np

from segtools.errors import InputError, OutputError
from segtools.io import png  # npy: imported where an array is read (a PNG run never needs it)
from segtools.io.limits import check_class_count, check_pixels
from segtools.io.meta import PNG_KEY, ClassMeta, default_palette
from segtools.io.sniff import PNG_GREY, PNG_GREY_ALPHA, PNG_PALETTE, Sniffed, sniff
from segtools.io.streams import Source, describe, emit, read_bytes

PNG_COMPRESS_LEVEL = 3


@dataclass
class LabelMask:
    """A label mask and what its values mean (``meta`` is ``None`` when the file said nothing)."""

    labels: np.ndarray
    meta: ClassMeta | None = None
    name: str = ""


@dataclass
class ScoreMap:
    """Float scores C×H×W (or H×W) and their class metadata, if any."""

    scores: np.ndarray
    meta: ClassMeta | None = None
    name: str = ""


def read_label_mask(source: Source, colours: ClassMeta | str | None = None, *, name: str | None = None) -> LabelMask:
    """Read a label mask from a path, ``-`` (stdin), a stream or bytes.

    Parameters
    ----------
    source : where to read from; the format is sniffed from the first bytes.
    colours : a colour→class map (:class:`ClassMeta` with a palette, or a preset name or JSON
        file for :func:`~segtools.io.meta.load_classes`); needed only for RGB colour masks.

    name : what to call the source in messages (default: its path, ``<stdin>``, ...).

    Raises
    ------
    InputError
        Unreadable or truncated file, a score map or photo where a mask was expected, an RGB
        mask without a colour map, a colour not in the map.
    """
    name = name or describe(source)
    data = read_bytes(source)
    kind = sniff(data[:512])
    if kind.format == "png":
        return _read_png_mask(data, kind, name, colours)
    if kind.format == "npy":
        from segtools.io import npy

        array = npy.read_npy(data, name, "labels")
        return LabelMask(_check_label_array(array, name), None, name)
    if kind.format == "npz":
        raise InputError(f"{name}: is a score map (.npz), not a label mask; turn it into labels with `segtools postprocess`")
    raise InputError(f"{name}: {_not_a('label mask', kind)}")


def read_score_map(source: Source, *, name: str | None = None) -> ScoreMap:
    """Read a score map: segtools ``.npz`` (scores + meta) or a float ``.npy``."""
    name = name or describe(source)
    data = read_bytes(source)
    kind = sniff(data[:512])
    if kind.format == "npz":
        return _load_npz_scores(data, name)
    if kind.format == "npy":
        from segtools.io import npy

        array = npy.read_npy(data, name, "scores")
        return ScoreMap(_check_score_array(array, name), None, name)
    raise InputError(f"{name}: {_not_a('score map', kind)}")


def read_mask_or_scores(source: Source, colours: ClassMeta | str | None = None, *,
                        name: str | None = None) -> LabelMask | ScoreMap:
    """Read whichever of the two the bytes hold (a float ``.npy`` or ``.npz`` is a score map)."""
    name = name or describe(source)
    data = read_bytes(source)
    kind = sniff(data[:512])
    if kind.format == "npz" or (kind.format == "npy" and (kind.dtype or "").lstrip("<>|=")[:1] == "f"):
        return read_score_map(data, name=name)
    return read_label_mask(data, colours, name=name)


def _not_a(wanted: str, kind: Sniffed) -> str:
    hints = {
        "empty": "empty input (no bytes)",
        "jpeg": f"is a JPEG image, not a {wanted} (JPEG is lossy; masks are PNG or .npy)",
        "json": f"is JSON, not a {wanted} (annotations? see `segtools convert`)",
        "text": f"is a text file, not a {wanted}",
    }
    return hints.get(kind.format, f"is not a {wanted} (recognised: {kind.format}); expected PNG, .npy or .npz")


def _check_label_array(array: np.ndarray, name: str) -> np.ndarray:
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if array.dtype.kind == "f":
        raise InputError(f"{name}: holds floats: a score map, not a label mask; threshold or argmax it with `segtools postprocess`")
    if array.dtype.kind not in "iu":
        raise InputError(f"{name}: dtype {array.dtype} is not an integer label mask")
    if array.ndim == 3 and 1 in (array.shape[0], array.shape[-1]):
        array = array.reshape(array.shape[1:] if array.shape[0] == 1 else array.shape[:-1])
    if array.ndim != 2:
        raise InputError(f"{name}: a label mask is 2-D (H×W), this array is {array.ndim}-D {array.shape}")
    _check_not_empty(array, name)
    return array


def _check_not_empty(array: np.ndarray, name: str) -> None:
    if array.size == 0:
        raise InputError(f"{name}: holds no pixels (shape {array.shape})")


def _check_score_array(array: np.ndarray, name: str) -> np.ndarray:
    if array.dtype.kind != "f":
        raise InputError(f"{name}: a score map holds floats, this array is {array.dtype}")
    if array.ndim not in (2, 3):
        raise InputError(f"{name}: a score map is C×H×W or H×W, this array is {array.ndim}-D {array.shape}")
    if array.ndim == 3:
        check_class_count(array.shape[0], f"{name}: score map channels")
    _check_not_empty(array, name)
    return array


def _load_npz_scores(data: bytes, name: str) -> ScoreMap:
    """``scores`` (and ``meta``) of a segtools ``.npz``, each entry's header checked before
    it is inflated (see :func:`npy.read_npz_member`)."""
    import zipfile

    from segtools.io import npy

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise InputError(f"{name}: corrupt or truncated .npz ({exc})") from None
    with archive:
        entries = set(archive.namelist())
        if "scores.npy" not in entries:
            found = ", ".join(sorted(entries)[:10]) or "nothing"
            raise InputError(f"{name}: .npz without a 'scores' array (has: {found})")
        scores = npy.read_npz_member(archive, "scores.npy", name, "scores")
        meta_json = None
        if "meta.npy" in entries:
            text = npy.read_npz_member(archive, "meta.npy", name, None, kinds="U", max_bytes=4 * png.MAX_TEXT_BYTES)
            if text.ndim != 0:
                raise InputError(f"{name}: meta.npy is not one JSON string")
            meta_json = str(text[()])
    meta = ClassMeta.from_json(meta_json, f"{name}: meta") if meta_json else None
    return ScoreMap(_check_score_array(scores, name), meta, name)


def _read_png_mask(data: bytes, kind: Sniffed, name: str, colours) -> LabelMask:
    header = png.check_structure(data, name)
    check_pixels(header.width, header.height, name)
    meta_json = png.text_chunk(data, PNG_KEY, name)
    meta = ClassMeta.from_json(meta_json, f"{name}: segtools metadata") if meta_json else None
    if header.colour_type == PNG_PALETTE:
        labels = _decode_palette_png(data, name)
    elif header.colour_type == PNG_GREY:
        labels = _decode_cv2(data, name)
    elif header.colour_type == PNG_GREY_ALPHA:
        raise InputError(f"{name}: a grey PNG with an alpha channel is not a label mask; save it as plain grey or palette PNG")
    else:
        if colours is None:
            raise InputError(
                f"{name}: is an RGB colour mask; give a colour→class map with --palette "
                "voc|cityscapes|camvid|ade20k|FILE.json"
            )
        from segtools.io.colour import colours_to_labels

        cmap = colours if isinstance(colours, ClassMeta) else _load_colours(colours)
        rgb = _decode_cv2(data, name)
        if rgb.dtype != np.uint8:
            raise InputError(f"{name}: a 16-bit RGB PNG is not a colour mask")
        rgb = rgb[..., 2::-1] if rgb.ndim == 3 else rgb
        return LabelMask(colours_to_labels(rgb, cmap, name), meta or cmap, name)
    return LabelMask(labels, meta, name)


def _load_colours(spec: str) -> ClassMeta:
    from segtools.io.meta import load_classes

    return load_classes(spec)


def _decode_palette_png(data: bytes, name: str) -> np.ndarray:
    from segtools.io.images import pillow_image

    with pillow_image(data, name, "PNG") as image:
        image.load()
        return np.asarray(image)


def _decode_cv2(data: bytes, name: str) -> np.ndarray:
    """Grey or colour PNG pixels as stored (no alpha from tRNS, no colour management)."""
    return png.decode_cv2(data, name)


# ---------------------------------------------------------------- writing


def encode_label_mask(labels: np.ndarray, meta: ClassMeta | None = None) -> bytes:
    """PNG bytes for a label mask: 8-bit palette when values fit in a byte, else 16-bit grey."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    labels = np.asarray(labels)
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    if labels.ndim != 2 or labels.dtype.kind not in "iu":
        raise OutputError(f"a label mask must be a 2-D integer array, not {labels.ndim}-D {labels.dtype}")
    if labels.size == 0:
        raise OutputError("cannot write an empty (0-pixel) label mask")
    low, high = (int(labels.min()), int(labels.max()))
    if low < 0 or high > 65535:
        raise OutputError(
            f"label values {low}..{high} do not fit a PNG (0..65535); write a .npy instead (-o mask.npy)"
        )
    info = PngInfo()
    if meta is not None:
        info.add_itxt(PNG_KEY, meta.to_json())
    if high <= 255:
        image = Image.fromarray(labels.astype(np.uint8, copy=False))
        image.putpalette(_palette_bytes(meta))
    else:
        image = Image.fromarray(labels.astype("<u2", copy=False))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info, compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def _palette_bytes(meta: ClassMeta | None) -> bytes:
    colours = list(default_palette(256))
    if meta is not None and meta.palette:
        colours[: min(256, len(meta.palette))] = meta.palette[:256]
    return bytes(int(v) for colour in colours for v in colour)


def encode_score_map(scores: np.ndarray, meta: ClassMeta | None = None) -> bytes:
    """Uncompressed ``.npz`` bytes with ``scores`` and, when given, ``meta`` (JSON)."""
    scores = _check_score_array(np.asarray(scores), "score map")
    buffer = io.BytesIO()
    if meta is None:
        np.savez(buffer, scores=scores)
    else:
        np.savez(buffer, scores=scores, meta=np.array(meta.to_json()))
    return buffer.getvalue()


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def write_label_mask(labels: np.ndarray, output: str | os.PathLike | None, meta: ClassMeta | None = None,
                     allow_overwrite: bool = False) -> None:
    """Write a label mask to a file (``.npy`` by extension, else PNG) or stdout (PNG)."""
    if output is not None and str(output).lower().endswith(".npy"):
        data = _npy_bytes(_check_label_array(np.asarray(labels), "label mask"))
    else:
        data = encode_label_mask(labels, meta)
    emit(data, output, "a PNG mask", allow_overwrite)


def write_score_map(scores: np.ndarray, output: str | os.PathLike | None, meta: ClassMeta | None = None,
                    allow_overwrite: bool = False) -> None:
    """Write a score map: ``.npy`` by extension (no metadata), else ``.npz`` (also on stdout)."""
    if output is not None and str(output).lower().endswith(".npy"):
        data = _npy_bytes(_check_score_array(np.asarray(scores), "score map"))
    else:
        data = encode_score_map(scores, meta)
    emit(data, output, "a score map", allow_overwrite)
