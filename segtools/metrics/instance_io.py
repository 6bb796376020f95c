"""Instance evaluation of files: COCO instances / results JSON, or instance-id masks.

:func:`evaluate_instance_files` reads the ground truth's images and categories, pairs every
ground-truth image with its predictions, and streams them in chunks of images: one picklable
:class:`InstanceChunk` per chunk through :func:`segtools.io.parallel.pmap` (worker processes
with ``jobs > 1``), each returning the :class:`~segtools.metrics.instance.InstanceEvaluation`
of its images, merged in input order (the merge is exact, so the numbers do not depend on
``jobs``). Memory is a chunk's masks per worker, whatever the dataset's size.

Sources, either side:

- **COCO JSON**: the ground truth a COCO instances file (``iscrowd`` and ``area`` kept as
  given, polygons made RLE with the image's size), the prediction a COCO results list
  (:mod:`segtools.formats.coco_results`), paired by ``image_id``. Every ground-truth image
  is evaluated; one without detections has none.
- **Instance-id masks** (``kind="instance"`` metadata, as ``segtools postprocess --instances``
  and ``convert --to instances`` write them): value = instance id, 0 = none;
  ``instance_class[id]`` its class label, ``instance_crowd`` the crowd ids (ground truth),
  ``instance_score[id]`` its score (predictions). Masks pair with masks by relative path, then
  stem; with a COCO ground truth by stem against the images' ``file_name``. A mask's class
  label ``k`` is category ``k + 1`` named ``class_names[k]`` (against a COCO ground truth:
  the ``k``-th of its sorted category ids, as ``convert`` numbers them).
- **Cityscapes instanceIds / VOC SegmentationObject folders** (ground truth only): read per
  image in the worker by :mod:`segtools.metrics.instance_layouts`; results JSON image ids are
  1..N over the sorted files, masks pair by stem (``_leftImg8bit`` ↔ ``_gtFine_instanceIds``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from segtools.errors import InputError
from segtools.metrics.instance_protocol import Protocol

from segtools.metrics.instance import InstanceEvaluation

CHUNK_IMAGES = 64


@dataclass(frozen=True)
class ImageJob:
    """One image: its annotations (JSON side) or mask path (mask side), named for messages."""

    image_id: Any
    where: str
    size: tuple[int, int] | None
    gt: tuple = ()
    dt: tuple = ()
    gt_mask: str | None = None
    dt_mask: str | None = None
    gt_layout: tuple[str, ...] | None = None  # (layout, its files): Cityscapes / VOC ground truth
    fetched: dict | None = None  # path → bytes already read (objects fetched ahead, one process)


@dataclass(frozen=True)
class InstanceChunk:
    """A chunk of images for one worker, with what they are scored by."""

    protocol: Protocol
    categories: tuple[tuple[int, str], ...]
    mask_categories: tuple[int, ...] | None  # mask class label k → category id (None: k + 1)
    images: tuple[ImageJob, ...]
    category_names: tuple[tuple[str, int], ...] = ()  # the ground truth's (name, id), to map by name


def _gt_rle(ann: dict, size: tuple[int, int] | None, where: str) -> dict:
    from segtools.formats import rle as rlelib
    from segtools.formats.coco import segmentation_runs

    segm = ann.get("segmentation")
    if isinstance(segm, list) and size is not None:
        return {**ann, "segmentation": rlelib.from_runs(*segmentation_runs(segm, *size, where), *size)}
    return ann


def _by_name(names, labels_of: np.ndarray, category_names, path: str) -> np.ndarray | None:
    """Category ids of mask class labels through the mask's ``class_names`` matched to the
    ground truth's category names; ``None`` when none of the names is a category name (then
    the labels map by position)."""
    lookup = dict(category_names)
    if not names or not lookup or not any(name in lookup for name in names):
        return None
    used = np.unique(labels_of)
    if used.size and int(used.max()) >= len(names):
        raise InputError(f"{path}: class label {int(used.max())} has no name in class_names ({len(names)} names)")
    found = [names[k] in lookup for k in used.tolist()]
    if not all(found):
        missing = [names[k] for k, ok in zip(used.tolist(), found) if not ok]
        raise InputError(f"{path}: class {missing[0]!r} is not a category of the ground truth "
                         f"(categories: {', '.join(list(lookup)[:8])}{', ...' if len(lookup) > 8 else ''})")
    ids = np.asarray([lookup.get(name, -1) for name in names], np.int64)
    return ids[labels_of]


def _mask_annotations(path: str, size: tuple[int, int] | None, mask_categories, ground_truth: bool,
                      category_names=(), fetched: dict | None = None) -> tuple[list, tuple]:
    """COCO-style dicts of every instance of an instance-id mask, and the mask's size
    (``fetched``: the bytes of files already read, by path)."""
    from segtools.formats.instances import stored_classes
    from segtools.formats.rle_regions import encode_regions
    from segtools.io.masks import read_label_mask

    mask = read_label_mask((fetched or {}).get(path, path), name=path)
    labels = np.asarray(mask.labels)
    if size is not None and tuple(labels.shape) != tuple(size):
        raise InputError(f"{path}: mask is {labels.shape[0]}×{labels.shape[1]} but its image is {size[0]}×{size[1]}")
    classes, names, crowd = stored_classes(mask.meta, path)
    if classes is None:
        raise InputError(f"{path}: no instance_class in the mask's metadata (the class of each instance id)")
    ids, rles, areas, boxes = encode_regions(labels.astype(np.int64))
    classes = np.asarray(classes, np.int64)
    if ids.size and (int(ids.max()) >= classes.size or (classes[ids] < 0).any()):
        bad = int(ids[(ids >= classes.size) | (classes[np.minimum(ids, classes.size - 1)] < 0)][0])
        raise InputError(f"{path}: instance id {bad} has no class in the metadata's instance_class")
    labels_of = classes[ids]
    named = _by_name(names, labels_of, category_names, path) if mask_categories is not None else None
    if named is not None:
        category = named
    elif mask_categories is not None:
        if labels_of.size and int(labels_of.max()) >= len(mask_categories):
            raise InputError(f"{path}: class label {int(labels_of.max())} has no category "
                             f"({len(mask_categories)} categories in the ground truth)")
        category = np.asarray(mask_categories, np.int64)[labels_of] if labels_of.size else labels_of
    else:
        category = labels_of + 1
    if ground_truth:
        return [{"id": int(i), "category_id": int(c), "segmentation": r, "area": float(a), "bbox": b,
                 "iscrowd": int(int(i) in crowd)}
                for i, c, r, a, b in zip(ids.tolist(), category.tolist(), rles, areas.tolist(), boxes)], labels.shape
    scores = _mask_scores(mask.meta, ids, path)
    return [{"category_id": int(c), "segmentation": r, "bbox": b, "score": s}
            for c, r, b, s in zip(category.tolist(), rles, boxes, scores.tolist())], labels.shape


def _mask_scores(meta, ids: np.ndarray, path: str) -> np.ndarray:
    stored = (meta.extra if meta is not None else {}).get("instance_score")
    if not isinstance(stored, list):
        raise InputError(f"{path}: no instance_score in the mask's metadata (one score per instance id)")
    bad = next((v for v in stored if v.__class__ not in (int, float)), None)
    if bad is not None:
        raise InputError(f"{path}: instance_score must be numbers, one per instance id; found {bad!r:.40}")
    scores = np.asarray(stored, np.float64)
    if ids.size and int(ids.max()) >= scores.size:
        raise InputError(f"{path}: instance id {int(ids.max())} has no instance_score ({scores.size - 1} scores)")
    return scores[ids] if ids.size else np.zeros(0)


def evaluate_chunk(chunk: InstanceChunk) -> InstanceEvaluation:
    """The evaluation of one chunk's images (module level: runs in worker processes)."""
    from segtools.metrics.instance_layouts import layout_annotations

    evaluation = InstanceEvaluation(chunk.protocol, dict(chunk.categories))
    for job in chunk.images:
        size = job.size
        if job.gt_layout is not None:
            gt, size = layout_annotations(job.gt_layout[0], job.gt_layout[1:], evaluation.categories, job.fetched)
        elif job.gt_mask is not None:
            gt, size = _mask_annotations(job.gt_mask, size, chunk.mask_categories, True, chunk.category_names,
                                         job.fetched)
        else:
            gt = [_gt_rle(a, size, f"{job.where}: ground truth {k}") for k, a in enumerate(job.gt)]
        if job.dt_mask is not None:
            dt, _ = _mask_annotations(job.dt_mask, size, chunk.mask_categories, False, chunk.category_names,
                                      job.fetched)
        else:
            dt = list(job.dt)
        evaluation.add_image(gt, dt, image_id=job.image_id, where=job.where)
    evaluation._flush()
    return evaluation


def _is_json(spec: str) -> bool:
    from segtools.metrics.panoptic_io import _is_json as is_json

    return is_json(spec)


def _mask_items(spec: str, what: str) -> list:
    from segtools.io.batch import expand_inputs

    items = expand_inputs([spec], allow_stdin=False)
    if not items:
        raise InputError(f"{spec}: no {what} masks")
    return items


def _coco_ground_truth(gt_spec: str) -> tuple[dict, dict, dict, list]:
    """(categories, sizes, annotations by image, images) of a COCO instances file."""
    from segtools.formats import coco as cocolib

    data = cocolib.load(gt_spec, gt_spec)
    categories = {int(c["id"]): str(c.get("name") or c["id"]) for c in data["categories"]}
    sizes, images = {}, []
    for image in data["images"]:
        if image["id"] in sizes:
            raise InputError(f"{gt_spec}: image id {image['id']!r} is listed twice")
        sizes[image["id"]] = (int(image["height"]), int(image["width"]))
        images.append(image)
    by_image: dict = {}
    for k, ann in enumerate(data["annotations"]):
        if ann.get("image_id") not in sizes:
            raise InputError(f"{gt_spec}: annotations[{k}]: image_id {ann.get('image_id')!r} is not in 'images'")
        by_image.setdefault(ann["image_id"], []).append(ann)
    return categories, sizes, by_image, images


def _jobs_against_coco(pred_spec: str, gt_spec: str, protocol: Protocol,
                       on_missing: Callable[[str], None] | None = None) -> tuple[dict, tuple | None, list]:
    from segtools.formats.coco_results import read_results
    from segtools.io.batch import pairing_key

    categories, sizes, gt_by_image, images = _coco_ground_truth(gt_spec)
    if pred_spec == "-" or _is_json(pred_spec):
        names = {image["id"]: image.get("file_name", "") for image in images}
        if pred_spec == "-":  # `predict --format coco | metrics --task instance - gt.json`
            from segtools.formats.coco_results import check_results
            from segtools.io.jsondata import parse_json
            from segtools.io.streams import read_bytes

            detections = check_results(parse_json(read_bytes("-"), "<stdin>"), "<stdin>", sizes, categories,
                                       protocol.iou_type, names)
        else:
            detections = read_results(pred_spec, sizes, categories, protocol.iou_type, names)
        return categories, None, [
            ImageJob(image["id"], f"{pred_spec}: image_id {image['id']!r}", sizes[image["id"]],
                     tuple(gt_by_image.get(image["id"], ())), tuple(detections.get(image["id"], ())))
            for image in images]
    masks = _stem_masks(pred_spec)
    work, used = [], set()
    for image in images:
        stem = pairing_key(image["file_name"]).rsplit("/", 1)[-1]
        if stem not in masks:
            if on_missing is None:
                raise InputError(f"{pred_spec}: no prediction mask for image {image['file_name']!r} "
                                 f"(image_id {image['id']!r} in {gt_spec}; with allow_missing: counted as no detections)")
            on_missing(str(image["file_name"]))
            work.append(ImageJob(image["id"], f"{gt_spec}: image {image['file_name']!r}", sizes[image["id"]],
                                 tuple(gt_by_image.get(image["id"], ()))))
            continue
        used.add(stem)
        work.append(ImageJob(image["id"], masks[stem], sizes[image["id"]],
                             tuple(gt_by_image.get(image["id"], ())), dt_mask=masks[stem]))
    stray = sorted(set(masks) - used)
    if stray:
        raise InputError(f"{masks[stray[0]]}: no image of the ground truth {gt_spec} is named {stray[0]!r}")
    return categories, tuple(sorted(categories)), work


def _stem_masks(pred_spec: str) -> dict[str, str]:
    """Prediction mask paths by the stem they pair on (dataset suffixes such as _leftImg8bit stripped)."""
    from segtools.io.batch import pairing_key

    masks: dict = {}
    for item in _mask_items(pred_spec, "prediction"):
        stem = pairing_key(item.rel).rsplit("/", 1)[-1]
        if stem in masks:
            raise InputError(f"two prediction masks pair as {stem!r}: {masks[stem]} and {item.path}")
        masks[stem] = item.path
    return masks


def _jobs_against_layout(pred_spec: str, gt_spec: str, layout: str, protocol: Protocol,
                         on_missing: Callable[[str], None] | None = None) -> tuple[dict, None, list]:
    """Jobs of a Cityscapes or VOC ground-truth folder (:mod:`segtools.metrics.instance_layouts`)."""
    from segtools.formats.coco_results import read_results
    from segtools.metrics.instance_layouts import layout_categories, layout_images

    categories, images = layout_categories(layout, gt_spec), layout_images(layout, gt_spec)
    if _is_json(pred_spec):
        detections = read_results(pred_spec, {i: size for i, _, size, _ in images}, categories, protocol.iou_type,
                                  {i: files[0] for i, _, _, files in images})
        return categories, None, [
            ImageJob(i, f"{pred_spec}: image_id {i!r} ({files[0]})", size, dt=tuple(detections.get(i, ())),
                     gt_layout=(layout, *files)) for i, _, size, files in images]
    masks, work = _stem_masks(pred_spec), []
    for i, stem, size, files in images:
        if stem not in masks:
            if on_missing is None:
                raise InputError(f"{pred_spec}: no prediction mask for {files[0]} (named {stem!r}); "
                                 "(with allow_missing: counted as no detections)")
            on_missing(str(files[0]))
            work.append(ImageJob(i, str(files[0]), size, gt_layout=(layout, *files)))
            continue
        path = masks.pop(stem)
        work.append(ImageJob(i, path, size, dt_mask=path, gt_layout=(layout, *files)))
    if masks:
        stem, path = sorted(masks.items())[0]
        raise InputError(f"{path}: no image of the ground truth {gt_spec} is named {stem!r}")
    return categories, None, work


def _jobs_masks(pred_spec: str, gt_spec: str) -> tuple[dict, tuple | None, list]:
    from segtools.formats.instances import stored_classes
    from segtools.io.batch import pair_items
    from segtools.io.meta import read_mask_meta

    gt_items, pred_items = _mask_items(gt_spec, "ground-truth"), _mask_items(pred_spec, "prediction")
    names = None
    for item in gt_items:
        names = stored_classes(read_mask_meta(item.path), item.path)[1]
        if names:
            break
    if not names:
        raise InputError(f"{gt_items[0].path}: no class_names in the ground-truth masks' metadata "
                         "(write them as segtools postprocess --instances or convert --to instances does)")
    categories = {k + 1: name for k, name in enumerate(names)}
    pairing = pair_items(pred_items, gt_items).pairs
    work = [ImageJob(gt.rel, f"{pred.path} vs {gt.path}", None, gt_mask=gt.path, dt_mask=pred.path)
            for pred, gt in sorted(pairing, key=lambda p: p[1].rel)]
    return categories, None, work


def evaluate_instance_files(pred_spec: str, gt_spec: str, protocol: Protocol | None = None, jobs: int = 1, *,
                            on_done: Callable[[int], None] | None = None,
                            on_missing: Callable[[str], None] | None = None,
                            shard: tuple[int, int] | None = None) -> "InstanceEvaluation":
    """COCO AP/AR records of a prediction against a ground truth, read from files.

    Parameters
    ----------
    pred_spec : a COCO results JSON, or a folder / file / glob of instance-id masks.
    gt_spec : a COCO instances JSON, a folder / file / glob of instance-id masks, a Cityscapes
        folder of ``*_instanceIds.png`` or a VOC folder with SegmentationObject/ and
        SegmentationClass/ (:mod:`segtools.metrics.instance_layouts`: ids, categories).
    protocol : IoU type, thresholds, max detections, area ranges (default COCO's).
    jobs : worker processes (0 = all CPUs); the numbers do not depend on it.
    on_done : called with each chunk's index as it finishes (progress).
    on_missing : when given, a ground-truth image without a prediction mask counts as an
        image without detections (COCO's rule for results files) and is reported to it by
        name; when ``None`` it is an error.
    shard : (I, N): only the ground-truth images of shard I of N (sorted by image id, k mod
        N); the states of the N shards merge into the whole run's numbers.

    Raises
    ------
    InputError
        An image or category not in the ground truth, a non-numeric score, a malformed RLE,
        a mask of another size than its image, a mask without a partner: naming the file
        and the item.

    Examples
    --------
    >>> import json, tempfile; from pathlib import Path
    >>> root = Path(tempfile.mkdtemp())
    >>> square = {"size": [4, 4], "counts": "52203"}
    >>> gt = {"images": [{"id": 1, "file_name": "a.png", "height": 4, "width": 4}],
    ...       "categories": [{"id": 1, "name": "cell"}],
    ...       "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": square,
    ...                        "area": 4, "bbox": [1, 1, 2, 2], "iscrowd": 0}]}
    >>> _ = (root / "gt.json").write_text(json.dumps(gt))
    >>> _ = (root / "dt.json").write_text(json.dumps([{"image_id": 1, "category_id": 1,
    ...                                               "segmentation": square, "score": 0.9}]))
    >>> round(evaluate_instance_files(str(root / "dt.json"), str(root / "gt.json")).summary()["ap"], 9)
    1.0
    """
    from segtools.io.batch import select_shard
    from segtools.io.parallel import pmap, resolve_jobs
    from segtools.metrics.instance_layouts import find_layout

    protocol = protocol or Protocol()
    layout = None if _is_json(gt_spec) else find_layout(gt_spec)
    if _is_json(gt_spec):
        categories, mask_categories, work = _jobs_against_coco(pred_spec, gt_spec, protocol, on_missing)
    elif layout is not None:
        categories, mask_categories, work = _jobs_against_layout(pred_spec, gt_spec, layout, protocol, on_missing)
    elif _is_json(pred_spec):
        raise InputError(f"{pred_spec}: a COCO results JSON needs a COCO instances JSON, a Cityscapes "
                         f"gtFine folder or a VOC folder as ground truth (image ids and categories); {gt_spec} is none")
    else:
        categories, mask_categories, work = _jobs_masks(pred_spec, gt_spec)
    work = select_shard(work, shard, key=lambda job: str(job.image_id))
    workers = resolve_jobs(jobs)
    size = max(1, min(CHUNK_IMAGES, -(-len(work) // max(1, 2 * workers)) if workers > 1 else CHUNK_IMAGES))
    names = tuple((name, cid) for cid, name in categories.items())
    chunks = [InstanceChunk(protocol, tuple(categories.items()), mask_categories, tuple(work[i:i + size]), names)
              for i in range(0, len(work), size)]
    evaluation = InstanceEvaluation(protocol, categories)
    from segtools.io.remote import fetches_ahead

    ahead = fetches_ahead((path for job in work[:8] for path in _image_files(job)), workers)
    for part in (_evaluate_ahead(chunks, on_done) if ahead else pmap(evaluate_chunk, chunks, jobs, on_done=on_done)):
        evaluation.merge(part)
    return evaluation


def _image_files(job: ImageJob) -> list[str]:
    """The mask files :func:`evaluate_chunk` reads for ``job``."""
    return [path for path in (job.gt_mask, job.dt_mask, *(job.gt_layout or ())[1:]) if path is not None]


def _evaluate_ahead(chunks: list[InstanceChunk], on_done: Callable[[int], None] | None):
    """:func:`evaluate_chunk` of each chunk in order, in this process, the masks on a store
    fetched ahead by :func:`segtools.io.remote.fetch_ahead` (a store's latency hidden behind
    the decoding; a failed fetch is raised at its image's turn, naming its URL)."""
    from dataclasses import replace

    from segtools.io.remote import fetch_ahead

    fetched = fetch_ahead([_image_files(job) for chunk in chunks for job in chunk.images])
    for index, chunk in enumerate(chunks):
        images = tuple(replace(job, fetched=data) if data else job for job, data in zip(chunk.images, fetched))
        yield evaluate_chunk(replace(chunk, images=images))
        if on_done is not None:
            on_done(index)
