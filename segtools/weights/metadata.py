"""Strict checks of what a checkpoint says about itself, before anything is built from it.

A checkpoint's metadata (``arch``, ``num_classes``, ``arch_options``, ``classes``,
``preprocessing``, training fields) comes from an untrusted file: a pickle, a
``.safetensors`` header or a TorchScript extra file. Every field is type-checked without
coercion (``"21"`` is not 21, ``true`` is not 1) and every declared size is bounded, so a
hostile file fails with one :class:`~segtools.errors.InputError` instead of allocating what
it declares.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from segtools.errors import InputError
from segtools.io.jsondata import check_int, check_type, type_name
from segtools.io.limits import check_class_count

#: largest integer architecture option (channels, depth, stride) a checkpoint may declare
MAX_OPTION = 4096
#: largest ``resize_short`` (pixels) and ``resize_factor`` a checkpoint may declare
MAX_RESIZE_SHORT = 65_536
MAX_RESIZE_FACTOR = 64.0


def check_metadata(checkpoint: dict, source: str) -> dict:
    """``checkpoint`` with its metadata fields checked (in place); see the module docstring.

    >>> check_metadata({"arch": "unet", "num_classes": 2}, "x.pt")["num_classes"]
    2
    >>> check_metadata({"num_classes": "2"}, "x.pt")
    Traceback (most recent call last):
    ...
    segtools.errors.InputError: x.pt: 'num_classes' must be a number, got a string
    """
    def present(key: str) -> bool:
        return checkpoint.get(key) is not None

    if present("arch"):
        check_type(checkpoint["arch"], str, f"{source}: 'arch'")
    if present("num_classes"):
        count = check_int(checkpoint["num_classes"], f"{source}: 'num_classes'")
        checkpoint["num_classes"] = check_class_count(count, f"{source}: 'num_classes'")
        if count < 1:
            raise InputError(f"{source}: 'num_classes' must be at least 1, got {count}")
    if present("arch_options"):
        options = check_type(checkpoint["arch_options"], dict, f"{source}: 'arch_options'")
        for key, value in options.items():
            check_type(key, str, f"{source}: arch_options key")
            check_type(value, (bool, int, float, str), f"{source}: arch_options '{key[:40]}'")
    if present("classes"):
        check_type(checkpoint["classes"], (dict, str), f"{source}: 'classes'")
    if present("preprocessing"):
        checkpoint["preprocessing"] = check_preprocessing(checkpoint["preprocessing"], f"{source}: 'preprocessing'")
    if present("epoch"):
        check_int(checkpoint["epoch"], f"{source}: 'epoch'", 0, 10**9)
    for key in ("train_args", "metrics"):
        if present(key):
            check_type(checkpoint[key], dict, f"{source}: '{key}'")
    return checkpoint


def check_preprocessing(prep: Any, where: str) -> dict:
    """A ``{"mean": [3], "std": [3], "scale": s, "resize_short"?: px, "resize_factor"?: f}``
    dict with finite numbers, ``std > 0``, ``scale > 0`` and bounded resize fields."""
    check_type(prep, dict, where)
    out = dict(prep)
    for key in ("mean", "std"):
        if prep.get(key) is None:
            continue
        values = check_type(prep[key], (list, tuple), f"{where}: '{key}'")
        if len(values) != 3:
            raise InputError(f"{where}: '{key}' needs 3 values (R, G, B), got {len(values)}")
        out[key] = [_finite(v, f"{where}: {key}[{i}]") for i, v in enumerate(values)]
        if key == "std" and min(out[key]) <= 0:
            raise InputError(f"{where}: 'std' values must be > 0, got {out[key]}")
    if prep.get("scale") is not None:
        out["scale"] = _finite(prep["scale"], f"{where}: 'scale'")
        if out["scale"] <= 0:
            raise InputError(f"{where}: 'scale' must be > 0, got {out['scale']}")
    if prep.get("resize_short") is not None:
        out["resize_short"] = check_int(prep["resize_short"], f"{where}: 'resize_short'", 1, MAX_RESIZE_SHORT)
    if prep.get("resize_factor") is not None:
        factor = _finite(prep["resize_factor"], f"{where}: 'resize_factor'")
        if not 0 < factor <= MAX_RESIZE_FACTOR:
            raise InputError(f"{where}: 'resize_factor' = {factor} is out of range (0..{MAX_RESIZE_FACTOR:g}]")
        out["resize_factor"] = factor
    return out


def check_arch_options(options: Mapping[str, Any], defaults: Mapping[str, Any], arch: str, source: str) -> dict:
    """Options a checkpoint declares for ``arch``: known names, the default's type, and
    integers within ``0..MAX_OPTION`` (the weights' shapes are checked separately)."""
    checked = {}
    for key, value in options.items():
        if key not in defaults:
            valid = ", ".join(defaults) or "none"
            raise InputError(f"{source}: architecture '{arch}' has no option {key[:40]!r} (options: {valid})")
        default = defaults[key]
        what = f"{source}: arch_options '{key}'"
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise InputError(f"{what} must be a boolean, got {type_name(value)}")
        elif isinstance(default, int):
            value = check_int(value, what, 0, MAX_OPTION)
        elif isinstance(default, float):
            value = _finite(value, what)
        else:
            check_type(value, type(default), what)
        checked[key] = value
    return checked


def _finite(value: Any, what: str) -> float:
    check_type(value, float, what)
    if not math.isfinite(value):
        raise InputError(f"{what} must be a finite number, got {value!r}")
    return float(value)
