"""Parse the small text specs of the command line against a mask's class metadata.

``car=200,person=50`` (per-class values), ``100,car=200`` (a default and overrides),
``2:1,3:1`` (relabelling) and ``car,road`` (class lists); classes by name or index.
"""

from __future__ import annotations

from segtools.errors import UsageError
from segtools.io.meta import ClassMeta

BACKGROUND_NAMES = ("background", "_background_", "bg")


def _parts(text: str, option: str) -> list[str]:
    parts = [part.strip() for part in str(text).split(",")]
    if not parts or any(not part for part in parts):
        raise UsageError(f"{option} {text!r}: expected a comma-separated list without empty entries")
    return parts


def class_index(token: str, meta: ClassMeta | None, option: str) -> int:
    """A class given by index or (with metadata) by name."""
    token = token.strip()
    if token.isdigit():
        return int(token)
    if meta is None or not meta.names:
        raise UsageError(f"{option}: class {token!r} given by name, but the mask has no class names; "
                         "use indices or pass --meta PRESET|FILE")
    try:
        return meta.class_index(token)
    except Exception as exc:  # InputError from ClassMeta: re-raise as a usage problem
        raise UsageError(f"{option}: {exc}") from None


def class_list(text: str, meta: ClassMeta | None, option: str = "--classes") -> tuple[int, ...]:
    """``car,road`` or ``8,3`` → class indices."""
    from segtools.io import presets

    if text.strip().lower() in presets.PRESETS and (meta is None or not meta.names
                                                     or text.strip().lower() not in map(str.lower, meta.names)):
        raise UsageError(f"{option} {text!r}: here --classes lists the classes to operate on; "
                         f"to give class names use --meta {text}")
    return tuple(class_index(part, meta, option) for part in _parts(text, option))


def number(text: str, option: str, kind: type = int) -> float | int:
    try:
        value = kind(text)
    except ValueError:
        raise UsageError(f"{option}: {text!r} is not a{'n integer' if kind is int else ' number'}") from None
    if value < 0:
        raise UsageError(f"{option}: {text} must be 0 or more")
    return value


def class_values(text: str, meta: ClassMeta | None, option: str, kind: type = int) -> tuple[object, dict[int, object]]:
    """``N``, ``CLASS=N,...`` or ``N,CLASS=N,...`` → (default or ``None``, ``{class: value}``)."""
    default = None
    per_class: dict[int, object] = {}
    for part in _parts(text, option):
        if "=" in part:
            name, value = part.split("=", 1)
            per_class[class_index(name, meta, option)] = number(value.strip(), option, kind)
        elif default is None:
            default = number(part, option, kind)
        else:
            raise UsageError(f"{option} {text!r}: give one default value at most, then CLASS=VALUE pairs")
    return default, per_class


def relabelling(text: str, meta: ClassMeta | None, option: str = "--map") -> dict[int, int]:
    """``2:1,3:1`` or ``truck:car`` → ``{old: new}``."""
    mapping: dict[int, int] = {}
    for part in _parts(text, option):
        if ":" not in part:
            raise UsageError(f"{option}: {part!r} is not OLD:NEW (e.g. 2:1,3:1)")
        old, new = part.split(":", 1)
        mapping[class_index(old, meta, option)] = class_index(new, meta, option)
    return mapping


def background_label(text: str, meta: ClassMeta | None, binary: bool) -> int | None:
    """``auto``/``none``/a class → the background label (``auto``: 0 for a binary mask or
    when class 0 is named background)."""
    token = text.strip().lower()
    if token == "none":
        return None
    if token == "auto":
        if binary:
            return 0
        if meta is not None and meta.names and meta.names[0].lower() in BACKGROUND_NAMES:
            return 0
        return None
    return class_index(text, meta, "--background")
