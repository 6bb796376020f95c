"""ONNX Runtime back-end: run an ``.onnx`` segmentation graph without torch.

Semantic graphs take one N×3×H×W float input and return N×C×H×W logits (or N×H×W labels);
an input size that is a number in the graph is fixed (the predictor resizes to it, or tiles
at it), a named one is dynamic. What the pixels mean comes from the graph's
``metadata_props``:

* ``segtools`` — the JSON that ``segtools weights export --format onnx`` writes (classes,
  preprocessing, architecture), checked as a checkpoint's metadata is;
* else the plain keys that export writes too, and other exporters may: ``names`` (a JSON
  list, or Ultralytics' ``{0: 'person', ...}``), ``palette``, ``mean``, ``std``, ``scale``;
* else the caller's ``mean``/``std``/``scale`` and ``classes``, else ImageNet's mean and std
  of pixels in [0, 1] (the torchvision convention).

A graph in Ultralytics' YOLO-seg layout (``task: segment`` in its metadata, or boxes + class
scores + 32 mask coefficients and 32 prototypes) is decoded by :mod:`segtools.backends.yolo`.

onnxruntime is imported when a graph is opened, never at module level.
"""

from __future__ import annotations

import ast
import os
from typing import Any, Mapping

import numpy as np

from segtools.errors import InputError, MissingDependency, UsageError
from segtools.io.meta import ClassMeta
from segtools.models.preprocessing import IMAGENET, Preprocessing

#: onnxruntime's element types that a float input accepts
_FLOAT_INPUTS = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}
_MAX_META_CHARS = 1 << 20


def require_onnxruntime():
    """``onnxruntime``, or :class:`MissingDependency` saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise MissingDependency("running an ONNX model needs onnxruntime: pip install 'segtools[onnx]'") from None
    return onnxruntime


def providers(device: str | None = "auto", available: list[str] | None = None) -> list:
    """onnxruntime execution providers for ``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``).

    >>> providers("auto", ["CPUExecutionProvider"])
    ['CPUExecutionProvider']
    >>> providers("cuda:1", ["CUDAExecutionProvider", "CPUExecutionProvider"])
    [('CUDAExecutionProvider', {'device_id': 1}), 'CPUExecutionProvider']
    """
    if available is None:
        available = require_onnxruntime().get_available_providers()
    name = str(device or "auto").strip().lower()
    cuda = "CUDAExecutionProvider" in available
    if name == "auto":
        return (["CUDAExecutionProvider"] if cuda else []) + ["CPUExecutionProvider"]
    if name == "cpu":
        return ["CPUExecutionProvider"]
    if name == "cuda" or name.startswith("cuda:") and name[5:].isdigit():
        if not cuda:
            raise UsageError(f"device={device}: this onnxruntime has no CUDA execution provider (it has "
                             f"{', '.join(available)}); install onnxruntime-gpu, or use cpu")
        provider = ("CUDAExecutionProvider", {"device_id": int(name[5:])}) if ":" in name else "CUDAExecutionProvider"
        return [provider, "CPUExecutionProvider"]
    raise UsageError(f"device={device}: ONNX models run on auto, cpu, cuda or cuda:N")


def open_session(path: str | os.PathLike, device: str | None = "auto", threads: int | None = None):
    """An ``onnxruntime.InferenceSession`` over the file at ``path`` (``threads``: intra-op
    threads, ``None``/0 → onnxruntime's default, one per physical core)."""
    ort = require_onnxruntime()
    from segtools.io.remote import local_file

    path = local_file(path)  # a storage URL: this machine's copy
    if not path.is_file():
        raise InputError(f"{path}: no such ONNX file")
    if threads is not None and threads < 0:
        raise UsageError(f"threads={threads}: give 0 (one per core) or more")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: no warnings about unused initialisers on stderr
    # idle intra-op threads sleep instead of spinning: between runs the caller's own work
    # (normalising the next batch, argmax, decoding, encoding) gets the cores; on 2 cores the
    # spinning cost a frame loop 10-25 % and the bare run nothing measurable
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=providers(device, ort.get_available_providers()))
    except (UsageError, MissingDependency):
        raise
    except Exception as exc:  # onnxruntime's InvalidProtobuf, Fail, NotImplemented...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{path}: onnxruntime cannot load this graph: {first[:200]}") from None


def graph_metadata(session) -> dict[str, str]:
    """The graph's ``metadata_props`` as a dict of strings."""
    meta = session.get_modelmeta().custom_metadata_map
    return {str(k): str(v) for k, v in dict(meta).items()}


def _parse(value: str, key: str, where: str) -> Any:
    from segtools.io.jsondata import parse_json

    if len(value) > _MAX_META_CHARS:
        raise InputError(f"{where}: metadata {key!r} holds more than {_MAX_META_CHARS >> 20} MiB")
    text = value.strip()
    if key == "names" and text.startswith("{"):  # Ultralytics writes a Python dict literal
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise InputError(f"{where}: metadata 'names' is neither JSON nor a dict of names") from None
        if not isinstance(parsed, dict) or not all(isinstance(k, int) for k in parsed):
            raise InputError(f"{where}: metadata 'names' must map class indices to names")
        return [str(parsed[k]) for k in sorted(parsed)] if sorted(parsed) == list(range(len(parsed))) else None
    return parse_json(text, f"{where}: metadata {key!r}")


def model_info(meta: Mapping[str, str], where: str) -> tuple[ClassMeta | None, Preprocessing | None, int | None]:
    """Classes, preprocessing and class count a graph's metadata declares (``None`` where silent)."""
    from segtools.weights.loader import classes_from
    from segtools.weights.metadata import check_metadata

    if "segtools" in meta:
        parsed = _parse(meta["segtools"], "segtools", where)
        if not isinstance(parsed, dict):
            raise InputError(f"{where}: metadata 'segtools' must be a JSON object")
        checked = check_metadata(parsed, f"{where}: metadata 'segtools'")
        count = checked.get("num_classes")
        prep = Preprocessing.from_dict(checked["preprocessing"]) if checked.get("preprocessing") else None
        return classes_from(checked.get("classes"), count), prep, count
    classes = None
    names = _parse(meta["names"], "names", where) if "names" in meta else None
    if names is not None:
        spec: dict = {"names": names}
        if "palette" in meta:
            spec["palette"] = _parse(meta["palette"], "palette", where)
        if "ignore_index" in meta:
            spec["ignore_index"] = _parse(meta["ignore_index"], "ignore_index", where)
        classes = ClassMeta.from_dict(spec, f"{where}: metadata")
    fields = {key: _parse(meta[key], key, where) for key in ("mean", "std", "scale") if key in meta}
    prep = None
    if fields:
        from segtools.weights.metadata import check_preprocessing

        prep = Preprocessing.from_dict(check_preprocessing(fields, f"{where}: metadata"))
    return classes, prep, len(classes.names) if classes is not None and classes.names else None


class OnnxRunner:
    """A semantic ONNX graph as a :class:`~segtools.backends.runner.SemanticRunner`.

    Parameters
    ----------
    session : an ``onnxruntime.InferenceSession`` (see :func:`open_session`).
    where : the file's name, for messages.
    classes : class metadata overriding the graph's.
    preprocessing : fields (``mean``/``std``/``scale``) overriding the graph's.
    """

    def __init__(self, session, where: str, classes: ClassMeta | None = None,
                 preprocessing: Mapping[str, Any] | None = None) -> None:
        self.session, self.where = session, where
        inputs = session.get_inputs()
        if len(inputs) != 1:
            listed = ", ".join(f"{i.name} {_shape_text(i.shape)}" for i in inputs)
            raise InputError(f"{where}: the graph has {len(inputs)} inputs ({listed}); a segmentation graph "
                             "takes one N×3×H×W image")
        image = inputs[0]
        check_image_input(image, where)
        self.input_name = image.name
        self.input_dtype = _FLOAT_INPUTS[image.type]
        self.max_batch = image.shape[0] if isinstance(image.shape[0], int) and image.shape[0] > 0 else None
        fixed = [d if isinstance(d, int) and d > 0 else None for d in image.shape[2:]]
        self.input_size = (fixed[0], fixed[1]) if None not in fixed else None
        self.resize = self.input_size
        output = session.get_outputs()[0]
        rank = len(output.shape)
        if rank not in (3, 4):
            raise InputError(f"{where}: the graph's first output {output.name!r} is {_shape_text(output.shape)}; "
                             "a semantic graph returns N×C×H×W logits or N×H×W labels")
        self.output_name, self.labels_out = output.name, rank == 3
        self.outputs = "scores" if self.labels_out else "logits"
        meta_classes, meta_prep, count = model_info(graph_metadata(session), where)
        self.classes = classes if classes is not None else meta_classes
        channels = output.shape[1] if rank == 4 and isinstance(output.shape[1], int) else None
        self.num_classes = channels or count or (len(self.classes.names) if self.classes and self.classes.names else None)
        self.preprocessing = (meta_prep or IMAGENET).updated(preprocessing or None)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        """N×3×h×w float32 → N×C×h×w float32 (labels graphs: one-hot scores)."""
        try:
            out = self.session.run([self.output_name], {self.input_name: batch.astype(self.input_dtype, copy=False)})[0]
        except Exception as exc:  # onnxruntime's errors: a shape the graph cannot take, an operator failing
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise InputError(f"{self.where}: onnxruntime failed on a {'×'.join(map(str, batch.shape))} batch: "
                             f"{first[:200]}") from None
        if not self.labels_out:
            return out
        labels = np.asarray(out).astype(np.int64, copy=False)
        count = self.num_classes or int(labels.max(initial=0)) + 1
        if labels.size and (labels.min() < 0 or labels.max() >= count):
            raise InputError(f"{self.where}: the graph returned label {int(labels.max())} for {count} classes")
        return (labels[:, None] == np.arange(count).reshape(1, -1, 1, 1)).astype(np.float32)


def check_image_input(image, where: str) -> None:
    """Refuse an input that is not an N×3×H×W float image, saying what it is."""
    shape = list(image.shape)
    channels = shape[1] if len(shape) == 4 else None
    if len(shape) != 4 or isinstance(channels, int) and channels != 3:
        raise InputError(f"{where}: the graph's input {image.name!r} is {_shape_text(shape)}; segtools feeds "
                         "N×3×H×W images (RGB, channels first)")
    if image.type not in _FLOAT_INPUTS:
        raise InputError(f"{where}: the graph's input {image.name!r} is a {image.type}; segtools feeds float images")


def _shape_text(shape) -> str:
    return "×".join(str(d) if isinstance(d, int) and d > 0 else (str(d) if d else "?") for d in shape) or "a scalar"


def open_onnx(path: str | os.PathLike, *, device: str | None = "auto", threads: int | None = None,
              classes: ClassMeta | None = None, preprocessing: Mapping[str, Any] | None = None):
    """The runner for the graph at ``path``: an :class:`OnnxRunner`, or a
    :class:`~segtools.backends.yolo.YoloSegRunner` for Ultralytics' YOLO-seg layout."""
    session = open_session(path, device, threads)
    from segtools.backends import yolo

    if yolo.is_yolo_seg(session):
        return yolo.YoloSegRunner(session, str(path), classes=classes)
    return OnnxRunner(session, str(path), classes=classes, preprocessing=preprocessing)

