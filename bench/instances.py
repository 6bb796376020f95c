"""Benchmark instance AP (``segtools.metrics.instance``) against pycocotools' COCOeval and
faster-coco-eval, side by side in one run, the same numbers asserted.

    python bench/instances.py [--images 400] [--repeat 3] [--iou-type segm]

A COCO-val-like workload: N images of 480×640, ~10 ground truths (ellipses of every area
range, 5% crowds) and ~10 detections each (shifted or resized copies of the ground truths,
some of the wrong class, some spurious; overlapping), 20 categories, compressed RLE.
Timed: COCOeval ``evaluate`` + ``accumulate`` + ``summarize`` (its printing silenced), the
same for faster-coco-eval (if installed; a bench-only reference, never a dependency), and
``InstanceEvaluation.add_image`` for every image + ``summary``. Loading the JSON is not timed.
The three run in interleaved rounds; wall and CPU seconds (all threads of this process) are
reported, best of the rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segtools.formats.rle_regions import encode_regions  # noqa: E402
from segtools.metrics.instance import InstanceEvaluation, Protocol  # noqa: E402

HEIGHT, WIDTH, CATEGORIES = 480, 640, 20
STATS = ["ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large",
         "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large"]


def _paint(rng, layer: np.ndarray, number: int, cy: float, cx: float, ry: float, rx: float) -> None:
    top, bottom = int(max(cy - ry, 0)), int(min(cy + ry + 1, HEIGHT))
    left, right = int(max(cx - rx, 0)), int(min(cx + rx + 1, WIDTH))
    yy, xx = np.mgrid[top:bottom, left:right]
    inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    layer[top:bottom, left:right][inside] = number


def make_workload(n_images: int, seed: int = 0) -> tuple[dict, list[dict]]:
    rng = np.random.default_rng(seed)
    images, gts, dts = [], [], []
    for i in range(n_images):
        image_id = i + 1
        images.append({"id": image_id, "file_name": f"{image_id:012d}.jpg", "height": HEIGHT, "width": WIDTH})
        gt_layer = np.zeros((HEIGHT, WIDTH), np.int32)
        dt_layers = [np.zeros((HEIGHT, WIDTH), np.int32) for _ in range(3)]
        objects, dt_objects = [], []
        for n in range(1, int(rng.integers(6, 15)) + 1):
            radius = float(np.exp(rng.uniform(np.log(3), np.log(120))))  # small, medium and large
            cy, cx = rng.uniform(0, HEIGHT), rng.uniform(0, WIDTH)
            ry, rx = radius * rng.uniform(0.6, 1.4), radius * rng.uniform(0.6, 1.4)
            _paint(rng, gt_layer, n, cy, cx, ry, rx)
            objects.append((int(rng.integers(1, CATEGORIES + 1)), int(rng.random() < 0.05), cy, cx, ry, rx))
        for k in range(int(rng.integers(6, 15))):
            if objects and rng.random() < 0.8:
                category, _, cy, cx, ry, rx = objects[int(rng.integers(len(objects)))]
                cy, cx = cy + rng.normal(0, ry * 0.15), cx + rng.normal(0, rx * 0.15)
                ry, rx = ry * rng.uniform(0.8, 1.2), rx * rng.uniform(0.8, 1.2)
                if rng.random() < 0.1:
                    category = int(rng.integers(1, CATEGORIES + 1))
            else:
                category, cy, cx = int(rng.integers(1, CATEGORIES + 1)), rng.uniform(0, HEIGHT), rng.uniform(0, WIDTH)
                ry = rx = float(np.exp(rng.uniform(np.log(3), np.log(80))))
            layer = k % 3
            _paint(rng, dt_layers[layer], len(dt_objects) + 1, cy, cx, ry, rx)
            dt_objects.append((layer, category, round(float(rng.random()), 3)))
        numbers, rles, areas, boxes = encode_regions(gt_layer)
        for number, rle, area, box in zip(numbers.tolist(), rles, areas.tolist(), boxes):
            category, crowd = objects[number - 1][:2]
            gts.append({"id": len(gts) + 1, "image_id": image_id, "category_id": category, "segmentation": rle,
                        "area": float(area), "bbox": box, "iscrowd": crowd})
        found = {}
        for layer in dt_layers:
            for number, rle, box in zip(*[v for i, v in enumerate(encode_regions(layer)) if i != 2]):
                found[int(number)] = (rle, box)
        for number, (layer, category, score) in enumerate(dt_objects, 1):
            if number in found:
                rle, box = found[number]
                dts.append({"image_id": image_id, "category_id": category, "segmentation": rle, "bbox": box,
                            "score": score})
    categories = [{"id": c, "name": f"class{c}"} for c in range(1, CATEGORIES + 1)]
    return {"images": images, "annotations": gts, "categories": categories}, dts


def run_pycocotools(gt_data: dict, results: list[dict], iou_type: str, module: str = "pycocotools"):
    if module == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    else:
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(gt_data)
        gt.createIndex()
        dt = gt.loadRes(copy.deepcopy(results))

    def timed():
        with contextlib.redirect_stdout(io.StringIO()):
            evaluation = COCOeval(gt, dt, iou_type)
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
        return np.array(evaluation.stats)

    return timed


def run_ours(gt_data: dict, results: list[dict], iou_type: str):
    gt_of, dt_of = {}, {}
    for ann in gt_data["annotations"]:
        gt_of.setdefault(ann["image_id"], []).append(ann)
    for ann in results:
        d = dict(ann)
        d["area"] = d["bbox"][2] * d["bbox"][3]  # what loadRes sets when results carry boxes
        dt_of.setdefault(ann["image_id"], []).append(d)
    categories = {c["id"]: c["name"] for c in gt_data["categories"]}
    images = [image["id"] for image in gt_data["images"]]

    def timed():
        evaluation = InstanceEvaluation(Protocol(iou_type=iou_type), categories)
        for image_id in images:
            evaluation.add_image(gt_of.get(image_id, []), dt_of.get(image_id, []), image_id=image_id)
        summary = evaluation.summary()
        return np.array([summary[k] for k in STATS])

    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--iou-type", default="segm", choices=["segm", "bbox"])
    args = parser.parse_args()
    gt_data, results = make_workload(args.images)
    print(f"{args.images} images {HEIGHT}x{WIDTH}, {len(gt_data['annotations'])} ground truths "
          f"({sum(a['iscrowd'] for a in gt_data['annotations'])} crowd), {len(results)} detections, "
          f"{CATEGORIES} categories, iou_type={args.iou_type}")
    runners = {"pycocotools COCOeval": run_pycocotools(gt_data, results, args.iou_type)}
    try:
        import faster_coco_eval  # noqa: F401

        runners["faster-coco-eval"] = run_pycocotools(gt_data, results, args.iou_type, "faster")
    except ImportError:
        print("faster-coco-eval not installed: pip install faster-coco-eval (bench only)")
    runners["segtools"] = run_ours(gt_data, results, args.iou_type)
    reference = runners["pycocotools COCOeval"]()
    for name, fn in runners.items():
        stats = fn()
        assert np.abs(stats - reference).max() <= 1e-9, (name, stats, reference)
    walls: dict[str, list[float]] = {name: [] for name in runners}
    cpus: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.repeat):  # interleaved rounds: every evaluator sees the same load
        for name, fn in runners.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            walls[name].append(time.perf_counter() - wall)
            cpus[name].append(time.process_time() - cpu)
    wall = {name: min(values) for name, values in walls.items()}
    cpu = {name: min(values) for name, values in cpus.items()}
    base = "pycocotools COCOeval"
    print(f"best of {args.repeat} interleaved rounds; load average "
          + ", ".join(f"{v:.1f}" for v in os.getloadavg()))
    print(f"{'evaluator':<22} {'wall s':>8} {'vs COCOeval':>12} {'CPU s':>8} {'vs COCOeval':>12}")
    for name in runners:
        print(f"{name:<22} {wall[name]:8.3f} {wall[base] / wall[name]:11.1f}x {cpu[name]:8.3f} "
              f"{cpu[base] / cpu[name]:11.1f}x")
    print("stats (all equal to COCOeval within 1e-9): " + ", ".join(f"{k}={v:.4f}" for k, v in zip(STATS, reference)))


if __name__ == "__main__":
    main()
