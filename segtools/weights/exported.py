"""Load a ``torch.export`` program (``.pt2``) only after proving it holds data, not code.

``torch.export.load`` is unsafe on untrusted files (torch says so): it unpickles weights and
constants saved with ``use_pickle`` and "opaque" objects with plain :mod:`pickle`, retries
sample inputs with ``weights_only=False``, loads AOTInductor shared libraries, evaluates
symbolic shape expressions with ``sympy.sympify`` (``eval``), and resolves graph targets as
any attribute of ``torch``. So the archive is checked member by member first:

* members: only the layout ``torch.export.save`` writes (no AOTInductor/ExecuTorch parts,
  no legacy pickled weight files, no custom or opaque objects);
* weights and constants: raw tensor bytes (``use_pickle: false``) only;
* sample inputs: must load with ``torch.load(weights_only=True)``;
* the graph: every call target an ``aten`` operator (not ``from_file``/``save``) or a
  Python arithmetic operator; every symbolic expression a tree of sympy constructors
  (checked with :mod:`ast`, never evaluated) with bounded integers.

The checked bytes are the bytes loaded (read once into memory), and every ``torch.load``
inside runs weights-only.
"""

from __future__ import annotations

import ast
import io
import re
import zipfile
from pathlib import Path
from typing import Any

from segtools.errors import InputError
from segtools.io.jsondata import parse_json

_NAME = r"[A-Za-z0-9_.\-]+"
_ALLOWED_MEMBERS = [re.compile(p) for p in (
    r"archive_format", r"archive_version", r"byteorder", r"version", r"\.data/version",
    r"\.data/serialization_id", rf"models/{_NAME}\.json", rf"data/weights/{_NAME}_weights_config\.json",
    r"data/weights/weight_\d+", rf"data/constants/{_NAME}_constants_config\.json",
    r"data/constants/tensor_\d+", rf"data/sample_inputs/{_NAME}\.pt", r"extra/[^/].*",
)]
_OPERATORS = {"getitem", "add", "sub", "mul", "floordiv", "truediv", "mod", "neg", "pos", "abs",
              "eq", "ne", "lt", "le", "gt", "ge", "and_", "or_", "not_", "invert"}
_MATH = {"ceil", "floor", "trunc", "sqrt"}
_SYM = {"sym_float", "sym_int", "sym_max", "sym_min", "sym_not", "sym_ite", "sym_sqrt", "sym_sum"}
_DENIED_ATEN = {"from_file", "save", "_load", "load"}
_SYMPY_CALLS = {
    "Symbol", "Integer", "Float", "Rational", "Add", "Mul", "Max", "Min", "Eq", "Ne", "Lt", "Le",
    "Gt", "Ge", "StrictLessThan", "StrictGreaterThan", "LessThan", "GreaterThan", "Equality",
    "Unequality", "And", "Or", "Not", "Abs", "Mod", "floor", "ceiling", "Piecewise", "ExprCondPair",
    "FloorDiv", "ModularIndexing", "Where", "PythonMod", "CleanDiv", "CeilToInt", "FloorToInt",
    "CeilDiv", "RShift", "FloatTrueDiv", "IntTrueDiv", "IsNonOverlappingAndDenseIndicator",
    "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal", "ToFloat", "Identity",
    "Pow", "PowByNatural", "FloatPow", "LShift",
}
_SMALL_EXPONENT = {"Pow", "PowByNatural", "FloatPow", "LShift"}  # second argument: Integer(|k| <= 64)
_SYMPY_NAMES = {"oo", "zoo", "nan", "true", "false", "True", "False", "S"}
_SYMPY_KEYWORDS = {"positive", "negative", "integer", "real", "nonnegative", "nonpositive", "finite",
                   "nonzero", "precision", "evaluate"}
_MAX_INT = 1 << 62
_MAX_EXPR_CHARS = 20_000


def check_exported_archive(data: bytes, path: str | Path) -> None:
    """Raise :class:`InputError` unless the ``.pt2`` bytes ``data`` can be loaded without
    running code (see the module docstring for what is checked)."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = archive.namelist()
    root = names[0].split("/", 1)[0]
    rel = {name[len(root) + 1:]: name for name in names}
    for name in rel:
        if not any(p.fullmatch(name) for p in _ALLOWED_MEMBERS):
            raise InputError(f"{path}: the torch.export archive holds {name[:80]!r}, which segtools does not load "
                             "(only graph JSON and raw tensor data are loaded; no pickles, no compiled code)")
    if "archive_format" not in rel or archive.read(rel["archive_format"]).strip() != b"pt2":
        raise InputError(f"{path}: not a torch.export archive (no 'archive_format: pt2' member)")
    models = [n[len("models/"):-len(".json")] for n in rel if n.startswith("models/")]
    if not models:
        raise InputError(f"{path}: the torch.export archive holds no program (models/*.json)")
    for model in models:
        for kind in ("weights", "constants"):
            member = rel.get(f"data/{kind}/{model}_{kind}_config.json")
            if member is None:
                raise InputError(f"{path}: the torch.export archive lacks its {kind} table for {model!r}")
            _check_payload_config(parse_json(archive.read(member), f"{path}: {kind} table"), f"{path}: {kind} table")
        sample = rel.get(f"data/sample_inputs/{model}.pt")
        if sample is None:
            raise InputError(f"{path}: the torch.export archive lacks sample inputs for {model!r}")
        _check_sample_inputs(archive.read(sample), path)
        graph = parse_json(archive.read(rel[f"models/{model}.json"]), f"{path}: program {model!r}")
        _check_graph(graph, f"{path}: program {model!r}")


def _check_payload_config(config: Any, where: str) -> None:
    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        raise InputError(f"{where}: expected an object with a 'config' object")
    for fqn, meta in entries.items():
        if not isinstance(meta, dict) or meta.get("use_pickle") is not False:
            raise InputError(f"{where}: {str(fqn)[:60]!r} is stored as a pickle; segtools loads raw tensor data only "
                             "(re-export the model with plain tensors)")
        path_name = meta.get("path_name")
        if not isinstance(path_name, str) or not re.fullmatch(r"(weight|tensor)_\d+", path_name):
            raise InputError(f"{where}: {str(fqn)[:60]!r} is not a tensor (path {str(path_name)[:40]!r})")
        if not isinstance(meta.get("tensor_meta"), dict):
            raise InputError(f"{where}: {str(fqn)[:60]!r} has no tensor description")


def _check_sample_inputs(data: bytes, path: str | Path) -> None:
    import pickle

    import torch

    try:
        torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise InputError(f"{path}: the torch.export archive's sample inputs are a pickle that would import or "
                         "run code; refusing to load it") from None
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError, EOFError, ValueError, ...
        raise InputError(f"{path}: corrupt sample inputs in the torch.export archive "
                         f"({(str(exc).strip().splitlines() or [type(exc).__name__])[0][:100]})") from None


def _check_graph(node: Any, where: str, key: str = "", depth: int = 0) -> None:
    if depth > 200:
        raise InputError(f"{where}: nested too deeply")
    if isinstance(node, dict):
        if "target" in node and "inputs" in node:
            _check_target(node["target"], where)
        for sub_key, value in node.items():
            if sub_key == "as_operator":
                _check_target(value, where)
            elif sub_key == "expr_str":
                check_sym_expr(value, where)
            else:
                _check_graph(value, where, sub_key, depth + 1)
    elif isinstance(node, list):
        for value in node:
            _check_graph(value, where, key, depth + 1)


def _check_target(target: Any, where: str) -> None:
    ok = False
    if isinstance(target, str):
        parts = target.split(".")
        if len(parts) in (4, 5) and parts[:3] == ["torch", "ops", "aten"] and all(p.isidentifier() for p in parts):
            ok = parts[3] not in _DENIED_ATEN
        elif len(parts) == 2:
            ok = (parts[0] == "_operator" and parts[1] in _OPERATORS or parts[0] == "math" and parts[1] in _MATH
                  or parts[0] == "torch" and parts[1] in _SYM)
    if not ok:
        raise InputError(f"{where}: calls {str(target)[:80]!r}, which segtools does not run "
                         "(only aten operators and arithmetic are allowed in an exported program)")


def check_sym_expr(text: Any, where: str) -> None:
    """Refuse a symbolic shape expression that is not a small tree of sympy constructors
    (``Add(Symbol('s0', integer=True), Integer(1))``): it is parsed, never evaluated."""
    if not isinstance(text, str) or len(text) > _MAX_EXPR_CHARS:
        raise InputError(f"{where}: a symbolic shape expression is not a string of at most {_MAX_EXPR_CHARS} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise InputError(f"{where}: unreadable symbolic shape expression {text[:60]!r}") from None
    _check_expr_node(tree.body, text, where, 0)


def _check_expr_node(node: ast.AST, text: str, where: str, depth: int) -> None:
    def refuse() -> None:
        raise InputError(f"{where}: symbolic shape expression {text[:60]!r} is not plain arithmetic on shapes")

    if depth > 100:
        refuse()
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or value is None or isinstance(value, float):
            return
        if isinstance(value, int) and abs(value) <= _MAX_INT:
            return
        if isinstance(value, str) and re.fullmatch(r"[A-Za-z]{1,8}\d{0,9}|-?\d{1,20}(\.\d{0,20})?(e-?\d{1,3})?", value):
            return
        refuse()
    elif isinstance(node, ast.Name):
        if node.id not in _SYMPY_NAMES:
            refuse()
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        _check_expr_node(node.operand, text, where, depth + 1)
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _SYMPY_CALLS:
        if node.func.id in _SMALL_EXPONENT and not _small_integer(node.args[1:2]):
            refuse()
        for arg in node.args:
            _check_expr_node(arg, text, where, depth + 1)
        for keyword in node.keywords:
            if keyword.arg not in _SYMPY_KEYWORDS:
                refuse()
            _check_expr_node(keyword.value, text, where, depth + 1)
    else:
        refuse()


def _small_integer(args: list) -> bool:
    if len(args) != 1:
        return False
    arg = args[0]
    if isinstance(arg, ast.Call) and isinstance(arg.func, ast.Name) and arg.func.id == "Integer" and len(arg.args) == 1:
        arg = arg.args[0]
    if isinstance(arg, ast.UnaryOp) and isinstance(arg.op, ast.USub):
        arg = arg.operand
    return isinstance(arg, ast.Constant) and type(arg.value) is int and abs(arg.value) <= 64


def load_exported(path: str | Path, device: Any = "cpu"):
    """The module of the checked ``torch.export`` program at ``path``, on ``device``."""
    import torch

    from segtools.weights.archive import forced_weights_only, quiet_torch

    data = Path(path).read_bytes()
    check_exported_archive(data, path)
    try:
        with quiet_torch(), forced_weights_only():
            program = torch.export.load(io.BytesIO(data))
            return program.module().to(device)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of a checked archive: it is corrupt
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        raise InputError(f"{path}: corrupt torch.export program ({first})") from None
