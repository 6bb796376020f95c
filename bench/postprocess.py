"""Benchmark ``segtools.morphology`` against scikit-image / SciPy in one run.

    python bench/postprocess.py [--repeat 5]

1. Binary 1024×1024 mask with a few hundred components: min-area removal (ours: OpenCV
   components + lookup; scikit-image ``remove_small_objects``; a naive Python loop over
   components) and a 3×3 opening (OpenCV vs SciPy).
2. A 19-class 1024×2048 label map through open 3 → min-area 100 → fill-holes 100: ours
   (``clean_labels``) against a straightforward per-class scikit-image/SciPy implementation
   of the same rules (:func:`reference_clean`), checking that the outputs are identical.
3. The same map through min-area 100 alone (1% speckle: ~20k small parts): ours against
   per-class scikit-image ``remove_small_objects`` + one SciPy ``distance_transform_edt``
   refill (each removed pixel takes its nearest kept pixel's class; :func:`reference_speckle`,
   which may give a pixel back to its own class, so its output is compared, not asserted)
   and against segtools' previous path (:func:`previous_speckle`: labelling, bincount and
   lookup per class, one distance transform per donor class), whose output must be identical.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

from _timing import best_seconds

warnings.filterwarnings("ignore", category=FutureWarning)


# ----------------------------------------------------------------- the reference pipeline


def reference_refill(labels: np.ndarray, removed: np.ndarray, ignore_index: int | None) -> np.ndarray:
    """Removed pixels take the nearest kept pixel's class other than their own (SciPy EDT)."""
    from scipy import ndimage

    out = labels.copy()
    if not removed.any():
        return out
    donors = ~removed if ignore_index is None else ~removed & (labels != ignore_index)
    former = labels[removed].astype(np.int64)
    best = np.full((2, former.size), np.inf)
    best_label = np.full((2, former.size), -1)
    for k in np.unique(labels[donors]):
        distance = ndimage.distance_transform_edt(~(donors & (labels == k)))[removed]
        first = distance < best[0]
        second = ~first & (distance < best[1])
        best[1][first], best_label[1][first] = best[0][first], best_label[0][first]
        best[0][first], best_label[0][first] = distance[first], k
        best[1][second], best_label[1][second] = distance[second], k
    new = np.where(best_label[0] != former, best_label[0], best_label[1])
    out[removed] = np.where(new < 0, former, new)
    return out


def reference_clean(labels: np.ndarray, open_size: int, min_area: int, hole_area: int,
                    ignore_index: int | None = 255, connectivity: int = 8) -> np.ndarray:
    """open → min-area → fill-holes, class by class, with scikit-image (the plain way)."""
    from skimage import measure, morphology

    sk_conn = 2 if connectivity == 8 else 1
    classes = lambda lab: [k for k in np.unique(lab) if k != ignore_index]  # noqa: E731
    out = labels.copy()
    if open_size:
        footprint = np.ones((open_size, open_size), bool)
        removed = np.zeros(out.shape, bool)
        for k in classes(out):
            mask = out == k
            removed |= mask & ~morphology.binary_opening(mask, footprint, mode="ignore")
        out = reference_refill(out, removed, ignore_index)
    if min_area:
        removed = np.zeros(out.shape, bool)
        for k in classes(out):
            mask = out == k
            removed |= mask & ~morphology.remove_small_objects(mask, max_size=min_area - 1, connectivity=sk_conn)
        out = reference_refill(out, removed, ignore_index)
    if hole_area:
        before = out.copy()
        best = np.full(out.shape, np.inf)
        # a frame of background larger than hole_area: regions touching the border are no holes
        pad = 1 if 2 * sum(out.shape) + 4 > hole_area else hole_area
        inner = (slice(pad, -pad), slice(pad, -pad))
        for k in classes(before):
            mask = np.pad(before == k, pad)
            filled = morphology.remove_small_holes(mask, max_size=hole_area, connectivity=3 - sk_conn)
            holes = (filled & ~mask)[inner]
            regions = measure.label(~mask, connectivity=3 - sk_conn)[inner]
            area = np.bincount(regions.ravel())[regions]
            wins = holes & (area < best)
            best[wins] = area[wins]
            out[wins] = k
        if ignore_index is not None:
            out[before == ignore_index] = ignore_index
    return out


def reference_speckle(labels: np.ndarray, min_area: int, ignore_index: int | None = 255) -> np.ndarray:
    """min-area the plain way: per-class ``remove_small_objects``, one EDT refill."""
    from scipy import ndimage
    from skimage import morphology

    removed = np.zeros(labels.shape, bool)
    for k in np.unique(labels):
        if k != ignore_index:
            mask = labels == k
            removed |= mask & ~morphology.remove_small_objects(mask, max_size=min_area - 1, connectivity=2)
    donors = ~removed if ignore_index is None else ~removed & (labels != ignore_index)
    _, (rows, cols) = ndimage.distance_transform_edt(~donors, return_indices=True)
    out = labels.copy()
    out[removed] = labels[rows[removed], cols[removed]]
    return out


def previous_speckle(labels: np.ndarray, min_area: int, ignore_index: int | None = 255) -> np.ndarray:
    """segtools' min-area before issue 22: per-class labelling, bincount and lookup; one
    exact distance transform per donor class for every removed pixel."""
    from segtools.morphology import components, refill

    removed = np.zeros(labels.shape, bool)
    classes = [k for k in np.unique(labels) if k != ignore_index]
    for _k, box, parts, areas in components._class_components(labels, classes, 8):
        small = areas < min_area
        small[0] = False
        removed[box] |= np.take(small, parts)
    out = labels.copy()
    flat = np.flatnonzero(removed)
    donors = ~removed if ignore_index is None else ~removed & (labels != ignore_index)
    former = labels.ravel()[flat].astype(np.int64)
    out.ravel()[flat] = refill._nearest_by_transforms(labels, donors, flat, former).astype(labels.dtype)
    return out


# ----------------------------------------------------------------- data and timing


def binary_blobs(size: int = 1024, seed: int = 0) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), np.uint8)
    for _ in range(430):
        y, x = rng.integers(0, size, 2)
        radius = int(rng.integers(1, 14))
        cv2.circle(mask, (int(x), int(y)), radius, 1, -1)
    return mask.astype(bool)


def label_map(height: int = 1024, width: int = 2048, classes: int = 19, seed: int = 0) -> np.ndarray:
    """Blobby regions of 19 classes with 1% speckle noise, small blobs and void."""
    import cv2

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, classes, (height // 64, width // 64)).astype(np.uint8)
    labels = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_NEAREST)
    for _ in range(2000):
        y, x = int(rng.integers(0, height)), int(rng.integers(0, width))
        cv2.circle(labels, (x, y), int(rng.integers(1, 9)), int(rng.integers(0, classes)), -1)
    noise = rng.random((height, width)) < 0.01
    labels[noise] = rng.integers(0, classes, int(noise.sum()))
    labels[rng.random((height, width)) < 0.001] = 255
    return labels


def best_ms(fn, repeat: int) -> float:
    return 1e3 * best_seconds(fn, repeat)


def loop_over_components(mask: np.ndarray, min_area: int) -> np.ndarray:
    """The naive recipe: label, then one Python iteration per component."""
    from scipy import ndimage

    components, count = ndimage.label(mask, structure=np.ones((3, 3)))
    out = mask.copy()
    for i in range(1, count + 1):
        region = components == i
        if region.sum() < min_area:
            out[region] = False
    return out


def main() -> None:
    import cv2
    from scipy import ndimage
    from skimage import morphology

    from segtools.morphology.components import fill_small_holes, remove_small_objects
    from segtools.morphology.pipeline import Cleanup, clean_labels

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    fast_repeat = max(repeat, 20)  # millisecond timings need more tries on a loaded machine

    mask = binary_blobs()
    count = cv2.connectedComponents(mask.view(np.uint8), connectivity=8)[0] - 1
    ours = remove_small_objects(mask, 100)
    theirs = morphology.remove_small_objects(mask, max_size=99, connectivity=2)
    assert np.array_equal(ours, theirs)
    assert np.array_equal(fill_small_holes(mask, 30), morphology.remove_small_holes(
        np.pad(mask, 1), max_size=30, connectivity=1)[1:-1, 1:-1])  # the 1-px frame has > 30 px
    square = np.ones((3, 3), np.uint8)
    assert np.array_equal(cv2.morphologyEx(mask.view(np.uint8), cv2.MORPH_OPEN, square).view(bool),
                          morphology.binary_opening(mask, square.astype(bool), mode="ignore"))
    rows = [
        ("binary min-area 100: segtools (cv2 components + lookup)", best_ms(lambda: remove_small_objects(mask, 100), fast_repeat)),
        ("binary min-area 100: skimage remove_small_objects", best_ms(
            lambda: morphology.remove_small_objects(mask, max_size=99, connectivity=2), fast_repeat)),
        ("binary min-area 100: Python loop over components", best_ms(lambda: loop_over_components(mask, 100), 1)),
        ("binary opening 3x3: cv2.morphologyEx", best_ms(
            lambda: cv2.morphologyEx(mask.view(np.uint8), cv2.MORPH_OPEN, square), fast_repeat)),
        ("binary opening 3x3: scipy.ndimage.binary_opening", best_ms(
            lambda: ndimage.binary_opening(mask, np.ones((3, 3), bool)), fast_repeat)),
    ]
    print(f"binary {mask.shape[0]}x{mask.shape[1]} mask, {count} components")
    for name, ms in rows:
        print(f"  {name:58s} {ms:9.2f} ms")

    labels = label_map()
    cleanup = Cleanup(open=3, min_area=100, fill_holes=100, ignore_index=255)
    ours = clean_labels(labels, cleanup)
    theirs = reference_clean(labels, 3, 100, 100, 255)
    identical = np.array_equal(ours, theirs)
    ours_ms = best_ms(lambda: clean_labels(labels, cleanup), repeat)
    theirs_ms = best_ms(lambda: reference_clean(labels, 3, 100, 100, 255), max(1, repeat // 2))
    changed = float((ours != labels).mean())
    print(f"\n19-class {labels.shape[0]}x{labels.shape[1]} map: open 3 -> min-area 100 -> fill-holes 100 "
          f"({100 * changed:.1f}% of pixels changed)")
    print(f"  {'segtools clean_labels (cv2, per-class bounding boxes)':58s} {ours_ms:9.1f} ms")
    print(f"  {'per-class scikit-image + scipy EDT reference':58s} {theirs_ms:9.1f} ms")
    print(f"  speed-up {theirs_ms / ours_ms:.2f}x, outputs identical: {identical}")
    if not identical:
        raise SystemExit(f"outputs differ at {int((ours != theirs).sum())} pixels")

    speckle = Cleanup(min_area=100, ignore_index=255)
    ours = clean_labels(labels, speckle)
    before = previous_speckle(labels, 100)
    plain = reference_speckle(labels, 100)
    parts = sum(cv2.connectedComponents((labels == k).view(np.uint8), connectivity=8)[0] - 1
                for k in range(19))
    ours_ms = best_ms(lambda: clean_labels(labels, speckle), repeat)
    before_ms = best_ms(lambda: previous_speckle(labels, 100), max(1, repeat // 2))
    plain_ms = best_ms(lambda: reference_speckle(labels, 100), max(1, repeat // 2))
    print(f"\n19-class {labels.shape[0]}x{labels.shape[1]} map, 1% speckle ({parts} parts): min-area 100 "
          f"({100 * float((ours != labels).mean()):.1f}% of pixels changed)")
    print(f"  {'segtools clean_labels (one labelling pass, neighbourhood refill)':58s} {ours_ms:9.1f} ms")
    print(f"  {'segtools before (per class; a distance transform per class)':58s} {before_ms:9.1f} ms")
    print(f"  {'per-class skimage remove_small_objects + one scipy EDT':58s} {plain_ms:9.1f} ms")
    print(f"  speed-up {plain_ms / ours_ms:.2f}x over the plain way ({100 * float((ours == plain).mean()):.2f}% "
          f"of pixels agree), {before_ms / ours_ms:.2f}x over before; identical to before: "
          f"{np.array_equal(ours, before)}")
    if not np.array_equal(ours, before):
        raise SystemExit(f"min-area output changed at {int((ours != before).sum())} pixels")


if __name__ == "__main__":
    main()
