"""Class lists with colours as other tools write them, read as :class:`ClassMeta`.

Three layouts are recognised by their content (not their names), so each works wherever
``--classes FILE`` / ``--palette FILE`` is taken (:func:`segtools.io.meta.load_classes`):

* **CVAT / Datumaro** ``labelmap.txt`` — ``name:r,g,b:parts:actions`` per line, ``#``
  comments (CVAT's "Segmentation mask 1.1" export). Class ``i`` is the ``i``-th line.
* **Mapillary Vistas** ``config.json`` — ``{"labels": [{"name", "readable", "color",
  "instances", "evaluate"}, ...]}``; class ``i`` is ``labels[i]``. The entry named
  ``unlabeled`` (``void--unlabeled`` in v2.0) is the ignore index.
* **Datumaro** ``dataset_meta.json`` — ``{"label_map": {"0": "background", ...}`` (or
  ``"labels": [...]``) ``, "segmentation_colors": [[r, g, b], ...]}``; class ``i`` is key
  ``"i"`` of ``label_map``.

* **Roboflow** ``_classes.csv`` of a "Semantic Segmentation Masks" export — a ``Pixel
  Value, Class`` header, then ``0, background`` … per line; class ``i`` is the row whose pixel
  value is ``i`` (values left out are named ``class_<i>``). It has no colours.

None of these names a void label except Mapillary, so the others keep the default ignore
index, 255 (when 255 is not itself one of the classes; else none).
"""

from __future__ import annotations

import re

from segtools.errors import InputError
from segtools.io.jsondata import check_int, check_type, get_field
from segtools.io.limits import MAX_CLASSES
from segtools.io.meta import ClassMeta

__all__ = ["from_document", "from_pixel_csv", "from_text", "is_labelmap", "is_pixel_csv"]

_LABELMAP_LINE = re.compile(r"^(?P<name>[^:]*):(?P<rgb>\s*\d+\s*,\s*\d+\s*,\s*\d+\s*)(:[^:]*(:.*)?)?$")


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def is_labelmap(text: str) -> bool:
    """True when every line (comments aside) is ``name:r,g,b[:parts[:actions]]``.

    >>> is_labelmap("# label:color_rgb:parts:actions\\nbackground:0,0,0::\\ncar:255,0,0::\\n")
    True
    >>> is_labelmap("background\\ncar\\n")
    False
    """
    lines = _lines(text)
    return bool(lines) and all(_LABELMAP_LINE.match(line) for line in lines)


def _ignore(count: int, default: int | None = 255) -> int | None:
    return default if default is None or count <= default else None


def _checked(names: list[str], palette: list[tuple[int, int, int]], source: str, ignore: int | None) -> ClassMeta:
    if len(names) > MAX_CLASSES:
        raise InputError(f"{source}: {len(names):,} classes; at most {MAX_CLASSES:,} (the 16-bit PNG limit)")
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise InputError(f"{source}: class {name[:60]!r} is listed twice (entries {seen[name]} and {i})")
        seen[name] = i
    return ClassMeta(names=tuple(names), palette=tuple(palette), ignore_index=ignore)


def from_text(text: str, source: str) -> ClassMeta:
    """A CVAT ``labelmap.txt`` (see :func:`is_labelmap`) as class names and palette.

    >>> meta = from_text("background:0,0,0::\\ncar:255,0,0::\\n", "labelmap.txt")
    >>> meta.names, meta.palette, meta.ignore_index
    (('background', 'car'), ((0, 0, 0), (255, 0, 0)), 255)
    """
    names, palette = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LABELMAP_LINE.match(line.strip())
        if match is None:
            raise InputError(f"{source}:{number}: not a labelmap line 'name:r,g,b::' ({line.strip()[:60]!r})")
        rgb = tuple(int(v) for v in match["rgb"].split(","))
        if not all(0 <= v <= 255 for v in rgb):
            raise InputError(f"{source}:{number}: colour {match['rgb'].strip()!r} is not RGB in 0..255")
        if not match["name"].strip():
            raise InputError(f"{source}:{number}: a class without a name")
        names.append(match["name"].strip())
        palette.append(rgb)
    return _checked(names, palette, source, _ignore(len(names)))


_PIXEL_CSV_HEADER = re.compile(r"^\s*pixel\s*value\s*,\s*class\s*$", re.IGNORECASE)


def is_pixel_csv(text: str) -> bool:
    """True when the first line is Roboflow's ``Pixel Value, Class`` header.

    >>> is_pixel_csv("Pixel Value, Class\\n0, background\\n1, cat\\n")
    True
    """
    lines = _lines(text)
    return bool(lines) and bool(_PIXEL_CSV_HEADER.match(lines[0]))


def from_pixel_csv(text: str, source: str) -> ClassMeta:
    """A Roboflow ``_classes.csv`` (see :func:`is_pixel_csv`) as class names.

    >>> from_pixel_csv("Pixel Value, Class\\n0, background\\n2, dog\\n", "_classes.csv").names
    ('background', 'class_1', 'dog')
    """
    by_value: dict[int, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or _PIXEL_CSV_HEADER.match(line):
            continue
        value, comma, name = line.partition(",")
        if not comma or not value.strip().isdigit():
            raise InputError(f"{source}:{number}: not a 'pixel value, class' row ({line.strip()[:60]!r})")
        value_int, name = int(value), name.strip().strip('"')
        if value_int >= MAX_CLASSES:
            raise InputError(f"{source}:{number}: pixel value {value_int}; at most {MAX_CLASSES - 1}")
        if not name:
            raise InputError(f"{source}:{number}: a class without a name")
        if value_int in by_value:
            raise InputError(f"{source}:{number}: pixel value {value_int} is listed twice")
        by_value[value_int] = name
    if not by_value:
        raise InputError(f"{source}: no classes under the 'Pixel Value, Class' header")
    names = [by_value.get(i, f"class_{i}") for i in range(max(by_value) + 1)]
    return _checked(names, [], source, _ignore(len(names)))


def _colour(value, what: str) -> tuple[int, int, int]:
    check_type(value, list, what)
    if len(value) not in (3, 4):  # Mapillary v2.0 has no alpha, some exports add one
        raise InputError(f"{what} must be [r, g, b], got {len(value)} values")
    return tuple(check_int(v, f"{what}[{k}]", 0, 255) for k, v in enumerate(value[:3]))  # type: ignore[return-value]


def is_document(data) -> bool:
    """True for a parsed Mapillary ``config.json`` or Datumaro ``dataset_meta.json``."""
    if not isinstance(data, dict):
        return False
    if "segmentation_colors" in data and ("label_map" in data or "labels" in data):
        return True
    labels = data.get("labels")
    return isinstance(labels, list) and bool(labels) and all(
        isinstance(e, dict) and "color" in e and ("name" in e or "readable" in e) for e in labels[:3])


def from_document(data: dict, source: str) -> ClassMeta:
    """A parsed Mapillary ``config.json`` or Datumaro ``dataset_meta.json`` (:func:`is_document`).

    >>> from_document({"labels": [{"name": "animal--bird", "color": [165, 42, 42]},
    ...                           {"name": "void--unlabeled", "color": [0, 0, 0]}]}, "config.json").ignore_index
    1
    >>> from_document({"label_map": {"0": "background", "1": "cat"},
    ...                "segmentation_colors": [[0, 0, 0], [255, 0, 0]]}, "dataset_meta.json").names
    ('background', 'cat')
    """
    if "segmentation_colors" in data:
        return _datumaro(data, source)
    labels = get_field(data, "labels", source, list)
    names, palette = [], []
    for i, entry in enumerate(labels):
        where = f"{source}: labels[{i}]"
        check_type(entry, dict, where)
        name = entry.get("name") if entry.get("name") is not None else entry.get("readable")
        names.append(check_type(name, str, f"{where}: 'name'"))
        palette.append(_colour(entry.get("color"), f"{where}: 'color'"))
    void = [i for i, n in enumerate(names) if n.lower().split("--")[-1] in ("unlabeled", "unlabelled")]
    return _checked(names, palette, source, void[0] if void else _ignore(len(names)))


def _datumaro(data: dict, source: str) -> ClassMeta:
    colours = get_field(data, "segmentation_colors", source, list)
    if "label_map" in data:
        label_map = get_field(data, "label_map", source, dict)
        indices = {}
        for key, name in label_map.items():
            if not str(key).isdigit():
                raise InputError(f"{source}: label_map key {str(key)[:20]!r} is not a class index")
            indices[int(key)] = check_type(name, str, f"{source}: label_map[{key!r}]")
        if sorted(indices) != list(range(len(indices))):
            raise InputError(f"{source}: label_map keys must be 0..{len(indices) - 1}, one each")
        names = [indices[i] for i in range(len(indices))]
    else:
        names = [check_type(n, str, f"{source}: labels[{i}]") for i, n in enumerate(get_field(data, "labels", source, list))]
    if len(colours) != len(names):
        raise InputError(f"{source}: {len(colours)} segmentation_colors for {len(names)} labels")
    palette = [_colour(c, f"{source}: segmentation_colors[{i}]") for i, c in enumerate(colours)]
    return _checked(names, palette, source, _ignore(len(names)))
