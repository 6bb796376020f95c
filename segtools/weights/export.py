"""Export a loaded model to TorchScript or ONNX, with its metadata inside.

TorchScript archives carry a ``segtools.json`` extra file (architecture, classes,
preprocessing), so ``segtools predict --model exported.pt`` needs nothing else. ONNX files
carry the same JSON as ``metadata_props`` entry ``segtools``. Both are written atomically.
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


def export_model(loaded: LoadedModel, output: str | os.PathLike, fmt: str = "torchscript",
                 example_size: tuple[int, int] = (256, 256), opset: int = 17) -> Path:
    """Write ``loaded.model`` as ``fmt`` (``torchscript`` or ``onnx``) to ``output``.

    TorchScript tries :func:`torch.jit.script` first (keeps every input size and control
    flow), then falls back to tracing an N×3×``example_size`` input. ONNX is exported with
    dynamic batch, height and width.

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
    out = check_output_path(output)
    model = loaded.model.eval().cpu()
    example = torch.zeros(1, 3, *example_size)
    buffer = io.BytesIO()
    try:
        if fmt == "torchscript":
            _save_torchscript(torch, model, example, buffer, metadata_json(loaded))
        else:
            _save_onnx(torch, model, example, buffer, metadata_json(loaded), opset)
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


def _save_onnx(torch, model, example, target: io.BytesIO, meta: str, opset: int) -> None:
    import warnings

    import onnx

    axes = {0: "batch", 2: "height", 3: "width"}
    graph_bytes = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on shape-dependent branches (U-Net padding)
        torch.onnx.export(model, (example,), graph_bytes, input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": axes, "logits": axes}, opset_version=opset, dynamo=False)
    graph = onnx.load_from_string(graph_bytes.getvalue())
    entry = graph.metadata_props.add()
    entry.key, entry.value = "segtools", meta
    target.write(graph.SerializeToString())
