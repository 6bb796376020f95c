"""The small text specs of ``segtools postprocess``'s options, parsed into Python values.

``car=200,person=50`` (per-class values), ``100,car=200`` (a default and overrides),
``2:1,3:1`` (relabelling) and ``car,road`` (class lists). Classes stay as written: an index
(``3`` → ``3``) or a name (``"car"``), looked up later in each mask's own class metadata by
:mod:`segtools.morphology.classes`. Messages name the option (``--min-area``).
"""

from __future__ import annotations

from typing import Optional, Union

from segtools.errors import UsageError

ClassKey = Union[int, str]


def _parts(text: str, option: str) -> list[str]:
    parts = [part.strip() for part in str(text).split(",")]
    if not parts or any(not part for part in parts):
        raise UsageError(f"{option} {text!r}: expected a comma-separated list without empty entries")
    return parts


def class_key(token: str) -> ClassKey:
    """``"3"`` → 3; a name stays a name.

    >>> class_key("3"), class_key("car")
    (3, 'car')
    """
    token = token.strip()
    return int(token) if token.isdigit() else token


def class_list(text: str, option: str = "--only") -> tuple[ClassKey, ...]:
    """``car,road`` or ``8,3`` → class keys."""
    return tuple(class_key(part) for part in _parts(text, option))


def number(text: str, option: str, kind: type = int) -> Union[float, int]:
    try:
        value = kind(text)
    except ValueError:
        raise UsageError(f"{option}: {text!r} is not a{'n integer' if kind is int else ' number'}") from None
    if value < 0:
        raise UsageError(f"{option}: {text} must be 0 or more")
    return value


def class_values(text: str, option: str, kind: type = int) -> tuple[Optional[Union[int, float]], dict[ClassKey, Union[int, float]]]:
    """``N``, ``CLASS=N,...`` or ``N,CLASS=N,...`` → (default or ``None``, ``{class: value}``).

    >>> class_values("100,car=200", "--min-area")
    (100, {'car': 200})
    """
    default = None
    per_class: dict[ClassKey, Union[int, float]] = {}
    for part in _parts(text, option):
        if "=" in part:
            name, value = part.split("=", 1)
            if not name.strip():
                raise UsageError(f"{option} {text!r}: {part!r} names no class (CLASS=VALUE)")
            per_class[class_key(name)] = number(value.strip(), option, kind)
        elif default is None:
            default = number(part, option, kind)
        else:
            raise UsageError(f"{option} {text!r}: give one default value at most, then CLASS=VALUE pairs")
    return default, per_class


def relabelling(text: str, option: str = "--map") -> dict[ClassKey, ClassKey]:
    """``2:1,3:1`` or ``truck:car`` → ``{old: new}``."""
    mapping: dict[ClassKey, ClassKey] = {}
    for part in _parts(text, option):
        old, sep, new = part.partition(":")
        if not sep or not old.strip() or not new.strip():
            raise UsageError(f"{option}: {part!r} is not OLD:NEW (e.g. 2:1,3:1)")
        mapping[class_key(old)] = class_key(new)
    return mapping


def background(text: str) -> Optional[ClassKey]:
    """``auto`` → ``"auto"``, ``none`` → ``None``, else a class key."""
    token = text.strip()
    if token.lower() == "none":
        return None
    if token.lower() == "auto":
        return "auto"
    if not token:
        raise UsageError("--background: give a class, auto or none")
    return class_key(token)


def steps(text: str) -> tuple[str, ...]:
    """``open,min-area`` → ``("open", "min-area")`` (checked against the step names later)."""
    return tuple(part.strip() for part in text.split(",") if part.strip())
