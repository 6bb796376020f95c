"""YOLO labels (Ultralytics/Roboflow): boxes ``cls cx cy w h`` and polygons ``cls x1 y1 …``.

One text file per image under ``labels/`` (same relative name as the image under
``images/``, extension ``.txt``), coordinates divided by the image width/height, class
indices from 0, and a ``data.yaml`` naming the classes. A line with 5 numbers is a box; a
line with an odd count ≥ 7 is a polygon (≥ 3 points).

YOLO has one simple polygon per object: an object of several parts is written as one
polygon whose parts are joined by zero-width bridges (as Ultralytics' own COCO converter
does); the holes of a mask are filled (``holes="fill"``, counted as lossy) unless
``holes="bridge"`` keeps them as keyholes (OpenCV's ``fillPoly``, which Ultralytics uses to
rasterise, honours them).
"""

from __future__ import annotations

import re
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator, Sequence

import numpy as np

from segtools.errors import InputError
from segtools.formats import Summary
from segtools.formats import boxes as boxlib
from segtools.formats import polygons as polylib
from segtools.formats.records import Categories, Record, Tick, stem_path
from segtools.io.limits import MAX_CLASSES, check_class_count

MAX_YAML_BYTES = 1 << 20  # a data.yaml is a few hundred bytes; 65,536 class names fit in 1 MiB


def _num(value: float) -> str:
    text = f"{value:.10f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def box_line(label: int, yolo_box: Sequence[float]) -> str:
    return " ".join([str(int(label)), *(_num(v) for v in yolo_box)])


def polygon_line(label: int, normalised: np.ndarray) -> str:
    return " ".join([str(int(label)), *(_num(v) for v in np.asarray(normalised).reshape(-1))])


def _clip_unit(values: np.ndarray, what: str, strict: bool, summary: Summary | None) -> np.ndarray:
    outside = (values < 0) | (values > 1)
    if outside.any():
        if strict:
            raise InputError(f"{what}: coordinates outside the image (pass without --strict to clip them)")
        if summary is not None:
            summary.add("objects with coordinates outside the image (clipped)", lossy=True)
        values = np.clip(values, 0.0, 1.0)
    return values


def annotation_lines(annotations: Sequence[dict], height: int, width: int, label_of: dict[int, int],
                     segments: bool, holes: str = "fill", epsilon: float = 0.0, strict: bool = False,
                     summary: Summary | None = None, where: str = "") -> list[str]:
    """YOLO lines for the COCO annotations of one image."""
    from segtools.formats import coco as cocolib

    summary = summary if summary is not None else Summary()
    lines = []
    for ann in annotations:
        cid = ann.get("category_id")
        if cid not in label_of:
            raise InputError(f"{where}annotation {ann.get('id')}: unknown category_id {cid!r}")
        label = label_of[cid]
        what = f"{where}annotation {ann.get('id')}"
        if not segments:
            if "bbox" not in ann:
                raise InputError(f"{what}: no 'bbox'")
            box, changed = boxlib.clip_coco(ann["bbox"], width, height)
            if changed.any():
                if strict:
                    raise InputError(f"{what}: box outside the {width}×{height} image (pass without --strict to clip)")
                summary.add("boxes outside the image (clipped)", lossy=True)
            lines.append(box_line(label, boxlib.coco_to_yolo(box, width, height)[0]))
            continue
        segm = ann.get("segmentation")
        if isinstance(segm, list) and segm:
            parts = [polylib.as_points(p, f"{what}: polygon") for p in segm]
        elif isinstance(segm, dict):
            mask = cocolib.segmentation_to_mask(segm, height, width, what)
            traced = polylib.mask_to_polygons(mask, epsilon=epsilon, holes=holes)
            summary.add("RLE (crowd) masks traced to polygons", lossy=False)
            summary.add("holes filled (YOLO has no holes)", traced.holes_filled, lossy=True)
            parts = traced.polygons
            if not parts:
                summary.add("empty masks skipped", lossy=True)
                continue
        else:
            raise InputError(f"{what}: no polygon or RLE segmentation (use boxes: --to yolo)")
        if len(parts) > 1:
            summary.add("multi-part objects joined into one polygon")
        ring = polylib.join_parts(parts) if len(parts) > 1 else parts[0]
        normalised = _clip_unit(ring / np.array([width, height], np.float64), what, strict, summary)
        lines.append(polygon_line(label, normalised))
    return lines


def parse_lines(text: str, name: str = "labels") -> list[tuple[int, np.ndarray]]:
    """``(class, values)`` per non-empty line; values are 4 (box) or 2·N (polygon) floats."""
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        try:
            label = int(fields[0])
            values = np.array([float(v) for v in fields[1:]], np.float64)
        except ValueError:
            raise InputError(f"{name}:{number}: not a YOLO line (class then numbers): {line.strip()[:60]!r}") from None
        if label < 0:
            raise InputError(f"{name}:{number}: negative class {label}")
        if label >= MAX_CLASSES:
            raise InputError(f"{name}:{number}: class {label:,} is out of range (0..{MAX_CLASSES - 1:,}, "
                             "the 16-bit PNG limit)")
        if len(values) == 4:
            pass
        elif len(values) % 2 or len(values) < 6:
            what = "fewer than 3 points" if len(values) < 6 and len(values) % 2 == 0 else f"{len(values)} coordinates"
            raise InputError(f"{name}:{number}: a YOLO line has 4 box values or ≥ 3 x y points, this one has {what}")
        if not np.isfinite(values).all():
            raise InputError(f"{name}:{number}: NaN or infinite coordinate")
        rows.append((label, values))
    return rows


def rows_to_annotations(rows, height: int, width: int, image_id: int, first_id: int,
                        num_classes: int | None = None, strict: bool = False,
                        summary: Summary | None = None, name: str = "labels") -> list[dict]:
    """COCO annotations (category_id = class + 1) from parsed YOLO rows."""
    from segtools.formats import rle as rlelib

    annotations = []
    for label, values in rows:
        if num_classes is not None and label >= num_classes:
            raise InputError(f"{name}: class {label} is not one of the dataset's {num_classes} class names")
        values = _clip_unit(values, name, strict, summary)
        if len(values) == 4:
            box = boxlib.yolo_to_coco(values, width, height)[0]
            ann = {"segmentation": [], "area": float(box[2] * box[3]), "bbox": [float(v) for v in box]}
        else:
            points = values.reshape(-1, 2) * np.array([width, height], np.float64)
            encoded = polylib.polygon_to_rle(points, height, width)
            ann = {"segmentation": [polylib.flat(points, 3)], "area": rlelib.area(encoded), "bbox": rlelib.to_bbox(encoded)}
        annotations.append({"id": first_id + len(annotations), "image_id": image_id,
                            "category_id": int(label) + 1, "iscrowd": 0, **ann})
    return annotations


# ---------------------------------------------------------------- data.yaml


def data_yaml(names: Sequence[str], path: str | None = None, train: str = "images", val: str | None = None) -> str:
    """A minimal Ultralytics ``data.yaml`` (written by hand: no YAML dependency)."""
    lines = []
    if path:
        lines.append(f"path: {_quote(path)}")
    lines.append(f"train: {_quote(train)}")
    lines.append(f"val: {_quote(val or train)}")
    lines.append(f"nc: {len(names)}")
    lines.append("names:")
    lines += [f"  {i}: {_quote(n)}" for i, n in enumerate(names)]
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    import json

    return text if re.fullmatch(r"[A-Za-z0-9_./ -]*[A-Za-z0-9_./-]", text or "x") and not text[:1] in "-. " else json.dumps(text)


def read_data_yaml(text: str, name: str = "data.yaml") -> dict:
    """Read the subset of YAML a ``data.yaml`` uses (PyYAML's safe loader when importable).

    Supported: ``key: value`` scalars, ``names: [a, b]``, ``names:`` followed by ``- a``
    items or ``0: a`` pairs, ``#`` comments, quoted strings. The file comes from a dataset,
    so it is bounded: at most :data:`MAX_YAML_BYTES`, no anchors or aliases (the "billion
    laughs"), no tags (no object construction: PyYAML's safe loader only ever builds plain
    data), scalar class names, and at most :data:`~segtools.io.limits.MAX_CLASSES` classes.
    """
    if len(text) > MAX_YAML_BYTES:
        raise InputError(f"{name}: {len(text):,} characters is too large for a data.yaml (at most {MAX_YAML_BYTES:,})")
    try:
        import yaml  # type: ignore
    except ImportError:
        return _names_list(_read_simple_yaml(text), name)
    if re.search(r"(^|[\s\[{,:-])[&*!][^\s]", text, re.MULTILINE):
        raise InputError(f"{name}: YAML anchors, aliases and tags are not allowed in a data.yaml")
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise InputError(f"{name}: not valid YAML (nested too deeply)") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{name}: not valid YAML ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise InputError(f"{name}: a data.yaml is a mapping of keys (names, nc, train, ...), got {type(data).__name__}")
    return _names_list(data, name)


def _read_simple_yaml(text: str) -> dict:
    """The data.yaml subset without PyYAML (linear in the text)."""
    data: dict = {}
    current = None
    for raw in text.splitlines():
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        if line[:1] not in (" ", "\t", "-"):
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            current = key
            if value.startswith("[") and value.endswith("]"):
                data[key] = [_unquote(v) for v in _split_flow(value[1:-1])]
            elif value:
                data[key] = _unquote(value)
            else:
                data[key] = None
        elif current is not None:
            item = line.strip()
            if item.startswith("- "):
                data[current] = (data[current] if isinstance(data[current], list) else []) + [_unquote(item[2:])]
            elif ":" in item:
                k, _, v = item.partition(":")
                entries = data[current] if isinstance(data[current], dict) else {}
                entries[_unquote(k)] = _unquote(v.strip())
                data[current] = entries
    return data


def _split_flow(text: str) -> list[str]:
    return [part.strip() for part in re.findall(r'"[^"]*"|\'[^\']*\'|[^,]+', text) if part.strip()]


def _unquote(text: str):
    text = str(text).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return int(text) if re.fullmatch(r"-?\d+", text) else text


def _class_name(value, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InputError(f"{where}: a class name must be a string, got {type(value).__name__}")
    return str(value)


def _names_list(data: dict, name: str) -> dict:
    names = data.get("names")
    if isinstance(names, (dict, list)):
        check_class_count(len(names), f"{name}: names")
    if isinstance(names, dict):
        if any(isinstance(k, bool) or not isinstance(k, (int, str)) for k in names):
            raise InputError(f"{name}: 'names' keys must be class indices")
        try:
            keys = sorted(int(k) for k in names)
        except ValueError:
            raise InputError(f"{name}: 'names' keys must be class indices") from None
        if keys != list(range(len(keys))):
            raise InputError(f"{name}: 'names' indices must run 0..{len(keys) - 1} without gaps")
        data["names"] = [_class_name(names.get(k, names.get(str(k))), f"{name}: names[{k}]") for k in keys]
    elif isinstance(names, list):
        data["names"] = [_class_name(n, f"{name}: names[{k}]") for k, n in enumerate(names)]
    elif names is None and "nc" in data:
        count = data["nc"]
        if isinstance(count, bool) or not isinstance(count, int):
            raise InputError(f"{name}: 'nc' must be an integer, got {count!r:.40}")
        data["names"] = [f"class_{i}" for i in range(check_class_count(count, f"{name}: nc"))]
    else:
        raise InputError(f"{name}: no 'names' list of classes")
    return data


def load_data_yaml(path: str | Path) -> dict:
    """:func:`read_data_yaml` of a file, read at most :data:`MAX_YAML_BYTES` (+1) bytes."""
    from segtools.io.streams import read_head

    raw = read_head(path, MAX_YAML_BYTES + 1)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (at byte {exc.start})") from None
    if "\x00" in text:
        raise InputError(f"{path}: holds NUL bytes; not a data.yaml")
    return read_data_yaml(text, str(path))


def find_yaml(root: Path) -> Path | None:
    for candidate in ("data.yaml", "dataset.yaml", "data.yml"):
        if (root / candidate).is_file():
            return root / candidate
    return None


# ---------------------------------------------------------------- dataset reader and writer


def read_yolo(label_items, categories: Categories, summary: Summary, images: dict[str, tuple[str, int, int]],
              image_size: tuple[int, int] | None = None, strict: bool = False,
              data: bytes | None = None) -> Iterator[Record]:
    """Records from YOLO label files; image sizes from ``images`` (or one ``image_size``);
    ``data``: the bytes of a single label file already read (stdin)."""
    from segtools.io.limits import check_size
    from segtools.io.streams import read_bytes

    next_id = 1
    for index, item in enumerate(label_items):
        stem = str(PurePosixPath(item.rel).with_suffix(""))
        if stem in images:
            file_name, height, width = images[stem]
        elif image_size is not None:
            (height, width), file_name = image_size, stem + ".jpg"
        else:
            raise InputError(f"{item.path}: no image '{stem}.*' to read the size from; give images (the photos folder) or image_size (height, width)")
        check_size(width, height, f"{item.path}: image {file_name}")
        text = (data if data is not None and len(label_items) == 1 else read_bytes(item.path)).decode("utf-8", "replace")
        rows = parse_lines(text, item.path)
        annotations = rows_to_annotations(rows, height, width, index + 1, next_id,
                                          len(categories.ids) if categories.fixed else None,
                                                  strict, summary, item.path)
        for ann in annotations:
            categories.see(ann["category_id"], f"{item.path}: ")
        next_id += len(annotations)
        yield Record({"id": index + 1, "file_name": file_name, "height": height, "width": width}, annotations)


def write_yolo(records: Iterable[Record], categories: Categories, out_dir, summary: Summary, segments: bool,
               holes: str = "fill", epsilon: float = 0.0, strict: bool = False, images_root: Path | None = None,
               tick: Tick | None = None) -> None:
    """``images/``, ``labels/`` and ``data.yaml`` under ``out_dir``."""
    from segtools.io.batch import check_output_dir
    from segtools.io.streams import write_bytes

    root = check_output_dir(out_dir)
    for i, record in enumerate(records):
        image = record.image
        h, w = int(image["height"]), int(image["width"])
        label_of = categories.label_of
        lines = annotation_lines(record.annotations, h, w, label_of, segments, holes, epsilon, strict, summary,
                                         f"{image.get('file_name')}: ")
        source = None
        if images_root is not None:  # checked before this image's label is written
            from segtools.formats.paths import source_in

            source = source_in(images_root, image["file_name"], f"image {image.get('id')}: 'file_name'")
        write_bytes(stem_path(root / "labels", image["file_name"], ".txt"), ("\n".join(lines) + "\n" if lines else "").encode())
        if source is not None and source.is_file():
            target = stem_path(root / "images", image["file_name"], source.suffix)
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                try:
                    os.link(source, target)
                except OSError:
                    shutil.copyfile(source, target)
        elif source is not None:
            summary.add("images not found in the images folder (labels written without them)", lossy=True)
        tick and tick(i)
    names = categories.names
    write_bytes(root / "data.yaml", data_yaml(names, path=str(root.resolve())).encode())
