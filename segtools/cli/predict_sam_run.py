"""The runs behind ``segtools predict`` with SAM (options in :mod:`segtools.cli.predict_sam`)."""

from __future__ import annotations

import json
import os
from pathlib import Path



def predict_images(specs, *, model, weights, arch, output, fmt, probs, device, overwrite, points, boxes, multimask,
                   everything, everything_options, embeddings, clip, dask=None, shard=None) -> int:
    """Prompts (the same for every image) or segment-everything over images; returns the
    count. ``shard`` (``I/N``): only that shard of the sorted images. With ``dask``, the
    images are mapped over the cluster's workers, each opening the model once
    (``--embeddings`` must then be a folder every worker sees)."""
    from segtools.cli.common import progress
    from segtools.cli.options import output_targets
    from segtools.inference.sam_auto import EverythingOptions
    from segtools.inference.sam_io import SamPrompting
    from segtools.io.batch import photo_inputs
    from segtools.io.streams import check_output_path, emit

    chosen = {k: v for k, v in everything_options.items() if v is not None}
    if everything:
        EverythingOptions(**chosen).check()  # a bad option fails before any model is opened
    job = SamPrompting(model=model, weights=weights, arch=arch, device=device, embeddings=embeddings,
                       points=tuple(points or ()), boxes=tuple(boxes or ()), multimask=multimask, clip=clip,
                       everything=tuple(sorted(chosen.items())) if everything else None, probs=probs, fmt=fmt,
                       overwrite=overwrite)
    from segtools.cli import predict_cluster

    items, ids = predict_cluster.shard_ids(photo_inputs(specs), shard)
    if fmt == "coco":
        target = None if output in (None, "-") else str(check_output_path(output, overwrite))
        targets = [None] * len(items)
    else:
        targets = output_targets(items, specs, output, ".npz" if probs else ".png", overwrite)
    loaded = job.load()  # here too with --dask: a bad checkpoint is refused before a cluster is reached
    results: list = []
    if predict_cluster.wanted(dask):
        predict_cluster.check_files(items, targets if fmt != "coco" else [""] * len(items))
        results = [entry for group in predict_cluster.run_spec(dask, job, items, targets, ids=ids) for entry in group]
    else:
        with progress(len(items), "predict") as advance:
            for index, item in enumerate(items):
                results.extend(job.predict_one(loaded, item.path, targets[index], ids[index]))
                advance(index)
    if fmt == "coco":
        emit((json.dumps(results, separators=(",", ":")) + "\n").encode(), target, "COCO results", overwrite)
    return len(items)


def label_boxes(specs, prompts_file, *, model, weights, arch, output, device, overwrite, embeddings, clip,
                multimask, fmt, jobs: int = 1, dask=None) -> None:
    """Boxes → masks for a dataset: every image, category and box of ``prompts_file`` kept,
    a segmentation added to each box; resumes from an existing ``output``; ``jobs`` worker
    processes (0: one per CPU) share the images, or the workers of a Dask cluster (``dask``),
    the result the same as with one."""
    from segtools.cli.common import info, progress
    from segtools.errors import InputError, UsageError
    from segtools.formats import coco
    from segtools.inference.sam_io import BoxLabeller, box_dataset, label_dataset
    from segtools.io.batch import photo_inputs
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
    found = {item.rel.replace(os.sep, "/"): item.path for item in photo_inputs([str(root)])}
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

    from segtools.io.cluster import use_dask

    images = document.get("images", [])
    with use_dask(dask), progress(len(images), "label") as advance:  # --dask: the images go to the workers
        result = label_dataset(document, find, labeller, previous, on_done=advance, checkpoint=save, jobs=jobs)
    save(result.document)
    info(f"{result.done} images labelled, {result.skipped} already done ({source} boxes) → {output}")
    if result.missing:
        shown = ", ".join(result.missing[:10]) + (f" and {len(result.missing) - 10} more" if len(result.missing) > 10 else "")
        raise InputError(f"{len(result.missing)} images named in {prompts_file} are not in {root}: {shown} "
                         "(the others are done)")
