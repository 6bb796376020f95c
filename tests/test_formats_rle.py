"""COCO RLE: byte-identical to pycocotools (encode, string, area, toBbox, merge, iou)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from segtools.errors import InputError
from segtools.formats import rle

mask_api = pytest.importorskip("pycocotools.mask")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools vs numpy 2

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def masks(draw):
    h = draw(st.integers(1, 37))
    w = draw(st.integers(1, 37))
    kind = draw(st.sampled_from(["random", "empty", "full", "pixel", "blocks"]))
    if kind == "random":
        return draw(arrays(np.uint8, (h, w), elements=st.integers(0, 1)))
    mask = np.zeros((h, w), np.uint8)
    if kind == "full":
        mask[:] = 1
    elif kind == "pixel":
        mask[draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))] = 1
    elif kind == "blocks":
        y0, x0 = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
        mask[y0: y0 + draw(st.integers(1, h)), x0: x0 + draw(st.integers(1, w))] = 1
    return mask


@SETTINGS
@given(masks())
def test_encode_is_byte_identical_to_pycocotools(mask):
    reference = mask_api.encode(np.asfortranarray(mask))
    ours = rle.encode(mask)
    assert ours["counts"].encode("ascii") == reference["counts"]
    assert ours["size"] == list(reference["size"])
    assert rle.area(ours) == int(mask_api.area(reference)) == int(mask.sum())
    assert rle.to_bbox(ours) == mask_api.toBbox(reference).tolist()
    np.testing.assert_array_equal(rle.decode(ours), mask)
    np.testing.assert_array_equal(rle.decode(reference), mask)


@SETTINGS
@given(masks())
def test_uncompressed_counts_round_trip_through_the_string(mask):
    plain = rle.encode(mask, compressed=False)
    assert sum(plain["counts"]) == mask.size
    assert rle.counts_to_string(plain["counts"]) == rle.encode(mask)["counts"]
    np.testing.assert_array_equal(rle.string_to_counts(rle.encode(mask)["counts"]), plain["counts"])
    np.testing.assert_array_equal(rle.decode(plain), mask)
    frpy = mask_api.frPyObjects(plain, *mask.shape)  # pycocotools' own uncompressed → compressed
    assert rle.normalise(plain)["counts"].encode() == frpy["counts"]


@SETTINGS
@given(masks(), st.data())
def test_merge_and_iou_agree_with_pycocotools(a, data):
    b = data.draw(arrays(np.uint8, a.shape, elements=st.integers(0, 1)))
    ra, rb = mask_api.encode(np.asfortranarray(a)), mask_api.encode(np.asfortranarray(b))
    for intersect in (False, True):
        ours = rle.merge([rle.encode(a), rle.encode(b)], intersect=intersect)
        assert ours["counts"].encode() == mask_api.merge([ra, rb], intersect=intersect)["counts"]
    crowd = data.draw(st.booleans())
    expected = mask_api.iou([ra], [rb], [int(crowd)])
    np.testing.assert_allclose(rle.iou([rle.encode(a)], [rle.encode(b)], [crowd]), expected)


def test_merge_and_iou_of_many_work_on_the_runs_and_agree_with_pycocotools():
    rng = np.random.default_rng(5)
    shape = (37, 23)
    masks = [(rng.random(shape) < p).astype(np.uint8) for p in (0.0, 0.05, 0.3, 0.6, 0.95, 1.0)]
    masks.append(np.zeros(shape, np.uint8))
    masks[-1][5:20, 3:9] = 1  # one block: few runs
    ours = [rle.encode(m) for m in masks]
    theirs = [mask_api.encode(np.asfortranarray(m)) for m in masks]
    for intersect in (False, True):
        for k in (2, 3, len(masks)):
            merged = rle.merge(ours[1:k + 1], intersect=intersect)
            assert merged["counts"].encode() == mask_api.merge(theirs[1:k + 1], intersect=intersect)["counts"]
    crowd = [False, True, False, True, False, True, False]
    np.testing.assert_allclose(rle.iou(ours[:4], ours, crowd), mask_api.iou(theirs[:4], theirs, [int(c) for c in crowd]))
    np.testing.assert_allclose(rle.iou(ours, ours[2:]), mask_api.iou(theirs, theirs[2:], [0] * 5))
    assert rle.iou(ours, []).shape == (len(ours), 0)
    with pytest.raises(InputError, match="different sizes"):
        rle.iou(ours[:1], [rle.encode(np.ones((2, 2)))])


def test_large_counts_need_many_characters():
    mask = np.zeros((3000, 3000), np.uint8)
    mask[-1, -1] = 1
    mask[0, 0] = 1
    reference = mask_api.encode(np.asfortranarray(mask))
    assert rle.encode(mask)["counts"].encode() == reference["counts"]
    assert rle.to_bbox(rle.encode(mask)) == mask_api.toBbox(reference).tolist()


def test_non_binary_values_are_binarised():
    mask = np.array([[0, 2], [7, 1]], np.uint8)
    assert rle.encode(mask) == rle.encode(mask != 0)


def test_bytes_counts_are_accepted():
    ref = mask_api.encode(np.asfortranarray(np.eye(4, dtype=np.uint8)))
    np.testing.assert_array_equal(rle.decode(ref), np.eye(4))


@pytest.mark.parametrize("bad, message", [
    ({"size": [2, 2], "counts": "1"}, "cover 1 pixels"),
    ({"size": [2, 2], "counts": "1\x7f"}, "outside"),
    ({"size": [2, 2], "counts": "1P"}, "truncated"),
    ({"size": [2, 2], "counts": [1, -3]}, "non-negative"),
    ({"counts": "1"}, "'size'"),
])
def test_malformed_rle_is_an_input_error(bad, message):
    with pytest.raises(InputError, match=message):
        rle.decode(bad)
