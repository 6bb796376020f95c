"""Export a loaded model to TorchScript or ONNX, with its metadata inside.

TorchScript archives carry a ``segtools.json`` extra file (architecture, classes,
preprocessing), so ``segtools predict --model exported.pt`` needs nothing else. ONNX files
carry the same JSON as ``metadata_props`` entry ``segtools``, plus plain entries any ONNX
reader can use (:func:`metadata_props`: class names, palette, mean/std/scale, input layout).
An ONNX file's weights can be stored in float16, or int8 per output channel, and turned back
into float32 when the file loads (``weights``), for a smaller file that runs in float32.
Both are written atomically.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

from segtools.errors import MissingDependency, OutputError, UsageError, require
from segtools.io.streams import check_output_path, write_bytes
from segtools.weights.loader import TORCHSCRIPT_META, LoadedModel

FORMATS = ("torchscript", "onnx")
#: how an ONNX file stores its weights (all run in float32)
WEIGHT_STORAGE = ("float32", "float16", "int8")
#: initialisers smaller than this many values stay float32 (biases: no gain, some loss)
MIN_COMPACT = 1024


def require_onnx() -> None:
    """Raise :class:`MissingDependency` unless the ``onnx`` package is importable."""
    try:
        import onnx  # noqa: F401  (torch.onnx needs it to build the graph)
    except ImportError:
        raise MissingDependency("ONNX export needs the 'onnx' package: pip install 'segtools[onnx]' "
                                "(or export to torchscript)") from None


def metadata_json(loaded: LoadedModel) -> str:
    """The JSON that travels inside an exported file."""
    return json.dumps({
        "format": "segtools-export", "version": 1, "arch": loaded.arch, "num_classes": loaded.num_classes,
        "arch_options": loaded.arch_options,
        "classes": loaded.classes.to_dict() if loaded.classes is not None else None,
        "preprocessing": loaded.preprocessing.to_dict(),
    })


def metadata_props(meta_json: str) -> dict[str, str]:
    """The plain ``metadata_props`` an ONNX export carries beside ``segtools`` (taken from its
    JSON): class ``names``, ``palette``, ``ignore_index``, ``num_classes``, ``mean``/``std``/
    ``scale`` (each a JSON value), ``input_layout`` and ``output`` (text), for readers that
    are not segtools.

    >>> sorted(metadata_props('{"num_classes": 2, "preprocessing": {"mean": [0, 0, 0], "std": [1, 1, 1], "scale": 1}}'))
    ['input_layout', 'mean', 'num_classes', 'output', 'scale', 'std']
    """
    data = json.loads(meta_json)
    props = {"input_layout": "NCHW float32 RGB, (pixel * scale - mean) / std", "output": "logits NCHW"}
    classes = data.get("classes") or {}
    for key in ("names", "palette", "ignore_index"):
        if classes.get(key) is not None:
            props[key] = json.dumps(classes[key])
    for key in ("mean", "std", "scale"):
        value = (data.get("preprocessing") or {}).get(key)
        if value is not None:
            props[key] = json.dumps(value)
    if data.get("num_classes"):
        props["num_classes"] = json.dumps(data["num_classes"])
    return props


def export_model(loaded: LoadedModel, output: str | os.PathLike, fmt: str = "torchscript",
                 example_size: tuple[int, int] = (256, 256), opset: int = 17, weights: str = "float32",
                 int8_min: int = MIN_COMPACT) -> Path:
    """Write ``loaded.model`` as ``fmt`` (``torchscript`` or ``onnx``) to ``output``.

    TorchScript tries :func:`torch.jit.script` first (keeps every input size and control
    flow), then falls back to tracing an N×3×``example_size`` input. ONNX is exported with
    dynamic batch, height and width; ``weights`` (ONNX only) stores its weights as
    ``float32``, ``float16`` or ``int8`` (see :func:`compact_weights`).

    Raises
    ------
    MissingDependency
        ONNX export without the ``onnx`` package.
    OutputError
        The export or the write failed.
    """
    torch = require("torch", "models")
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise UsageError(f"export format {fmt!r}: choose torchscript or onnx")
    if fmt == "onnx":
        require_onnx()
    if weights not in WEIGHT_STORAGE or weights != "float32" and fmt != "onnx":
        raise UsageError(f"weights={weights}: ONNX weights are stored as {', '.join(WEIGHT_STORAGE)}")
    out = check_output_path(output)
    model = loaded.model.eval().cpu()
    example = torch.zeros(1, 3, *example_size)
    buffer = io.BytesIO()
    try:
        if fmt == "torchscript":
            _save_torchscript(torch, model, example, buffer, metadata_json(loaded))
        else:
            _save_onnx(torch, model, example, buffer, metadata_json(loaded), opset, weights, int8_min)
    except (OutputError, MissingDependency):
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise OutputError(f"{fmt} export of {loaded.arch or 'the model'} failed: {first}") from None
    return write_bytes(out, buffer.getvalue())


def _save_torchscript(torch, model, example, target: io.BytesIO, meta: str) -> None:
    import warnings

    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch >= 2.9 marks TorchScript deprecated; it still works
        try:
            scripted = torch.jit.script(model)
        except Exception:  # not scriptable: trace (shapes flow through size() calls)
            scripted = torch.jit.trace(model, example, check_trace=False)
        torch.jit.save(scripted, target, _extra_files={TORCHSCRIPT_META: meta})


def _save_onnx(torch, model, example, target: io.BytesIO, meta: str, opset: int, weights: str = "float32",
               int8_min: int = MIN_COMPACT) -> None:
    import warnings

    import onnx

    axes = {0: "batch", 2: "height", 3: "width"}
    graph_bytes = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on shape-dependent branches (U-Net padding)
        torch.onnx.export(model, (example,), graph_bytes, input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": axes, "logits": axes}, opset_version=opset, dynamo=False)
    graph = onnx.load_from_string(graph_bytes.getvalue())
    for key, value in {"segtools": meta, **metadata_props(meta)}.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    if weights != "float32":
        compact_weights(graph, weights, int8_min)
    target.write(graph.SerializeToString())



def compact_weights(model, storage: str = "float16", int8_min: int = MIN_COMPACT) -> None:
    """Store the float32 initialisers of the ONNX ``model`` (an ``onnx.ModelProto``, changed
    in place) with at least :data:`MIN_COMPACT` values as ``float16`` (a ``Cast`` to float32
    in front of their users) or ``int8`` (symmetric, one scale per output channel, a
    ``DequantizeLinear`` in front): 1/2 or 1/4 of the bytes. The graph still computes in
    float32, with weights rounded to the stored precision: onnxruntime folds the casts into
    float32 constants when the session starts; it keeps the ``DequantizeLinear`` nodes (it
    never folds them), which turn the int8 weights back on each run (a few million values:
    milliseconds). With ``int8``, initialisers of fewer than
    ``int8_min`` values are stored as float16 (the large 1×1 convolutions hold most of a
    MobileNet's bytes and lose least to int8)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    kept, added = [], []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < MIN_COMPACT:
            kept.append(init)
            continue
        values = numpy_helper.to_array(init)
        if storage == "float16" or values.size < int8_min:
            stored = f"{init.name}__float16"
            kept.append(numpy_helper.from_array(values.astype(np.float16), stored))
            added.append(helper.make_node("Cast", [stored], [init.name], to=TensorProto.FLOAT))
            continue
        stored = f"{init.name}__int8"
        rows = values.reshape(values.shape[0], -1)
        scale = np.abs(rows).max(axis=1) / 127.0
        scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
        quantised = np.clip(np.rint(rows / scale[:, None]), -127, 127).astype(np.int8).reshape(values.shape)
        kept += [numpy_helper.from_array(quantised, stored), numpy_helper.from_array(scale, f"{stored}_scale"),
                 numpy_helper.from_array(np.zeros(len(scale), np.int8), f"{stored}_zero")]
        added.append(helper.make_node("DequantizeLinear", [stored, f"{stored}_scale", f"{stored}_zero"],
                                      [init.name], axis=0))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = added + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
