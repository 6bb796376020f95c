"""Benchmark `segtools visualize`: overlay throughput on CamVid against just decoding and
encoding the same PNGs, and the overlay kernel against scikit-image's ``label2rgb``.

    python bench/visualize.py [--frames 100] [--jobs 2] [--repeat 3]

Target (issue 6): overlays for 100 CamVid frames at --jobs 2 within 1.5x of decode+encode.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from _timing import best_seconds

ROOT = Path(__file__).resolve().parents[1]
CAMVID = ROOT.parent / "shared" / "data" / "camvid"


def decode_encode(job: tuple[str, str]) -> None:
    """The floor: read the frame, encode it as PNG, write it."""
    from segtools.io.images import encode_image, read_image
    from segtools.io.streams import write_bytes

    frame, output = job
    write_bytes(output, encode_image(read_image(frame), "png"))


def best_of(repeat: int, fn) -> float:
    return best_seconds(fn, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not (CAMVID / "valannot").is_dir():
        sys.exit(f"needs {CAMVID} (CamVid val frames and masks)")

    from segtools.io.images import read_image
    from segtools.io.masks import read_label_mask
    from segtools.io.meta import load_classes
    from segtools.io.parallel import pmap
    from segtools.viz.overlay import overlay_labels
    from segtools.viz.draw_options import DrawOptions
    from segtools.viz.render import DrawJob, run_job

    names = sorted(p.name for p in (CAMVID / "valannot").glob("*.png"))[: args.frames]
    frames = [str(CAMVID / "val" / n) for n in names]
    masks = [str(CAMVID / "valannot" / n) for n in names]
    meta = load_classes("camvid")
    options = DrawOptions(classes=meta, colours=meta)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        floor_jobs = [(f, str(out / f"floor_{i}.png")) for i, f in enumerate(frames)]
        draw_jobs = [DrawJob(m, f, None, str(out / f"overlay_{i}.png"), options)
                     for i, (m, f) in enumerate(zip(masks, frames))]
        floor = best_of(args.repeat, lambda: list(pmap(decode_encode, floor_jobs, args.jobs)))
        ours = best_of(args.repeat, lambda: list(pmap(run_job, draw_jobs, args.jobs)))
        cli = best_of(args.repeat, lambda: subprocess.run(
            [sys.executable, "-m", "segtools", "visualize", str(CAMVID / "valannot"), "--over", str(CAMVID / "val"),
             "--classes", "camvid", "-o", str(out / "cli"), "--jobs", str(args.jobs)],
            check=True, capture_output=True))

    # the kernel alone, one core: our overlay vs scikit-image's label2rgb (float, blends everywhere)
    pairs = [(read_image(f), read_label_mask(m).labels) for f, m in zip(frames[:20], masks[:20])]
    kernel_ours = best_of(args.repeat, lambda: [overlay_labels(img, lab, meta, alpha=0.5) for img, lab in pairs])
    try:
        from skimage.color import label2rgb

        colours = np.asarray(meta.palette, float) / 255.0
        kernel_ref = best_of(args.repeat, lambda: [
            label2rgb(lab, img, colors=colours, alpha=0.5, bg_label=11, image_alpha=1, kind="overlay",
                      saturation=1) for img, lab in pairs])
    except ImportError:
        kernel_ref = float("nan")

    n = len(frames)
    print(f"CamVid val, {n} frames 480x360, --jobs {args.jobs}, best of {args.repeat}, {os.cpu_count()} CPUs")
    print(f"{'what':58s} {'total s':>8s} {'ms/frame':>9s} {'ratio':>6s}")
    rows = [
        ("floor: decode frame + encode PNG + write (pmap)", floor, 1.0),
        ("segtools overlay: decode frame+mask, draw, encode (pmap)", ours, ours / floor),
        ("segtools visualize CLI end to end (incl. start-up)", cli, cli / floor),
    ]
    for what, seconds, ratio in rows:
        print(f"{what:58s} {seconds:8.2f} {1000 * seconds / n:9.1f} {ratio:6.2f}")
    print(f"{'kernel, 20 frames, 1 core: segtools overlay_labels':58s} {kernel_ours:8.3f} "
          f"{1000 * kernel_ours / len(pairs):9.2f}")
    print(f"{'kernel, 20 frames, 1 core: skimage label2rgb(kind=overlay)':58s} {kernel_ref:8.3f} "
          f"{1000 * kernel_ref / len(pairs):9.2f} {kernel_ref / kernel_ours:6.1f}x slower")
    print(f"target: overlay <= 1.5x floor -> {'PASS' if ours / floor <= 1.5 else 'FAIL'} ({ours / floor:.2f}x)")


if __name__ == "__main__":
    main()
