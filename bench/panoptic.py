"""Benchmark panoptic quality (PQ) against decoding alone and a panopticapi-style reference, in one run.

    python bench/panoptic.py [--pairs 351] [--repeat 3]

Builds CamVid-derived COCO panoptic pairs (train + val annotations, 480×360: Car, Pedestrian,
Bicyclist and SignSymbol split into connected components as things, the rest stuff,
Unlabelled VOID; the prediction a shifted, noisier copy) as PNG files + JSON under $TMPDIR.
Times, on the same files: decoding the 2·N PNGs to id images only (segtools' reader, and
Pillow as panopticapi reads them); segtools
``evaluate_panoptic_files`` at ``jobs=1`` and ``jobs=2``; and the step-by-step reference of
``tests/panoptic_reference.py`` (panopticapi's dict loops, standing in for panopticapi, which
is not on PyPI) over the same decoded ids. All produce the same PQ; the script checks it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from _timing import best_seconds

ROOT = Path(__file__).resolve().parents[1]
CAMVID = ROOT.parent / "shared" / "data" / "camvid"
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def build(root: Path, count: int) -> tuple[Path, Path]:
    from panoptic_reference import CAMVID_THINGS, camvid_panoptic

    from segtools.formats.coco_panoptic import from_masks, ids_to_rgb
    from segtools.io.images import write_image
    from segtools.io.masks import read_label_mask
    from segtools.io.presets import get_preset

    names = list(get_preset("camvid").names)
    paths = sorted((CAMVID / "trainannot").glob("*.png")) + sorted((CAMVID / "valannot").glob("*.png"))
    if not paths:
        sys.exit(f"no CamVid annotations under {CAMVID}")
    paths = paths[:count]
    category_ids = list(range(1, len(names) + 1))
    thing_ids = {names.index(n) + 1 for n in CAMVID_THINGS}
    categories = [{"id": c, "name": names[c - 1], "isthing": int(c in thing_ids)} for c in category_ids]
    rng = np.random.default_rng(0)
    docs = {"gt": [], "pred": []}
    for side in docs:
        (root / side).mkdir()
    for k, path in enumerate(paths):
        semantic = read_label_mask(path).labels.astype(np.int64)
        pred = np.roll(semantic, (int(rng.integers(-4, 5)), int(rng.integers(-4, 5))), axis=(0, 1))
        pred = np.where(rng.random(semantic.shape) < 0.02, rng.integers(0, 11, semantic.shape), pred)
        for side, labels in (("gt", semantic), ("pred", pred)):
            ids, segments = from_masks(labels, camvid_panoptic(labels)[1], category_ids, thing_ids, 11)
            # panopticapi-style ids: colours spread over 24 bits
            colour = rng.permutation(np.arange(1, 2**24, 997))[:len(segments)]
            lut = np.zeros(len(segments) + 1, np.int64)
            lut[1:] = colour
            for s, c in zip(segments, colour.tolist()):
                s["id"] = c
            write_image(ids_to_rgb(lut[ids]), root / side / f"{path.stem}.png")
            docs[side].append({"image_id": k, "file_name": f"{path.stem}.png", "segments_info": segments})
    for side, annotations in docs.items():
        (root / f"{side}.json").write_text(json.dumps({"annotations": annotations, "categories": categories}))
    return root / "pred.json", root / "gt.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=351)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from panoptic_reference import reference_average, reference_counts

    from segtools.metrics.panoptic_io import evaluate_panoptic_files, read_panoptic_png

    with tempfile.TemporaryDirectory() as tmp:
        pred_json, gt_json = build(Path(tmp), args.pairs)
        gt_doc, pred_doc = json.loads(gt_json.read_text()), json.loads(pred_json.read_text())
        files = [(Path(tmp) / "gt" / g["file_name"], Path(tmp) / "pred" / p["file_name"])
                 for g, p in zip(gt_doc["annotations"], pred_doc["annotations"])]
        n = len(files)

        def decode_only():
            for gt, pred in files:
                read_panoptic_png(str(gt)), read_panoptic_png(str(pred))

        def reference():
            images = [(read_panoptic_png(str(gt)), g["segments_info"], read_panoptic_png(str(pred)), p["segments_info"])
                      for (gt, pred), g, p in zip(files, gt_doc["annotations"], pred_doc["annotations"])]
            return reference_counts(images)

        def decode_pillow():  # panopticapi's reading: Pillow, uint32 channels, R + 256·G + 256²·B
            from PIL import Image

            for gt, pred in files:
                for path in (gt, pred):
                    rgb = np.array(Image.open(path), dtype=np.uint32)
                    rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]

        results = {}
        times = {"decode only (2·N PNGs)": best_seconds(decode_only, args.repeat, warmup=True),
                 "decode only, Pillow (panopticapi)": best_seconds(decode_pillow, args.repeat)}
        for jobs in (1, 2):
            times[f"segtools jobs={jobs}"] = best_seconds(
                lambda: results.__setitem__(jobs, evaluate_panoptic_files(str(pred_json), str(gt_json), jobs=jobs)),
                args.repeat)
        stats = {}
        times["panopticapi-style reference"] = best_seconds(lambda: stats.__setitem__(0, reference()), 1)
        categories = {c["id"]: (c["name"], bool(c["isthing"])) for c in gt_doc["categories"]}
        expected = reference_average(stats[0], categories, None)[0]["pq"]
        for jobs, evaluation in results.items():
            assert abs(evaluation.summary()["pq"] - expected) <= 1e-9, (jobs, evaluation.summary()["pq"], expected)

    decode = times["decode only (2·N PNGs)"]
    print(f"PQ over {n} CamVid-derived panoptic pairs (480×360), PQ = {expected:.4f} in every run\n")
    print(f"{'':32} {'seconds':>8} {'× decode':>9} {'ms/image':>9}")
    for name, value in times.items():
        print(f"{name:32} {value:8.3f} {value / decode:9.2f} {1000 * value / n:9.2f}")
    one, two = times["segtools jobs=1"], times["segtools jobs=2"]
    print(f"\njobs=2 vs jobs=1: {one / two:.2f}×; segtools jobs=1 vs reference: "
          f"{times['panopticapi-style reference'] / one:.2f}×")


if __name__ == "__main__":
    main()
