"""Benchmark `segtools convert` pieces against the reference tools, in one run.

    python bench/convert.py            # RLE, polygons, tracing (+ 1000-mask dataset round trip)
    python bench/convert.py --quick    # skip the dataset round trip

Compares, on a 1024×1024 binary mask with a few hundred blobs (≈ the issue's 430 drawn):
RLE encode / decode / string / area / toBbox vs pycocotools (C), polygon rasterisation vs
pycocotools frPyObjects+decode, outline tracing vs cv2.findContours (which traces pixel
centres; ours traces exact pixel-corner outlines, holes included). Times are the best of N
runs (the machine may be shared); the pycocotools encode is timed both on a C-ordered mask
(what a user has: it needs np.asfortranarray first) and on a ready Fortran-ordered one.
Then 1000 CamVid-size masks (synthesised from the CamVid annotations when present) go
masks/ → one COCO JSON → masks/ through the CLI, with peak memory (ru_maxrss) reported.
Last, ``convert --to coco-rle`` of one 2048×2048 mask with ~40k components (:func:`many_parts`)
end to end, against pycocotools encoding each component's full-image binary mask (timed on a
sample of components and scaled to all of them: its cost per component is one full-image
encode), with the RLEs of the sample asserted equal.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _timing import best_seconds

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segtools.formats import polygons as polylib  # noqa: E402
from segtools.formats import rle as rlelib  # noqa: E402


def best_ms(fn, repeat: int = 30) -> float:
    return 1e3 * best_seconds(fn, repeat, warmup=True)


def blobs_mask(size: int = 1024, n: int = 430, seed: int = 0) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), np.uint8)
    for _ in range(n):
        centre = tuple(int(v) for v in rng.integers(0, size, 2))
        cv2.circle(mask, centre, int(rng.integers(3, 20)), 1, -1)
    holes = rng.integers(0, size, (40, 2))
    for y, x in holes:  # a few holes inside blobs
        mask[y: y + 2, x: x + 2] = 0
    return mask


def table(rows) -> None:
    print(f"{'operation':44s} {'segtools ms':>12s} {'reference ms':>13s} {'ratio':>7s}")
    for name, ours, ref in rows:
        ratio = f"{ours / ref:6.2f}×" if ref else "   -"
        ref_text = f"{ref:13.3f}" if ref else f"{'-':>13s}"
        print(f"{name:44s} {ours:12.3f} {ref_text} {ratio}")


def micro() -> None:
    import cv2

    try:
        from pycocotools import mask as mask_api
    except ImportError:
        mask_api = None
    mask = blobs_mask()
    count, _ = cv2.connectedComponents(mask)
    fortran = np.asfortranarray(mask)
    ours = rlelib.encode(mask)
    runs = rlelib.encode_counts(mask)
    print(f"mask 1024×1024, {count - 1} blobs, {runs.size} runs, counts string {len(ours['counts'])} chars\n")
    rows = []
    ref = mask_api.encode(fortran) if mask_api else None
    if mask_api:
        assert ours["counts"].encode() == ref["counts"], "RLE differs from pycocotools"
    rows.append(("RLE encode (C-order mask in)", best_ms(lambda: rlelib.encode(mask)),
                 best_ms(lambda: mask_api.encode(np.asfortranarray(mask))) if mask_api else None))
    rows.append(("RLE encode (both given Fortran order)", best_ms(lambda: rlelib.encode(fortran)),
                 best_ms(lambda: mask_api.encode(fortran)) if mask_api else None))
    rows.append(("RLE decode", best_ms(lambda: rlelib.decode(ours)), best_ms(lambda: mask_api.decode(ref)) if mask_api else None))
    rows.append(("  counts → string", best_ms(lambda: rlelib.counts_to_string(runs)), None))
    rows.append(("  string → counts", best_ms(lambda: rlelib.string_to_counts(ours["counts"])), None))
    rows.append(("RLE area", best_ms(lambda: rlelib.area(ours)), best_ms(lambda: mask_api.area(ref)) if mask_api else None))
    rows.append(("RLE toBbox", best_ms(lambda: rlelib.to_bbox(ours)), best_ms(lambda: mask_api.toBbox(ref)) if mask_api else None))
    traced = polylib.mask_to_polygons(mask)
    rows.append(("trace outline (ours exact) vs findContours",
                 best_ms(lambda: polylib.mask_to_polygons(mask), 10),
                 best_ms(lambda: cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE), 10)))
    flat = [p.ravel().tolist() for p in traced.polygons]
    h, w = mask.shape
    rows.append((f"rasterise {len(flat)} polygons (union)", best_ms(lambda: polylib.polygons_to_mask(flat, h, w), 5),
                 best_ms(lambda: mask_api.decode(mask_api.merge(mask_api.frPyObjects(flat, h, w))), 5) if mask_api else None))
    table(rows)
    exact = (polylib.polygons_to_mask(flat, h, w) == mask).all()
    print(f"\nmask → polygons → mask exact: {exact}")
    if mask_api:
        agree = _polygon_agreement(mask_api)
        print(f"polygon rasterisation identical to pycocotools frPyObjects: {agree[0]}/{agree[1]} random polygons")


def _polygon_agreement(mask_api, n: int = 2000) -> tuple[int, int]:
    rng = np.random.default_rng(1)
    same = 0
    for _ in range(n):
        h, w = (int(v) for v in rng.integers(1, 80, 2))
        points = rng.uniform(-5, 85, (int(rng.integers(3, 12)), 2))
        reference = mask_api.frPyObjects([points.ravel().tolist()], h, w)[0]["counts"]
        same += polylib.polygon_to_rle(points, h, w)["counts"].encode() == reference
    return same, n


def dataset(n: int = 1000, jobs: int = 1) -> None:
    camvid = ROOT.parent / "shared" / "data" / "camvid" / "trainannot"
    sources = sorted(camvid.glob("*.png")) if camvid.is_dir() else []
    work = Path(tempfile.mkdtemp(prefix="segtools-bench-convert-"))
    try:
        masks = work / "masks"
        masks.mkdir()
        if sources:
            for i in range(n):
                os.link(sources[i % len(sources)], masks / f"{i:05d}.png") if i < len(sources) else \
                    shutil.copyfile(sources[i % len(sources)], masks / f"{i:05d}.png")
            origin = f"CamVid trainannot ({len(sources)} files, repeated)"
        else:
            from segtools.io.masks import encode_label_mask

            rng = np.random.default_rng(0)
            for i in range(n):
                labels = (blobs_mask(480, 60, i)[:360] * rng.integers(1, 11)).astype(np.uint8)
                (masks / f"{i:05d}.png").write_bytes(encode_label_mask(labels))
            origin = "synthetic 360×480 masks"
        print(f"\ndataset: {n} masks from {origin}, --jobs {jobs}")
        for target in ("coco", "coco-rle"):
            out = work / f"{target}.json"
            seconds, rss = _run(["convert", str(masks), "--to", target, "--classes", "camvid", "-j", str(jobs), "-o", str(out)])
            print(f"  masks/ → {target:8s} {seconds:7.1f} s  ({n / seconds:6.1f} masks/s)  peak RSS {rss:6.0f} MiB  "
                  f"JSON {out.stat().st_size / 2**20:6.1f} MiB")
            back = work / f"back-{target}"
            seconds, rss = _run(["convert", str(out), "--to", "mask", "-o", str(back)])
            print(f"  {target:8s} → masks/ {seconds:7.1f} s  ({n / seconds:6.1f} masks/s)  peak RSS {rss:6.0f} MiB")
            from segtools.io.masks import read_label_mask

            for name in ("00000.png", f"{n - 1:05d}.png"):
                original, again = read_label_mask(masks / name).labels, read_label_mask(back / name).labels
                assert (original == again).all(), f"{name}: round trip differs"
        print("  round trip exact on the checked masks")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def many_parts(size: int = 2048, classes: int = 12, seed: int = 0) -> np.ndarray:
    """Blocks of ``classes`` labels (1..classes; 0 background) with 1% single-pixel speckle."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, classes + 1, (size // 64, size // 64)).astype(np.uint8)
    labels = np.kron(coarse, np.ones((64, 64), np.uint8))
    noise = rng.random(labels.shape) < 0.01
    labels[noise] = rng.integers(0, classes + 1, int(noise.sum()))
    return labels


def coco_rle_many_parts(sample: int = 300) -> None:
    import json

    import cv2

    try:
        from pycocotools import mask as mask_api
    except ImportError:
        print("\ncoco-rle of many parts: pycocotools not installed, skipped")
        return
    from segtools.io.masks import encode_label_mask

    labels = many_parts()
    work = Path(tempfile.mkdtemp(prefix="segtools-bench-coco-rle-"))
    try:
        source, out = work / "many.png", work / "many.json"
        source.write_bytes(encode_label_mask(labels))
        seconds, rss = _run(["convert", str(source), "--to", "coco-rle", "-o", str(out)])
        annotations = json.loads(out.read_text())["annotations"]
        parts = []  # (class, component image, component number) for every component
        for k in range(0, int(labels.max()) + 1):  # with no class names every value is a category
            count, components = cv2.connectedComponents((labels == k).view(np.uint8), connectivity=8)
            parts.extend((k, components, n) for n in range(1, count))
        assert len(annotations) == len(parts), (len(annotations), len(parts))
        ours = {(a["category_id"], a["segmentation"]["counts"]) for a in annotations}
        rng = np.random.default_rng(0)
        chosen = rng.choice(len(parts), min(sample, len(parts)), replace=False)

        theirs, encode_seconds, mask_seconds = [], 0.0, 0.0
        for i in chosen:  # the binary mask made, then encoded: timed apart
            start = time.perf_counter()
            binary = np.asfortranarray(parts[i][1] == parts[i][2], np.uint8)
            mask_seconds += time.perf_counter() - start
            start = time.perf_counter()
            theirs.append(mask_api.encode(binary))
            encode_seconds += time.perf_counter() - start
        scale = len(parts) / len(chosen)
        reference, with_masks = encode_seconds * scale, (encode_seconds + mask_seconds) * scale
        for i, rle in zip(chosen, theirs):  # category ids: label k → k + 1
            assert (parts[i][0] + 1, rle["counts"].decode()) in ours
        print(f"\nconvert --to coco-rle, {labels.shape[0]}x{labels.shape[1]} mask, {len(parts)} components")
        print(f"  segtools convert (end to end)          {seconds:8.2f} s  peak RSS {rss:6.0f} MiB")
        print(f"  pycocotools encode per component       {reference:8.2f} s  (scaled from {len(chosen)} components; "
              f"their RLEs equal ours)")
        print(f"    + making each full-image binary mask {with_masks:8.2f} s")
        print(f"  ratio segtools / pycocotools           {seconds / reference:8.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(args: list[str]) -> tuple[float, float]:
    start = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run([sys.executable, "-m", "segtools", "-q", *args], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return time.perf_counter() - start, max(before, after) / 1024


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 1000-mask dataset round trip")
    parser.add_argument("--coco-rle-only", action="store_true", help="only the many-parts coco-rle row")
    parser.add_argument("-n", type=int, default=1000, help="masks in the dataset round trip")
    parser.add_argument("-j", "--jobs", type=int, default=1)
    options = parser.parse_args()
    if not options.coco_rle_only:
        micro()
        if not options.quick:
            dataset(options.n, options.jobs)
    coco_rle_many_parts()
