"""``predict --dask``: the command's side of :mod:`segtools.inference.cluster_predict`.

The command checks its options and opens the model once itself (a bad model fails before a
cluster is reached), then hands the items and a spec of the model to the cluster: torch
semantic models (:func:`predict_on_cluster`), ONNX and transformers models
(:func:`runner_on_cluster`), Mask / Faster R-CNN (:func:`instances_on_cluster`); YOLO-seg,
universal instance models and Segment Anything build their spec where they run locally
and hand it to :func:`run_spec`.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from segtools.cli.common import info, progress
from segtools.errors import UsageError


def wanted(dask: Optional[str]) -> bool:
    """Whether ``predict`` runs on a cluster (``--dask`` or ``$DASK_SCHEDULER_ADDRESS``)."""
    from segtools.io.cluster import resolve_address

    return resolve_address(dask) is not None


def refuse(dask: Optional[str], what: str) -> None:
    """Refuse ``--dask`` for the models that do not run on a cluster."""
    if dask is not None:
        raise UsageError(f"--dask: not for {what}")


def shard(items: Sequence, spec: Optional[str]) -> list:
    """``items`` of shard ``--shard I/N`` (all of them without it)."""
    from segtools.cli.options import parse_shard, shard_items

    return shard_items(items, parse_shard(spec))


def shard_ids(items: Sequence, spec: Optional[str]) -> tuple[list, list[int]]:
    """The items of shard ``--shard I/N`` and their COCO ``image_id``: numbered over all the
    inputs (:func:`~segtools.inference.instances.image_ids`), so that the results of the
    shards join without two images sharing an id."""
    from segtools.inference.instances import image_ids

    every = dict(zip((item.path for item in items), image_ids([str(item.path) for item in items])))
    chosen = shard(items, spec)
    return chosen, [every[item.path] for item in chosen]


def check_files(items: Sequence, targets: Sequence[Optional[str]]) -> None:
    if any(str(getattr(item, "path", item)) == "-" for item in items) or None in targets:
        raise UsageError("--dask: workers read and write files: give image files and -o FILE or DIR, not stdin/stdout")


def _refuse_video(video: Any) -> None:
    if video is not None:
        raise UsageError("--dask: predict maps over image files; a video is read by one process")


def run_spec(dask: Optional[str], spec: Any, items: Sequence, targets: Sequence[Optional[str]], ids: Sequence = ()) -> list:
    from segtools.inference.cluster_predict import predict_on_cluster as run
    from segtools.io.cluster import use_dask

    with use_dask(dask), progress(len(items), "predict") as advance:
        results = run(spec, [str(item.path) for item in items], targets, on_done=advance, ids=ids)
    if len(items) > 1:
        info(f"predicted {len(items)} images")
    return results


def predict_on_cluster(dask: Optional[str], items: Sequence, targets: Sequence[Optional[str]], video: Any,
                       **model: Any) -> None:
    """Predict ``items`` into ``targets`` on the cluster; ``model``: the fields of
    :class:`~segtools.inference.cluster_predict.ModelSpec`."""
    from segtools.inference.cluster_predict import ModelSpec

    _refuse_video(video)
    check_files(items, targets)
    run_spec(dask, ModelSpec(**model), items, targets)


def runner_on_cluster(options: dict, runner: Any, items: Sequence, targets: Sequence[Optional[str]], tiling: Any,
                      tta: Any, resize: Any, video: Any = None) -> None:
    """``predict``'s ONNX / transformers semantic run (``options``: its parameters by name;
    ``runner``: the model the command opened) on the cluster."""
    from segtools.inference.cluster_predict import RunnerSpec

    _refuse_video(video)
    check_files(items, targets)
    backend, model = runner_source(options)
    spec = RunnerSpec(backend=backend, model=model, device=options.get("device") or "auto",
                      threads=options.get("threads") or None,
                      classes=getattr(runner, "classes", None) or class_list(options.get("classes")),
                      preprocessing=preprocessing(options),
                      task=(options.get("task") or "semantic").lower(), batch=int(options.get("batch") or 4),
                      tiling=tiling, tta=tta, resize=resize, probs=bool(options.get("probs")),
                      overwrite=bool(options.get("overwrite")))
    run_spec(options.get("dask"), spec, items, targets)


def runner_source(options: dict) -> tuple[str, str]:
    """(back-end, model) a worker opens for ``predict``'s ONNX / transformers options: ``hf``
    and a folder or ``ORG/NAME``, or ``onnx`` and a graph's path (the default model's twin
    for no model)."""
    from segtools.cli import predict_backends
    from segtools.cli.predict_hf import hf_entry

    model, backend = options.get("model"), (options.get("backend") or "auto").lower()
    entry = hf_entry(model)
    if entry is not None:  # a pulled registry entry: its folder (pulled on every worker's machine too)
        from segtools.weights import registry

        return "hf", str(registry.resolve(entry.name)[1])
    if backend == "hf" or model and model.startswith("hf:"):
        return "hf", model[3:] if model.startswith("hf:") else model
    if model is None or model == predict_backends._default_name():
        model = str(predict_backends.default_onnx(model))
    return "onnx", model


def preprocessing(options: dict) -> tuple:
    """``--mean``/``--std``/``--scale`` as the sorted pairs a spec carries."""
    from segtools.cli import predict_backends

    return tuple(sorted(predict_backends._preprocessing(options.get("mean"), options.get("std"),
                                                        options.get("scale")).items()))


def class_list(spec: Optional[str]):
    if not spec:
        return None
    from segtools.io.meta import load_classes

    return load_classes(spec, "--classes")


def instances_on_cluster(dask: Optional[str], items: Sequence, targets: Sequence[Optional[str]], fmt: str,
                         coco_target: Optional[str], ids: Sequence[int], **model: Any) -> None:
    """An instance model's run on the cluster: masks written by the workers, or COCO results
    gathered in input order and written here (``coco_target``; ``None`` for stdout)."""
    import json

    from segtools.inference.cluster_predict import InstanceSpec
    from segtools.io.streams import emit

    check_files(items, targets if fmt == "mask" else [""] * len(items))
    spec = InstanceSpec(fmt=fmt, **model)
    groups = run_spec(dask, spec, items, targets, ids=ids)
    if fmt == "coco":
        results = [result for group in groups for result in group]
        emit((json.dumps(results, separators=(",", ":")) + "\n").encode(), coco_target, "COCO results",
             spec.overwrite)
