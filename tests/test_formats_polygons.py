"""Polygons ⇄ masks: pycocotools' rasterisation reproduced, exact outlines, CamVid agreement."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from segtools.errors import InputError
from segtools.formats import polygons as poly

mask_api = pytest.importorskip("pycocotools.mask")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools vs numpy 2
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def polygons(draw):
    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    n = draw(st.integers(3, 10))
    coord = st.floats(-4, 44, allow_nan=False, width=32)
    grid = draw(st.sampled_from([None, 1.0, 0.5, 0.2]))
    points = np.array([[draw(coord), draw(coord)] for _ in range(n)], np.float64)
    if grid:
        points = np.round(points / grid) * grid
    return points, h, w


@SETTINGS
@given(polygons())
def test_rasterisation_matches_pycocotools_frpyobjects(case):
    points, h, w = case
    reference = mask_api.frPyObjects([points.ravel().tolist()], h, w)[0]
    assert poly.polygon_to_rle(points, h, w)["counts"].encode() == reference["counts"]
    np.testing.assert_array_equal(poly.polygons_to_mask([points], h, w), mask_api.decode(reference))


@SETTINGS
@given(st.integers(1, 30).flatmap(lambda h: st.integers(1, 30).flatmap(
    lambda w: arrays(np.uint8, (h, w), elements=st.integers(0, 1)))))
def test_mask_to_polygons_to_mask_is_exact_holes_included(mask):
    traced = poly.mask_to_polygons(mask)
    h, w = mask.shape
    flat = [p.ravel().tolist() for p in traced.polygons]
    back = poly.polygons_to_mask(flat, h, w) if flat else np.zeros_like(mask)
    np.testing.assert_array_equal(back, mask)
    if flat:  # and pycocotools reads our polygons the same way
        reference = mask_api.decode(mask_api.merge(mask_api.frPyObjects(flat, h, w)))
        np.testing.assert_array_equal(reference, mask)


def test_a_ring_with_a_hole_keeps_it_and_fill_drops_it():
    mask = np.zeros((20, 20), np.uint8)
    mask[2:18, 2:18] = 1
    mask[6:12, 6:12] = 0
    kept = poly.mask_to_polygons(mask)
    assert (kept.holes, kept.holes_filled, len(kept.polygons)) == (1, 0, 1)
    filled = poly.mask_to_polygons(mask, holes="fill")
    assert filled.holes_filled == 1
    assert poly.polygons_to_mask(filled.polygons, 20, 20).sum() == 16 * 16


def test_opencv_fillpoly_honours_the_keyhole():
    import cv2

    mask = np.zeros((30, 30), np.uint8)
    mask[3:27, 3:27] = 1
    mask[10:20, 10:20] = 0
    ring = poly.mask_to_polygons(mask).polygons[0]
    drawn = np.zeros_like(mask)
    cv2.fillPoly(drawn, [np.round(ring - 0.5).astype(np.int32)], 1)
    assert drawn[15, 15] == 0 and drawn[5, 5] == 1


def test_several_parts_join_into_one_ring_that_rasterises_to_both():
    mask = np.zeros((10, 12), np.uint8)
    mask[1:4, 1:4] = 1
    mask[6:9, 7:11] = 1
    parts = poly.mask_to_polygons(mask).polygons
    joined = poly.join_parts(parts)
    np.testing.assert_array_equal(poly.polygons_to_mask([joined], 10, 12), mask)


def test_epsilon_simplifies():
    yy, xx = np.mgrid[:100, :100]
    disk = ((yy - 50) ** 2 + (xx - 50) ** 2 < 40 ** 2).astype(np.uint8)
    exact = poly.mask_to_polygons(disk).polygons[0]
    simple = poly.mask_to_polygons(disk, epsilon=1.0).polygons[0]
    assert len(simple) < len(exact) / 3
    back = poly.polygons_to_mask([simple], 100, 100)
    assert (back & disk).sum() / (back | disk).sum() > 0.98


@pytest.mark.parametrize("points, message", [
    ([1, 2, 3, 4], "at least 3"),
    ([1, 2, 3], "odd number"),
    ([0, 0, 1, float("nan"), 2, 2], "NaN"),
])
def test_bad_polygons_are_input_errors(points, message):
    with pytest.raises(InputError, match=message):
        poly.polygon_to_rle(points, 5, 5)


def test_camvid_masks_round_trip_through_polygons(camvid):
    """Every class of a few CamVid masks: exact with epsilon 0, IoU ≥ 0.98 with epsilon 1."""
    from segtools.io.masks import read_label_mask

    files = sorted((camvid / "valannot").glob("*.png"))[:3]
    ious = []
    for path in files:
        labels = read_label_mask(path).labels
        h, w = labels.shape
        for value in np.unique(labels):
            mask = (labels == value).astype(np.uint8)
            exact = poly.mask_to_polygons(mask)
            np.testing.assert_array_equal(poly.polygons_to_mask(exact.polygons, h, w), mask)
            simple = poly.mask_to_polygons(mask, epsilon=1.0)
            back = poly.polygons_to_mask(simple.polygons, h, w) if simple.polygons else np.zeros_like(mask)
            ious.append(((back & mask).sum() / (back | mask).sum(), int(mask.sum())))
    weighted = sum(i * n for i, n in ious) / sum(n for _, n in ious)
    assert weighted >= 0.98, weighted
