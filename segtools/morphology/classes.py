"""Classes given by name or index, resolved against a mask's class metadata.

The options of the cleanup pipeline (:class:`~segtools.morphology.postprocess.PostprocessOptions`)
may name classes (``"car"``) or give their index (``3``); the names are looked up here, for
each mask, in that mask's own metadata (or the ``classes`` given instead). Messages name the
parameter (``min_area``, ``only``, ...) the class came from.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Union

from segtools.errors import SegtoolsError, UsageError
from segtools.io.meta import ClassMeta

#: A class as a caller gives it: its index, or its name in the class metadata.
ClassKey = Union[int, str]

#: Names that make class 0 the background when ``background="auto"``.
BACKGROUND_NAMES = ("background", "_background_", "bg")


def class_index(key: ClassKey, meta: ClassMeta | None, parameter: str) -> int:
    """The index of class ``key`` (an index, or a name looked up in ``meta``).

    >>> class_index("road", ClassMeta(names=("bg", "road")), "only"), class_index(4, None, "only")
    (1, 4)
    """
    if isinstance(key, bool):
        raise UsageError(f"{parameter}: {key!r} is not a class")
    if isinstance(key, int):
        if key < 0:
            raise UsageError(f"{parameter}: class {key} must be 0 or more")
        return int(key)
    token = str(key).strip()
    if token.isdigit():
        return int(token)
    if meta is None or not meta.names:
        raise UsageError(f"{parameter}: class {token!r} given by name, but the mask has no class names; "
                         "use indices or give the names with classes=PRESET|FILE")
    try:
        return meta.class_index(token)
    except SegtoolsError as exc:  # an unknown name: a usage problem of this parameter
        raise UsageError(f"{parameter}: {exc}") from None


def class_indices(keys: Iterable[ClassKey], meta: ClassMeta | None, parameter: str = "only") -> tuple[int, ...]:
    """Class keys → indices. A dataset preset's name that is no class of ``meta`` is refused with
    a hint: class names come from ``classes``, not from the list of classes to operate on."""
    from segtools.io import presets

    keys = tuple(keys)
    names = {name.lower() for name in (meta.names or ())} if meta is not None else set()
    for key in keys:
        if isinstance(key, str) and key.strip().lower() in presets.PRESETS and key.strip().lower() not in names:
            raise UsageError(f"{parameter}={key!r}: {parameter} lists the classes to operate on; "
                             f"to give class names use classes={key.strip()}")
    return tuple(class_index(key, meta, parameter) for key in keys)


def class_mapping(mapping: Mapping[ClassKey, object], meta: ClassMeta | None, parameter: str) -> dict[int, object]:
    """``{class key: value}`` → ``{class index: value}``."""
    return {class_index(key, meta, parameter): value for key, value in mapping.items()}


def background_label(background: ClassKey | None, meta: ClassMeta | None, binary: bool) -> int | None:
    """The background label: ``"auto"`` is 0 for a binary mask or when class 0 is named
    background (else none), ``None`` is none, anything else a class.

    >>> background_label("auto", None, True), background_label("auto", None, False)
    (0, None)
    """
    if background is None:
        return None
    if isinstance(background, str) and background.strip().lower() == "auto":
        if binary:
            return 0
        if meta is not None and meta.names and meta.names[0].lower() in BACKGROUND_NAMES:
            return 0
        return None
    return class_index(background, meta, "background")
