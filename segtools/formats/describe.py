"""What an annotation file holds, as a plain dict: the annotation half of ``segtools info``.

COCO instances, COCO panoptic, COCO results, labelme JSON, Pascal VOC XML, CVAT XML and
YOLO label files (and YOLO dataset folders) are recognised by their content, as
``convert`` recognises them, and described without drawing anything: images, categories,
and annotations counted by kind (polygon, RLE, box, crowd, keypoints, …).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from segtools.errors import InputError

__all__ = ["describe_annotations", "annotation_text", "is_annotation_source"]


def is_annotation_source(data: bytes) -> bool:
    """True when ``data`` starts like JSON, XML or text rather than an image or array."""
    from segtools.io.sniff import sniff

    if not data.strip():
        return False  # nothing to describe (an empty YOLO label file is told by its name)
    head = sniff(data[:512])
    return head.format in ("json", "text") or data.lstrip()[:1] in (b"{", b"[", b"<")


def _segmentation_kind(segm) -> str:
    if isinstance(segm, dict):
        return "rle" if isinstance(segm.get("counts"), str) else "rle (uncompressed)"
    if isinstance(segm, list) and segm:
        return "polygon"
    return "box only"


def _category_names(categories) -> dict:
    return {c.get("id"): str(c.get("name", c.get("id"))) for c in categories if isinstance(c, dict)}


def _coco(data: dict, report: dict) -> None:
    from segtools.formats import coco

    coco.check(data, report["source"])
    names = _category_names(data["categories"])
    kinds: Counter = Counter()
    per_category: Counter = Counter()
    annotated = set()
    for ann in data["annotations"]:
        kinds[_segmentation_kind(ann.get("segmentation"))] += 1
        kinds["crowd"] += bool(ann.get("iscrowd"))
        kinds["with keypoints"] += bool(ann.get("num_keypoints") or ann.get("keypoints"))
        per_category[names.get(ann.get("category_id"), str(ann.get("category_id")))] += 1
        annotated.add(ann.get("image_id"))
    report.update(kind="COCO instances", images=len(data["images"]),
                  images_without_annotations=sum(im.get("id") not in annotated for im in data["images"]),
                  categories=list(names.values()), annotations=len(data["annotations"]),
                  by_kind=_nonzero(kinds), by_category=dict(per_category.most_common()))


def _panoptic(data: dict, report: dict) -> None:
    from segtools.formats import schema

    schema.panoptic(data, report["source"])
    things = {c.get("id") for c in data["categories"] if c.get("isthing")}
    kinds: Counter = Counter()
    for entry in data["annotations"]:
        for seg in entry["segments_info"]:
            kinds["thing" if seg.get("category_id") in things else "stuff"] += 1
            kinds["crowd"] += bool(seg.get("iscrowd"))
    report.update(kind="COCO panoptic", images=len(data.get("images") or data["annotations"]),
                  categories=list(_category_names(data["categories"]).values()), things=len(things),
                  annotations=sum(len(e["segments_info"]) for e in data["annotations"]), by_kind=_nonzero(kinds))


def _results(data: list, report: dict) -> None:
    kinds: Counter = Counter()
    scores = []
    for k, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise InputError(f"{report['source']}: [{k}]: a detection must be an object")
        kinds[_segmentation_kind(entry.get("segmentation")) if "segmentation" in entry else "box only"] += 1
        if isinstance(entry.get("score"), (int, float)):
            scores.append(float(entry["score"]))
    report.update(kind="COCO results", images=len({e.get("image_id") for e in data}),
                  categories=sorted({str(e.get("category_id")) for e in data}), annotations=len(data),
                  by_kind=_nonzero(kinds))
    if scores:
        report.update(min=min(scores), max=max(scores))


def _labelme(data: dict, report: dict) -> None:
    from segtools.formats import labelme

    labelme.check(data, report["source"])
    kinds = Counter(str(s.get("shape_type") or "polygon") for s in data["shapes"])
    labels = Counter(str(s["label"]) for s in data["shapes"])
    report.update(kind="labelme", images=1, categories=list(labels), annotations=len(data["shapes"]),
                  by_kind=_nonzero(kinds), by_category=dict(labels.most_common()))
    if isinstance(data.get("imageHeight"), int) and isinstance(data.get("imageWidth"), int):
        report.update(height=data["imageHeight"], width=data["imageWidth"])


def _xml(data: bytes, report: dict) -> None:
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(data)
    except (ET.ParseError, LookupError, ValueError, RecursionError) as exc:
        raise InputError(f"{report['source']}: not valid XML ({exc})") from None
    if root.tag == "annotation":
        objects = root.findall("object")
        labels = Counter((o.findtext("name") or "").strip() for o in objects)
        kinds = Counter({"box": sum(o.find("bndbox") is not None for o in objects),
                         "difficult": sum((o.findtext("difficult") or "0").strip() == "1" for o in objects),
                         "part": sum(len(o.findall("part")) for o in objects)})
        report.update(kind="Pascal VOC", images=1, categories=list(labels), annotations=len(objects),
                      by_kind=_nonzero(kinds), by_category=dict(labels.most_common()))
        size = root.find("size")
        if size is not None and (size.findtext("height") or "").strip().isdigit():
            report.update(height=int(size.findtext("height")), width=int(size.findtext("width") or 0))
        return
    if root.tag == "annotations":
        from segtools.formats import cvat

        declared = [(n.findtext("name") or "").strip() for n in root.iter("label") if n.find("name") is not None]
        if cvat.is_video(root):  # one shape per track and frame it is inside
            tracks = root.findall("track")
            shapes = [(s, t.get("label", "")) for t in tracks for s in t
                      if s.tag in CVAT_SHAPES and s.get("outside") != "1"]
            frames = len(cvat.video_frames(root, report["source"])[0])
            labels = Counter(label for _, label in shapes)
            report.update(kind="CVAT for video", images=frames, tracks=len(tracks), categories=declared or list(labels),
                          annotations=len(shapes), by_kind=_nonzero(Counter(s.tag for s, _ in shapes)),
                          by_category=dict(labels.most_common()))
            return
        images = root.findall("image")
        shapes = [s for im in images for s in im if s.tag in CVAT_SHAPES]
        labels = Counter(s.get("label", "") for s in shapes)
        report.update(kind="CVAT for images", images=len(images), categories=declared or list(labels),
                      annotations=len(shapes), by_kind=_nonzero(Counter(s.tag for s in shapes)),
                      by_category=dict(labels.most_common()))
        return
    raise InputError(f"{report['source']}: XML that is neither Pascal VOC nor CVAT (root <{root.tag}>)")


CVAT_SHAPES = ("box", "polygon", "polyline", "points", "mask", "ellipse", "cuboid", "skeleton", "tag")


def _yolo_text(text: str, report: dict) -> None:
    from segtools.formats import yolo

    rows = yolo.parse_lines(text, report["source"])
    kinds = Counter("box" if len(values) == 4 else "polygon" for _, values in rows)
    classes = Counter(str(label) for label, _ in rows)
    report.update(kind="YOLO labels", images=1, categories=sorted(classes, key=int), annotations=len(rows),
                  by_kind=_nonzero(kinds), by_category=dict(classes.most_common()))


def dataset_folder(root: Path) -> str | None:
    """``yolo`` or ``coco`` when the folder ``root`` is a dataset export that ``info``
    describes whole (YOLO: Ultralytics, Roboflow, Darknet; COCO: Roboflow, COCO, CVAT), else None."""
    from segtools.formats import coco_layouts, yolo_layouts

    if (root / "labels").is_dir() or any(root.glob("*.yaml")) or yolo_layouts.is_roboflow(root) \
            or yolo_layouts.is_darknet(root):
        return "yolo"
    return "coco" if coco_layouts.is_coco_folder(root) else None


def describe_folder(root: Path) -> dict:
    """:func:`describe_yolo_folder` or :func:`describe_coco_folder`, as :func:`dataset_folder` says."""
    return describe_coco_folder(root) if dataset_folder(root) == "coco" else describe_yolo_folder(root)


def describe_coco_folder(root: Path) -> dict:
    """A COCO export folder (:mod:`segtools.formats.coco_layouts`) as one COCO dataset: its
    files (``files``, split order), images, categories and annotations by kind and class."""
    from segtools.formats import Summary, coco_layouts

    found = coco_layouts.documents(root)
    data, _ = coco_layouts.combined(root, Summary())
    report: dict = {"source": str(root), "format": "folder", "bytes": sum(path.stat().st_size for _, path in found)}
    _coco(data, report)
    report.update(kind="COCO export", files=[str(path.relative_to(root)) for _, path in found])
    return report


def describe_yolo_folder(root: Path) -> dict:
    """A YOLO dataset folder in any of its layouts (:func:`segtools.formats.yolo_layouts.layout`):
    class names, label files, lines by kind, photos."""
    from segtools.formats import yolo, yolo_layouts

    report: dict = {"source": str(root), "format": "folder", "bytes": 0}
    found = yolo_layouts.layout(root)
    yaml_path = yolo.find_yaml(root)
    names = list(yolo.load_data_yaml(yaml_path)["names"]) if yaml_path is not None else found.names
    kinds: Counter = Counter()
    classes: Counter = Counter()
    for item in found.items:
        text = Path(item.path).read_bytes()
        report["bytes"] += len(text)
        rows = yolo.parse_lines(text.decode("utf-8", errors="replace"), item.path)
        kinds.update("box" if len(values) == 4 else "polygon" for _, values in rows)
        classes.update(label for label, _ in rows)
    named = {str(names[k]) if names and k < len(names) else str(k): n for k, n in classes.most_common()}
    report.update(kind="YOLO dataset", images=len(found.items), categories=names or sorted(named),
                  annotations=sum(classes.values()), by_kind=_nonzero(kinds), by_category=named)
    return report


def _nonzero(counts: Counter) -> dict:
    return {k: int(v) for k, v in counts.items() if v}


def describe_annotations(data: bytes, name: str) -> dict:
    """A report of an annotation file's bytes (``name`` for messages): ``kind``, ``images``,
    ``categories`` (names), ``annotations`` and ``by_kind`` / ``by_category`` counts.

    >>> r = describe_annotations(b'{"images": [{"id": 1, "file_name": "a.jpg", "height": 2, "width": 2}],'
    ...     b'"categories": [{"id": 1, "name": "car"}], "annotations": [{"id": 1, "image_id": 1,'
    ...     b'"category_id": 1, "bbox": [0, 0, 1, 1], "segmentation": []}]}', "a.json")
    >>> r["kind"], r["images"], r["by_kind"], r["by_category"]
    ('COCO instances', 1, {'box only': 1}, {'car': 1})
    """
    from segtools.io.jsondata import parse_json

    report: dict[str, Any] = {"source": name, "bytes": len(data)}
    stripped = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped[:1] in (b"{", b"["):
        parsed = parse_json(data, name)
        report["format"] = "json"
        if isinstance(parsed, list):
            _results(parsed, report)
        elif isinstance(parsed, dict) and "shapes" in parsed:
            _labelme(parsed, report)
        elif isinstance(parsed, dict) and isinstance(parsed.get("image"), dict) and isinstance(
                parsed.get("annotations"), list):
            report.update(kind="SA-1B", images=1, categories=["object"], annotations=len(parsed["annotations"]),
                          by_kind=_nonzero(Counter(_segmentation_kind(a.get("segmentation"))
                                                   for a in parsed["annotations"] if isinstance(a, dict))))
        elif isinstance(parsed, dict) and "objects" in parsed and "imgHeight" in parsed:
            objects = [o for o in parsed["objects"] if isinstance(o, dict)] if isinstance(
                parsed["objects"], list) else []
            labels = Counter(str(o.get("label")) for o in objects)
            report.update(kind="Cityscapes polygons", images=1, categories=list(labels), annotations=len(objects),
                          by_kind=_nonzero(Counter({"polygon": len(objects),
                                                    "deleted": sum(bool(o.get("deleted")) for o in objects)})),
                          by_category=dict(labels.most_common()))
        elif isinstance(parsed, dict) and isinstance(parsed.get("annotations"), list) and any(
                isinstance(a, dict) and "segments_info" in a for a in parsed["annotations"][:5]):
            _panoptic(parsed, report)
        elif isinstance(parsed, dict) and isinstance(parsed.get("annotations"), list):
            _coco(parsed, report)
        else:
            raise InputError(f"{name}: JSON that is neither COCO, COCO panoptic, COCO results nor labelme")
        return report
    if stripped[:1] == b"<":
        report["format"] = "xml"
        _xml(data, report)
        return report
    report["format"] = "text"
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{name}: neither an image nor an annotation file") from None
    _yolo_text(text, report)
    return report


def annotation_text(report: dict, max_names: int = 12) -> str:
    """A :func:`describe_annotations` report as indented lines for people.

    >>> print(annotation_text({"source": "a.json", "kind": "COCO instances", "format": "json", "bytes": 10,
    ...                        "images": 2, "categories": ["car"], "annotations": 3,
    ...                        "by_kind": {"polygon": 2, "rle": 1}, "by_category": {"car": 3}}))
    a.json: COCO instances (json, 10 bytes)
      images       2
      categories   1: car
      annotations  3: polygon=2, rle=1
      per class    car=3
    """
    lines = [f"{report['source']}: {report['kind']} ({report['format']}, {report['bytes']:,} bytes)"]
    images = f"{report['images']:,}"
    if report.get("images_without_annotations"):
        images += f" ({report['images_without_annotations']:,} without annotations)"
    if "height" in report:
        images += f", {report['height']}x{report['width']} (HxW)"
    lines.append(f"  images       {images}")
    names = [str(n) for n in report.get("categories") or []]
    shown = ", ".join(names[:max_names]) + (", ..." if len(names) > max_names else "")
    things = f" ({report['things']} things)" if "things" in report else ""
    lines.append(f"  categories   {len(names)}{things}" + (f": {shown}" if names else ""))
    kinds = ", ".join(f"{k}={v:,}" for k, v in (report.get("by_kind") or {}).items())
    lines.append(f"  annotations  {report['annotations']:,}" + (f": {kinds}" if kinds else ""))
    per_class = list((report.get("by_category") or {}).items())
    if per_class:
        lines.append("  per class    " + ", ".join(f"{k}={v:,}" for k, v in per_class[:max_names])
                     + (" ..." if len(per_class) > max_names else ""))
    if "min" in report:
        lines.append(f"  scores       {report['min']:.4g}..{report['max']:.4g}")
    return "\n".join(lines)


CSV_FIELDS = ("source", "kind", "format", "bytes", "images", "categories", "annotations", "by_kind")


def annotations_csv(reports) -> str:
    """Annotation reports as CSV: one row each; ``categories`` is their number, ``by_kind``
    ``kind:count`` joined by spaces."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for report in reports:
        row = {**report, "categories": len(report.get("categories") or []),
               "by_kind": " ".join(f"{k}:{v}" for k, v in (report.get("by_kind") or {}).items())}
        writer.writerow({key: row.get(key, "") for key in CSV_FIELDS})
    return buffer.getvalue()
