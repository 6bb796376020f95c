"""CVAT for images 1.1 and CVAT for video 1.1 XML (``annotations.xml``) as a convert source.

The layout CVAT writes::

    <annotations><version>1.1</version>
      <meta><task>…<labels><label><name>car</name><color>#fa3253</color>…</label></labels></task></meta>
      <image id="0" name="frame_000000.jpg" width="640" height="480">
        <box label="car" xtl="10.00" ytl="20.00" xbr="30.50" ybr="40.00" rotation="0.0" z_order="0"/>
        <polygon label="person" points="1.00,2.00;3.00,4.00;5.00,6.00" z_order="1"/>
        <mask label="car" rle="3, 5, 2" left="10" top="20" width="5" height="2" z_order="0"/>
        <ellipse label="sign" cx="50" cy="60" rx="5" ry="3" rotation="0"/>
      </image>
    </annotations>

* ``box`` → a COCO box ``[xtl, ytl, xbr − xtl, ybr − ytl]`` (CVAT's pixel corners are COCO's);
  a rotated box becomes the polygon of its four corners (counted).
* ``polygon`` → a COCO polygon of its points.
* ``mask`` → a compressed RLE of the whole image. CVAT's ``rle`` is run lengths over the
  ``width × height`` box at (``left``, ``top``), row by row, starting with a run of 0s; the
  runs must cover the box exactly.
* ``ellipse`` → a polygon of ``max(12, π/acos(1 − 1/r))`` points (r the larger radius), as
  labelme's circles.
* ``polyline``, ``points``, ``cuboid``, ``skeleton`` and ``tag`` hold no area: left out, counted.

Shapes are painted in ``z_order`` (then file order): a higher ``z_order`` wins where two
overlap, as CVAT draws them. Categories are the ``<labels>`` of ``<meta>`` in order
(``category_id = position + 1``), else the labels as they appear.

**CVAT for video 1.1**: ``<track id label>`` elements hold one shape per frame (``frame``,
``outside``, ``keyframe``; CVAT writes interpolated frames too), the frames are those of
``<meta><task>`` (or ``<job>``): ``start_frame`` … ``stop_frame`` every ``frame_filter``
step, all of the ``original_size``. Each frame is a record named ``frame_000000`` (CVAT's
name for a video's frames), its shapes those of the tracks not ``outside`` there.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from typing import Iterator, Sequence

import numpy as np

from segtools.errors import InputError
from segtools.formats import Summary
from segtools.formats.records import Categories, Record

AREA_SHAPES = ("box", "polygon", "mask", "ellipse")
OTHER_SHAPES = ("polyline", "points", "cuboid", "skeleton", "tag")


def parse(data: bytes, name: str = "CVAT XML") -> ET.Element:
    """The root ``<annotations>`` element of a CVAT for images XML; malformed XML is an InputError."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise InputError(f"{name}: not valid XML ({exc})") from None
    except (LookupError, ValueError) as exc:
        raise InputError(f"{name}: not readable XML ({exc})") from None
    except RecursionError:
        raise InputError(f"{name}: not valid XML (nested too deeply)") from None
    if root.tag != "annotations":
        raise InputError(f"{name}: not a CVAT for images file (root <{root.tag}>, expected <annotations>)")
    return root


def is_video(root: ET.Element) -> bool:
    """Whether ``root`` is a "CVAT for video 1.1" file: ``<track>`` s, no ``<image>``."""
    return root.find("track") is not None and root.find("image") is None


def video_frames(root: ET.Element, name: str = "CVAT XML") -> tuple[list[int], int, int]:
    """The frame numbers of a "CVAT for video" task or job (``start_frame`` … ``stop_frame``,
    every ``step`` of ``frame_filter``) and its frames' ``(height, width)`` (``original_size``)."""
    from segtools.io.limits import check_size

    meta = root.find("meta")
    owner = None if meta is None else next((meta.find(k) for k in ("task", "job") if meta.find(k) is not None), None)
    size = None if owner is None else owner.find("original_size")
    if size is None:
        raise InputError(f"{name}: CVAT for video without <meta><task|job><original_size>: the frame size is unknown")

    def number(node, key: str, default: int | None = None) -> int:
        text = (node.findtext(key) or "").strip()
        if not text and default is not None:
            return default
        if not text.isdigit():
            raise InputError(f"{name}: <{key}> must be a whole number, got {text[:30]!r}")
        return int(text)

    width, height = check_size(number(size, "width"), number(size, "height"), f"{name}: <original_size>")
    start = number(owner, "start_frame", 0)
    count = number(owner, "size", 0)
    stop = number(owner, "stop_frame", start + max(count, 1) - 1)
    step = 1
    for part in (owner.findtext("frame_filter") or "").split(","):
        key, _, value = part.strip().partition("=")
        if key.strip() == "step":
            if not value.strip().isdigit() or int(value) < 1:
                raise InputError(f"{name}: <frame_filter> step must be a positive whole number, got {value[:20]!r}")
            step = int(value)
    if stop < start:
        raise InputError(f"{name}: <stop_frame> {stop} before <start_frame> {start}")
    frames = list(range(start, stop + 1, step))
    if count and len(frames) != count:
        frames = frames[:count]
    return frames, height, width


def read_cvat_video(root: ET.Element, categories: Categories, summary: Summary,
                    name: str = "CVAT XML") -> Iterator[Record]:
    """One record per frame of a "CVAT for video 1.1" file (named ``frame_000000``, as CVAT
    names a video's frames): each ``<track>`` 's shape on that frame unless ``outside="1"``
    (CVAT writes every frame of a track, interpolated ones included), painted in
    ``z_order``; an annotation keeps its ``track_id``."""
    from segtools.formats.coco_dataset import _geometry

    frames, height, width = video_frames(root, name)
    known = set(frames)
    by_frame: dict[int, list] = {}
    for t, track in enumerate(root.iter("track")):
        label = (track.get("label") or "").strip()
        if not label:
            raise InputError(f"{name}: <track> {t}: no 'label'")
        track_id = int(track.get("id")) if (track.get("id") or "").isdigit() else t
        for k, shape in enumerate(track):
            if shape.tag not in AREA_SHAPES and shape.tag not in OTHER_SHAPES:
                continue
            frame = _integer(shape, "frame", f"{name}: <track> {track_id}: <{shape.tag}> {k}")
            if frame not in known:
                raise InputError(f"{name}: <track> {track_id}: frame {frame} is not a frame of the task "
                                 f"({frames[0]}…{frames[-1]})")
            if shape.get("outside") == "1":
                continue
            by_frame.setdefault(frame, []).append((shape, label, track_id, k))
    next_id = 1
    for index, frame in enumerate(frames):
        file_name = f"frame_{frame:06d}"
        shapes = sorted(by_frame.get(frame, []), key=lambda item: (_z_order(item[0]), item[2], item[3]))
        annotations = []
        for shape, label, track_id, k in shapes:
            at = f"{name}: <track> {track_id}: frame {frame}: <{shape.tag}>"
            if shape.tag in OTHER_SHAPES:
                summary.add(f"CVAT {shape.tag} shapes left out (no area)", lossy=True)
                continue
            summary.add("CVAT shape attributes not kept (COCO has no place for them)", len(shape.findall("attribute")),
                        lossy=True)
            fields = shape_annotation(shape, height, width, at, summary)
            if "bbox" not in fields:
                fields["area"], fields["bbox"] = _geometry(fields, height, width)
            annotations.append({"id": next_id, "image_id": index + 1, "track_id": track_id, "iscrowd": 0,
                                "category_id": categories.id_of_name(label, f"{at}: "), **fields})
            next_id += 1
        summary.add("CVAT track shapes read (one per track and frame)", len(annotations))
        yield Record({"id": index + 1, "file_name": file_name, "height": height, "width": width}, annotations)


def label_names(root: ET.Element) -> list[str]:
    """The label names ``<meta>`` declares, in order (empty when it declares none)."""
    meta = root.find("meta")
    if meta is None:
        return []
    names = []
    for label in meta.iter("label"):
        name = (label.findtext("name") or "").strip()
        if name and name not in names:
            names.append(name)
    return names


def _number(shape: ET.Element, key: str, where: str) -> float:
    text = shape.get(key)
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise InputError(f"{where}: attribute {key!r} missing or not a number ({str(text)[:30]!r})") from None
    if not math.isfinite(value):
        raise InputError(f"{where}: attribute {key!r} is not finite")
    return value


def _integer(shape: ET.Element, key: str, where: str, low: int = 0) -> int:
    value = _number(shape, key, where)
    if not value.is_integer() or value < low:
        raise InputError(f"{where}: attribute {key!r} must be an integer ≥ {low}, got {shape.get(key)!r}")
    return int(value)


def _points(text: str | None, where: str) -> np.ndarray:
    try:
        points = np.array([[float(v) for v in pair.split(",")] for pair in (text or "").split(";") if pair.strip()],
                          np.float64)
    except ValueError:
        raise InputError(f"{where}: 'points' must be 'x,y;x,y;…' ({str(text)[:40]!r})") from None
    if points.ndim != 2 or points.shape[1] != 2 or not np.isfinite(points).all():
        raise InputError(f"{where}: 'points' must be 'x,y;x,y;…' with finite numbers")
    return points


def _rotated(corners: np.ndarray, degrees: float) -> np.ndarray:
    centre = corners.mean(0)
    angle = math.radians(degrees)
    turn = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return (corners - centre) @ turn.T + centre


def mask_rle(shape: ET.Element, height: int, width: int, where: str, summary: Summary | None = None) -> dict:
    """The compressed COCO RLE (whole image) of a CVAT ``<mask>``."""
    from segtools.formats import rle as rlelib

    left, top = _integer(shape, "left", where), _integer(shape, "top", where)
    box_w, box_h = _integer(shape, "width", where, 1), _integer(shape, "height", where, 1)
    if left >= width or top >= height or box_w > width - left or box_h > height - top:
        if summary is not None:
            summary.add("CVAT masks reaching outside the image (clipped)", lossy=True)
    from segtools.io.limits import check_size

    check_size(box_w, box_h, f"{where}: mask box")
    try:
        counts = np.array([int(v) for v in (shape.get("rle") or "").split(",") if v.strip()], np.int64)
    except (ValueError, OverflowError):
        raise InputError(f"{where}: 'rle' must be comma-separated run lengths") from None
    if counts.size == 0 or (counts < 0).any() or (counts > box_w * box_h).any() or int(counts.sum()) != box_w * box_h:
        raise InputError(f"{where}: the rle runs cover {int(counts.sum()) if counts.size else 0} pixels, "
                         f"its box {box_w}x{box_h} has {box_w * box_h}")
    values = (np.arange(counts.size) % 2).astype(np.uint8)
    crop = np.repeat(values, counts).reshape(box_h, box_w)
    bottom, right = min(height, top + box_h), min(width, left + box_w)
    full = np.zeros((height, width), np.uint8)
    if bottom > top and right > left:
        full[top:bottom, left:right] = crop[: bottom - top, : right - left]
    return rlelib.encode(full)


def shape_annotation(shape: ET.Element, height: int, width: int, where: str,
                     summary: Summary | None = None) -> dict | None:
    """``segmentation`` and ``bbox`` of one area shape (None for shapes without area)."""
    from segtools.formats import polygons as polylib

    kind = shape.tag
    if kind == "box":
        x0, y0, x1, y1 = (_number(shape, k, where) for k in ("xtl", "ytl", "xbr", "ybr"))
        if x1 < x0 or y1 < y0:
            raise InputError(f"{where}: xbr/ybr before xtl/ytl")
        rotation = _number(shape, "rotation", where) if shape.get("rotation") is not None else 0.0
        if rotation % 360:
            corners = _rotated(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]), rotation)
            if summary is not None:
                summary.add("rotated CVAT boxes written as polygons")
            return {"segmentation": [polylib.flat(corners, 3)]}
        return {"segmentation": [], "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0)}
    if kind == "polygon":
        points = _points(shape.get("points"), where)
        return {"segmentation": [polylib.flat(polylib.as_points(points, where), 3)]}
    if kind == "mask":
        return {"segmentation": mask_rle(shape, height, width, where, summary)}
    if kind == "ellipse":
        cx, cy, rx, ry = (_number(shape, k, where) for k in ("cx", "cy", "rx", "ry"))
        radius = max(rx, ry)
        n = max(int(np.pi / np.arccos(1 - 1 / radius)), 12) if radius > 1 else 12
        angle = 2 * np.pi * np.arange(n) / n
        points = np.stack([rx * np.cos(angle), ry * np.sin(angle)], axis=1)
        rotation = _number(shape, "rotation", where) if shape.get("rotation") is not None else 0.0
        points = _rotated(points, rotation) + np.array([cx, cy]) if rotation % 360 else points + np.array([cx, cy])
        return {"segmentation": [polylib.flat(points, 3)]}
    return None


def read_cvat(root: ET.Element, categories: Categories, summary: Summary, name: str = "CVAT XML") -> Iterator[Record]:
    """One record per ``<image>``; shapes in ``z_order`` order, annotations numbered 1, 2, …"""
    from segtools.formats.coco_dataset import _geometry
    from segtools.formats.paths import check_name
    from segtools.io.limits import check_size

    next_id = 1
    for index, image in enumerate(root.iter("image")):
        where = f"{name}: <image> {index}"
        file_name = check_name(image.get("name"), f"{where}: 'name'")
        width, height = check_size(_integer(image, "width", where, 1), _integer(image, "height", where, 1), where)
        image_id = int(image.get("id")) if (image.get("id") or "").isdigit() else index
        shapes = [(k, s) for k, s in enumerate(image) if s.tag in AREA_SHAPES or s.tag in OTHER_SHAPES]
        shapes.sort(key=lambda item: (_z_order(item[1]), item[0]))
        annotations = []
        for k, shape in shapes:
            at = f"{name}: {file_name}: <{shape.tag}> {k}"
            if shape.tag in OTHER_SHAPES:
                summary.add(f"CVAT {shape.tag} shapes left out (no area)", lossy=True)
                continue
            label = (shape.get("label") or "").strip()
            if not label:
                raise InputError(f"{at}: no 'label'")
            summary.add("CVAT shape attributes not kept (COCO has no place for them)", len(shape.findall("attribute")),
                        lossy=True)
            fields = shape_annotation(shape, height, width, at, summary)
            if "bbox" not in fields:
                fields["area"], fields["bbox"] = _geometry(fields, height, width)
            ann = {"id": next_id, "image_id": image_id, "category_id": categories.id_of_name(label, f"{at}: "),
                   "iscrowd": 0, **fields}
            annotations.append(ann)
            next_id += 1
        summary.add("CVAT shapes read", len(annotations))
        yield Record({"id": image_id, "file_name": file_name, "height": height, "width": width}, annotations)


def _z_order(shape: ET.Element) -> float:
    try:
        return float(shape.get("z_order") or 0)
    except ValueError:
        return 0.0


def read_cvat_source(specs: Sequence[str], payload, options, summary: Summary):
    """The convert reader: one ``annotations.xml`` (or a folder holding it)."""
    import os
    from pathlib import Path

    from segtools.formats.records import Dataset
    from segtools.io.meta import load_classes
    from segtools.io.streams import describe, mark_input, read_bytes

    spec = specs[0]
    if len(specs) > 1:
        raise InputError("CVAT for images: give one annotations.xml (or its folder)")
    if os.path.isdir(spec):
        spec = str(Path(spec) / "annotations.xml")
    if isinstance(payload, bytes):
        data = payload
    else:
        mark_input(spec) if spec != "-" else None
        data = read_bytes(spec)
    name = describe(spec) if spec != "-" else "<stdin>"
    root = parse(data, name)
    spec_names = options.classes or options.palette
    categories = Categories(names=load_classes(spec_names).names) if spec_names else Categories(names=label_names(root) or None)
    if not categories.by_id:
        categories = Categories()
    if is_video(root):
        total = len(video_frames(root, name)[0])
        records = lambda tick: read_cvat_video(root, categories, summary, name)  # noqa: E731
    else:
        total = sum(1 for _ in root.iter("image"))
        records = lambda tick: read_cvat(root, categories, summary, name)  # noqa: E731
    return Dataset("cvat", total, categories, records, fill=options.fill, unlabelled=options.fill, specs=specs)
