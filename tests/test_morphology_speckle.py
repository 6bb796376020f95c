"""The speckle fast paths of segtools.morphology give exactly what the per-class paths gave.

``refill_nearest`` searches each removed pixel's neighbourhood before any distance
transform; ``small_components`` labels every class into one component image. Both are
compared here with the previous implementations (one exact distance transform per donor
class; one labelling, ``np.bincount`` and lookup per class) on random speckled masks with
many equal distances.
"""

from __future__ import annotations

import numpy as np
import pytest

from segtools.morphology import components, refill
from segtools.morphology.components import _class_components, small_components


def speckled(seed: int, shape=(61, 83), classes: int = 5, speckle: float = 0.08, big_hole: bool = False):
    """Blocks of a few classes, speckle of every class, some void; optionally a large
    removed region (its middle is far from every donor)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, classes, (shape[0] // 8 + 1, shape[1] // 8 + 1))
    labels = np.kron(coarse, np.ones((8, 8), np.int64))[:shape[0], :shape[1]].astype(np.uint8)
    noise = rng.random(shape) < speckle
    labels[noise] = rng.integers(0, classes, int(noise.sum()))
    labels[rng.random(shape) < 0.01] = 255
    if big_hole:
        labels[10:50, 20:70] = classes  # one class, removed whole below
    return labels


def per_class_small_components(labels, classes, min_area, connectivity=8):
    """small_components as it was: labelling, bincount and lookup class by class."""
    removed = np.zeros(labels.shape, bool)
    limits = {int(k): (min_area.get(int(k), 0) if isinstance(min_area, dict) else min_area) for k in classes}
    for k, box, components, areas in _class_components(labels, [k for k, v in limits.items() if v > 1],
                                                        connectivity):
        small = areas < limits[k]
        small[0] = False
        removed[box] |= np.take(small, components)
    return removed


def refill_by_transforms(labels, removed, ignore_index):
    """refill_nearest as it was: one distance transform per donor class for every pixel."""
    out = labels.copy()
    flat = np.flatnonzero(removed)
    if flat.size:
        donors = ~removed if ignore_index is None else ~removed & (labels != ignore_index)
        former = labels.ravel()[flat].astype(np.int64)
        out.ravel()[flat] = refill._nearest_by_transforms(labels, donors, flat, former).astype(labels.dtype)
    return out


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("one_pass_boxes", [0, 10**9])  # every class in one pass; each on its box
def test_small_components_in_one_image_equal_the_per_class_ones(seed, connectivity, one_pass_boxes, monkeypatch):
    monkeypatch.setattr(components, "ONE_PASS_BOXES", one_pass_boxes)
    labels = speckled(seed, big_hole=seed % 2 == 1)
    classes = [0, 1, 2, 3, 4, 5]
    for min_area in (2, 5, 40, {0: 3, 2: 30, 5: 10_000}):
        assert np.array_equal(small_components(labels, classes, min_area, connectivity),
                              per_class_small_components(labels, classes, min_area, connectivity))


@pytest.mark.parametrize("connectivity", [4, 8])
def test_one_pass_components_join_crossing_diagonals_of_two_classes(connectivity):
    labels = np.array([[1, 2, 2], [2, 1, 3], [3, 3, 1]], np.uint8)  # 1s and 2s cross at the top left
    ids, areas = components.same_class_components(labels, connectivity)
    expected = {8: [[0, 1, 1], [1, 0, 2], [2, 2, 0]], 4: [[0, 1, 1], [2, 3, 4], [5, 5, 6]]}[connectivity]
    assert ids.tolist() == expected and areas.sum() == labels.size


def test_speckle_of_many_classes_is_labelled_in_one_pass(monkeypatch):
    import cv2

    labels = speckled(1, classes=6)
    expected = per_class_small_components(labels, range(6), 10)
    calls = []
    labelling = cv2.connectedComponents
    monkeypatch.setattr(cv2, "connectedComponents", lambda *a, **k: calls.append(1) or labelling(*a, **k))
    assert np.array_equal(small_components(labels, range(6), 10), expected)
    assert len(calls) == 1  # not one per class


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("radius", [None, 1, 2])
def test_refill_by_neighbourhood_equals_the_distance_transforms(seed, radius, monkeypatch):
    if radius is not None:  # small windows: most pixels go on to the transforms, mixed with found ones
        monkeypatch.setattr(refill, "WINDOW_RADIUS", radius)
        monkeypatch.setattr(refill, "MAX_RADIUS", 2 * radius)
    labels = speckled(seed, classes=3 + seed % 4, speckle=0.05 + 0.05 * (seed % 3), big_hole=seed % 2 == 0)
    removed = small_components(labels, range(8), 12)
    removed |= labels == (3 + seed % 4)  # the large region too, when there is one
    for ignore_index in (255, None):
        assert np.array_equal(refill.refill_nearest(labels, removed, ignore_index),
                              refill_by_transforms(labels, removed, ignore_index))


def test_refill_ties_go_to_the_lower_class_and_never_back():
    # the middle pixel is 1 from classes 3 (left), 2 (right), 1 (up) and its own class 0 (down)
    labels = np.array([[9, 1, 9], [3, 0, 2], [9, 0, 9]], np.uint8)
    removed = np.zeros(labels.shape, bool)
    removed[1, 1] = True
    assert refill.refill_nearest(labels, removed, 9)[1, 1] == 1
    assert refill.refill_nearest(labels, removed, None)[1, 1] == 1


def test_speckle_is_refilled_without_a_distance_transform(monkeypatch):
    labels = speckled(0, shape=(128, 160), speckle=0.02)
    removed = small_components(labels, range(5), 20)
    expected = refill_by_transforms(labels, removed, 255)

    def no_transform(*_args):
        raise AssertionError("speckle should find its donors in the neighbourhood")

    monkeypatch.setattr(refill, "_nearest_by_transforms", no_transform)
    assert np.array_equal(refill.refill_nearest(labels, removed, 255), expected)


def test_small_components_writes_into_a_strided_box():
    """Found by hypothesis in CI: a class whose bounding box is a strided column of the mask
    (OpenCV's add refused that destination); the ids land in place and both lone pixels go."""
    from segtools.morphology.components import small_components

    labels = np.zeros((4, 6), np.uint8)
    labels[0, 0] = labels[3, 0] = 1
    small = small_components(labels, [0, 1], 2, 4)
    assert small.tolist() == (labels == 1).tolist()


def test_ties_of_equal_distance_do_not_depend_on_the_last_bit_of_a_square_root(monkeypatch):
    """OpenCV 5's distance transform gives a square root one bit off or not with the input
    buffer's alignment; a tie between classes must still go to the lower class every time."""
    import cv2

    labels = speckled(0, classes=3, speckle=0.05, big_hole=True)
    removed = small_components(labels, range(8), 12) | (labels == 3)
    monkeypatch.setattr(refill, "WINDOW_RADIUS", 1)
    monkeypatch.setattr(refill, "MAX_RADIUS", 1)  # every pixel beyond the first ring goes to the transforms
    expected = refill.refill_nearest(labels, removed, 255)
    transform = cv2.distanceTransform
    rng = np.random.default_rng(0)

    def one_bit_off(*args):
        exact = transform(*args)
        return np.where(rng.random(exact.shape) < 0.5, np.nextafter(exact, np.float32(np.inf)), exact)

    monkeypatch.setattr(cv2, "distanceTransform", one_bit_off)
    for _ in range(3):
        assert np.array_equal(refill.refill_nearest(labels, removed, 255), expected)
