"""SAM around files: loading a checkpoint, the embedding cache, instance masks and COCO
results from prompt masks, and adding masks to every box of a detection dataset.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Sequence

import numpy as np

from segtools.errors import InputError, UsageError
from segtools.models.sam import SAM_ARCHS


def is_sam_model(model: str | None, weights: str | None, arch: str | None) -> bool:
    """Whether ``predict``'s model options name a SAM model (a SAM ``arch``, a registry entry
    of one, or a file whose name says sam); reads no file."""
    return names_family(model, weights, arch, SAM_ARCHS, ("sam_vit", "mobile_sam", "sam-vit", "mobile-sam"))


def names_family(model: str | None, weights: str | None, arch: str | None, archs, prefixes) -> bool:
    """Whether model options name one of ``archs``: the ``arch`` itself, a registry entry of
    one, or a file whose name starts with one of ``prefixes``; reads no file."""
    if arch:
        return arch in archs
    if model and not weights:
        from segtools.weights import registry
        from segtools.weights.loader import model_source

        if model_source(model)[0] == "registry":
            entry = registry.all_entries().get(model)
            return entry is not None and entry.arch in archs
    return os.path.basename(str(weights or model or "")).lower().startswith(tuple(prefixes))


def load_sam_model(model: str | None = None, weights: str | None = None, arch: str | None = None):
    """The SAM of a registry name or a checkpoint file (loaded as data, ``weights_only``).

    ``arch`` (a :data:`SAM_ARCHS` name), or the registry entry's, is the variant expected: a
    checkpoint of another one is refused, naming what it is.
    """
    from segtools.models.sam.model import load_sam

    state, expect, source = read_promptable_state(model, weights, arch, SAM_ARCHS, "SAM", "sam-vit-b")
    return load_sam(state, expect=expect, source=source)


def read_promptable_state(model: str | None, weights: str | None, arch: str | None, archs, family: str,
                          example: str) -> tuple[dict, str | None, str]:
    """The tensors of a promptable model's checkpoint (a registry name or a file, read as
    data), the variant expected (``arch`` or the registry entry's) and how to name the source.

    ``archs`` are the family's architectures (``arch`` must be one), ``family`` and ``example``
    (a registry name) word the errors.
    """
    from segtools.weights import registry
    from segtools.weights.checkpoint import read_weights_file
    from segtools.weights.loader import model_source
    from segtools.weights.state_dict import unwrap_state_dict

    if model and weights:
        raise UsageError("give a model (a registry name or file) or weights (a checkpoint file), not both")
    if not model and not weights:
        raise UsageError(f"give a {family} model: model={example} (see `segtools weights list`) or a checkpoint file")
    if arch is not None and arch not in archs:
        raise UsageError(f"arch={arch}: not a {family} architecture (choose from {', '.join(archs)})")
    expect = arch
    if model and model_source(model)[0] == "registry":
        entry, path = registry.resolve(model)
        expect = expect or entry.arch
        source = f"weights {entry.name!r}"
    else:
        from segtools.io.remote import local_file

        path = local_file(weights or model)  # a storage URL: this machine's copy
        if not path.is_file():
            raise InputError(f"{path}: no such checkpoint file")
        source = str(path)
    return unwrap_state_dict(read_weights_file(path), source), expect, source


def model_key(model) -> str:
    """A short content fingerprint of a SAM model (its sizes and a sample of its weights)."""
    digest = hashlib.sha256(repr(model.config).encode())
    for name, tensor in list(model.state_dict().items())[:: max(1, len(model.state_dict()) // 16)]:
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().float().flatten()[:4096].numpy().tobytes())
    return digest.hexdigest()[:16]


def image_key(image: np.ndarray) -> str:
    """SHA-256 of the decoded pixels and their shape (the same picture in PNG or JPEG-free
    re-encodings has the same key)."""
    digest = hashlib.sha256(str(image.shape).encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


@dataclass
class EmbeddingCache:
    """Encoder outputs on disk, ``DIR/<model key>/<image sha256>.npz`` (float16).

    A hit costs a file read instead of the encoder; writes are atomic, so a killed run
    leaves no half file.
    """

    root: Path
    model: str

    def path(self, key: str) -> Path:
        return self.root / self.model / f"{key}.npz"

    #: the tensors an entry holds (float16 on disk)
    tensor_names: ClassVar[tuple[str, ...]] = ("features",)

    def get(self, image: np.ndarray):
        import torch

        path = self.path(image_key(image))
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                tensors = {name: torch.from_numpy(data[name].astype(np.float32)) for name in self.tensor_names}
                return self.embedding(tensors, tuple(int(v) for v in data["original_size"]),
                                      tuple(int(v) for v in data["input_size"]))
        except (OSError, KeyError, ValueError):
            return None  # unreadable entry (or another model family's): encode again and replace it

    def put(self, image: np.ndarray, embedding) -> None:
        from segtools.io.streams import write_bytes

        half = {name: t.detach().cpu().numpy().astype(np.float16) for name, t in self.tensors(embedding).items()}
        buffer = io.BytesIO()
        np.savez(buffer, **half, original_size=np.array(embedding.original_size),
                 input_size=np.array(embedding.input_size))
        path = self.path(image_key(image))
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(path, buffer.getvalue(), allow_overwrite=True)

    def embedding(self, tensors: dict, original_size: tuple, input_size: tuple):
        """The embedding an entry's tensors (by :attr:`tensor_names`) and sizes make."""
        from segtools.inference.sam import ImageEmbedding

        return ImageEmbedding(tensors["features"], original_size, input_size)

    def tensors(self, embedding) -> dict:
        """The tensors of ``embedding`` to store, by :attr:`tensor_names`."""
        return {"features": embedding.features}


def encode_cached(runner, image: np.ndarray, cache: EmbeddingCache | None):
    """``runner.encode(image)``, through ``cache`` when there is one."""
    if cache is not None:
        hit = cache.get(image)
        if hit is not None:
            return hit
    embedding = runner.encode(image)
    if cache is not None:
        cache.put(image, embedding)
    return embedding


def paint_instances(masks: np.ndarray, order: np.ndarray) -> np.ndarray:
    """H×W uint16 ids (1-based, id k = ``masks[k-1]``) with masks painted in ``order``, later
    ones on top; one pass: the last mask of ``order`` covering a pixel owns it."""
    count, height, width = masks.shape
    if count > 65535:
        raise InputError(f"{count} masks do not fit a 16-bit id mask (at most 65535)")
    ids = np.zeros((height, width), np.uint16)
    if count:
        stack = masks[order[::-1]]  # topmost first
        covered = stack.any(axis=0)
        top = np.argmax(stack, axis=0)
        ids[covered] = (order[::-1][top[covered]] + 1).astype(np.uint16)
    return ids


def instance_png(masks: np.ndarray, scores: np.ndarray, classes: Sequence[int], class_names: Sequence[str],
                 order: np.ndarray) -> bytes:
    """A 16-bit instance-id PNG with ``instance_class`` and ``instance_score`` (index 0 is the
    background: class -1, score 0)."""
    from segtools.formats.instances import encode_instance_png, instance_meta

    meta = instance_meta([-1, *(int(c) for c in classes)], list(class_names))
    meta.extra["instance_score"] = [0.0, *(round(float(s), 6) for s in scores)]
    return encode_instance_png(paint_instances(masks, order), meta)


def coco_entries(masks: np.ndarray, scores: np.ndarray, category_ids: Sequence[int], image_id) -> list[dict]:
    """COCO results entries (compressed RLE, ``bbox`` [x, y, w, h] of the mask, ``score``)."""
    from segtools.formats import rle as rlelib

    out = []
    for mask, score, category in zip(masks, scores, category_ids):
        encoded = rlelib.encode(mask)
        out.append({"image_id": image_id, "category_id": int(category), "segmentation": encoded,
                    "bbox": [round(float(v), 2) for v in rlelib.to_bbox(encoded)], "score": round(float(score), 6),
                    "area": int(mask.sum())})
    return out


@dataclass
class LabelledDataset:
    """A COCO dataset document with masks added, and the images that were not found."""

    document: dict
    missing: list[str]
    done: int
    skipped: int


def box_dataset(prompts: str, images: str | None) -> tuple[dict, str]:
    """Any box annotation ``convert`` reads (COCO, VOC XML, YOLO…) as a COCO document; a COCO
    file is kept as it is (every field), others are converted. Returns (document, format)."""
    from segtools.formats import Summary, registry
    from segtools.formats.records import ConvertOptions

    detected = registry.detect([prompts])
    if detected.format == "coco" and isinstance(detected.payload, dict):
        return detected.payload, "coco"
    if detected.format not in ("voc", "yolo", "cvat", "coco-stream", "labelme"):
        raise InputError(f"{prompts}: {detected.format} holds no boxes to prompt with "
                         "(give COCO, VOC XML or YOLO box annotations, or a points/boxes JSON)")
    dataset = registry.read(detected, [prompts], ConvertOptions(images=images), Summary())
    records = list(dataset.records(None))
    annotations, next_id = [], 1
    for record in records:
        for ann in record.annotations:
            annotations.append({**ann, "id": ann.get("id", next_id), "image_id": record.image["id"]})
            next_id = max(next_id, int(annotations[-1]["id"])) + 1
    return {"images": [r.image for r in records], "annotations": annotations,
            "categories": dataset.categories.to_coco()}, detected.format


@dataclass(frozen=True)
class BoxLabeller:
    """Boxes → masks for one image at a time, picklable for ``--jobs`` worker processes: the
    SAM model (a registry name or checkpoint, as :func:`load_sam_model` takes it; SAM 2.1
    through :func:`segtools.inference.sam2.runner_if_sam2`) is loaded
    once per process and kept; the masks go back as compressed RLE (small to send)."""

    model: str | None
    weights: str | None
    arch: str | None
    device: str = "cpu"
    embeddings: str | None = None
    multimask: bool = False
    clip: bool = False

    def runner(self):
        """This process's runner and embedding cache (loaded on first use)."""
        found = _RUNNERS.get(self)
        if found is None:
            found = _RUNNERS[self] = open_sam_runner(self.model, self.weights, self.arch, self.device, self.embeddings)
        return found

    def __call__(self, task: tuple[str, np.ndarray]) -> list[tuple[dict, int, float]]:
        """(image path, K×4 xyxy boxes) → K (RLE, mask area, predicted IoU)."""
        from segtools.formats import rle as rlelib
        from segtools.inference.sam import best_masks
        from segtools.io.images import read_image, to_rgb8

        path, boxes = task
        runner, cache = self.runner()
        embedding = encode_cached(runner, to_rgb8(read_image(path)), cache)
        masks, iou, _ = best_masks(runner.predict(embedding, boxes=boxes, multimask=self.multimask, clip=self.clip))
        return [(rlelib.encode(mask), int(mask.sum()), round(float(score), 6)) for mask, score in zip(masks, iou)]


_RUNNERS: dict = {}


def open_sam_runner(model: str | None, weights: str | None, arch: str | None, device: str | None = "cpu",
                    embeddings: str | None = None):
    """(runner, embedding cache or ``None``) of a SAM, MobileSAM or SAM 2.1 registry name or
    checkpoint, on ``device`` (``auto``, ``cpu``, ``cuda``…); ``embeddings``: the folder of
    the cache."""
    from segtools.inference.device import resolve_device
    from segtools.inference.sam import SamRunner
    from segtools.inference.sam2 import runner_if_sam2

    found = runner_if_sam2(model, weights, arch, resolve_device(device), embeddings)
    if found is not None:  # SAM 2.1: its own runner and embedding cache
        return found
    sam = load_sam_model(model, weights, arch)
    cache = EmbeddingCache(Path(embeddings), model_key(sam)) if embeddings else None
    return SamRunner(sam, resolve_device(device)), cache


@dataclass(frozen=True)
class SamPrompting:
    """One ``predict`` run of SAM over images, image by image: the same ``points``
    (x, y, label) and ``boxes`` (xyxy) for every image, or ``everything`` (its options as
    ``(name, value)`` pairs). Picklable and small: a ``--dask`` task carries it (never the
    model), and each worker opens the model once (:meth:`load`).

    Per image (:meth:`predict_one`): one mask → a label PNG (``background``/``object``);
    several, or ``everything`` → an instance-id PNG with scores (large masks painted
    first, so small ones stay on top; prompts: lowest score first, so the best owns
    contested pixels); ``probs`` → the prompts' mask probabilities (.npz); ``fmt="coco"``
    → the image's COCO results, returned instead of written."""

    model: str | None = None
    weights: str | None = None
    arch: str | None = None
    device: str = "auto"
    embeddings: str | None = None
    points: tuple = ()
    boxes: tuple = ()
    multimask: bool | None = None
    clip: bool = False
    everything: tuple | None = None
    probs: bool = False
    fmt: str = "mask"
    overwrite: bool = False
    batch: int = 1  # images per --dask task

    def load(self):
        """(runner, cache, everything options) of this process."""
        from segtools.inference.sam_auto import EverythingOptions

        options = EverythingOptions(**dict(self.everything)).check() if self.everything is not None else None
        runner, cache = open_sam_runner(self.model, self.weights, self.arch, self.device, self.embeddings)
        return runner, cache, options

    def predict_one(self, loaded, path: str, target: str | None, image_id) -> list[dict]:
        """Predict the image at ``path`` and write it to ``target``; its COCO results (``[]``
        unless ``fmt="coco"``)."""
        from segtools.inference.sam import best_masks
        from segtools.inference.sam_auto import generate_masks
        from segtools.io.images import read_image, to_rgb8
        from segtools.io.masks import write_label_mask, write_score_map
        from segtools.io.meta import ClassMeta
        from segtools.io.streams import emit

        runner, cache, options = loaded
        image = to_rgb8(read_image(path))
        if options is not None:
            found = generate_masks(runner, image, options)
            masks, scores = found.masks, found.iou
            if not len(masks):  # nothing passed the filters: no instance, an image-sized background
                masks = np.zeros((0, *image.shape[:2]), bool)
            order = np.argsort(-masks.sum(axis=(1, 2)), kind="stable")  # large first, small on top
        else:
            point_xy = np.array([p[:2] for p in self.points], np.float64).reshape(1, -1, 2) if self.points else None
            labels = np.array([p[2] for p in self.points], np.int64).reshape(1, -1) if self.points else None
            box_arr = np.array(self.boxes, np.float64).reshape(-1, 4) if self.boxes else None
            single_point = point_xy is not None and point_xy.shape[1] == 1 and box_arr is None
            multi = single_point if self.multimask is None else bool(self.multimask)
            pred = runner.predict(encode_cached(runner, image, cache), point_xy, labels, box_arr, multimask=multi,
                                  clip=self.clip, return_logits=self.probs)
            masks, scores, chosen = best_masks(pred)
            order = np.argsort(scores, kind="stable")  # lowest score first: the best owns contested pixels
            if self.probs:
                logits = pred.logits[np.arange(len(chosen)), chosen]
                score_map = (1 / (1 + np.exp(-logits))).astype(np.float32)
                write_score_map(score_map[0] if len(score_map) == 1 else score_map, target,
                                ClassMeta(names=("object",), ignore_index=None), self.overwrite)
                return []
        if self.fmt == "coco":
            return coco_entries(masks, scores, [1] * len(masks), image_id)
        if len(masks) == 1 and options is None:
            write_label_mask(masks[0].astype(np.uint8), target,
                             ClassMeta(names=("background", "object"), palette=((0, 0, 0), (255, 255, 255)),
                                       ignore_index=None), self.overwrite)
        else:
            emit(instance_png(masks, scores, [0] * len(masks), ["object"], order), target, "a PNG mask",
                 self.overwrite)
        return []

    def run(self, loaded, item) -> list[dict]:
        """A ``--dask`` task's images (``item``: a :class:`~segtools.inference.cluster_predict.PredictItem`)."""
        results: list = []
        for index, path in enumerate(item.sources):
            results.extend(self.predict_one(loaded, path, item.targets[index], item.ids[index] if item.ids else None))
        return results


def _in_worker_threads(jobs: int) -> None:
    import torch

    from segtools.io.parallel import in_worker, resolve_jobs

    if in_worker():  # the workers share the cores
        torch.set_num_threads(max(1, resolve_jobs(None) // jobs))


@dataclass(frozen=True)
class _WorkerTask:
    labeller: BoxLabeller
    jobs: int

    def __call__(self, task):
        _in_worker_threads(self.jobs)
        return self.labeller(task)


def label_dataset(document: dict, find_image: Callable[[str], str | None], label_image,
                  previous: dict | None = None, on_done: Callable[[int], None] | None = None,
                  checkpoint: Callable[[dict], None] | None = None, jobs: int = 1) -> LabelledDataset:
    """Add ``segmentation`` (compressed RLE), mask ``area`` and ``predicted_iou`` to every box
    annotation of ``document``, image by image, in the document's order.

    ``find_image(file_name)`` gives the photo's path or None (listed in ``missing``);
    ``label_image((path, boxes_xyxy))`` gives K (RLE, area, IoU) (a :class:`BoxLabeller`;
    with ``jobs`` > 1 it runs in that many worker processes, each loading its model once,
    and must be picklable); ``previous``: an output of an earlier run whose images with
    every box done are kept as they are (resume); ``checkpoint(document)`` is called now
    and then with the document so far. The result does not depend on ``jobs``.
    """
    import time

    from segtools.io.parallel import pmap

    by_image: dict = {}
    for ann in document.get("annotations", []):
        by_image.setdefault(ann.get("image_id"), []).append(ann)
    done_before = {}
    if previous:
        old: dict = {}
        for ann in previous.get("annotations", []):
            old.setdefault(ann.get("image_id"), []).append(ann)
        done_before = {k: v for k, v in old.items()
                       if v and all("segmentation" in a and a["segmentation"] for a in v)
                       and len(v) == len(by_image.get(k, []))}
    images = document.get("images", [])
    paths: dict[int, str | None] = {}
    tasks = []
    for index, image in enumerate(images):
        anns = by_image.get(image.get("id"), [])
        if image.get("id") not in done_before and anns:
            paths[index] = find_image(str(image.get("file_name", "")))
            if paths[index] is not None:
                boxes = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                                  for a in anns], np.float64)
                tasks.append((paths[index], boxes))
    worker = _WorkerTask(label_image, jobs) if jobs != 1 else label_image
    results = pmap(worker, tasks, jobs)
    out_annotations: list = []
    missing: list[str] = []
    done = skipped = 0
    last = time.monotonic()
    for index, image in enumerate(images):
        anns = by_image.get(image.get("id"), [])
        if image.get("id") in done_before:
            out_annotations.extend(done_before[image["id"]])
            skipped += 1
        elif anns:
            if paths[index] is None:
                missing.append(str(image.get("file_name", image.get("id"))))
                out_annotations.extend(anns)
            else:
                for ann, (encoded, area, score) in zip(anns, next(results)):
                    out_annotations.append({**ann, "segmentation": encoded, "area": area, "predicted_iou": score})
                done += 1
        if on_done:
            on_done(index)
        if checkpoint and time.monotonic() - last > 10:
            checkpoint(_with(document, out_annotations, images[index + 1:], by_image))
            last = time.monotonic()
    return LabelledDataset(_with(document, out_annotations, [], by_image), missing, done, skipped)


def _with(document: dict, annotations: list, pending_images: list, by_image: dict) -> dict:
    rest = [a for image in pending_images for a in by_image.get(image.get("id"), [])]
    return {**document, "annotations": annotations + rest}
