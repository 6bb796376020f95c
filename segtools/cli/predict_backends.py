"""``segtools predict`` with an ONNX graph or a Hugging Face checkpoint: options and the run.

``predict`` hands over here (:func:`wants_backend`) when ``--model`` is an ``.onnx`` file or
``hf:PATH`` / ``hf:ORG/NAME``, when ``--backend onnx|hf`` says so, and for the bundled
default model when onnxruntime is installed (its ONNX twin, ``camvid.onnx``, runs without
torch; ``--backend torch`` takes the torch path). Semantic runners go through
:class:`segtools.backends.runner.RunnerPredictor` and the same writers as the torch path;
instance runners (YOLO-seg, universal models with ``--task instance``) write an instance-id
mask or COCO results as ``predict`` does for Mask R-CNN.

Only typer is imported at module level.
"""

from __future__ import annotations

from typing import Any, Optional

import typer
from typing_extensions import Annotated

BACKENDS = ("auto", "torch", "onnx", "hf")
TASKS = ("semantic", "instance", "panoptic")
#: the runner kind each --task asks for, and how messages name a kind
_KINDS = {"semantic": "semantic", "instance": "instances", "panoptic": "panoptic"}
_KIND_WORDS = {"semantic": "semantic labels", "instances": "instances", "panoptic": "panoptic segments"}

BackendOpt = Annotated[Optional[str], typer.Option(
    "--backend", metavar="auto|torch|onnx|hf", help="How the model runs: auto (an .onnx file or the bundled default model "
    "in ONNX Runtime when it is installed, hf:… in transformers, else torch), torch, onnx or hf.")]
ThreadsOpt = Annotated[Optional[int], typer.Option(
    "--threads", min=0, help="ONNX Runtime CPU threads (default 0: one per core).")]
ResizeOpt = Annotated[Optional[str], typer.Option(
    "--resize", metavar="HxW|none", help="ONNX/HF models: resize images to HEIGHTxWIDTH before the model (default: the "
    "graph's fixed input size, or the HF processor's size; none: the image's own size). Outputs are at the image's size.")]
MeanOpt = Annotated[Optional[str], typer.Option(
    "--mean", metavar="R,G,B", help="ONNX models: per-channel mean of the scaled pixels (default: the graph's metadata, else ImageNet's).")]
StdOpt = Annotated[Optional[str], typer.Option(
    "--std", metavar="R,G,B", help="ONNX models: per-channel standard deviation (default: the graph's metadata, else ImageNet's).")]
ScaleOpt = Annotated[Optional[str], typer.Option(
    "--scale", metavar="S", help="ONNX models: factor from 8-bit pixels to the model's range, e.g. 1/255 (the default) or 1.")]
TaskOpt = Annotated[Optional[str], typer.Option(
    "--task", metavar="semantic|instance|panoptic", help="Universal HF models (Mask2Former, MaskFormer, OneFormer): "
    "what to predict (default semantic); instance writes instances as --format says; panoptic writes COCO panoptic "
    "(-o NAME.json and its PNG folder NAME/). Any other model predicts one task; another --task is refused.")]

#: what each option of predict is called on the command line, for messages
FLAGS = {"tile": "--tile", "resize": "--resize", "threads": "--threads", "mean": "--mean", "std": "--std",
         "scale": "--scale", "device": "--device", "batch": "--batch", "model": "--model", "classes": "--classes"}
#: predict's options that these back-ends honour (any other one that is set is refused)
_HONOURED = {"inputs", "model", "output", "probs", "device", "batch", "tta", "tile", "overlap", "blend", "classes",
             "overwrite", "fmt", "min_score", "max_dets", "mask_threshold", "backend", "threads", "resize", "mean",
             "std", "scale", "task", "camera", "every", "start", "end", "max_frames", "temporal", "fps_limit", "codec",
             "dask", "shard"}


def wants_backend(**options: Any) -> bool:
    """Whether ``predict`` (its options, by parameter name) runs its model here rather than
    through torch; with ``--backend torch``, an option only these back-ends take is refused."""
    from segtools.errors import UsageError

    model, backend = options.get("model"), (options.get("backend") or "auto").lower()
    if backend not in BACKENDS:
        raise UsageError(f"--backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    from segtools.cli.predict_hf import hf_entry

    if backend == "torch":
        if hf_entry(model) is not None:
            raise UsageError(f"--backend torch: {model} is a Hugging Face checkpoint; it runs in transformers "
                             "(leave out --backend)")
        for name in ("threads", "resize", "mean", "std", "scale", "task"):
            if options.get(name) is not None:
                raise UsageError(f"--{name} is for ONNX and Hugging Face models, not --backend torch")
        return False
    if backend in ("onnx", "hf"):
        return True
    if model and (model.startswith("hf:") or model.lower().endswith(".onnx")) or hf_entry(model) is not None:
        return True
    if options.get("weights") or options.get("arch") or options.get("amp"):
        return False
    return default_onnx(model) is not None


def default_onnx(model: Optional[str]):
    """The bundled ONNX twin of the default model when ``model`` names it (or is ``None``) and
    onnxruntime is installed, else ``None``."""
    import importlib.util

    from segtools.weights import registry

    if model not in (None, registry.DEFAULT_MODEL) or importlib.util.find_spec("onnxruntime") is None:
        return None
    path = registry.bundled_dir() / f"{registry.DEFAULT_MODEL}.onnx"
    return path if path.is_file() else None


def parse_triple(text: Optional[str], option: str) -> Optional[list[float]]:
    """``"0.485,0.456,0.406"`` → three floats (one number → three of it).

    >>> parse_triple("0.5", "--mean"), parse_triple("1,2,3", "--std")
    ([0.5, 0.5, 0.5], [1.0, 2.0, 3.0])
    """
    from segtools.errors import UsageError

    if text is None:
        return None
    try:
        values = [_number(part) for part in str(text).split(",")]
    except (ValueError, ZeroDivisionError):
        values = []
    if len(values) == 1:
        values *= 3
    if len(values) != 3:
        raise UsageError(f"{option} {text!r}: give three numbers R,G,B (or one for all three)")
    return values


def _number(text: str) -> float:
    """``"0.5"`` or a fraction ``"1/255"``."""
    top, _, bottom = text.strip().partition("/")
    return float(top) / float(bottom) if bottom else float(top)


def _preprocessing(mean, std, scale) -> dict:
    from segtools.errors import UsageError

    fields: dict = {}
    for key, value in (("mean", parse_triple(mean, "--mean")), ("std", parse_triple(std, "--std"))):
        if value is not None:
            fields[key] = value
    if scale is not None:
        try:
            fields["scale"] = _number(scale)
        except (ValueError, ZeroDivisionError):
            raise UsageError(f"--scale {scale!r}: give a number such as 1/255 or 1") from None
    if fields.get("std") and min(fields["std"]) <= 0 or fields.get("scale") is not None and fields["scale"] <= 0:
        raise UsageError("--std and --scale must be positive")
    return fields


def _refuse_unused(options: dict) -> None:
    """A set option these back-ends do not honour: a usage error naming it."""
    import inspect

    from segtools.cli.predict import predict
    from segtools.errors import UsageError

    for name, parameter in inspect.signature(predict).parameters.items():
        if name not in _HONOURED and name in options and options[name] != parameter.default:
            flag = "--format" if name == "fmt" else "--" + name.replace("_", "-")
            raise UsageError(f"{flag} is for the torch back-end; it does not apply to ONNX or Hugging Face models "
                             "(or give --backend torch for the bundled model)")


def predict_with_backend(**options: Any) -> None:
    """Run ``predict`` (its options, by parameter name) through ONNX Runtime or transformers."""
    import sys

    from segtools.cli.options import output_targets, parameters_as_flags, parse_size
    from segtools.errors import UsageError
    from segtools.io.batch import photo_inputs

    _refuse_unused(options)
    get = options.get
    model, backend = get("model"), (get("backend") or "auto").lower()
    if get("weights"):
        raise UsageError("--weights is a torch checkpoint; give an ONNX or hf: model as --model")
    task = (get("task") or "semantic").lower()
    if task not in TASKS:
        raise UsageError(f"--task {task!r}: choose semantic, instance or panoptic")
    resize_text = get("resize")
    resize: Any = None
    if resize_text is not None:
        resize = False if str(resize_text).lower() == "none" else parse_size(resize_text, "--resize")
    specs = get("inputs") or ["-"]
    from segtools.cli.video_opts import predict_options_request

    video = predict_options_request(options)  # a video, camera or stream (None: images)
    if video is None and specs == ["-"] and sys.stdin.isatty():
        raise UsageError("no input: give image files or a folder, or pipe an image into stdin")
    with parameters_as_flags(FLAGS):
        classes = None
        if get("classes"):
            from segtools.io.meta import load_classes

            classes = load_classes(get("classes"), "--classes")
        if task == "panoptic":  # its output and options are checked before the model loads
            from segtools.cli.predict_hf import check_panoptic_request

            check_panoptic_request(options)
        runner = _open(model, backend, get("device") or "auto", get("threads"), classes,
                       _preprocessing(get("mean"), get("std"), get("scale")), task)
        kind = getattr(runner, "kind", "semantic")
        produced = "semantic" if kind == "predictor" else kind  # a universal HF model's semantic runner
        if get("task") is not None and _KINDS[task] != produced:
            raise UsageError(f"--task {task}: {get('model') or 'the default model'} predicts "
                             f"{_KIND_WORDS[produced]}, not {_KIND_WORDS[_KINDS[task]]} "
                             "(--task chooses among the outputs of universal Hugging Face models)")
        if kind == "instances":
            return _predict_instances(runner, specs, options, video)
        if kind == "panoptic":  # COCO panoptic: a JSON and its PNG folder
            from segtools.cli.predict_hf import predict_panoptic

            return predict_panoptic(runner, specs, options)
        if get("fmt") is not None or get("min_score") is not None or get("max_dets") is not None:
            raise UsageError("--format, --min-score and --max-dets are for instance models; this model is semantic")
        if video is not None:
            return _predict_semantic(runner, [], [], options, resize, video)
        from segtools.cli import predict_cluster

        items = predict_cluster.shard(photo_inputs(specs, arrays=True), get("shard"))
        targets = output_targets(items, specs, get("output"), ".npz" if get("probs") else ".png", get("overwrite"))
        _predict_semantic(runner, items, targets, options, resize)


def _open(model: Optional[str], backend: str, device: str, threads, classes, preprocessing: dict, task: str):
    from segtools.errors import UsageError

    from segtools.cli.predict_hf import hf_entry, open_entry

    entry = hf_entry(model)
    if backend == "hf" or model and model.startswith("hf:") or entry is not None:
        if threads:
            raise UsageError("--threads is for ONNX models (torch takes OMP_NUM_THREADS)")
        if not model:
            raise UsageError("--backend hf needs --model hf:PATH or hf:ORG/NAME")
        if entry is not None:  # a registered checkpoint, pulled by `segtools weights pull`
            return open_entry(entry, device=device, classes=classes, task=task, preprocessing=preprocessing)
        from segtools.backends.hf import open_hf

        return open_hf(model[3:] if model.startswith("hf:") else model, device=device, classes=classes,
                       task=task, preprocessing=preprocessing)
    from segtools.backends.onnx import open_onnx

    if model is None or model == _default_name():
        if model is not None:  # a registry name that is also a file or folder here: say which was taken
            from segtools.cli.common import info
            from segtools.cli.options import in_flags
            from segtools.weights.loader import model_source

            note = model_source(model)[1]
            if note:
                info(in_flags(note, {"model": "--model"}))
        path = default_onnx(model)
        if path is None:
            raise UsageError("the bundled default model has no ONNX file here (or onnxruntime is missing: "
                             "pip install 'segtools[onnx]'); give --backend torch")
        model = str(path)
    return open_onnx(model, device=device, threads=threads, classes=classes, preprocessing=preprocessing)


def _default_name() -> str:
    from segtools.weights import registry

    return registry.DEFAULT_MODEL


def _predict_semantic(runner, items, targets, options: dict, resize, video=None) -> None:
    """Labels or probabilities per image; a runner that is its own predictor (a universal HF
    model, whole images through its processor) takes no tiles, TTA or resize."""
    from segtools.backends.runner import DEFAULT_OVERLAP, RunnerPredictor, Window
    from segtools.cli.common import info, progress
    from segtools.cli.options import parse_overlap, parse_size
    from segtools.errors import UsageError
    from segtools.inference.files import legend, predict_files
    from segtools.inference.tta import parse_tta

    tile, overlap = options.get("tile"), options.get("overlap")
    if tile is None and overlap is not None:
        raise UsageError("--overlap needs --tile")
    tiling = None
    if tile:
        tiling = Window(parse_size(tile, "--tile"), DEFAULT_OVERLAP if overlap is None else parse_overlap(overlap),
                        options.get("blend") or "gaussian")
        if tiling.blend not in ("gaussian", "linear", "mean"):
            raise UsageError(f"--blend {tiling.blend!r}: choose gaussian, linear or mean")
    if getattr(runner, "kind", "semantic") == "predictor":
        for flag, value in (("--tile", tile), ("--tta", options.get("tta")), ("--resize", options.get("resize"))):
            if value:
                raise UsageError(f"{flag}: a universal model (Mask2Former, MaskFormer, OneFormer) runs whole images "
                                 "through its own processor")
        predictor = runner
    else:
        predictor = RunnerPredictor(runner, batch=options.get("batch") or 4, tiling=tiling,
                                    tta=parse_tta(options.get("tta")), resize=resize)
    from segtools.cli import predict_cluster

    if predict_cluster.wanted(options.get("dask")):  # each worker opens the model once and writes its items
        return predict_cluster.runner_on_cluster(options, runner, items, targets, tiling, parse_tta(options.get("tta")),
                                                 resize, video)
    if video is not None:  # the frames of a video, camera or stream: the one frame loop of every runner
        from segtools.cli.video_opts import predict_video

        predict_video(video, predictor, legend(runner.classes, runner.num_classes), probs=bool(options.get("probs")))
        return
    with progress(len(items), "predict") as advance:
        count = predict_files(predictor, [item.path for item in items], targets,
                              legend(runner.classes, runner.num_classes), probs=bool(options.get("probs")),
                              overwrite=bool(options.get("overwrite")), on_done=advance)
    if count > 1:
        info(f"predicted {count} images")


def _predict_instances(runner, specs, options: dict, video=None) -> None:
    """Instances of each input as an id mask (``--format mask``) or COCO results (``coco``)."""
    import json

    from segtools.cli.common import info, progress
    from segtools.cli.options import output_targets
    from segtools.errors import UsageError
    from segtools.io.batch import photo_inputs
    from segtools.io.streams import check_output_path, emit

    for flag, name in (("--probs", "probs"), ("--tta", "tta"), ("--tile", "tile"), ("--resize", "resize")):
        if options.get(name):
            raise UsageError(f"{flag} is for semantic models; an instance model predicts whole images")
    from segtools.cli import predict_cluster

    fmt = options.get("fmt") or "mask"
    if fmt not in ("mask", "coco"):
        raise UsageError(f"--format {fmt!r}: choose mask or coco")
    min_score = 0.25 if options.get("min_score") is None else float(options["min_score"])
    if not 0.0 <= min_score <= 1.0:
        raise UsageError(f"--min-score {min_score:g}: give a score in [0, 1]")
    max_dets = int(options.get("max_dets") or 300)
    overwrite = bool(options.get("overwrite"))
    if video is not None:
        from segtools.cli.video_predict import predict_instances_video

        def process(images):
            return (runner.predict(image, conf=min_score, max_det=max_dets) for image in images)

        predict_instances_video(video, process, _label_names(runner), fmt)
        return
    items, ids = predict_cluster.shard_ids(photo_inputs(specs), options.get("shard"))
    output = options.get("output")
    if fmt == "coco":
        target = None if output in (None, "-") else str(check_output_path(output, overwrite))
        targets = [None] * len(items)
    else:
        targets = output_targets(items, specs, output, ".png", overwrite)
    from segtools.inference.cluster_predict import InstanceRunnerSpec

    backend, model = predict_cluster.runner_source(options)
    spec = InstanceRunnerSpec(backend=backend, model=model, device=options.get("device") or "auto",
                              threads=options.get("threads") or None,
                              classes=getattr(runner, "classes", None) or predict_cluster.class_list(options.get("classes")),
                              preprocessing=predict_cluster.preprocessing(options),
                              task=(options.get("task") or "instance").lower(), min_score=min_score, max_dets=max_dets,
                              names=("__background__", *_label_names(runner)), fmt=fmt, overwrite=overwrite,
                              batch=int(options.get("batch") or 4))
    if predict_cluster.wanted(options.get("dask")):  # each worker opens the model once and writes its images
        predict_cluster.check_files(items, targets if fmt == "mask" else [""] * len(items))
        groups = predict_cluster.run_spec(options.get("dask"), spec, items, targets, ids=ids)
        results = [entry for group in groups for entry in group]
    else:
        results = []
        with progress(len(items), "predict") as advance:
            for index, item in enumerate(items):
                results.extend(spec.predict_one(runner, item.path, targets[index], ids[index]))
                advance(index)
    if fmt == "coco":
        emit((json.dumps(results, separators=(",", ":")) + "\n").encode(), target, "COCO results", overwrite)
    if len(items) > 1:
        info(f"predicted {len(items)} images")


def _label_names(runner) -> list[str]:
    count = runner.num_classes or 0
    if runner.classes is not None and runner.classes.names:
        return list(runner.classes.names)
    return [f"class_{k}" for k in range(count)]


