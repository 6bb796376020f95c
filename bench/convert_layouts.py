"""What the real-export fixes of ``convert`` cost, against a reference in the same run.

1. labelme ``line``/``linestrip``/``point`` shapes: segtools draws each with Pillow on a crop
   around it; the reference is labelme's ``shape_to_mask`` (one Pillow call on a zero image of
   the whole size per shape). Equal pixels are asserted on every shape.
2. YOLO-seg lines of multi-part objects: the overlap check (and union where parts overlap)
   against joining the parts without it (the previous path, which made overlaps holes).
3. Polygons cut at the image border against clamping their vertices: time, and the pixels
   each gets wrong against the unclipped polygon (COCO rasterisation).

    python bench/convert_layouts.py [--shapes 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from _timing import best_seconds

from segtools.formats import Summary, labelme, polygon_clip, yolo
from segtools.formats import polygons as polylib


def shape_to_mask(size, points, kind, line_width=10, point_size=5):
    """labelme's reference, from its documented Pillow calls."""
    from PIL import Image, ImageDraw

    mask = Image.fromarray(np.zeros(size, np.uint8))
    draw = ImageDraw.Draw(mask)
    xy = [tuple(p) for p in points]
    if kind == "point":
        (cx, cy), r = xy[0], point_size
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=1, fill=1)
    else:
        draw.line(xy=xy, fill=1, width=line_width)
    return np.array(mask, dtype=bool)


def labelme_rows(count: int, repeat: int) -> list[tuple]:
    rng = np.random.default_rng(0)
    height, width = 1080, 1920
    shapes = []
    for k in range(count):
        kind = ("line", "linestrip", "point")[k % 3]
        n = {"line": 2, "linestrip": 5, "point": 1}[kind]
        centre = rng.uniform([0, 0], [width, height])
        points = (centre + rng.uniform(-60, 60, (n, 2))).round(2).tolist()
        shapes.append({"label": "x", "shape_type": kind, "points": points, "group_id": None})
    data = {"imageHeight": height, "imageWidth": width, "shapes": shapes}
    ours = best_seconds(lambda: labelme.objects(data, "bench.json"), repeat)
    reference = best_seconds(lambda: [shape_to_mask((height, width), s["points"], s["shape_type"]) for s in shapes],
                             repeat)
    _, objects = labelme.objects(data, "bench.json")
    for obj, shape in zip(objects[:200], shapes[:200]):  # equal pixels (a sample: full masks are big)
        assert np.array_equal(obj.mask.astype(bool), shape_to_mask((height, width), shape["points"], shape["shape_type"]))
    return [(f"labelme line/point shapes → objects, {count} on 1080×1920", ours, "labelme shape_to_mask per shape",
             reference)]


def _square(x, y, s):
    return np.array([[x, y], [x + s, y], [x + s, y + s], [x, y + s]], np.float64)


def yolo_rows(count: int, repeat: int) -> list[tuple]:
    rng = np.random.default_rng(1)
    height = width = 1024
    anns = []
    for i in range(count):
        x, y = rng.uniform(40, 900, 2)
        gap = 30 if i % 2 else 10  # half the objects have overlapping parts
        parts = [_square(x, y, 40), _square(x + gap + 5, y + 5, 40)]
        anns.append({"id": i, "category_id": 1, "segmentation": [p.reshape(-1).tolist() for p in parts]})
    label_of = {1: 0}
    now = best_seconds(lambda: yolo.annotation_lines(anns, height, width, label_of, True, "bridge", summary=Summary()),
                       repeat)

    def joined_only():
        for ann in anns:
            parts = [np.asarray(p).reshape(-1, 2) for p in ann["segmentation"]]
            ring = polylib.join_parts(parts)
            yolo.polygon_line(0, np.clip(ring / [width, height], 0, 1))

    before = best_seconds(joined_only, repeat)
    return [(f"COCO → YOLO-seg lines, {count} two-part objects (half overlapping), 1024²", now,
             "join without the overlap check (before)", before)]


def clip_rows(count: int, repeat: int) -> list[tuple]:
    rng = np.random.default_rng(2)
    height, width = 480, 640
    rings = [rng.uniform([-200, -150], [840, 630], (int(rng.integers(3, 12)), 2)) for _ in range(count)]
    cut = best_seconds(lambda: [polygon_clip.clip_to_image(r, width, height) for r in rings], repeat)
    clamp = best_seconds(lambda: [np.clip(r, 0, [width, height]) for r in rings], repeat)
    wrong_cut = wrong_clamp = total = 0
    for ring in rings[:300]:
        truth = polylib.polygons_to_mask([ring], height, width)
        total += int(truth.sum())
        clipped = polygon_clip.clip_to_image(ring, width, height)
        if len(clipped) >= 3:
            wrong_cut += int((polylib.polygons_to_mask([clipped], height, width) != truth).sum())
        else:
            wrong_cut += int(truth.sum())
        wrong_clamp += int((polylib.polygons_to_mask([np.clip(ring, 0, [width, height])], height, width) != truth).sum())
    note = (f"pixels wrong vs the unclipped polygon (300 rings, {total:,} px): cut {wrong_cut:,}, "
            f"clamp {wrong_clamp:,}")
    return [(f"polygons cut at the border, {count} random rings reaching out", cut, "clamp vertices", clamp, note)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = labelme_rows(args.shapes, args.repeat) + yolo_rows(args.shapes, args.repeat) + clip_rows(args.shapes, args.repeat)
    print(f"{'case':<78} {'segtools':>10} {'reference':>10}  ratio  reference is")
    for row in rows:
        case, ours, what, reference = row[:4]
        print(f"{case:<78} {ours * 1e3:8.1f}ms {reference * 1e3:8.1f}ms {ours / reference:6.2f}×  {what}")
        if len(row) > 4:
            print(f"  {row[4]}")
    assert not math.isnan(rows[0][1])


if __name__ == "__main__":
    main()
