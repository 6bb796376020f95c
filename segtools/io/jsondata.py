"""JSON from untrusted files: parsed with bounds, read field by field with strict types.

Every reader of a JSON-based format (COCO, panoptic, labelme, manifests, class metadata,
reports) parses through :func:`parse_json`, so a hostile file fails with one
:class:`~segtools.errors.InputError` naming the file: too deeply nested, not UTF-8, a number
out of range (``1e999``), ``NaN``/``Infinity`` (not JSON). Field getters check types and
ranges instead of coercing: ``true`` is not 1, ``1.5`` is not an index, ``"abc"`` is not a
list of names.
"""

from __future__ import annotations

import math
from typing import Any

from segtools.errors import InputError

_MISSING = object()
_KIND_NAMES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
               int: "a number", float: "a number", type(None): "null"}



def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


#: Bytes mapped so that what may make a float overflow shows: digits → ``0``, ``e``/``E`` →
#: ``e``, ``+`` kept, everything else → a space (see :func:`_may_overflow`).
_NUMBER_SHAPES = bytes(48 if 48 <= b <= 57 else 101 if b in (69, 101) else 43 if b == 43 else 32 for b in range(256))


def _may_overflow(data: bytes) -> bool:
    """Whether the JSON text ``data`` may hold a number too large for a float (``1e999``).

    No: every exponent has at most two digits and every run of digits fewer than 100, so
    each number is below 10¹⁰⁰·10⁹⁹. One byte translation and three substring searches, no
    regular expression; text in strings (``"frame_e123"``) may say yes, which only costs
    the checked parse.

    >>> _may_overflow(b'[1.5e30, 12]'), _may_overflow(b'[1E+308]'), _may_overflow(b'[' + b'9' * 100 + b']')
    (False, True, True)
    """
    shapes = data.translate(_NUMBER_SHAPES)
    return b"e000" in shapes or b"e+000" in shapes or b"0" * 100 in shapes


def parse_json(data: bytes | str, name: str) -> Any:
    """Parse JSON ``data`` from the source called ``name``; every failure is an InputError.

    Floats are parsed by the C scanner itself unless the text may hold one that overflows
    (:func:`_may_overflow`); only then is each float checked by a hook (a Python call per
    number: an eighth of the time of a COCO file full of polygons).

    >>> parse_json(b'{"a": [1, 2.5]}', "x.json")
    {'a': [1, 2.5]}
    """
    raw = bytes(data) if isinstance(data, (bytes, bytearray, memoryview)) else data.encode("utf-8", "surrogatepass")
    checked = _may_overflow(raw)
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            data = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InputError(f"{name}: not valid JSON (not UTF-8 text at byte {exc.start})") from None
    import json  # here: reading a mask without metadata needs no JSON

    try:
        if checked:
            return json.loads(data, parse_float=_finite_float, parse_constant=_refuse_constant)
        return json.loads(data, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise InputError(f"{name}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:  # the C scanner counts its depth against Python's recursion limit
        raise InputError(f"{name}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # from the number hooks, or ints longer than Python allows
        raise InputError(f"{name}: not valid JSON ({exc})") from None


def type_name(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages."""
    return _KIND_NAMES.get(type(value), type(value).__name__)


def get_field(obj: Any, key: str, where: str, kind: type | tuple, default: Any = _MISSING) -> Any:
    """``obj[key]`` checked to be of JSON type ``kind`` (``dict``, ``list``, ``str``, ``int``,
    ``float`` — ``float`` accepts integers too; ``bool`` is never an ``int``)."""
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected an object, got {type_name(obj)}")
    if key not in obj or (obj[key] is None and default is not _MISSING):
        if default is _MISSING:
            raise InputError(f"{where}: missing field '{key}'")
        return default
    return check_type(obj[key], kind, f"{where}: '{key}'")


def check_type(value: Any, kind: type | tuple, what: str) -> Any:
    """``value`` when it is of JSON type ``kind`` (see :func:`get_field`), else InputError."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds:
        kinds = kinds + (int,)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        expected = " or ".join(dict.fromkeys(_KIND_NAMES.get(k, k.__name__) for k in kinds))
        raise InputError(f"{what} must be {expected}, got {type_name(value)}")
    return value


def get_int(obj: Any, key: str, where: str, low: int | None = None, high: int | None = None,
            default: Any = _MISSING) -> int:
    """An integer field (``3``, or ``3.0`` as JSON writers emit) within ``[low, high]``."""
    value = get_field(obj, key, where, float, default)
    if value is default and default is not _MISSING:
        return value
    return check_int(value, f"{where}: '{key}'", low, high)


def check_int(value: Any, what: str, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int when it is an integral JSON number within ``[low, high]``."""
    check_type(value, float, what)
    if isinstance(value, float):
        if not value.is_integer():
            raise InputError(f"{what} must be an integer, got {value!r}")
        value = int(value)
    if low is not None and value < low or high is not None and value > high:
        bounds = f"{low if low is not None else '-inf'}..{high if high is not None else 'inf'}"
        raise InputError(f"{what} = {value} is out of range ({bounds})")
    return value
