"""Class metadata that travels with a mask: names, palette, ignore index, kind.

In a PNG it rides as an ``iTXt`` chunk with key ``segtools`` and a JSON value; in a
score map ``.npz`` it is the ``meta`` entry (a JSON string). Both use :meth:`ClassMeta.to_json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from segtools.errors import InputError

KINDS = ("semantic", "instance", "panoptic")
PNG_KEY = "segtools"


@dataclass(frozen=True)
class ClassMeta:
    """What a label value means.

    Attributes
    ----------
    names : class names by index (``names[i]`` is class ``i``), or ``None`` when unknown.
    palette : RGB colours by index, or ``None`` when unknown.
    ignore_index : the void/unlabelled value, or ``None`` when every value is a class.
    kind : ``semantic``, ``instance`` (values are instance ids) or ``panoptic``.
    """

    names: tuple[str, ...] | None = None
    palette: tuple[tuple[int, int, int], ...] | None = None
    ignore_index: int | None = 255
    kind: str = "semantic"
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"class metadata: kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.palette is not None:
            for colour in self.palette:
                if len(colour) != 3 or not all(0 <= int(c) <= 255 for c in colour):
                    raise InputError(f"class metadata: palette entry {colour!r} is not an RGB triple in 0..255")

    @property
    def num_classes(self) -> int | None:
        """Number of classes when names or palette say so, else ``None``."""
        if self.names is not None:
            return len(self.names)
        return None

    def class_index(self, name_or_index: str | int) -> int:
        """Resolve a class given by name (case-insensitive) or by index."""
        if isinstance(name_or_index, int) or str(name_or_index).lstrip("-").isdigit():
            return int(name_or_index)
        wanted = str(name_or_index).strip().lower()
        for i, name in enumerate(self.names or ()):
            if name.lower() == wanted:
                return i
        known = ", ".join(self.names) if self.names else "none (give a class index instead)"
        raise InputError(f"unknown class {name_or_index!r}; known classes: {known}")

    def with_(self, **changes) -> "ClassMeta":
        """A copy with some fields changed."""
        return replace(self, **changes)

    def to_dict(self) -> dict:
        out: dict = {"kind": self.kind, "ignore_index": self.ignore_index}
        if self.names is not None:
            out["names"] = list(self.names)
        if self.palette is not None:
            out["palette"] = [list(map(int, c)) for c in self.palette]
        out.update(self.extra)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict, source: str = "class metadata") -> "ClassMeta":
        if not isinstance(data, dict):
            raise InputError(f"{source}: expected a JSON object")
        names = data.get("names", data.get("classes"))
        palette = data.get("palette", data.get("colors"))
        try:
            names_t = tuple(str(n) for n in names) if names is not None else None
            palette_t = tuple(tuple(int(v) for v in c) for c in palette) if palette is not None else None
            ignore = data.get("ignore_index", 255)
            ignore = None if ignore is None else int(ignore)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{source}: malformed names, palette or ignore_index ({exc})") from None
        known = {"names", "classes", "palette", "colors", "ignore_index", "kind"}
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(names_t, palette_t, ignore, str(data.get("kind", "semantic")), extra)

    @classmethod
    def from_json(cls, text: str, source: str = "class metadata") -> "ClassMeta":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        return cls.from_dict(data, source)


def load_classes(spec: str) -> ClassMeta:
    """Class metadata from a preset name (voc, cityscapes, camvid, ade20k, coco) or a file.

    A file is JSON (``{"names": [...], "palette": [[r,g,b], ...], "ignore_index": 255}``,
    or a plain list of names) or text with one class name per line.
    """
    from segtools.io import presets

    if spec.lower() in presets.PRESETS:
        p = presets.get_preset(spec)
        return ClassMeta(tuple(p.names), tuple(p.palette), p.ignore_index, p.kind)
    path = Path(spec)
    if not path.is_file():
        raise InputError(
            f"--classes {spec!r}: neither a preset ({', '.join(presets.PRESETS)}) nor a readable file"
        )
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith(("{", "[")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{spec}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if isinstance(data, list):
            data = {"names": data}
        return ClassMeta.from_dict(data, spec)
    names = tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return ClassMeta(names=names)


def default_palette(n: int = 256) -> tuple[tuple[int, int, int], ...]:
    """Distinct colours for ``n`` classes when a mask carries none (the VOC colour map)."""
    from segtools.io.presets import voc_colormap

    return tuple(voc_colormap(n))
