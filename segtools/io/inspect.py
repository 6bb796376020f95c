"""What a file holds, as a plain dict: the library half of ``segtools info``."""

from __future__ import annotations

import numpy as np

from segtools.io.limits import label_table_size
from segtools.io.masks import read_label_mask, read_score_map
from segtools.io.sniff import PNG_GREY, PNG_PALETTE, sniff
from segtools.io.streams import Source, describe, read_bytes

KIND_OF_PNG = {PNG_PALETTE: "label mask (palette PNG)", PNG_GREY: "label mask or grey image (grey PNG)"}


def inspect_source(source: Source, colours=None) -> dict:
    """Describe a mask, score map or image: kind, size, dtype, values, class metadata.

    Label masks report the label values present with pixel counts; score maps report the
    number of classes and the value range.
    """
    name = describe(source)
    data = read_bytes(source)
    kind = sniff(data[:512])
    info: dict = {"source": name, "format": kind.format, "bytes": len(data)}
    is_mask = kind.format == "png" and kind.colour_type in (PNG_PALETTE, PNG_GREY) or (
        kind.format == "npy" and (kind.dtype or "").lstrip("<>|=")[:1] in ("i", "u", "b"))
    if kind.format == "png" and kind.colour_type not in (PNG_PALETTE, PNG_GREY) and colours is not None:
        is_mask = True
    if is_mask:
        mask = read_label_mask(data, colours, name=name)
        labels = mask.labels
        label_table_size(labels, name)  # labels 0..65535: at most 65,536 distinct values to list
        values, counts = np.unique(labels, return_counts=True)
        info.update(kind="label mask", height=int(labels.shape[0]), width=int(labels.shape[1]),
                    dtype=str(labels.dtype),
                    values={int(v): int(c) for v, c in zip(values.tolist(), counts.tolist())})
        if mask.meta is not None:
            info["meta"] = mask.meta.to_dict()
        return info
    if kind.format == "npz" or kind.format == "npy":
        scores = read_score_map(data, name=name)
        array = scores.scores
        finite = np.isfinite(array)
        values = array[finite] if not finite.all() else array
        info.update(kind="score map", shape=list(array.shape), dtype=str(array.dtype),
                    channels=int(array.shape[0]) if array.ndim == 3 else 1,
                    min=float(values.min()) if values.size else None,
                    max=float(values.max()) if values.size else None)
        if values.size != array.size:
            info["non_finite"] = int(array.size - values.size)
        if scores.meta is not None:
            info["meta"] = scores.meta.to_dict()
        return info
    from segtools.io.images import read_image

    image = read_image(data, name=name)
    info.update(kind="image", height=int(image.shape[0]), width=int(image.shape[1]),
                channels=1 if image.ndim == 2 else int(image.shape[2]), dtype=str(image.dtype))
    return info
