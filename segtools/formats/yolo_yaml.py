"""YOLO ``data.yaml``: written by hand (no YAML dependency), read with PyYAML's safe loader
when installed, else a small parser for the forms Ultralytics and Roboflow write."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from segtools.errors import InputError
from segtools.io.limits import check_class_count

MAX_YAML_BYTES = 1 << 20  # a data.yaml is a few hundred bytes; 65,536 class names fit in 1 MiB



def data_yaml(names: Sequence[str], path: str | None = None, train: str = "images", val: str | None = None,
              test: str | None = None) -> str:
    """A minimal Ultralytics ``data.yaml`` (written by hand: no YAML dependency).

    Without a ``val`` folder (no split was asked for) ``val`` names the training images,
    which Ultralytics needs, and a comment says so.
    """
    lines = []
    if path:
        lines.append(f"path: {_quote(path)}")
    lines.append(f"train: {_quote(train)}")
    if val is None:
        lines.append("# no validation split: val is the training images (convert --split train=0.8,val=0.2 makes one)")
    lines.append(f"val: {_quote(val or train)}")
    if test:
        lines.append(f"test: {_quote(test)}")
    lines.append(f"nc: {len(names)}")
    lines.append("names:")
    lines += [f"  {i}: {_quote(n)}" for i, n in enumerate(names)]
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    import json

    return text if re.fullmatch(r"[A-Za-z0-9_./ -]*[A-Za-z0-9_./-]", text or "x") and not text[:1] in "-. " else json.dumps(text)


def read_data_yaml(text: str, name: str = "data.yaml") -> dict:
    """Read the subset of YAML a ``data.yaml`` uses (PyYAML's safe loader when importable).

    Supported: ``key: value`` scalars, ``names: [a, b]``, ``names:`` followed by ``- a``
    items or ``0: a`` pairs, ``#`` comments, quoted strings. The file comes from a dataset,
    so it is bounded: at most :data:`MAX_YAML_BYTES`, no anchors or aliases (the "billion
    laughs"), no tags (no object construction: PyYAML's safe loader only ever builds plain
    data), scalar class names, and at most :data:`~segtools.io.limits.MAX_CLASSES` classes.
    """
    if len(text) > MAX_YAML_BYTES:
        raise InputError(f"{name}: {len(text):,} characters is too large for a data.yaml (at most {MAX_YAML_BYTES:,})")
    try:
        import yaml  # type: ignore
    except ImportError:
        return _names_list(_read_simple_yaml(text), name)
    if re.search(r"(^|[\s\[{,:-])[&*!][^\s]", text, re.MULTILINE):
        raise InputError(f"{name}: YAML anchors, aliases and tags are not allowed in a data.yaml")
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise InputError(f"{name}: not valid YAML (nested too deeply)") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{name}: not valid YAML ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise InputError(f"{name}: a data.yaml is a mapping of keys (names, nc, train, ...), got {type(data).__name__}")
    return _names_list(data, name)


def _read_simple_yaml(text: str) -> dict:
    """The data.yaml subset without PyYAML (linear in the text)."""
    data: dict = {}
    current = None
    for raw in text.splitlines():
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        if line[:1] not in (" ", "\t", "-"):
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            current = key
            if value.startswith("[") and value.endswith("]"):
                data[key] = [_unquote(v) for v in _split_flow(value[1:-1])]
            elif value:
                data[key] = _unquote(value)
            else:
                data[key] = None
        elif current is not None:
            item = line.strip()
            if item.startswith("- "):
                data[current] = (data[current] if isinstance(data[current], list) else []) + [_unquote(item[2:])]
            elif ":" in item:
                k, _, v = item.partition(":")
                entries = data[current] if isinstance(data[current], dict) else {}
                entries[_unquote(k)] = _unquote(v.strip())
                data[current] = entries
    return data


def _split_flow(text: str) -> list[str]:
    return [part.strip() for part in re.findall(r'"[^"]*"|\'[^\']*\'|[^,]+', text) if part.strip()]


def _unquote(text: str):
    text = str(text).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return int(text) if re.fullmatch(r"-?\d+", text) else text


def _class_name(value, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InputError(f"{where}: a class name must be a string, got {type(value).__name__}")
    return str(value)


def _names_list(data: dict, name: str) -> dict:
    names = data.get("names")
    if isinstance(names, (dict, list)):
        check_class_count(len(names), f"{name}: names")
    if isinstance(names, dict):
        if any(isinstance(k, bool) or not isinstance(k, (int, str)) for k in names):
            raise InputError(f"{name}: 'names' keys must be class indices")
        try:
            keys = sorted(int(k) for k in names)
        except ValueError:
            raise InputError(f"{name}: 'names' keys must be class indices") from None
        if keys != list(range(len(keys))):
            raise InputError(f"{name}: 'names' indices must run 0..{len(keys) - 1} without gaps")
        data["names"] = [_class_name(names.get(k, names.get(str(k))), f"{name}: names[{k}]") for k in keys]
    elif isinstance(names, list):
        data["names"] = [_class_name(n, f"{name}: names[{k}]") for k, n in enumerate(names)]
    elif names is None and "nc" in data:
        count = data["nc"]
        if isinstance(count, bool) or not isinstance(count, int):
            raise InputError(f"{name}: 'nc' must be an integer, got {count!r:.40}")
        data["names"] = [f"class_{i}" for i in range(check_class_count(count, f"{name}: nc"))]
    else:
        raise InputError(f"{name}: no 'names' list of classes")
    return data


def load_data_yaml(path: str | Path) -> dict:
    """:func:`read_data_yaml` of a file, read at most :data:`MAX_YAML_BYTES` (+1) bytes."""
    from segtools.io.streams import read_head

    raw = read_head(path, MAX_YAML_BYTES + 1)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (at byte {exc.start})") from None
    if "\x00" in text:
        raise InputError(f"{path}: holds NUL bytes; not a data.yaml")
    return read_data_yaml(text, str(path))


def find_yaml(root: Path) -> Path | None:
    for candidate in ("data.yaml", "dataset.yaml", "data.yml"):
        if (root / candidate).is_file():
            return root / candidate
    return None
