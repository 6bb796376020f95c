"""``predict`` on a Dask cluster: each worker loads the model once and writes its items.

A task carries only a spec — what to load (a registry name, a weights or graph path, an
``hf:`` name) and the predictor's settings — and a group of items' paths; a worker builds the
model from the spec for its first group (:func:`segtools.io.cluster.worker_cached`) and
reuses it for every later one, so weights never travel with a task. Each worker writes its
outputs with the atomic writers of a local run.

Items travel in groups of ``batch`` consecutive images, the groups a local run batches
(for images of one size), so a worker's forward passes see the same batches and write the
same bytes. Specs: :class:`ModelSpec` (torch semantic models), :class:`RunnerSpec` (ONNX
Runtime and transformers), :class:`InstanceSpec` (Mask / Faster R-CNN),
:class:`InstanceRunnerSpec` (YOLO-seg graphs, universal transformers models), and
:class:`segtools.inference.sam_io.SamPrompting` (Segment Anything).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence


@dataclass(frozen=True)
class ModelSpec:
    """What a worker needs to build the same :class:`~segtools.inference.predictor.Predictor`
    as the command: the model by registry name and/or weights path, and the settings."""

    model: Optional[str] = None
    weights: Optional[str] = None
    arch: Optional[str] = None
    classes: Optional[str] = None
    device: Optional[str] = None
    amp: Any = False
    batch: Any = None
    tiling: Any = None
    tta: Any = None
    probs: bool = False
    overwrite: bool = False

    def load(self):
        import torch

        from segtools.inference.files import legend
        from segtools.inference.predictor import Predictor
        from segtools.io.parallel import kernel_threads
        from segtools.weights.loader import load_model

        torch.set_num_threads(kernel_threads())  # 1 in a cluster worker: the workers fill the cores
        loaded = load_model(model=self.model, weights=self.weights, arch=self.arch, classes=self.classes, device="cpu")
        options = {} if self.batch is None else {"batch": self.batch}
        predictor = Predictor(loaded.model, loaded.preprocessing, device=self.device, amp=self.amp,
                              tiling=self.tiling, tta=self.tta, **options)
        return predictor, legend(loaded.classes, loaded.num_classes)

    def run(self, loaded, item: "PredictItem") -> Any:
        from segtools.inference.files import predict_files

        predictor, classes = loaded
        return predict_files(predictor, item.sources, item.targets, classes, probs=self.probs, overwrite=self.overwrite)


@dataclass(frozen=True)
class _RuntimeModel:
    """A model run by ONNX Runtime (``backend="onnx"``, ``model`` a graph's path) or
    transformers (``backend="hf"``, ``model`` a folder or ``ORG/NAME``), as the command
    opened it; :meth:`open` opens the same in a worker (ONNX Runtime on one thread there
    unless ``threads`` says otherwise: the workers fill the cores)."""

    backend: str
    model: str
    device: str = "auto"
    threads: Optional[int] = None
    classes: Any = None
    preprocessing: tuple = ()
    task: str = "semantic"

    def open(self):
        from segtools.io.parallel import kernel_threads

        preprocessing = dict(self.preprocessing)
        if self.backend == "hf":
            from segtools.backends.hf import open_hf

            return open_hf(self.model, device=self.device, classes=self.classes, task=self.task,
                           preprocessing=preprocessing)
        from segtools.backends.onnx import open_onnx

        return open_onnx(self.model, device=self.device, threads=self.threads or kernel_threads(),
                         classes=self.classes, preprocessing=preprocessing)


@dataclass(frozen=True)
class RunnerSpec(_RuntimeModel):
    """A semantic ONNX graph or Hugging Face model and the
    :class:`~segtools.backends.runner.RunnerPredictor` settings of the command."""

    batch: int = 4
    tiling: Any = None
    tta: Any = None
    resize: Any = None
    probs: bool = False
    overwrite: bool = False

    def load(self):
        from segtools.backends.runner import RunnerPredictor
        from segtools.inference.files import legend

        runner = self.open()
        if getattr(runner, "kind", "semantic") == "predictor":
            predictor = runner
        else:
            predictor = RunnerPredictor(runner, batch=self.batch, tiling=self.tiling, tta=self.tta, resize=self.resize)
        return predictor, legend(runner.classes, runner.num_classes)

    run = ModelSpec.run


@dataclass(frozen=True)
class InstanceSpec:
    """A Mask / Faster R-CNN model (registry name, weights, arch) and the
    :class:`~segtools.inference.instances.InstanceRunner` settings; ``fmt`` ``mask`` writes
    an instance-id mask per image, ``coco`` returns each group's COCO results."""

    model: Optional[str] = None
    weights: Optional[str] = None
    arch: Optional[str] = None
    min_score: float = 0.5
    max_dets: int = 100
    mask_threshold: float = 0.5
    device: str = "auto"
    amp: Any = False
    batch: int = 4
    fmt: str = "mask"
    overwrite: bool = False

    def load(self):
        import torch

        from segtools.inference.instances import InstanceRunner, load_detector
        from segtools.io.parallel import kernel_threads

        torch.set_num_threads(kernel_threads())
        loaded = load_detector(model=self.model, weights=self.weights, arch=self.arch,
                               box_score_thresh=self.min_score, box_detections_per_img=self.max_dets)
        runner = InstanceRunner(loaded.model, device=self.device, amp=self.amp, batch=self.batch,
                                mask_threshold=self.mask_threshold)
        return runner, loaded.label_names

    def run(self, loaded, item: "PredictItem") -> Any:
        from segtools.inference.instances import coco_results
        from segtools.io.images import read_image

        runner, label_names = loaded
        results: list = []
        found_all = runner.predict_many(read_image(path) for path in item.sources)
        for index, found in enumerate(found_all):
            if self.fmt == "coco":
                results.extend(coco_results(found, item.ids[index]))
            else:
                write_instance_mask(found, item.targets[index], label_names, self.overwrite)
        return results if self.fmt == "coco" else len(item.sources)


@dataclass(frozen=True)
class InstanceRunnerSpec(_RuntimeModel):
    """A YOLO-seg ONNX graph or a universal transformers model (Mask2Former, MaskFormer,
    OneFormer with ``task="instance"``) and the command's settings; ``names``: the label
    names, background first. Per image (:meth:`predict_one`, the local run's too): an
    instance-id mask written, or (``fmt`` ``coco``) the image's COCO results returned."""

    task: str = "instance"
    min_score: float = 0.25
    max_dets: int = 300
    names: tuple = ()
    fmt: str = "mask"
    overwrite: bool = False
    batch: int = 4

    def load(self):
        return self.open()

    def predict_one(self, runner, path: str, target: Optional[str], image_id) -> list:
        from segtools.inference.instances import coco_results
        from segtools.io.images import read_image

        found = runner.predict(read_image(path), conf=self.min_score, max_det=self.max_dets)
        if self.fmt == "coco":
            return coco_results(found, image_id)
        write_instance_mask(found, target, self.names, self.overwrite)
        return []

    def run(self, runner, item: "PredictItem") -> list:
        results: list = []
        for index, path in enumerate(item.sources):
            results.extend(self.predict_one(runner, path, item.targets[index], item.ids[index] if item.ids else None))
        return results


def write_instance_mask(found, target: Optional[str], label_names: Sequence[str], overwrite: bool) -> None:
    """One image's instances as an instance-id mask at ``target`` (PNG, or ``.npy``)."""
    from segtools.formats.instances import encode_instance_png, instance_meta
    from segtools.inference.instances import instance_id_mask
    from segtools.io.streams import emit

    ids, instance_class, instance_score = instance_id_mask(found)
    meta = instance_meta(instance_class, list(label_names)[1:])
    meta.extra["instance_score"] = instance_score
    if target is not None and str(target).lower().endswith(".npy"):
        from segtools.io.masks import write_label_mask

        write_label_mask(ids, target, meta, overwrite)
        return
    emit(encode_instance_png(ids, meta), target, "a PNG mask", overwrite)


@dataclass(frozen=True)
class PredictItem:
    """A group of consecutive images for one task: their paths, targets and (COCO) image ids."""

    spec: Any
    sources: tuple
    targets: tuple
    ids: tuple = ()


def predict_item(item: PredictItem) -> Any:
    """Predict a group of images with this worker's model for ``item.spec`` and write them."""
    from segtools.io.cluster import worker_cached

    loaded = worker_cached(("predict", repr(item.spec)), item.spec.load)
    return item.spec.run(loaded, item)


def predict_on_cluster(spec: Any, sources: Sequence[str], targets: Sequence[Optional[str]],
                       on_done: Optional[Callable[[int], None]] = None, ids: Sequence = ()) -> list:
    """:func:`predict_item` over groups of ``spec.batch`` images on the active cluster
    (``pmap``); each group's result in order (the count written, or COCO results)."""
    from segtools.io.parallel import pmap

    size = max(1, int(getattr(spec, "batch", None) or 1))
    work = [PredictItem(spec, tuple(sources[i:i + size]), tuple(targets[i:i + size]), tuple(ids[i:i + size]))
            for i in range(0, len(sources), size)]

    def tick(group: int) -> None:
        if on_done is not None:
            for index in range(group * size, min(len(sources), (group + 1) * size)):
                on_done(index)

    return list(pmap(predict_item, work, on_done=tick))
