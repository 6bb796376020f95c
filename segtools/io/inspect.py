"""What a file holds, as a plain dict and as text: the library half of ``segtools info``."""

from __future__ import annotations

from typing import Sequence

import numpy as np

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
        from segtools.labels import value_counts

        labels = mask.labels
        counts = value_counts(labels, name)  # labels 0..65535: at most 65,536 distinct values to list
        present = np.flatnonzero(counts)
        info.update(kind="label mask", height=int(labels.shape[0]), width=int(labels.shape[1]),
                    dtype=str(labels.dtype),
                    values=dict(zip(present.tolist(), counts[present].tolist())))
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


def inspect_sources(specs: Sequence[str], colours=None) -> list[dict]:
    """:func:`inspect_source` of every file the inputs name (files, folders, globs,
    ``@list.txt``, ``-`` for stdin), in the batch's order."""
    from segtools.io.batch import expand_inputs

    return [inspect_source(item.path, colours) for item in expand_inputs(list(specs) or ["-"])]


def describe_report(report: dict, max_labels: int = 40) -> str:
    """An :func:`inspect_source` report as indented lines for people.

    Sizes are HEIGHTxWIDTH; label values are shown with their share of the pixels (a fraction
    0–1, as every CLI table gives it), by class name when the metadata has one (``ignore`` for
    the ignore index), at most ``max_labels``.

    >>> print(describe_report({"source": "m.png", "kind": "label mask", "format": "png", "bytes": 90,
    ...                        "height": 2, "width": 3, "dtype": "uint8", "values": {0: 3, 255: 3},
    ...                        "meta": {"names": ["road"], "ignore_index": 255, "kind": "semantic"}}))
    m.png: label mask (png, 90 bytes)
      size     2x3 (HxW), uint8
      labels   road=0.500, ignore=0.500 (share 0–1)
      meta     kind=semantic ignore_index=255 classes=1
    """
    lines = [f"{report['source']}: {report['kind']} ({report['format']}, {report['bytes']:,} bytes)"]
    if "height" in report:
        lines.append(f"  size     {report['height']}x{report['width']} (HxW), {report['dtype']}"
                     + (f", {report['channels']} channels" if "channels" in report else ""))
    if "shape" in report:
        values = (f"values {report['min']:.4g}..{report['max']:.4g}" if report["min"] is not None
                  else "no finite values")
        if report.get("non_finite"):
            values += f", {report['non_finite']:,} NaN or infinite"
        lines.append(f"  shape    {report['shape']} {report['dtype']}, {values}")
    meta = report.get("meta") or {}
    names = meta.get("names")
    if "values" in report:
        total = sum(report["values"].values())
        parts = []
        for value, count in list(report["values"].items())[: max_labels + 1]:
            label = names[value] if names and value < len(names) else (
                "ignore" if value == meta.get("ignore_index") else str(value))
            parts.append(f"{label}={count / total:.3f}")
        lines.append("  labels   " + ", ".join(parts[:max_labels]) + (" ..." if len(parts) > max_labels else "")
                     + " (share 0–1)")
    if meta:
        lines.append(f"  meta     kind={meta.get('kind')} ignore_index={meta.get('ignore_index')}"
                     + (f" classes={len(names)}" if names else ""))
    return "\n".join(lines)


CSV_FIELDS = ("source", "kind", "format", "bytes", "height", "width", "channels", "dtype", "classes",
              "values", "min", "max", "ignore_index")


def reports_csv(reports: Sequence[dict]) -> str:
    """:func:`inspect_source` reports as CSV text: a header, then one row per input.

    ``classes`` is the number of class names in the metadata; ``values`` the label values
    present as ``value:pixels`` joined by spaces (label masks); ``min``/``max`` the score
    range (score maps). Fields that do not apply are empty.

    >>> print(reports_csv([{"source": "m.png", "kind": "label mask", "format": "png", "bytes": 90,
    ...                     "height": 2, "width": 3, "dtype": "uint8", "values": {0: 3, 255: 3},
    ...                     "meta": {"names": ["road"], "ignore_index": 255}}]), end="")
    source,kind,format,bytes,height,width,channels,dtype,classes,values,min,max,ignore_index
    m.png,label mask,png,90,2,3,,uint8,1,0:3 255:3,,,255
    """
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for report in reports:
        meta = report.get("meta") or {}
        row = dict(report)
        if "shape" in report:
            row["height"], row["width"] = report["shape"][-2:]
        row["classes"] = len(meta["names"]) if meta.get("names") else ""
        row["values"] = " ".join(f"{v}:{n}" for v, n in report["values"].items()) if "values" in report else ""
        row["ignore_index"] = meta.get("ignore_index", "")
        writer.writerow({key: ("" if row.get(key) is None else row.get(key, "")) for key in CSV_FIELDS})
    return buffer.getvalue()
