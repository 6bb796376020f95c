"""Panoptic evaluation of files: COCO panoptic (JSON + PNG folder) or (semantic, instance) mask pairs.

:func:`evaluate_panoptic_files` reads the ground truth's categories, pairs the images, and
streams them: one picklable :class:`PanopticJob` per image through
:func:`segtools.io.parallel.pmap` (worker processes with ``jobs > 1``), each returning only
per-class sums (:func:`segtools.metrics.panoptic.image_counts`), added in input order. Memory
is one image's id arrays per worker, whatever the dataset's size.

Two layouts, the same on both sides:

- **COCO panoptic**: a JSON with ``annotations`` (``image_id``, ``file_name``,
  ``segments_info``) and, for the ground truth, ``categories`` (``isthing``); PNGs in the folder
  beside the JSON named by its stem (``panoptic_val2017.json`` → ``panoptic_val2017/``), as
  panopticapi, unless a folder is given. Predictions pair with the ground truth by ``image_id``.
- **Mask pairs** as ``segtools convert --to mask`` writes them: semantic masks in a folder and
  instance masks in its ``instances/`` subfolder, paired by name. Categories: the
  ``coco_categories`` the semantic masks carry (masks converted from COCO panoptic), else
  ``category_id = label + 1`` named by the masks' class names; thing classes: ``things`` when
  given, else ``isthing`` of those categories, else every class listed in the ground-truth
  instance masks' ``instance_class``. A thing pixel without an instance number is a crowd
  region in the ground truth; the ignore index is VOID on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Collection

import numpy as np

from segtools.errors import InputError, UsageError
from segtools.metrics.panoptic import PanopticEvaluation, image_counts


@dataclass(frozen=True)
class MaskLayout:
    """How mask pairs become panoptic segments: category id per label, thing categories, VOID label."""

    category_ids: tuple[int, ...]
    thing_ids: frozenset[int]
    ignore: int | None


@dataclass(frozen=True)
class PanopticJob:
    """One image for a worker: where each side's pixels are and its segments (JSON side).

    A JSON side's PNG is ``gt_png``/``pred_png`` as named in the JSON, resolved in the worker
    under its :class:`PngFolder`; its ``segments_info`` is checked there too (named by
    ``gt_at``/``pred_at``, the annotation's place in its file), so neither costs the main
    process a step per image or segment.
    """

    name: str
    gt_png: str | None
    gt_segments: tuple
    pred_png: str | None
    pred_segments: tuple
    category_ids: tuple[int, ...]
    gt_masks: tuple[str, str | None] | None = None
    pred_masks: tuple[str, str | None] | None = None
    layout: MaskLayout | None = None
    gt_folder: "PngFolder | None" = None
    pred_folder: "PngFolder | None" = None
    gt_at: str = ""
    pred_at: str = ""
    gt_where: str = ""
    pred_where: str = ""
    fetched: dict | None = None  # path → bytes already read (objects fetched ahead, one process)


@dataclass(frozen=True)
class PngFolder:
    """A folder of panoptic PNGs: as given (for messages) and with its links resolved (once)."""

    base: str
    resolved: str


def read_panoptic_png(path: str, data: bytes | None = None) -> np.ndarray:
    """H×W segment ids (uint32) of a COCO panoptic PNG (``R + 256·G + 256²·B``).

    8-bit RGB(A) PNGs without EXIF (what panoptic writers produce) are structure-checked and
    decoded by OpenCV straight into BGR and packed (no Pillow image and copies); any other
    file goes through :func:`segtools.io.images.read_image`, with the same ids. ``data``:
    the file's bytes, already read (``path`` then names it in messages).
    """
    from segtools.formats.coco_panoptic import rgb_to_ids
    from segtools.io import png
    from segtools.io.images import read_image
    from segtools.io.limits import check_pixels
    from segtools.io.streams import read_bytes

    data = read_bytes(path) if data is None else data
    if data.startswith(png.SIGNATURE) and b"eXIf" not in data:
        header = png.check_structure(data, path)
        if header.bit_depth == 8 and header.colour_type in (2, 6):
            check_pixels(header.width, header.height, path)
            return rgb_to_ids(png.decode_cv2(data, path), bgr=True)
    rgb = read_image(data, name=path)
    if rgb.ndim != 3 or rgb.shape[2] < 3 or rgb.dtype != np.uint8:
        raise InputError(f"{path}: a COCO panoptic PNG is 8-bit RGB, this one is {rgb.dtype} {rgb.shape}")
    try:
        return rgb_to_ids(rgb)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None


def _read_mask_pair(paths: tuple[str, str | None], layout: MaskLayout, ground_truth: bool,
                    fetched: dict | None = None) -> tuple[np.ndarray, list]:
    from segtools.formats.coco_panoptic import from_masks
    from segtools.formats.instances import stored_classes
    from segtools.io.masks import read_label_mask

    fetched = fetched or {}
    semantic_path, instance_path = paths
    semantic = read_label_mask(fetched.get(semantic_path, semantic_path), name=semantic_path).labels
    instances = np.zeros(semantic.shape, np.int64)
    crowd: set[int] = set()
    if instance_path is not None:
        mask = read_label_mask(fetched.get(instance_path, instance_path), name=instance_path)
        instances = mask.labels
        if instances.shape != semantic.shape:
            raise InputError(f"{instance_path}: size {instances.shape} differs from {semantic_path}'s {semantic.shape}")
        crowd = stored_classes(mask.meta, instance_path)[2] if ground_truth else set()
    labels = semantic[semantic != layout.ignore] if layout.ignore is not None else semantic
    if labels.size and int(labels.max()) >= len(layout.category_ids):
        raise InputError(f"{semantic_path}: label {int(labels.max())} has no category "
                         f"({len(layout.category_ids)} classes)")
    ids, segments = from_masks(semantic, instances, list(layout.category_ids), set(layout.thing_ids), layout.ignore, crowd)
    return ids, segments


def measure_panoptic(job: PanopticJob) -> tuple:
    """One image's per-class ``(tp, fp, fn, iou sum)`` (module level: runs in worker processes)."""
    fetched = job.fetched or {}
    if job.gt_masks is not None:
        gt_ids, gt_segments = _read_mask_pair(job.gt_masks, job.layout, True, fetched)
        pred_ids, pred_segments = _read_mask_pair(job.pred_masks, job.layout, False, fetched)
    elif job.gt_folder is not None:
        from segtools.formats import schema

        gt_png, pred_png = _png_paths(job)
        gt_segments = schema.panoptic_segments(list(job.gt_segments), job.gt_at)
        pred_segments = schema.panoptic_segments(list(job.pred_segments), job.pred_at)
        gt_ids, pred_ids = read_panoptic_png(gt_png, fetched.get(gt_png)), read_panoptic_png(pred_png, fetched.get(pred_png))
    else:
        gt_ids, gt_segments = read_panoptic_png(job.gt_png), list(job.gt_segments)
        pred_ids, pred_segments = read_panoptic_png(job.pred_png), list(job.pred_segments)
    return image_counts(gt_ids, gt_segments, pred_ids, pred_segments, np.array(job.category_ids, np.int64), job.name)


def _png_paths(job: PanopticJob) -> tuple[str, str]:
    """The (ground truth, prediction) PNGs of a COCO panoptic job, each checked to lie in its folder."""
    from segtools.formats.paths import inside

    return (str(inside(job.gt_folder.base, job.gt_png, job.gt_where, resolved=job.gt_folder.resolved)),
            str(inside(job.pred_folder.base, job.pred_png, job.pred_where, resolved=job.pred_folder.resolved)))


def _job_files(job: PanopticJob) -> list[str]:
    """The files :func:`measure_panoptic` reads for ``job``, as it names them (none for a
    name that leaves its folder: the job itself says so when its turn comes)."""
    if job.gt_masks is not None:
        return [path for path in (*job.gt_masks, *job.pred_masks) if path is not None]
    if job.gt_folder is not None:
        try:
            return list(_png_paths(job))
        except InputError:
            return []
    return [job.gt_png, job.pred_png]


def _measure_ahead(work: list[PanopticJob], on_done: Callable[[int], None] | None):
    """:func:`measure_panoptic` of each job in order, in this process, the objects on a store
    fetched ahead by :func:`segtools.io.remote.fetch_ahead` (a store's latency hidden behind
    the decoding; a failed fetch is raised at its image's turn, naming its URL)."""
    from dataclasses import replace

    from segtools.io.remote import fetch_ahead

    for index, (job, fetched) in enumerate(zip(work, fetch_ahead([_job_files(job) for job in work]))):
        yield measure_panoptic(replace(job, fetched=fetched) if fetched else job)
        if on_done is not None:
            on_done(index)


_CHUNK = 8  # images per worker task at most


def measure_panoptic_chunk(jobs: tuple) -> list:
    """:func:`measure_panoptic` of each job of a chunk, in order (one worker task)."""
    return [measure_panoptic(job) for job in jobs]


def _is_json(spec: str) -> bool:
    """Whether ``spec`` (a path or a storage URL) is a JSON document rather than a folder of masks."""
    from segtools.io.remote import is_folder
    from segtools.io.streams import read_head

    spec = str(spec)
    if is_folder(spec):
        return False
    if spec.lower().endswith(".json"):
        return True
    try:
        head = read_head(spec, 64)  # a file or an object on a store
    except InputError:
        return False
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith((b"{", b"["))


def _load_json(spec: str, what: str, ground_truth: bool) -> dict:
    from segtools.formats import schema
    from segtools.io.jsondata import parse_json

    from segtools.io.streams import read_bytes

    data = parse_json(read_bytes(spec), spec)  # a file or an object on a store; a failure names it
    if not isinstance(data, dict):
        raise InputError(f"{spec}: a COCO panoptic {what} is a JSON object with 'annotations'")
    # document-level checks only: each image's segments_info entries are checked by its worker
    schema.panoptic(data if ground_truth or "categories" in data else {**data, "categories": []}, spec, segments=False)
    for k, entry in enumerate(data["annotations"]):
        if "image_id" not in entry:
            raise InputError(f"{spec}: annotations[{k}]: missing field 'image_id'")
        schema.check_id(entry["image_id"], f"{spec}: annotations[{k}]: 'image_id'")
    return data


def _by_image(data: dict, spec: str) -> dict:
    entries: dict = {}
    for k, entry in enumerate(data["annotations"]):
        if entry["image_id"] in entries:
            raise InputError(f"{spec}: annotations[{k}]: image_id {entry['image_id']!r} is listed twice")
        entries[entry["image_id"]] = (k, entry)
    return entries


def _json_jobs(pred_spec: str, gt_spec: str, pred_folder, gt_folder) -> tuple[dict, list[PanopticJob]]:
    from segtools.formats.coco_panoptic import png_folder
    from segtools.formats.paths import resolve_base

    gt = _load_json(gt_spec, "ground truth", True)
    pred = _load_json(pred_spec, "prediction", False)
    categories = {int(c["id"]): (str(c.get("name") or c["id"]), c.get("isthing") == 1) for c in gt["categories"]}
    cat_ids = tuple(sorted(categories))
    gt_root, pred_root = png_folder(gt_spec, gt_folder), png_folder(pred_spec, pred_folder)
    gt_pngs, pred_pngs = PngFolder(str(gt_root), resolve_base(gt_root)), PngFolder(str(pred_root), resolve_base(pred_root))
    predictions = _by_image(pred, pred_spec)
    ground_truth = _by_image(gt, gt_spec)
    stray = [i for i in predictions if i not in ground_truth]
    if stray:
        raise InputError(f"{pred_spec}: image_id {stray[0]!r} is not in the ground truth {gt_spec}")
    jobs = []
    for image_id, (k, entry) in ground_truth.items():
        if image_id not in predictions:
            raise InputError(f"{pred_spec}: no prediction for image_id {image_id!r} ({entry['file_name']} in {gt_spec})")
        j, found = predictions[image_id]
        jobs.append(PanopticJob(
            name=f"{pred_spec}: image_id {image_id!r}",
            gt_png=entry["file_name"], gt_segments=tuple(entry["segments_info"]),
            pred_png=found["file_name"], pred_segments=tuple(found["segments_info"]), category_ids=cat_ids,
            gt_folder=gt_pngs, pred_folder=pred_pngs,
            gt_at=f"{gt_spec}: annotations[{k}]", pred_at=f"{pred_spec}: annotations[{j}]",
            gt_where=f"{gt_spec}: annotations[{k}]: 'file_name'",
            pred_where=f"{pred_spec}: image_id {image_id!r}: 'file_name'"))
    return categories, jobs


def _mask_layout(pairs: list, things: Collection[str] | None) -> tuple[dict, MaskLayout]:
    from segtools.formats.coco_panoptic import _thing_labels
    from segtools.formats.instances import stored_classes
    from segtools.io.meta import read_mask_meta

    semantic_path = pairs[0][0].path
    meta = read_mask_meta(semantic_path)
    ignore = meta.ignore_index if meta is not None else 255
    entries = meta.extra.get("coco_categories") if meta is not None else None
    if entries:
        names = tuple(str(c.get("name") or c["id"]) for c in entries)
        category_ids = tuple(int(c["id"]) for c in entries)
        listed = {k for k, c in enumerate(entries) if c.get("isthing")}
    else:
        names = meta.names if meta is not None else None
        instance_meta = read_mask_meta(pairs[0][1].path) if pairs[0][1] is not None else None
        names = names or stored_classes(instance_meta, str(pairs[0][1] and pairs[0][1].path))[1]
        if not names:
            raise InputError(f"{semantic_path}: no class names in the mask's metadata: write the masks with "
                             "their classes (segtools convert --to mask keeps them)")
        category_ids = tuple(range(1, len(names) + 1))
        listed = set()
        for _, instance_item in pairs:
            if instance_item is not None:
                classes = stored_classes(read_mask_meta(instance_item.path), instance_item.path)[0]
                listed |= {c for c in classes or () if c >= 0}
    labels = _thing_labels(things, names) if things is not None else listed
    thing_ids = frozenset(category_ids[k] for k in labels if k < len(category_ids))
    categories = {cid: (names[k], cid in thing_ids) for k, cid in enumerate(category_ids)}
    return categories, MaskLayout(category_ids, thing_ids, ignore)


def _mask_jobs(pred_spec: str, gt_spec: str, things) -> tuple[dict, list[PanopticJob]]:
    from segtools.formats.coco_panoptic import mask_pairs
    from segtools.io.batch import pair_items

    gt_pairs, pred_pairs = mask_pairs([gt_spec]), mask_pairs([pred_spec])
    if not gt_pairs:
        raise InputError(f"{gt_spec}: no ground-truth masks")
    categories, layout = _mask_layout(gt_pairs, things)
    by_path = {item.path: (item, inst) for item, inst in gt_pairs}
    pred_by_path = {item.path: (item, inst) for item, inst in pred_pairs}
    pairing = pair_items([p[0] for p in pred_pairs], [g[0] for g in gt_pairs]).pairs
    cat_ids = tuple(sorted(categories))
    jobs = []
    for pred_item, gt_item in pairing:
        gt_inst, pred_inst = by_path[gt_item.path][1], pred_by_path[pred_item.path][1]
        jobs.append(PanopticJob(
            name=f"{pred_item.path} vs {gt_item.path}", gt_png=None, gt_segments=(), pred_png=None, pred_segments=(),
            category_ids=cat_ids, gt_masks=(gt_item.path, gt_inst.path if gt_inst else None),
            pred_masks=(pred_item.path, pred_inst.path if pred_inst else None), layout=layout))
    return categories, jobs


def evaluate_panoptic_files(pred_spec: str, gt_spec: str, pred_folder: str | None = None, gt_folder: str | None = None,
                            jobs: int = 1, *, things: Collection[str] | None = None,
                            on_done: Callable[[int], None] | None = None,
                            shard: tuple[int, int] | None = None) -> PanopticEvaluation:
    """PQ sums of a prediction against a ground truth, both COCO panoptic or both mask folders.

    Parameters
    ----------
    pred_spec, gt_spec : a COCO panoptic JSON each, or a folder of semantic masks each (with
        their instance masks in ``instances/``).
    pred_folder, gt_folder : the PNG folders of the JSONs (default: beside each JSON, named by its stem).
    jobs : worker processes (0 = all CPUs); the sums do not depend on it.
    things : mask pairs only: the thing classes, by name or label (see the module's notes).
    on_done : called with each image's index as it finishes (progress).
    shard : (I, N): only the images of shard I of N (sorted by name, k mod N); the states
        of the N shards merge into the whole run's sums.

    Raises
    ------
    InputError
        A missing or extra image, an unknown category, a segment in the PNG but not in
        ``segments_info`` (or the reverse), sizes that differ: naming the file and the item.
    UsageError
        One side is a JSON and the other a mask folder, or folders are given for mask pairs.

    Examples
    --------
    >>> import json, tempfile; from pathlib import Path
    >>> from segtools.formats.coco_panoptic import ids_to_rgb; from segtools.io.images import write_image
    >>> root = Path(tempfile.mkdtemp()); (root / "gt").mkdir()
    >>> write_image(ids_to_rgb(np.array([[1, 1], [2, 2]])), root / "gt" / "a.png")
    >>> doc = {"categories": [{"id": 1, "name": "road", "isthing": 0}, {"id": 2, "name": "car", "isthing": 1}],
    ...        "annotations": [{"image_id": 1, "file_name": "a.png",
    ...                         "segments_info": [{"id": 1, "category_id": 1}, {"id": 2, "category_id": 2}]}]}
    >>> _ = (root / "gt.json").write_text(json.dumps(doc))
    >>> evaluate_panoptic_files(str(root / "gt.json"), str(root / "gt.json")).summary()["pq"]
    1.0
    """
    from segtools.io.batch import select_shard
    from segtools.io.parallel import one_opencv_thread, pmap, resolve_jobs

    pred_json, gt_json = _is_json(pred_spec), _is_json(gt_spec)
    if pred_json != gt_json:
        raise UsageError(f"pred_spec={pred_spec!r}, gt_spec={gt_spec!r}: give both as COCO panoptic JSON or both "
                         "as folders of (semantic, instance) masks")
    if pred_json:
        categories, work = _json_jobs(pred_spec, gt_spec, pred_folder, gt_folder)
    else:
        if pred_folder or gt_folder:
            raise UsageError("pred_folder/gt_folder: PNG folders go with COCO panoptic JSON, not with mask folders")
        categories, work = _mask_jobs(pred_spec, gt_spec, things)
    work = select_shard(work, shard, key=lambda job: job.name)
    evaluation = PanopticEvaluation(categories)
    workers = resolve_jobs(jobs)
    if workers == 1:
        from segtools.io.remote import fetches_ahead

        ahead = fetches_ahead((path for job in work[:8] for path in _job_files(job)), workers)
        with one_opencv_thread():
            for counts in (_measure_ahead(work, on_done) if ahead else pmap(measure_panoptic, work, 1, on_done=on_done)):
                evaluation.add_counts(counts)
        return evaluation
    # a few images per task: one round trip to a worker costs about as much as counting an image
    size = max(1, min(_CHUNK, len(work) // (4 * workers)))
    chunks = [tuple(work[k:k + size]) for k in range(0, len(work), size)]
    for index, results in enumerate(pmap(measure_panoptic_chunk, chunks, workers)):
        for k, counts in enumerate(results):
            evaluation.add_counts(counts)
            if on_done:
                on_done(index * size + k)
    return evaluation
