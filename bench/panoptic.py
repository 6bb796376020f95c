"""Benchmark panoptic quality (PQ) against decoding alone and a panopticapi-style reference, in one run.

    python bench/panoptic.py [--pairs 351] [--repeat 3] [--data DIR]

Builds CamVid-derived COCO panoptic pairs (train + val annotations, 480×360: Car, Pedestrian,
Bicyclist and SignSymbol split into connected components as things, the rest stuff,
Unlabelled VOID; the prediction a shifted, noisier copy) as PNG files + JSON under $TMPDIR.
Times, on the same files: decoding the 2·N PNGs to id images only (segtools' reader, and
Pillow as panopticapi reads them); segtools
``evaluate_panoptic_files`` at ``jobs=1`` and ``jobs=2``; and the step-by-step reference of
``tests/panoptic_reference.py`` (panopticapi's dict loops, standing in for panopticapi, which
is not on PyPI) over the same files, reading both JSON files first as ``pq_compute`` does, decoded by segtools' reader and, as panopticapi reads
them, by Pillow. The rows run in interleaved rounds (so each sees the same load) and report
wall and CPU seconds (CPU: this process plus its finished workers; on a shared machine the
CPU ratios of the one-process rows are the steadier figures). All produce the same PQ; the
script checks it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

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


def _pillow_ids(path: Path) -> np.ndarray:
    """A panoptic PNG read as panopticapi reads it: Pillow, uint32 channels, R + 256·G + 256²·B."""
    from PIL import Image

    rgb = np.array(Image.open(path), dtype=np.uint32)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def _timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and of its finished child processes) of one call."""
    import resource
    import time

    def cpu() -> float:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    wall, start = time.perf_counter(), cpu()
    fn()
    return time.perf_counter() - wall, cpu() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=351)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds (best of them is reported)")
    parser.add_argument("--data", type=Path, help="keep the built pairs in this folder (reused when it holds them)")
    args = parser.parse_args()

    from panoptic_reference import reference_average, reference_counts

    from segtools.io.parallel import one_opencv_thread, reuse_freed_memory
    from segtools.metrics.panoptic_io import evaluate_panoptic_files, read_panoptic_png

    # every row under the allocator settings segtools' batch map sets (a MALLOC_* variable,
    # e.g. MALLOC_ARENA_MAX=8, leaves glibc's defaults for every row instead)
    malloc = "freed memory kept for reuse" if reuse_freed_memory() else "glibc's defaults"

    with tempfile.TemporaryDirectory() as tmp:
        root = args.data or Path(tmp)
        if not (root / "gt.json").is_file():
            root.mkdir(parents=True, exist_ok=True)
            build(root, args.pairs)
        pred_json, gt_json = root / "pred.json", root / "gt.json"
        gt_doc, pred_doc = json.loads(gt_json.read_text()), json.loads(pred_json.read_text())
        files = [(root / "gt" / g["file_name"], root / "pred" / p["file_name"])
                 for g, p in zip(gt_doc["annotations"], pred_doc["annotations"])]
        n = len(files)
        categories = {c["id"]: (c["name"], bool(c["isthing"])) for c in gt_doc["categories"]}

        def decode_only():  # as the one-process evaluation runs it: OpenCV's pool off
            with one_opencv_thread():
                for gt, pred in files:
                    read_panoptic_png(str(gt)), read_panoptic_png(str(pred))

        def decode_pillow():
            for gt, pred in files:
                _pillow_ids(gt), _pillow_ids(pred)

        def reference(read):
            # pq_compute reads both JSON files, then each image's ids, one image at a time
            gt, pred = json.loads(gt_json.read_text()), json.loads(pred_json.read_text())

            def images():
                for (gt_png, pred_png), g, p in zip(files, gt["annotations"], pred["annotations"]):
                    yield read(gt_png), g["segments_info"], read(pred_png), p["segments_info"]
            return reference_average(reference_counts(images()), categories, None)[0]["pq"]

        pqs: dict[str, float] = {}
        runs = {"decode only (2·N PNGs)": decode_only,
                "decode only, Pillow (panopticapi)": decode_pillow,
                "segtools jobs=1": lambda: pqs.__setitem__(
                    "jobs=1", evaluate_panoptic_files(str(pred_json), str(gt_json), jobs=1).summary()["pq"]),
                "segtools jobs=2": lambda: pqs.__setitem__(
                    "jobs=2", evaluate_panoptic_files(str(pred_json), str(gt_json), jobs=2).summary()["pq"]),
                "reference, segtools' decoder": lambda: pqs.__setitem__(
                    "reference", reference(lambda path: read_panoptic_png(str(path)))),
                "reference, Pillow (panopticapi)": lambda: pqs.__setitem__("panopticapi", reference(_pillow_ids))}
        decode_only()  # warm the page cache and the imports
        walls: dict[str, list[float]] = {name: [] for name in runs}
        cpus: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.repeat):  # interleaved: every row sees the same load, round by round
            for name, fn in runs.items():
                wall, cpu = _timed(fn)
                walls[name].append(wall)
                cpus[name].append(cpu)
        expected = pqs["panopticapi"]
        for key, value in pqs.items():
            assert abs(value - expected) <= 1e-9, (key, value, expected)

    wall = {name: min(values) for name, values in walls.items()}
    cpu = {name: min(values) for name, values in cpus.items()}
    decode, pillow = "decode only (2·N PNGs)", "decode only, Pillow (panopticapi)"
    print(f"PQ over {n} CamVid-derived panoptic pairs (480×360), PQ = {expected:.4f} in every run; "
          f"best of {args.repeat} interleaved rounds; malloc: {malloc}; load average {_load()}\n")
    print(f"{'':34} {'wall s':>7} {'CPU s':>7} {'CPU × decode':>13} {'CPU × Pillow decode':>20}")
    for name in runs:
        print(f"{name:34} {wall[name]:7.3f} {cpu[name]:7.3f} {cpu[name] / cpu[decode]:13.2f} "
              f"{cpu[name] / cpu[pillow]:20.2f}")
    one, two = "segtools jobs=1", "segtools jobs=2"
    print(f"\njobs=2 vs jobs=1 (wall): {wall[one] / wall[two]:.2f}×; segtools jobs=1 vs reference (CPU): "
          f"{cpu['reference, segtools' + chr(39) + ' decoder'] / cpu[one]:.2f}× with segtools' decoder, "
          f"{cpu['reference, Pillow (panopticapi)'] / cpu[one]:.2f}× with Pillow's")


def _load() -> str:
    import os

    return ", ".join(f"{v:.1f}" for v in os.getloadavg())


if __name__ == "__main__":
    main()
