"""Label masks as video: labels ⇄ palette colours, class metadata beside the video, and the
frames of a mask video or a folder of per-frame masks.

A video cannot carry a PNG's text chunk, so a mask video's class metadata (names, palette,
ignore index) is written beside it as ``NAME.classes.json`` (:func:`sidecar_path`) — a file
``--classes`` reads too. Each label is drawn in its palette colour (the ignore label black);
reading back maps each pixel to the nearest palette colour (:class:`PaletteDecoder`), so a
lossless codec (FFV1 in ``.mkv``, the default there) gives the labels back exactly and a
lossy one (``mp4v``) nearly, with errors at class borders.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from segtools.errors import InputError
from segtools.io.meta import ClassMeta
from segtools.io.video import Frame, FrameRange

#: Colour of the ignore label in a mask video.
IGNORE_COLOUR = (0, 0, 0)
SIDECAR_SUFFIX = ".classes.json"
_INDEXED = re.compile(r"(?:.*\D)?(\d+)")


def sidecar_path(video: str | os.PathLike) -> Path:
    """``masks.mkv`` → ``masks.mkv.classes.json``."""
    return Path(str(video) + SIDECAR_SUFFIX)


def write_sidecar(video: str | os.PathLike, meta: ClassMeta, allow_overwrite: bool = False) -> None:
    from segtools.io.streams import write_bytes

    write_bytes(sidecar_path(video), (meta.to_json() + "\n").encode("utf-8"), allow_overwrite)


def read_sidecar(video: str | os.PathLike) -> Optional[ClassMeta]:
    """The class metadata beside a mask video, or ``None`` when there is none."""
    path = sidecar_path(video)
    if not path.is_file():
        return None
    from segtools.io.meta import load_classes

    return load_classes(str(path))


def colour_table(meta: ClassMeta, size: int = 0) -> np.ndarray:
    """(N, 3) uint8: label ``i`` → ``meta.palette[i]`` (the default palette where it has no
    entry), the ignore label → :data:`IGNORE_COLOUR`; N covers ``size`` labels, the palette,
    and the ignore label when it is below 65,536."""
    from segtools.io.meta import default_palette

    known = len(meta.palette or ()) or len(meta.names or ()) or 2
    ignore = meta.ignore_index
    count = max(size, known, ignore + 1 if ignore is not None else 0)
    table = np.zeros((count, 3), np.uint8)
    auto = np.asarray(default_palette(256), np.uint8)
    table[: min(count, 256)] = auto[: min(count, 256)]
    if meta.palette:
        table[: len(meta.palette)] = np.asarray(meta.palette, np.uint8)[:count]
    if ignore is not None:
        table[ignore] = IGNORE_COLOUR
    return table


def labels_to_frame(labels: np.ndarray, table: np.ndarray) -> np.ndarray:
    """H×W labels → H×W×3 RGB through ``table`` (labels past its end: default palette)."""
    top = int(labels.max(initial=0))
    if top >= len(table):
        raise InputError(f"label {top} has no colour in the mask video's table of {len(table)}; give --classes")
    return table[labels]


class PaletteDecoder:
    """RGB frames → labels: each pixel takes the label of the nearest colour in ``table``
    (squared RGB distance; the lower label on a tie), through a 64×64×64 look-up table built
    once, so a frame costs one indexing pass."""

    def __init__(self, meta: ClassMeta) -> None:
        table = colour_table(meta).astype(np.int32)
        known = len(meta.palette or ()) or len(meta.names or ()) or len(table)
        labels = [label for label in range(min(known, len(table))) if label != meta.ignore_index]
        if meta.ignore_index is not None:  # black decodes to a black class first, then to the ignore label
            labels.append(meta.ignore_index)
        centres = np.arange(64, dtype=np.int32) * 4 + 2
        grid = np.stack(np.meshgrid(centres, centres, centres, indexing="ij"), -1).reshape(-1, 1, 3)
        best = np.full(grid.shape[0], -1, np.int64)
        distance = np.full(grid.shape[0], np.iinfo(np.int64).max)
        for label in labels:  # one pass per palette entry over 262,144 cells, not per pixel
            d = ((grid[:, 0] - table[label]) ** 2).sum(-1)
            closer = d < distance
            best[closer], distance[closer] = label, d[closer]
        self.lut = best.astype(np.uint8 if len(table) <= 256 else np.uint16).reshape(64, 64, 64)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        q = rgb >> 2
        return self.lut[q[..., 0], q[..., 1], q[..., 2]]


def mask_frames(spec: str, selection: FrameRange = FrameRange(), classes: Optional[ClassMeta] = None,
                palette: Optional[ClassMeta] = None) -> tuple[Iterator[Frame], ClassMeta | None, object]:
    """The label masks of a mask video or of a folder of per-frame masks.

    Returns ``(frames, meta, source)``: :class:`~segtools.io.video.Frame` objects whose
    ``image`` is the H×W label mask, the class metadata, and the opened source (to stop or
    close). A folder's frames are its masks in file-name order, each with the frame index in
    its name (``000042.png`` → 42; else its position). A video's colours are decoded through
    ``classes`` (or ``palette``), else the metadata beside it (:func:`sidecar_path`).
    """
    from segtools.io.video import open_source

    if os.path.isdir(spec):
        return _folder_masks(spec, selection, palette or classes)
    meta = classes or palette or read_sidecar(spec)
    if meta is None:
        raise InputError(f"{spec}: a mask video needs its classes: {sidecar_path(spec).name} is not beside it; "
                         "give --classes (a preset such as camvid, or a file)")
    decode = PaletteDecoder(meta)
    source = open_source(spec, folder_frames=False)

    def frames() -> Iterator[Frame]:
        for frame in source.frames(selection):
            yield Frame(frame.index, frame.time, decode(frame.image))

    return frames(), meta, source


class _FolderSource:
    live, kind, fps, frame_count = False, "folder", 30.0, None

    def __init__(self, name: str) -> None:
        self.name, self.stopped = name, False

    def stop(self) -> None:
        self.stopped = True

    def close(self) -> None:
        self.stop()


def _folder_masks(spec: str, selection: FrameRange, colours: Optional[ClassMeta]):
    from segtools.io.batch import expand_inputs
    from segtools.io.masks import read_label_mask
    from segtools.io.meta import read_mask_meta
    from segtools.io.video import _natural_key

    items = sorted(expand_inputs([spec], extensions=(".png", ".npy")), key=lambda item: _natural_key(item.rel))
    source = _FolderSource(spec)
    source.frame_count = len(items)
    indices = []
    for position, item in enumerate(items):
        match = _INDEXED.fullmatch(Path(item.rel).stem)
        indices.append(int(match.group(1)) if match else position)
    if len(set(indices)) != len(indices):
        indices = list(range(len(items)))
    first, end = selection.bounds(source.fps)
    meta = read_mask_meta(items[0].path) if items else None

    def frames() -> Iterator[Frame]:
        taken = 0
        for index, item in zip(indices, items):
            if source.stopped or end is not None and index >= end:
                return
            if index < first or (index - first) % selection.every:
                continue
            yield Frame(index, index / source.fps, read_label_mask(item.path, colours).labels)
            taken += 1
            if selection.max_frames is not None and taken >= selection.max_frames:
                return

    return frames(), meta, source


def pair_by_index(masks: Iterator[Frame], photos: Iterator[Frame], photo_name: str) -> Iterator[Frame]:
    """Frames whose ``image`` is ``(labels, photo)``: each mask frame with the photo frame of
    the same index (photos in between are skipped).

    Raises
    ------
    InputError
        The photos end before a mask's frame (naming it).
    """
    photo = next(photos, None)
    for mask in masks:
        while photo is not None and photo.index < mask.index:
            photo = next(photos, None)
        if photo is None or photo.index != mask.index:
            raise InputError(f"{photo_name}: has no frame {mask.index} for the mask of that frame")
        yield Frame(mask.index, mask.time, (mask.image, photo.image))
