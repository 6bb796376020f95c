"""Folders that hold COCO instances files, in the layouts other tools export.

* **Roboflow** "COCO" / "COCO Segmentation" export: ``train/``, ``valid/``, ``test/`` each
  holding its photos and one ``_annotations.coco.json`` (or a single such file at the root).
  Roboflow adds a category 0 named after the dataset, the supercategory of every real class,
  which no annotation uses; it is left out (counted), so the classes are those of the same
  dataset's YOLO export, in the same order.
* **COCO's own** layout: ``annotations/instances_<split>.json`` with the photos in
  ``<split>/`` (``train2017/``, ``val2017/``); also CVAT's "COCO 1.0" export
  (``annotations/instances_default.json``, photos in ``images/``) and Datumaro's
  (``images/<split>/``).

:func:`documents` finds the files; :func:`combined` reads them as one COCO document whose
``file_name`` s are relative to the folder (``train/x.jpg``, ``val2017/x.jpg``), so each
output lands under its split, as for a Roboflow YOLO export. Image and annotation ids are
renumbered across the files; categories keep their ids when the files agree on them and
are matched by name when they do not.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from segtools.errors import InputError
from segtools.formats import Summary

ROBOFLOW_FILE = "_annotations.coco.json"
SPLIT_ORDER = ("train", "valid", "val", "test")
PLACEHOLDER = "Roboflow's placeholder category 0 (the dataset's name, no annotations) left out"


def _split_rank(name: str) -> tuple[int, str]:
    base = name.rstrip("/").split("/")[-1]
    prefix = next((i for i, s in enumerate(SPLIT_ORDER) if base.startswith(s)), len(SPLIT_ORDER))
    return prefix, base


def documents(root: Path) -> list[tuple[str, Path]]:
    """``(prefix, file)`` for each COCO instances file of the layouts above, in split order
    (train, valid/val, test, then by name); ``prefix`` is where its photos are, relative to
    ``root`` (``""`` or ``"train/"``). None found: ``[]``."""
    found: list[tuple[str, Path]] = []
    if (root / ROBOFLOW_FILE).is_file():
        found.append(("", root / ROBOFLOW_FILE))
    found += [(f"{sub.name}/", sub / ROBOFLOW_FILE) for sub in root.iterdir()
              if sub.is_dir() and (sub / ROBOFLOW_FILE).is_file()] if root.is_dir() else []
    if not found and (root / "annotations").is_dir():
        for path in (root / "annotations").glob("instances_*.json"):
            split = path.stem[len("instances_"):]
            found.append((next((p for p in (f"{split}/", f"images/{split}/", "images/") if (root / p).is_dir()), ""),
                          path))
    return sorted(found, key=lambda item: (_split_rank(item[0] or item[1].stem), str(item[1])))


def is_coco_folder(root: Path) -> bool:
    return bool(documents(root))


def drop_placeholder(data: dict, summary: Summary) -> dict:
    """``data`` without Roboflow's category 0 when it is that placeholder: id 0, used by no
    annotation, named as the supercategory of every other category (there being some)."""
    categories = data.get("categories") or []
    zero = [c for c in categories if isinstance(c, dict) and c.get("id") == 0]
    others = [c for c in categories if isinstance(c, dict) and c.get("id") != 0]
    if len(zero) != 1 or not others or any(c.get("supercategory") != zero[0].get("name") for c in others):
        return data
    if any(isinstance(a, dict) and a.get("category_id") == 0 for a in data.get("annotations") or []):
        return data
    summary.add(PLACEHOLDER)
    return {**data, "categories": others}


def combined(root: Path, summary: Summary) -> tuple[dict, Path]:
    """The COCO files of the folder ``root`` as one checked document (see the module doc),
    and the folder its ``file_name`` s are relative to: ``root``, or ``root/images`` when
    every file's photos are below it (CVAT, Datumaro)."""
    from segtools.formats import coco
    from segtools.io.jsondata import parse_json
    from segtools.io.streams import read_bytes

    found = documents(root)
    if not found:
        raise InputError(f"{root}: no {ROBOFLOW_FILE} (Roboflow) or annotations/instances_*.json (COCO) in it")
    base = root
    if all(prefix.startswith("images/") for prefix, _ in found):
        base, found = root / "images", [(prefix[len("images/"):], path) for prefix, path in found]
    parts = []
    for prefix, path in found:
        data = drop_placeholder(coco.check(parse_json(read_bytes(str(path)), str(path)), str(path)), summary)
        parts.append((prefix, path, data))
    if len(parts) == 1 and not parts[0][0]:
        return parts[0][2], base
    same = all(_by_id(data) == _by_id(parts[0][2]) for _, _, data in parts)
    categories = list(parts[0][2]["categories"]) if same else []
    names: dict[str, int] = {}
    images, annotations = [], []
    for prefix, path, data in parts:
        remap = {c["id"]: c["id"] for c in data["categories"]} if same else {
            c["id"]: _named(c, names, categories) for c in data["categories"]}
        new_image = {}
        for image in data["images"]:
            new_image[image.get("id")] = len(images) + 1
            name = str(PurePosixPath(prefix) / str(image.get("file_name", ""))) if prefix else image.get("file_name")
            images.append({**image, "id": len(images) + 1, "file_name": name})
        for ann in data["annotations"]:
            if ann.get("image_id") not in new_image:
                raise InputError(f"{path}: annotation {ann.get('id')}: image_id {ann.get('image_id')!r} "
                                 "is not in its 'images'")
            if ann.get("category_id") not in remap:
                raise InputError(f"{path}: annotation {ann.get('id')}: unknown category_id {ann.get('category_id')!r}")
            annotations.append({**ann, "id": len(annotations) + 1, "image_id": new_image[ann["image_id"]],
                                "category_id": remap[ann["category_id"]]})
    if len(parts) > 1:
        summary.add("COCO files read from the folder", len(parts))
    return {"images": images, "annotations": annotations, "categories": categories}, base


def _by_id(data: dict) -> dict:
    return {c["id"]: c.get("name") for c in data["categories"]}


def _named(category: dict, names: dict[str, int], categories: list[dict]) -> int:
    name = str(category.get("name", category["id"]))
    if name not in names:
        names[name] = len(categories) + 1
        categories.append({**category, "id": names[name]})
    return names[name]
