"""``segtools predict`` with registered Hugging Face checkpoints, and ``--task panoptic``.

* A registry name whose entry runs in transformers (``segformer-b0-ade`` …, see
  :mod:`segtools.weights.entries_hf`) opens its pulled folder with
  :func:`segtools.backends.hf.open_hf`; the entry's class preset gives names and palette.
* ``--task panoptic`` on a universal model (Mask2Former, MaskFormer, OneFormer) writes COCO
  panoptic: ``-o NAME.json`` (``annotations`` with ``image_id``, ``file_name`` and
  ``segments_info``; ``categories``; ``images``) and one RGB id PNG per image in the folder
  ``NAME/`` beside it — what ``segtools metrics --task panoptic`` and ``convert`` read.
  Segments are those of the processor's ``post_process_panoptic_segmentation`` (``--min-score``
  is its ``threshold``, default 0.8 as there), with their ``score``.

Only typer-free standard imports at module level.
"""

from __future__ import annotations

from typing import Any, Optional


def hf_entry(model: Optional[str]):
    """The registry entry ``model`` names when transformers runs it (else ``None``); a file or
    folder of that name here is taken as itself."""
    import os

    if not model or model.startswith("hf:") or os.path.exists(model):
        return None
    from segtools.weights import registry

    entry = registry.BUILTIN.get(model)
    return entry if entry is not None and entry.backend == "hf" else None


def open_entry(entry, *, device: str, classes, task: str, preprocessing: dict):
    """The transformers runner of a pulled registry entry (an error says how to pull it)."""
    from segtools.backends.hf import open_hf
    from segtools.weights import registry

    _, folder = registry.resolve(entry.name)
    if classes is None and isinstance(entry.classes, str):
        from segtools.io.meta import load_classes

        classes = load_classes(entry.classes, "classes")
    return open_hf(str(folder), device=device, classes=classes, task=task, preprocessing=preprocessing)


def check_panoptic_request(options: dict):
    """``--task panoptic``'s options (by parameter name) checked: ``(json_path, threshold)``,
    else a usage error naming the flag (called before the model loads, and again by
    :func:`predict_panoptic`)."""
    from pathlib import Path

    from segtools.errors import UsageError
    from segtools.io.streams import check_output_path

    for flag, name in (("--probs", "probs"), ("--tta", "tta"), ("--tile", "tile"), ("--resize", "resize"),
                       ("--max-dets", "max_dets"), ("--dask", "dask")):
        if options.get(name):
            raise UsageError(f"{flag} does not apply to --task panoptic (whole images through the model's processor)")
    if (options.get("fmt") or "coco") != "coco":
        raise UsageError(f"--format {options['fmt']!r}: --task panoptic writes COCO panoptic (--format coco)")
    threshold = 0.8 if options.get("min_score") is None else float(options["min_score"])
    if not 0.0 <= threshold <= 1.0:
        raise UsageError(f"--min-score {threshold:g}: give a score in [0, 1]")
    output, overwrite = options.get("output"), bool(options.get("overwrite"))
    if output in (None, "-") or Path(str(output)).suffix.lower() != ".json":
        raise UsageError("--task panoptic writes a COCO panoptic JSON and a folder of PNGs beside it: "
                         "give -o NAME.json")
    return check_output_path(output, overwrite), threshold


def predict_panoptic(runner, specs: list, options: dict) -> None:
    """Panoptic segments of each input as COCO panoptic (a JSON and its PNG folder)."""
    from segtools.cli.common import info, progress
    from segtools.io.batch import photo_inputs
    from segtools.io.images import read_image

    json_path, threshold = check_panoptic_request(options)
    overwrite = bool(options.get("overwrite"))
    from segtools.cli import predict_cluster

    predict_cluster.refuse(options.get("dask"), "--task panoptic (its JSON and PNG folder are written by one process)")
    items, ids = predict_cluster.shard_ids(photo_inputs(specs), options.get("shard"))
    names = _names(runner)
    annotations, images = [], []
    with progress(len(items), "predict") as advance:
        for index, item in enumerate(items):
            image = read_image(item.path)
            segment_ids, segments = runner.panoptic(image, conf=threshold)
            annotations.append(write_panoptic_png(json_path, item.rel, ids[index], segment_ids, segments, overwrite))
            images.append({"id": ids[index], "file_name": item.rel, "height": int(image.shape[0]),
                           "width": int(image.shape[1])})
            advance(index)
    write_panoptic_json(json_path, images, annotations, names, overwrite)
    if len(items) > 1:
        info(f"predicted {len(items)} images")


def _names(runner) -> list[str]:
    if runner.classes is not None and runner.classes.names:
        return list(runner.classes.names)
    return [f"class_{k}" for k in range(runner.num_classes or 0)]


def panoptic_segments(segment_ids, segments: list[dict]) -> list[dict]:
    """COCO ``segments_info`` of an H×W id image (0 = void) and its segments (``id``,
    ``label`` = class index, ``score``): ``category_id`` = label + 1, ``area``, ``bbox``
    ``[x, y, w, h]``, ``iscrowd`` 0, ``score``. Segments with no pixel left are dropped."""
    import numpy as np
    from scipy import ndimage

    top = int(segment_ids.max(initial=0))
    area = np.bincount(segment_ids.ravel(), minlength=top + 1)
    boxes = ndimage.find_objects(segment_ids.astype(np.int32), max_label=top) if top else []
    out = []
    for segment in segments:
        k = int(segment["id"])
        if k <= 0 or k > top or area[k] == 0:
            continue
        rows, cols = boxes[k - 1]
        out.append({"id": k, "category_id": int(segment["label"]) + 1, "area": int(area[k]),
                    "bbox": [int(cols.start), int(rows.start), int(cols.stop - cols.start), int(rows.stop - rows.start)],
                    "iscrowd": 0, "score": round(float(segment["score"]), 6)})
    return out


def write_panoptic_png(json_path, rel: str, image_id: int, segment_ids, segments: list[dict], overwrite: bool) -> dict:
    """Write one image's RGB id PNG into the JSON's folder; returns its ``annotations`` entry."""
    from pathlib import Path

    from segtools.formats.coco_panoptic import ids_to_rgb
    from segtools.io.images import encode_image
    from segtools.io.streams import write_bytes

    png_name = str(Path(rel).with_suffix(".png"))
    write_bytes(Path(json_path).with_suffix("") / png_name, encode_image(ids_to_rgb(segment_ids), "png"), overwrite)
    return {"image_id": image_id, "file_name": png_name, "segments_info": panoptic_segments(segment_ids, segments)}


def write_panoptic_json(json_path, images: list, annotations: list, names: list[str], overwrite: bool) -> None:
    """The COCO panoptic JSON (written last, atomically). Every category is ``isthing`` 1: with
    no classes fused, each segment is one object of its class."""
    import json

    from segtools.io.streams import write_bytes

    categories = [{"id": k + 1, "name": name, "supercategory": "", "isthing": 1} for k, name in enumerate(names)]
    data: dict[str, Any] = {"info": {"description": "written by segtools predict --task panoptic"}, "images": images,
                            "annotations": annotations, "categories": categories}
    write_bytes(json_path, (json.dumps(data, separators=(",", ":")) + "\n").encode(), overwrite)
