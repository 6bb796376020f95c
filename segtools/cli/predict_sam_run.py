"""The runs behind ``segtools predict`` with SAM (options in :mod:`segtools.cli.predict_sam`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import numpy as np

EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


def _runner(model, weights, arch, device: str, embeddings: Optional[str]):
    from segtools.inference.device import resolve_device
    from segtools.inference.sam import SamRunner
    from segtools.inference.sam2 import runner_if_sam2
    from segtools.inference.sam_io import EmbeddingCache, load_sam_model, model_key

    sam2 = runner_if_sam2(model, weights, arch, resolve_device(device), embeddings)
    if sam2 is not None:  # SAM 2.1: its own runner and embedding cache
        return sam2
    sam = load_sam_model(model, weights, arch)
    runner = SamRunner(sam, resolve_device(device))
    cache = EmbeddingCache(Path(embeddings), model_key(sam)) if embeddings else None
    return runner, cache


def _image_ids(names) -> list[int]:
    stems = [Path(str(n)).stem for n in names]
    return [int(s) for s in stems] if stems and all(s.isdigit() for s in stems) else list(range(1, len(names) + 1))


def predict_images(specs, *, model, weights, arch, output, fmt, probs, device, overwrite, points, boxes, multimask,
                   everything, everything_options, embeddings, clip) -> int:
    """Prompts (the same for every image) or segment-everything over images; returns the count."""
    from segtools.cli.common import progress
    from segtools.cli.options import output_targets
    from segtools.inference.sam import best_masks
    from segtools.inference.sam_auto import EverythingOptions, generate_masks
    from segtools.inference.sam_io import coco_entries, encode_cached, instance_png
    from segtools.io.batch import expand_inputs
    from segtools.io.images import read_image, to_rgb8
    from segtools.io.masks import write_score_map
    from segtools.io.meta import ClassMeta
    from segtools.io.streams import check_output_path, emit

    options = EverythingOptions(**{k: v for k, v in everything_options.items() if v is not None}).check() \
        if everything else None
    items = expand_inputs(specs, extensions=EXTENSIONS)
    if fmt == "coco":
        target = None if output in (None, "-") else str(check_output_path(output, overwrite))
        targets = [None] * len(items)
    else:
        targets = output_targets(items, specs, output, ".npz" if probs else ".png", overwrite)
    runner, cache = _runner(model, weights, arch, device, embeddings)
    point_xy = np.array([p[:2] for p in points], np.float64).reshape(1, -1, 2) if points else None
    labels = np.array([p[2] for p in points], np.int64).reshape(1, -1) if points else None
    box_arr = np.array(boxes, np.float64).reshape(-1, 4) if boxes else None
    single_point = point_xy is not None and point_xy.shape[1] == 1 and box_arr is None
    use_multi = single_point if multimask is None else bool(multimask)
    ids = _image_ids([item.path for item in items])
    results: list = []
    with progress(len(items), "predict") as advance:
        for index, item in enumerate(items):
            image = to_rgb8(read_image(item.path))
            if everything:
                found = generate_masks(runner, image, options)
                masks, scores = found.masks, found.iou
                order = np.argsort(-masks.reshape(len(masks), -1).sum(1), kind="stable")  # large first, small on top
            else:
                embedding = encode_cached(runner, image, cache)
                pred = runner.predict(embedding, point_xy, labels, box_arr, multimask=use_multi, clip=clip,
                                      return_logits=probs)
                masks, scores, chosen = best_masks(pred)
                order = np.argsort(scores, kind="stable")  # lowest score first: the best owns contested pixels
                if probs:
                    rows = np.arange(len(chosen))
                    logits = pred.logits[rows, chosen]
                    score_map = (1 / (1 + np.exp(-logits))).astype(np.float32)
                    write_score_map(score_map[0] if len(score_map) == 1 else score_map, targets[index],
                                    ClassMeta(names=("object",), ignore_index=None), overwrite)
                    advance(index)
                    continue
            if fmt == "coco":
                results.extend(coco_entries(masks, scores, [1] * len(masks), ids[index]))
            elif len(masks) == 1 and not everything:
                from segtools.io.masks import write_label_mask

                write_label_mask(masks[0].astype(np.uint8), targets[index],
                                 ClassMeta(names=("background", "object"), palette=((0, 0, 0), (255, 255, 255)),
                                           ignore_index=None), overwrite)
            else:
                emit(instance_png(masks, scores, [0] * len(masks), ["object"], order), targets[index],
                     "a PNG mask", overwrite)
            advance(index)
    if fmt == "coco":
        emit((json.dumps(results, separators=(",", ":")) + "\n").encode(), target, "COCO results", overwrite)
    return len(items)


def label_boxes(specs, prompts_file, *, model, weights, arch, output, device, overwrite, embeddings, clip,
                multimask, fmt, jobs: int = 1) -> None:
    """Boxes → masks for a dataset: every image, category and box of ``prompts_file`` kept,
    a segmentation added to each box; resumes from an existing ``output``; ``jobs`` worker
    processes (0: one per CPU) share the images, the result the same as with one."""
    from segtools.cli.common import info, progress
    from segtools.errors import InputError, UsageError
    from segtools.formats import coco
    from segtools.inference.sam_io import BoxLabeller, box_dataset, label_dataset
    from segtools.io.batch import expand_inputs
    from segtools.io.streams import check_output_path, mark_input, write_bytes

    if fmt != "coco":
        raise UsageError("--prompts with box annotations writes a COCO dataset: give --format coco and -o FILE.json")
    if output in (None, "-"):
        raise UsageError("--prompts with box annotations needs -o FILE.json (it is resumed from there)")
    roots = [s for s in specs if os.path.isdir(s)]
    if len(roots) != 1 or len(specs) != 1:
        raise UsageError("--prompts with box annotations: give the folder of the images as the one input")
    root = Path(roots[0])
    mark_input(prompts_file)
    document, source = box_dataset(prompts_file, str(root))
    previous = None
    if os.path.isfile(output):
        try:
            previous = coco.load(output)
            info(f"resuming: {output} exists; images with every box done are kept")
        except InputError:
            raise InputError(f"{output}: exists and is not a COCO file; remove it or give another -o") from None
    else:
        check_output_path(output, overwrite)
    found = {item.rel.replace(os.sep, "/"): item.path for item in expand_inputs([str(root)], extensions=EXTENSIONS)}
    by_name = {}
    for rel, path in found.items():
        by_name.setdefault(os.path.basename(rel), path)

    def find(name: str):
        name = name.replace("\\", "/")
        return found.get(name) or found.get(name.lstrip("./")) or by_name.get(os.path.basename(name))

    from segtools.io.parallel import resolve_jobs

    labeller = BoxLabeller(model or None, weights, arch, device, embeddings, bool(multimask), clip)
    labeller.runner()  # loaded here: a bad checkpoint is refused before any work (forked workers inherit it)
    jobs = resolve_jobs(jobs)

    def save(doc):
        write_bytes(output, coco.dumps(doc), allow_overwrite=True)

    images = document.get("images", [])
    with progress(len(images), "label") as advance:
        result = label_dataset(document, find, labeller, previous, on_done=advance, checkpoint=save, jobs=jobs)
    save(result.document)
    info(f"{result.done} images labelled, {result.skipped} already done ({source} boxes) → {output}")
    if result.missing:
        shown = ", ".join(result.missing[:10]) + (f" and {len(result.missing) - 10} more" if len(result.missing) > 10 else "")
        raise InputError(f"{len(result.missing)} images named in {prompts_file} are not in {root}: {shown} "
                         "(the others are done)")
