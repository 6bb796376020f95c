"""Hugging Face transformers back-end: ``--model hf:PATH`` or ``hf:ORG/NAME``, offline.

PATH is a ``save_pretrained`` folder (``config.json``, the weights, ``preprocessor_config.json``);
ORG/NAME is looked up in the local Hugging Face cache only — nothing is downloaded here
(``segtools weights pull`` fetches registered checkpoints).

* **Semantic heads** (``AutoModelForSemanticSegmentation``: SegFormer, UperNet, DPT, BEiT,
  MobileViT, Data2Vec-vision, …) become a :class:`HFSemanticRunner`, so batching, tiles,
  TTA and every output format work as for any runner. Preprocessing comes from
  ``preprocessor_config.json``: ``do_resize`` with a fixed ``size`` (height, width) is the
  default ``--resize`` (Pillow, the processor's ``resample``), ``shortest_edge`` the shorter
  side; ``rescale_factor``, ``image_mean``/``image_std``. The logits are resized once to the
  image (bilinear, half-pixel centres) and arg-maxed: what the processor's
  ``post_process_semantic_segmentation`` computes.
* **Universal heads** (Mask2Former, MaskFormer, OneFormer) run whole images through their own
  image processor and its ``post_process_semantic_segmentation`` / ``_instance_`` /
  ``_panoptic_`` (:class:`HFUniversalRunner`); OneFormer's instance and panoptic rules are
  re-told in :mod:`segtools.backends.universal_post`, since its processors resize those
  maps with torchvision.

``id2label`` becomes the class metadata. transformers and torch are imported on use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from segtools.errors import InputError, MissingDependency, UsageError
from segtools.io.meta import ClassMeta
from segtools.models.preprocessing import Preprocessing

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
#: universal-segmentation architectures (config ``architectures``) and their tasks
UNIVERSAL = ("Mask2FormerForUniversalSegmentation", "MaskFormerForInstanceSegmentation",
             "OneFormerForUniversalSegmentation")
_PIL_RESAMPLE = {0: "NEAREST", 1: "LANCZOS", 2: "BILINEAR", 3: "BICUBIC", 4: "BOX", 5: "HAMMING"}


def require_transformers():
    try:
        import transformers
    except ImportError:
        raise MissingDependency("Hugging Face models need transformers: pip install 'segtools[hf]'") from None
    return transformers


def resolve(spec: str) -> Path:
    """The local folder of ``spec``: a ``save_pretrained`` folder, or ``ORG/NAME`` in the local
    Hugging Face cache (never downloaded)."""
    folder = Path(spec).expanduser()
    if folder.is_dir():
        return folder
    if folder.exists():
        raise InputError(f"hf:{spec}: a Hugging Face model is a folder (save_pretrained), not a file")
    if spec.count("/") != 1 or spec.startswith((".", "/", "~")):
        raise InputError(f"hf:{spec}: no such folder, and not an ORG/NAME of the Hugging Face hub")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(spec, local_files_only=True))
    except ImportError:
        raise MissingDependency("Hugging Face models need transformers: pip install 'segtools[hf]'") from None
    except Exception:
        raise InputError(f"hf:{spec}: not in the local Hugging Face cache; segtools downloads nothing while it "
                         "predicts (pull it with `segtools weights pull`, or give a save_pretrained folder)") from None


def read_config(folder: Path, where: str) -> dict:
    from segtools.io.jsondata import parse_json

    path = folder / "config.json"
    if not path.is_file():
        raise InputError(f"{where}: no config.json; is it a save_pretrained folder?")
    config = parse_json(path.read_bytes(), str(path))
    if not isinstance(config, dict):
        raise InputError(f"{path}: expected a JSON object")
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise InputError(f"{where}: no weights ({', '.join(WEIGHT_FILES[::2])}) in the folder")
    return config


def class_meta(config: Mapping[str, Any], where: str) -> ClassMeta | None:
    """Class names from ``id2label`` (ids 0..N-1), else ``None``."""
    labels = config.get("id2label")
    if not isinstance(labels, dict) or not labels:
        return None
    try:
        by_id = {int(key): str(value) for key, value in labels.items()}
    except (TypeError, ValueError):
        raise InputError(f"{where}: config.json id2label keys must be class ids") from None
    if sorted(by_id) != list(range(len(by_id))):
        raise InputError(f"{where}: config.json id2label must number the classes 0..{len(by_id) - 1}")
    return ClassMeta.from_dict({"names": [by_id[k] for k in range(len(by_id))], "ignore_index": None}, where)


def processor_preprocessing(folder: Path, where: str) -> tuple[Preprocessing, tuple[int, int] | None, int]:
    """(normalisation and shorter-side resize, fixed resize or ``None``, Pillow resample) from
    ``preprocessor_config.json`` (ImageNet's mean/std and no resize when there is none)."""
    from segtools.io.jsondata import parse_json
    from segtools.models.preprocessing import IMAGENET

    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return IMAGENET, None, 2
    data = parse_json(path.read_bytes(), str(path))
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    fields: dict = {}
    if data.get("do_normalize", True):
        fields["mean"], fields["std"] = data.get("image_mean", IMAGENET.mean), data.get("image_std", IMAGENET.std)
    else:
        fields["mean"], fields["std"] = [0.0] * 3, [1.0] * 3
    fields["scale"] = data.get("rescale_factor", 1 / 255) if data.get("do_rescale", True) else 1.0
    size, fixed = data.get("size"), None
    if data.get("do_resize", True) and isinstance(size, dict):
        if "height" in size and "width" in size:
            fixed = (int(size["height"]), int(size["width"]))
        elif "shortest_edge" in size:
            fields["resize_short"] = int(size["shortest_edge"])
    elif data.get("do_resize", True) and isinstance(size, int):
        fixed = (size, size)
    from segtools.weights.metadata import check_preprocessing

    resample = data.get("resample", 2)
    if resample not in _PIL_RESAMPLE:
        raise InputError(f"{path}: resample {resample!r} is not one of Pillow's filters 0..5")
    return Preprocessing.from_dict(check_preprocessing(fields, str(path))), fixed, int(resample)


class HFSemanticRunner:
    """An ``AutoModelForSemanticSegmentation`` model as a semantic runner (logits out)."""

    outputs = "logits"
    input_size = None
    max_batch = None

    def __init__(self, model, preprocessing: Preprocessing, resize: tuple[int, int] | None, resample: int,
                 classes: ClassMeta | None, num_classes: int, device) -> None:
        self.model, self.preprocessing, self.resize, self.resample = model, preprocessing, resize, resample
        self.classes, self.num_classes, self.device = classes, num_classes, device

    def forward(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            pixels = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
            logits = self.model(pixel_values=pixels).logits
        return logits.float().cpu().numpy()


class HFUniversalRunner:
    """A Mask2Former / MaskFormer / OneFormer model with its image processor, whole images."""

    def __init__(self, model, processor, task: str, classes: ClassMeta | None, num_classes: int, device,
                 needs_task_input: bool) -> None:
        self.model, self.processor, self.task, self.device = model, processor, task, device
        self.classes, self.num_classes, self.needs_task_input = classes, num_classes, needs_task_input
        self.kind = "instances" if task == "instance" else "panoptic" if task == "panoptic" else "predictor"

    def outputs_of(self, image: np.ndarray):
        import torch

        from segtools.backends.runner import rgb8

        image = rgb8(image)
        extra = {"task_inputs": [self.task]} if self.needs_task_input else {}
        inputs = self.processor(images=[image], return_tensors="pt", **extra)
        with torch.inference_mode():
            outputs = self.model(**{k: v.to(self.device) for k, v in inputs.items()})
        return outputs, image.shape[:2]

    def predict_many(self, images, labels: bool = False):
        """Semantic labels (or class scores normalised over the classes) per image."""
        for image in images:
            outputs, size = self.outputs_of(image)
            result = self.processor.post_process_semantic_segmentation(
                outputs, target_sizes=[size], return_segmentation_scores=not labels)[0]
            if labels:
                yield result.cpu().numpy().astype(np.uint8 if self.num_classes <= 256 else np.int32)
                continue
            scores = result.segmentation_scores.float().cpu().numpy()
            yield scores / np.maximum(scores.sum(axis=0, keepdims=True), np.float32(1e-12))

    def predict(self, image: np.ndarray, conf: float = 0.5, max_det: int = 100, iou: float | None = None):
        """Instances (:class:`segtools.inference.instances.Instances`, labels = class + 1)."""
        from segtools.inference.instances import Instances

        outputs, size = self.outputs_of(image)
        if self.needs_task_input:  # OneFormer: one map of segment ids (its instances do not overlap)
            from segtools.backends.universal_post import oneformer_instances

            found = oneformer_instances(outputs.class_queries_logits[0], outputs.masks_queries_logits[0], size,
                                        threshold=conf)
        else:
            found = self.processor.post_process_instance_segmentation(
                outputs, threshold=conf, target_sizes=[size], return_binary_maps=True)[0]
        info = found["segments_info"]
        if not info:
            return Instances(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64),
                             np.zeros((0, *size), bool), size)
        if self.needs_task_input:
            ids = np.array([s["id"] for s in info])
            masks = found["segmentation"].cpu().numpy()[None] == ids[:, None, None]
        else:
            masks = found["segmentation"].cpu().numpy() > 0.5
        scores = np.array([s["score"] for s in info], np.float32)
        order = np.argsort(-scores, kind="stable")[:max_det]
        masks, scores = masks[order], scores[order]
        labels = np.array([info[k]["label_id"] for k in order], np.int64) + 1
        return Instances(mask_boxes(masks), scores, labels, masks, size)


    def panoptic(self, image: np.ndarray, conf: float = 0.8, label_ids_to_fuse=None) -> tuple[np.ndarray, list[dict]]:
        """(H×W int32 segment ids, 0 = void; ``segments_info`` with ``id``, ``label`` (class
        index) and ``score``) from the processor's ``post_process_panoptic_segmentation``."""
        outputs, size = self.outputs_of(image)
        if self.needs_task_input:  # OneFormer: the processor's rules, without its torchvision resize
            from segtools.backends.universal_post import oneformer_panoptic

            found = oneformer_panoptic(outputs.class_queries_logits[0], outputs.masks_queries_logits[0], size,
                                       threshold=conf, fuse=label_ids_to_fuse)
        else:
            found = self.processor.post_process_panoptic_segmentation(
                outputs, threshold=conf, target_sizes=[size], label_ids_to_fuse=label_ids_to_fuse)[0]
        ids = found["segmentation"].cpu().numpy().astype(np.int32)
        ids[ids < 0] = 0  # no segment at all: the processor fills -1
        info = [{"id": int(s["id"]), "label": int(s["label_id"]), "score": float(s["score"])}
                for s in found["segments_info"]]
        return ids, info


def mask_boxes(masks: np.ndarray) -> np.ndarray:
    """K×4 ``x0, y0, x1, y1`` boxes (pixel edges) around K×H×W masks (zeros for empty ones)."""
    rows, cols = masks.any(axis=2), masks.any(axis=1)
    boxes = np.zeros((len(masks), 4), np.float32)
    filled = rows.any(axis=1)
    boxes[filled, 0] = cols[filled].argmax(axis=1)
    boxes[filled, 1] = rows[filled].argmax(axis=1)
    boxes[filled, 2] = cols.shape[1] - cols[filled][:, ::-1].argmax(axis=1)
    boxes[filled, 3] = rows.shape[1] - rows[filled][:, ::-1].argmax(axis=1)
    return boxes


def open_hf(spec: str, *, device: str = "auto", classes: ClassMeta | None = None, task: str = "semantic",
            preprocessing: Mapping[str, Any] | None = None):
    """The runner for the Hugging Face model ``spec`` (a folder or ``ORG/NAME``)."""
    transformers = require_transformers()
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # stderr carries segtools' own notes only: no load bars or advice
    hf_logging.disable_progress_bar()
    where = f"hf:{spec}"
    folder = resolve(spec)
    config = read_config(folder, where)
    architecture = next(iter(config.get("architectures") or []), None) or str(config.get("model_type", "?"))
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES as SEMANTIC

    semantic = set(SEMANTIC.values())
    if architecture not in semantic and architecture not in UNIVERSAL:
        raise InputError(f"{where}: {architecture} is not a segmentation model segtools runs; supported: semantic "
                         f"heads ({', '.join(sorted(semantic))}) and universal ones ({', '.join(UNIVERSAL)})")
    from segtools.inference.device import resolve_device

    torch_device = resolve_device(device)
    meta = classes if classes is not None else class_meta(config, where)
    try:
        if architecture in UNIVERSAL:
            model = transformers.AutoModelForUniversalSegmentation.from_pretrained(folder, local_files_only=True)
        else:
            model = transformers.AutoModelForSemanticSegmentation.from_pretrained(folder, local_files_only=True)
    except Exception as exc:  # a damaged weights file: safetensors' and pickle's own errors too
        import pickle

        if not isinstance(exc, (OSError, ValueError, KeyError, RuntimeError, pickle.UnpicklingError)) \
                and type(exc).__module__.split(".")[0] != "safetensors":
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{where}: transformers cannot load {architecture}: {first[:200]}") from None
    model = model.eval().to(torch_device)
    count = int(getattr(model.config, "num_labels", 0) or (len(meta.names) if meta and meta.names else 0))
    if architecture in UNIVERSAL:
        if preprocessing:
            raise UsageError("mean, std and scale come from a universal model's own processor; leave them out")
        processor = _universal_processor(transformers, folder, where, architecture)
        return HFUniversalRunner(model, processor, task, meta, count, torch_device,
                                 architecture.startswith("OneFormer"))
    if task != "semantic":
        raise UsageError(f"task={task}: {architecture} is a semantic model (instance and panoptic need "
                         "Mask2Former, MaskFormer or OneFormer)")
    prep, fixed, resample = processor_preprocessing(folder, where)
    return HFSemanticRunner(model, prep.updated(preprocessing or None), fixed, resample, meta, count, torch_device)


def _universal_processor(transformers, folder: Path, where: str, architecture: str):
    loader = transformers.AutoProcessor if architecture.startswith("OneFormer") else transformers.AutoImageProcessor
    extra = _oneformer_metadata(folder, where) if architecture.startswith("OneFormer") else {}
    try:
        return loader.from_pretrained(folder, local_files_only=True, **extra)
    except (OSError, ValueError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{where}: no usable preprocessor_config.json for {architecture}: {first[:160]}") from None


def _oneformer_metadata(folder: Path, where: str) -> dict:
    """OneFormer's processor reads its class metadata (``class_info_file``) from ``repo_path``,
    a hub repository by default, when it loads: found in the model folder, it is read there;
    found nowhere locally, it is an error (nothing is downloaded while predicting)."""
    from segtools.io.jsondata import parse_json

    for name in ("preprocessor_config.json", "processor_config.json"):
        if (folder / name).is_file():
            data = parse_json((folder / name).read_bytes(), str(folder / name))
            data = data.get("image_processor", data) if isinstance(data, dict) else {}
            break
    else:
        return {}
    info, repo = data.get("class_info_file"), data.get("repo_path")
    if not isinstance(info, str) or not info:
        return {}
    if (folder / info).is_file():
        return {"repo_path": str(folder)}
    if isinstance(repo, str) and (Path(repo) / info).is_file():
        return {}
    raise InputError(f"{where}: OneFormer's class metadata {info!r} (from {repo}) is not in the folder; copy it there "
                     "(segtools downloads nothing while it predicts)")
