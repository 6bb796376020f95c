"""Class metadata that travels with a mask: names, palette, ignore index, kind.

In a PNG it rides as an ``iTXt`` chunk with key ``segtools`` and a JSON value; in a
score map ``.npz`` it is the ``meta`` entry (a JSON string). Both use :meth:`ClassMeta.to_json`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from segtools.errors import InputError, UsageError
from segtools.io.jsondata import check_int, check_type, get_field, parse_json
from segtools.io.limits import MAX_CLASSES
from segtools.io.streams import read_head

KINDS = ("semantic", "instance", "panoptic")
PNG_KEY = "segtools"
#: Largest ``--classes FILE`` read (65,536 names and colours fit many times over).
MAX_CLASSES_FILE_BYTES = 16 << 20


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
        import json

        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict, source: str = "class metadata") -> "ClassMeta":
        """Metadata from parsed JSON, checked strictly: nothing is coerced.

        ``names`` (alias ``classes``) is a list of at most :data:`MAX_CLASSES` strings,
        ``palette`` (alias ``colors``) a list of ``[r, g, b]`` integers in 0..255,
        ``ignore_index`` an integer in 0..65535 or ``null``, ``kind`` one of :data:`KINDS`.

        >>> ClassMeta.from_dict({"names": ["bg", "car"], "ignore_index": None}).names
        ('bg', 'car')
        """
        check_type(data, dict, source)
        names = _first_field(data, ("names", "classes"), source, list)
        palette = _first_field(data, ("palette", "colors"), source, list)
        if names is not None:
            _check_length(names, f"{source}: 'names'")
            names = tuple(check_type(n, str, f"{source}: names[{i}]") for i, n in enumerate(names))
        if palette is not None:
            _check_length(palette, f"{source}: 'palette'")
            palette = tuple(_colour(c, f"{source}: palette[{i}]") for i, c in enumerate(palette))
        ignore = 255
        if "ignore_index" in data:
            ignore = data["ignore_index"]
            if ignore is not None:
                ignore = check_int(ignore, f"{source}: 'ignore_index'", 0, MAX_CLASSES - 1)
        kind = get_field(data, "kind", source, str, "semantic")
        if kind not in KINDS:
            raise InputError(f"{source}: 'kind' must be one of {', '.join(KINDS)}, not {kind[:40]!r}")
        known = {"names", "classes", "palette", "colors", "ignore_index", "kind"}
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(names, palette, ignore, kind, extra)

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "class metadata") -> "ClassMeta":
        return cls.from_dict(parse_json(text, source), source)


def _first_field(data: dict, keys: tuple[str, ...], source: str, kind: type):
    for key in keys:
        if data.get(key) is not None:
            return get_field(data, key, source, kind)
    return None


def _check_length(values: list, what: str) -> None:
    if len(values) > MAX_CLASSES:
        raise InputError(f"{what} lists {len(values):,} classes; at most {MAX_CLASSES:,} (the 16-bit PNG limit)")


def _colour(value, what: str) -> tuple[int, int, int]:
    check_type(value, list, what)
    if len(value) != 3:
        raise InputError(f"{what} must be an [r, g, b] triple, got {len(value)} values")
    return tuple(check_int(v, f"{what}[{i}]", 0, 255) for i, v in enumerate(value))


def load_classes(spec: str, name: str = "classes") -> ClassMeta:
    """Class metadata from a preset name (voc, cityscapes, camvid, ade20k, coco) or a file.

    A file is JSON (``{"names": [...], "palette": [[r,g,b], ...], "ignore_index": 255}``,
    or a plain list of names) or text with one class name per line. ``name`` starts the
    message when ``spec`` is neither (a CLI passes its option, e.g. ``--palette``).
    """
    from segtools.io import presets

    if spec.lower() in presets.PRESETS:
        p = presets.get_preset(spec)
        return ClassMeta(tuple(p.names), tuple(p.palette), p.ignore_index, p.kind)
    path = Path(spec)
    if not path.is_file():  # a mistyped preset or path: a usage error (exit 2), as a bad option value is
        raise UsageError(
            f"{name} {spec!r}: neither a preset ({', '.join(presets.PRESETS)}) nor a readable file"
        )
    data = read_head(path, MAX_CLASSES_FILE_BYTES + 1)
    if len(data) > MAX_CLASSES_FILE_BYTES:
        raise InputError(f"{spec}: a class file of more than {MAX_CLASSES_FILE_BYTES >> 20} MiB; is it the right file?")
    from segtools.io import palette_files  # labelmap.txt, Mapillary/Datumaro JSON, Roboflow _classes.csv

    if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith((b"{", b"[")):
        parsed = parse_json(data, spec)
        if palette_files.is_document(parsed):
            return palette_files.from_document(parsed, spec)
        return ClassMeta.from_dict({"names": parsed} if isinstance(parsed, list) else parsed, spec)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{spec}: not UTF-8 text (byte {exc.start}); give one class name per line") from None
    if palette_files.is_labelmap(text):
        return palette_files.from_text(text, spec)
    if palette_files.is_pixel_csv(text):
        return palette_files.from_pixel_csv(text, spec)
    names = tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
    _check_length(names, spec)
    return ClassMeta(names=names)


def read_mask_meta(path: str | Path) -> ClassMeta | None:
    """The class metadata a PNG mask file carries, read from its first MiB without decoding
    any pixels; ``None`` for stdin (``-``), an unreadable file, a non-PNG or a PNG without
    a ``segtools`` text chunk.

    Raises
    ------
    InputError
        The chunk is there but is not valid class metadata.
    """
    if str(path) == "-":
        return None
    from segtools.io import png

    try:
        head = read_head(path, 1 << 20)
    except (OSError, InputError):
        return None
    text = png.text_chunk(head, PNG_KEY, str(path)) if head.startswith(b"\x89PNG") else None
    return ClassMeta.from_json(text, f"{path}: segtools metadata") if text else None


def default_palette(n: int = 256) -> tuple[tuple[int, int, int], ...]:
    """Distinct colours for ``n`` classes when a mask carries none (the VOC colour map)."""
    from segtools.io.presets import voc_colormap

    return tuple(voc_colormap(n))
