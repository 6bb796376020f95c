"""The instance runner: RGB images in, instances (masks, classes, scores, boxes) out.

:func:`load_detector` turns a registry name or a checkpoint file (torchvision's state dicts,
old or new key names; a segtools checkpoint) into a ready Mask/Faster R-CNN;
:class:`InstanceRunner` runs it on H×W×3 uint8 images in batches and returns one
:class:`Instances` per image, at the image's own size. :func:`instance_id_mask` and
:func:`coco_results` turn them into the two instance kinds of the pipe: an id mask
(lowest score painted first, so the most confident instance owns a contested pixel) with
``instance_class``/``instance_score``, and COCO results with RLE masks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from segtools.errors import InputError, UsageError, require


@dataclass
class Instances:
    """One image's detections, by decreasing score.

    ``boxes`` K×4 float32 ``(x1, y1, x2, y2)`` pixels; ``scores`` K float32 in [0, 1];
    ``labels`` K int64 (the model's class indices, 0 = background never present);
    ``masks`` K×H×W bool (``None`` for a box-only model); ``size`` (H, W).
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    masks: np.ndarray | None
    size: tuple[int, int]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class LoadedDetector:
    """A detector with what its labels mean: ``label_names[label]`` (index 0 the background)."""

    model: Any
    arch: str
    num_classes: int
    label_names: list[str]
    source: str
    path: Path | None = None
    options: dict = field(default_factory=dict)


def wants_instances(model: str | None, weights: str | None, arch: str | None) -> bool:
    """Whether ``predict`` options name an instance model (an instance ``arch``, or a
    registry entry of one); reads no file."""
    from segtools.models.detection import is_detection_arch

    if arch:
        return is_detection_arch(arch)
    if model and not weights:
        from segtools.weights import registry
        from segtools.weights.loader import model_source

        if model_source(model)[0] == "registry" and model in registry.all_entries():
            return is_detection_arch(registry.all_entries()[model].arch)
    return False


def _label_names(classes: Any, num_classes: int) -> list[str]:
    names = None
    if isinstance(classes, dict):
        names = classes.get("names")
    elif isinstance(classes, (list, tuple)):
        names = list(classes)
    if names is not None and len(names) == num_classes:
        return [str(n) for n in names]
    return ["__background__", *(f"class_{k}" for k in range(1, num_classes))]


def load_detector(model: str | None = None, weights: str | os.PathLike | None = None, arch: str | None = None,
                  **options: Any) -> LoadedDetector:
    """Build the detector named by ``model`` (registry name) or ``weights`` (a file).

    Parameters
    ----------
    model : a registry name (``maskrcnn-resnet50-fpn-v2-coco``) or a checkpoint file.
    weights : a checkpoint file (a state dict, torchvision's or a segtools checkpoint).
    arch : the architecture of a plain state dict (``maskrcnn-resnet50-fpn``, …).
    **options : detector options (``min_size``, ``max_size``, ``box_score_thresh``,
        ``box_detections_per_img``, ``box_nms_thresh``).

    Raises
    ------
    UsageError
        No architecture for a plain state dict, or both ``model`` and ``weights``.
    InputError
        A checkpoint whose keys or shapes do not fit (the first missing key is named, and
        the architecture that the keys do fit, when one does).
    """
    torch = require("torch", "models")
    from segtools.models.detection import build_detector, get_detection_arch
    from segtools.weights import registry
    from segtools.weights.checkpoint import load_checkpoint

    if model and weights:
        raise UsageError("give a model (a registry name or file) or weights (a checkpoint file), not both")
    entry = None
    if model and not os.path.exists(model) and model in registry.all_entries():
        entry, path = registry.resolve(model)
    else:
        from segtools.io.remote import local_file

        path = local_file(weights or model or "")  # a storage URL: this machine's copy
        if not str(path) or not path.is_file():
            raise InputError(f"{path}: no such checkpoint file")
    checkpoint = load_checkpoint(path)
    arch = arch or checkpoint.get("arch") or (entry.arch if entry else None)
    if not arch:
        raise UsageError(f"{path}: a plain state dict does not say its architecture; give its arch "
                         "(maskrcnn-resnet50-fpn, maskrcnn-resnet50-fpn-v2, fasterrcnn-resnet50-fpn, …)")
    get_detection_arch(arch)
    state = _detection_state(checkpoint["state_dict"], str(path))
    from segtools.models.detection import num_classes_of

    num_classes = int(checkpoint.get("num_classes") or num_classes_of(state) or (entry.num_classes if entry else 91))
    from segtools.models.detection import DETECTION_OPTIONS

    stored = checkpoint.get("arch_options") or {}
    stored = {k: v for k, v in stored.items() if k in DETECTION_OPTIONS} if isinstance(stored, dict) else {}
    merged = {**(entry.arch_options if entry else {}), **stored, **options}
    with torch.device("meta"):
        probe = build_detector(arch, num_classes, **merged)
    _check_fits(probe, state, arch, str(path))
    network = build_detector(arch, num_classes, **merged)
    network.load_state_dict(state, strict=False)
    network.eval()
    classes = checkpoint.get("classes") or (entry.classes if entry else None)
    return LoadedDetector(network, arch, num_classes, _label_names(classes, num_classes),
                          f"weights {entry.name!r}" if entry else str(path), path, merged)


def _detection_state(state: Any, source: str) -> dict:
    from segtools.models.detection import legacy_keys_renamed
    from segtools.weights.state_dict import unwrap_state_dict

    return legacy_keys_renamed(unwrap_state_dict(state, source))


def _check_fits(model, state: dict, arch: str, source: str) -> None:
    """Keys (BatchNorm counters aside) and shapes of ``state`` equal ``model``'s, else an
    error naming the first missing (or unexpected) key and the architecture that fits."""
    from segtools.models.detection import matching_arch

    counters = "num_batches_tracked"
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith(counters)}
    given = {k: tuple(v.shape) for k, v in state.items() if not k.endswith(counters)}
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    if missing or unexpected:
        fits = matching_arch(state)
        hint = f"; its keys are those of arch {fits}" if fits else ""
        first = f"missing key {missing[0]!r}" if missing else f"unexpected key {unexpected[0]!r}"
        raise InputError(f"{source}: the checkpoint does not fit arch {arch}: {first} "
                         f"({len(missing)} missing, {len(unexpected)} unexpected){hint}")
    wrong = [f"{k}: checkpoint {given[k]} vs model {shape}" for k, shape in expected.items() if given[k] != shape]
    if wrong:
        raise InputError(f"{source}: the checkpoint does not fit arch {arch}: {len(wrong)} shape mismatch(es), "
                         f"e.g. {wrong[0]}")
    for key, value in state.items():
        if value.numel() and value.numel() * value.element_size() > value.untyped_storage().nbytes():
            raise InputError(f"{source}: tensor {key[:80]!r} declares more data than it holds; refusing it")


class InstanceRunner:
    """Run a detector on images; one :class:`Instances` per image.

    Parameters
    ----------
    model : a detector from :func:`load_detector` (``.model``) or the builders.
    device : ``auto``, ``cpu``, ``cuda[:N]`` or ``mps``.
    amp : autocast (``True``, ``"fp16"``, ``"bf16"``) for the backbone and heads.
    batch : images per forward pass (any sizes: each is resized, the batch padded).
    mask_threshold : mask probability above which a pixel belongs to the instance, in [0, 1].
    """

    def __init__(self, model, *, device: str = "auto", amp: bool | str = False, batch: int = 2,
                 mask_threshold: float = 0.5) -> None:
        import torch

        from segtools.inference.device import resolve_device
        from segtools.inference.predictor import _amp_dtype

        if batch < 1:
            raise UsageError(f"batch must be at least 1, not {batch}")
        if not 0.0 <= float(mask_threshold) <= 1.0:
            raise UsageError(f"mask_threshold={mask_threshold}: give a probability in [0, 1]")
        self.device = resolve_device(device)
        self.amp_dtype = _amp_dtype(amp, self.device)
        self.batch, self.mask_threshold = int(batch), float(mask_threshold)
        self.model = model.eval().to(self.device)
        self._torch = torch

    def predict(self, image: np.ndarray) -> Instances:
        return next(self.predict_many([image]))

    def predict_many(self, images: Iterable[np.ndarray]) -> Iterator[Instances]:
        """Instances of each image, in order, ``batch`` images per forward pass."""
        from segtools.backends.runner import rgb8

        pending: list[np.ndarray] = []
        for image in images:
            pending.append(rgb8(image))
            if len(pending) == self.batch:
                yield from self._run(pending)
                pending = []
        if pending:
            yield from self._run(pending)

    def _run(self, images: list[np.ndarray]) -> list[Instances]:
        torch = self._torch
        from segtools.models.detection.transform import paste_masks

        with torch.inference_mode():
            tensors = [torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1))).to(self.device).float() / 255
                       for im in images]
            if self.amp_dtype is not None:
                with torch.autocast(self.device.type, dtype=self.amp_dtype):
                    detections = self.model(tensors)
            else:
                detections = self.model(tensors)
            out = []
            for image, det in zip(images, detections):
                size = image.shape[:2]
                boxes = det["boxes"].float()
                masks = None
                if "masks" in det:
                    masks = paste_masks(det["masks"].float(), boxes, size, self.mask_threshold).cpu().numpy()
                out.append(Instances(boxes.cpu().numpy(), det["scores"].float().cpu().numpy(),
                                     det["labels"].cpu().numpy().astype(np.int64), masks, size))
        return out


def instance_id_mask(instances: Instances) -> tuple[np.ndarray, list[int], list[float]]:
    """(H×W uint16 ids, ``instance_class``, ``instance_score``) of one image's instances.

    Id ``i`` (1-based, by decreasing score) has class label ``labels[i-1] - 1`` (the model's
    label without the background) and its score; index 0 of both lists is the background
    (-1 and 0.0). Lower scores are painted first, so the best instance owns contested
    pixels. A box-only model's instances are painted as their boxes.
    """
    count = len(instances)
    height, width = instances.size
    if count > 65535:
        raise InputError(f"{count} instances do not fit a 16-bit id mask (at most 65535)")
    masks = instances.masks
    if masks is None:
        masks = _box_masks(instances.boxes, height, width)
    ids = np.zeros((height, width), np.uint16)
    if count:
        # ids run by decreasing score, so the lowest id covering a pixel is its best instance:
        # the same as painting the lowest score first, in one pass
        covered = masks.any(axis=0)
        best = np.argmax(masks, axis=0) + 1
        ids[covered] = best[covered].astype(np.uint16)
    classes = [-1, *(int(v) - 1 for v in instances.labels)]
    scores = [0.0, *(round(float(v), 6) for v in instances.scores)]
    return ids, classes, scores


def _box_masks(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """K×H×W masks of the pixels whose centres lie inside each box."""
    ys = np.arange(height)[None, :, None] + 0.5
    xs = np.arange(width)[None, None, :] + 0.5
    b = boxes[:, :, None, None]
    return (xs >= b[:, 0]) & (xs < b[:, 2]) & (ys >= b[:, 1]) & (ys < b[:, 3])


def coco_results(instances: Instances, image_id: Any) -> list[dict]:
    """COCO results entries of one image: ``category_id`` = the model's label, ``bbox``
    ``[x, y, w, h]``, ``score``, and ``segmentation`` as a compressed RLE when there are masks."""
    from segtools.formats import rle as rlelib

    out = []
    for k in range(len(instances)):
        x1, y1, x2, y2 = (float(v) for v in instances.boxes[k])
        entry = {"image_id": image_id, "category_id": int(instances.labels[k]),
                 "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                 "score": round(float(instances.scores[k]), 6)}
        if instances.masks is not None:
            rle = rlelib.encode(instances.masks[k])
            entry["segmentation"] = {"size": list(rle["size"]), "counts": rle["counts"]}
        out.append(entry)
    return out


def image_ids(names: Sequence[str]) -> list[int]:
    """COCO ``image_id`` of each input: its file stem when that is a number (COCO's own
    file names, ``000000397133.jpg`` → 397133), else its 1-based position in the inputs."""
    stems = [Path(str(name)).stem for name in names]
    if stems and all(stem.isdigit() for stem in stems):
        return [int(stem) for stem in stems]
    return list(range(1, len(names) + 1))
