"""segtools.morphology: agreement with scikit-image, multi-class invariants, score maps."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from segtools.errors import InputError, UsageError
from segtools.morphology.components import (
    all_but_largest, fill_holes, fill_small_holes, label_instances, remove_small_objects, small_components)
from segtools.morphology.filters import majority_filter, structuring_element
from segtools.morphology.pipeline import Cleanup, clean_labels
from segtools.morphology.refill import refill_nearest
from segtools.morphology.postprocess import PostprocessOptions, postprocess
from segtools.morphology.scores import scores_to_labels

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import postprocess as bench  # noqa: E402  (the reference pipeline lives beside the benchmark)

skimage_morphology = pytest.importorskip("skimage.morphology")
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # skimage 0.26 renames binary_*

binary_masks = hnp.arrays(bool, st.tuples(st.integers(1, 24), st.integers(1, 24)))
small_label_maps = hnp.arrays(np.uint8, st.tuples(st.integers(2, 20), st.integers(2, 20)),
                              elements=st.sampled_from([0, 1, 2, 3, 255]))
FAST = settings(max_examples=60, deadline=None)


# ------------------------------------------------------------ agreement with scikit-image


@FAST
@given(binary_masks, st.integers(1, 12), st.sampled_from([4, 8]))
def test_min_area_matches_skimage_remove_small_objects(mask, min_area, connectivity):
    expected = skimage_morphology.remove_small_objects(mask, max_size=min_area - 1,
                                                       connectivity=1 if connectivity == 4 else 2)
    assert np.array_equal(remove_small_objects(mask, min_area, connectivity), expected)


@FAST
@given(binary_masks, st.integers(1, 12), st.sampled_from([4, 8]))
def test_fill_holes_matches_skimage_on_enclosed_holes(mask, max_area, connectivity):
    # skimage also fills background touching the border; a wide frame of background joins
    # every such region into one larger than max_area, so it is not a hole
    hole_connectivity = 2 if connectivity == 4 else 1
    pad = max_area
    expected = skimage_morphology.remove_small_holes(np.pad(mask, pad), max_size=max_area,
                                                     connectivity=hole_connectivity)[pad:-pad, pad:-pad]
    assert np.array_equal(fill_small_holes(mask, max_area, connectivity), expected)


@FAST
@given(binary_masks, st.sampled_from([1, 3, 5]), st.sampled_from(["square", "cross", "ellipse"]))
def test_binary_opening_matches_skimage(mask, size, shape):
    labels = mask.astype(np.uint8)
    kernel = structuring_element(size, shape)
    out = clean_labels(labels, Cleanup(open=size, kernel=shape, background=0))
    expected = skimage_morphology.binary_opening(mask, kernel.astype(bool), mode="ignore")
    assert np.array_equal(out == 1, expected)


@FAST
@given(binary_masks, st.sampled_from([3, 5]))
def test_binary_closing_and_dilation_match_skimage(mask, size):
    labels = mask.astype(np.uint8)
    footprint = np.ones((size, size), bool)
    closed = clean_labels(labels, Cleanup(close=size, background=0))
    dilated = clean_labels(labels, Cleanup(dilate=size, background=0))
    assert np.array_equal(closed == 1, skimage_morphology.binary_closing(mask, footprint, mode="ignore"))
    assert np.array_equal(dilated == 1, skimage_morphology.binary_dilation(mask, footprint, mode="ignore"))


def test_connectivity_decides_whether_diagonal_pixels_touch():
    mask = np.eye(4, dtype=bool)
    assert remove_small_objects(mask, 4, 8).sum() == 4
    assert remove_small_objects(mask, 2, 4).sum() == 0


def test_multiclass_pipeline_matches_the_per_class_skimage_reference():
    labels = bench.label_map(96, 128, seed=3)
    cleanup = Cleanup(open=3, min_area=40, fill_holes=30, ignore_index=255)
    out = clean_labels(labels, cleanup)
    assert np.array_equal(out, bench.reference_clean(labels, 3, 40, 30, 255))
    assert (out != labels).mean() > 0.01  # the pipeline did something


# ------------------------------------------------------------ multi-class invariants


@FAST
@given(small_label_maps, st.sampled_from(["open", "min-area", "keep-largest", "fill-holes", "smooth", "all"]),
       st.sampled_from([4, 8]))
def test_cleanup_keeps_labels_ignore_and_untouched_pixels(labels, step, connectivity):
    options = {"open": dict(open=3), "min-area": dict(min_area=4), "keep-largest": dict(keep_largest=1),
               "fill-holes": dict(fill_holes=4), "smooth": dict(smooth=3),
               "all": dict(smooth=3, open=3, min_area=4, fill_holes=4, keep_largest=2)}[step]
    out = clean_labels(labels, Cleanup(connectivity=connectivity, ignore_index=255, **options))
    assert out.shape == labels.shape
    assert set(np.unique(out)) <= set(np.unique(labels))  # no label that was not in the input
    assert np.array_equal(out == 255, labels == 255)  # ignore preserved, and never spreads


@FAST
@given(small_label_maps, st.integers(2, 6), st.sampled_from([4, 8]))
def test_min_area_only_changes_small_components_and_never_back_to_their_class(labels, min_area, connectivity):
    classes = [k for k in np.unique(labels) if k != 255]
    removed = small_components(labels, classes, min_area, connectivity)
    out = clean_labels(labels, Cleanup(min_area=min_area, connectivity=connectivity))
    assert np.array_equal(out[~removed], labels[~removed])  # nothing leaks into kept regions
    donors = (~removed) & (labels != 255)
    for k in classes:  # a removed pixel takes another class whenever one is kept somewhere
        if (donors & (labels != k)).any():
            assert not ((out == k) & removed & (labels == k)).any()


@FAST
@given(small_label_maps)
def test_refill_takes_the_nearest_kept_class(labels):
    removed = labels == 1
    out = refill_nearest(labels, removed, 255)
    ys, xs = np.nonzero((labels != 1) & (labels != 255))
    if len(ys) == 0:
        assert np.array_equal(out, labels)
        return
    for y, x in zip(*np.nonzero(removed)):
        d = (ys - y) ** 2 + (xs - x) ** 2
        nearest = labels[ys, xs][d == d.min()]
        assert out[y, x] == nearest.min()


@FAST
@given(small_label_maps)
def test_classes_option_leaves_other_classes_alone(labels):
    out = clean_labels(labels, Cleanup(min_area=5, open=3, only=(1,)))
    others = labels != 1
    assert np.array_equal(out[others], labels[others])


def test_fill_holes_gives_a_pixel_to_the_innermost_region():
    labels = np.zeros((9, 9), np.uint8)
    labels[1:8, 1:8] = 1
    labels[3:6, 3:6] = 2
    labels[4, 4] = 3
    out = fill_holes(labels, [0, 1, 2, 3], max_area=20, connectivity=8)
    assert out[4, 4] == 2  # inside the holes of 1 (9 px) and of 2 (1 px): 2 is innermost
    assert (out[3:6, 3:6] == 1).sum() == 8 and (out == 1).sum() == 48  # 0's hole (49 px) is too big
    everything = fill_holes(labels, [0, 1, 2, 3], max_area=49, connectivity=8)
    # the 7×7 object is a hole of class 0 too: each pixel goes to its innermost enclosing class
    assert (everything == 0).sum() == 81 - 9 and (everything == 1).sum() == 8 and everything[4, 4] == 2


def test_fill_holes_ignores_regions_touching_the_border_and_keeps_ignore():
    labels = np.ones((6, 6), np.uint8)
    labels[0, 2] = 0
    labels[3, 3] = 255
    out = fill_holes(labels, [1], 4, 8, ignore_index=255)
    assert out[0, 2] == 0 and out[3, 3] == 255


def test_keep_largest_keeps_n_components_per_class():
    labels = np.zeros((10, 10), np.uint8)
    labels[0:2, 0:2] = 1
    labels[5:9, 5:9] = 1
    labels[0, 8] = 1
    out = clean_labels(labels, Cleanup(keep_largest=1, background=0, fill="background"))
    assert (out == 1).sum() == 16
    assert all_but_largest(labels, [1], 2).sum() == 1


def test_majority_filter_removes_isolated_pixels_and_keeps_ties():
    labels = np.zeros((5, 5), np.uint8)
    labels[2, 2] = 1
    assert (majority_filter(labels, 3, [0, 1]) == 0).all()
    stripes = np.repeat(np.array([[0, 0, 1, 1, 0, 0]]), 4, axis=0).astype(np.uint8)
    smoothed = majority_filter(stripes, 3, [0, 1])
    assert np.array_equal(smoothed[1:-1], stripes[1:-1])  # 3 votes against 3 (or 6 vs 3 inside): kept
    lone = labels.copy()
    lone[2, 2] = 255
    assert majority_filter(lone, 3, [0, 1], ignore_index=255)[2, 2] == 255


def test_relabel_merges_before_cleanup_by_default():
    labels = np.zeros((8, 8), np.uint8)
    labels[2:5, 2:4] = 2
    labels[2:5, 4:6] = 3
    out = clean_labels(labels, Cleanup(relabel={3: 2}, min_area=8))
    assert (out == 2).sum() == 12 and (out == 3).sum() == 0
    reordered = clean_labels(labels, Cleanup(relabel={3: 2}, min_area=8, order=("min-area", "map")))
    assert (reordered == 2).sum() == 0


def test_order_must_name_every_enabled_step():
    with pytest.raises(UsageError, match="leaves out"):
        Cleanup(open=3, min_area=4, order=("open",)).steps()
    with pytest.raises(UsageError, match="unknown step"):
        Cleanup(open=3, order=("open", "shrink")).steps()
    assert Cleanup(open=3, min_area=4, order=("min-area", "open", "min-area")).steps() == ["min-area", "open", "min-area"]


@pytest.mark.parametrize("size", [0, -1, 2, 4])
def test_even_or_non_positive_kernels_are_refused(size):
    with pytest.raises(UsageError, match="odd"):
        structuring_element(size)


def test_instances_number_components_class_by_class():
    labels = np.zeros((6, 6), np.uint8)
    labels[0, 0] = labels[5, 5] = 1
    labels[2:4, 2:4] = 2
    instances, instance_class = label_instances(labels, [1, 2])
    assert instances.dtype == np.uint16 and instances.max() == 3
    assert instance_class == [-1, 1, 1, 2]
    assert instances[0, 0] != instances[5, 5]


# ------------------------------------------------------------ score maps


def test_scores_argmax_threshold_and_confidence():
    scores = np.array([[[0.6, 0.2, 0.34]], [[0.3, 0.7, 0.33]], [[0.1, 0.1, 0.33]]], np.float32)
    assert scores_to_labels(scores).tolist() == [[0, 1, 0]]
    assert scores_to_labels(scores, min_confidence=0.5, below=255).tolist() == [[0, 1, 255]]
    assert scores_to_labels(scores, {1: 0.8}, below=255).tolist() == [[0, 0, 0]]
    assert scores_to_labels(scores, 0.5, below=255).tolist() == [[0, 1, 255]]


def test_one_class_and_two_class_thresholds():
    foreground = np.array([[0.2, 0.5, 0.9]], np.float32)
    assert scores_to_labels(foreground, 0.5).tolist() == [[0, 1, 1]]
    two = np.stack([1 - foreground, foreground])
    assert scores_to_labels(two, 0.8).tolist() == [[0, 0, 1]]
    with pytest.raises(InputError, match="threshold=T"):
        scores_to_labels(foreground)
    with pytest.raises(InputError, match="NaN"):
        scores_to_labels(np.full((2, 2, 2), np.nan, np.float32))


# ------------------------------------------------------------ threads, messages, the per-item pipeline


def _refill_in_worker(seed: int):
    """Run in a pmap worker process: refill a many-class mask, counting the threads started."""
    import threading
    from concurrent import futures

    from segtools.morphology import refill

    started = []
    original = futures.ThreadPoolExecutor.submit

    def counting_submit(self, *args, **kwargs):
        started.append(1)
        return original(self, *args, **kwargs)

    futures.ThreadPoolExecutor.submit = counting_submit
    try:
        rng = np.random.default_rng(seed)
        labels = rng.integers(0, 6, (40, 40)).astype(np.uint8)
        out = refill.refill_nearest(labels, rng.random(labels.shape) < 0.3)
    finally:
        futures.ThreadPoolExecutor.submit = original
    return out, len(started), threading.active_count()


def test_refill_runs_one_thread_inside_a_jobs_worker():
    from segtools.io.parallel import pmap

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, (40, 40)).astype(np.uint8)
    expected = refill_nearest(labels, rng.random(labels.shape) < 0.3)  # main process: threads allowed
    results = list(pmap(_refill_in_worker, [0, 0], jobs=2))
    for out, submitted, threads in results:
        assert np.array_equal(out, expected)
        assert submitted == 0 and threads == 1  # serial on the worker's own thread


def test_refill_reuses_one_pool_per_process(monkeypatch):
    from segtools.io import parallel
    from segtools.morphology import refill

    monkeypatch.setattr(parallel, "_kernel_threads", 2)
    labels = np.repeat(np.arange(4, dtype=np.uint8), 4)[None].repeat(3, 0)
    removed = labels == 1
    first = refill.refill_nearest(labels, removed)
    pool = refill._shared_pool()
    second = refill.refill_nearest(labels, removed)
    assert refill._shared_pool() is pool and np.array_equal(first, second)


def test_library_messages_name_parameters_not_flags():
    for cleanup, words in ((Cleanup(smooth=2), "smooth=2"), (Cleanup(min_area=-1), "min_area=-1"),
                           (Cleanup(fill="elsewhere"), "fill='elsewhere'"), (Cleanup(connectivity=6), "connectivity=6"),
                           (Cleanup(kernel="star"), "kernel='star'"), (Cleanup(open=3, order=("close",)), "order")):
        with pytest.raises(UsageError) as caught:
            cleanup.steps()
        assert words in str(caught.value) and "--" not in str(caught.value)


def test_postprocess_options_resolve_class_names_per_mask():
    from segtools.io.masks import LabelMask, ScoreMap
    from segtools.io.meta import ClassMeta

    meta = ClassMeta(names=("background", "car", "road"))
    labels = np.zeros((6, 6), np.uint8)
    labels[0, 0] = 1
    labels[5, 5] = 2
    out, out_meta = postprocess(LabelMask(labels, meta, "m"), PostprocessOptions(min_area_per_class={"car": 2}))
    assert out[0, 0] == 0 and out[5, 5] == 2 and out_meta.names == meta.names
    with pytest.raises(UsageError, match="only: class 'car' given by name"):
        postprocess(LabelMask(labels, None, "m"), PostprocessOptions(only=("car",), min_area=2))
    scores = np.stack([np.full((2, 2), 0.5), np.full((2, 2), 0.3), np.full((2, 2), 0.2)]).astype(np.float32)
    decoded, _ = postprocess(ScoreMap(scores, meta, "s"), PostprocessOptions(threshold_per_class={"background": 0.6}))
    assert decoded.tolist() == [[1, 1], [1, 1]]  # background may not win below 0.6: car does
    ids, ids_meta = postprocess(LabelMask(labels, meta, "m"), PostprocessOptions(instances=True))
    assert ids_meta.kind == "instance" and ids_meta.extra["instance_class"] == [-1, 1, 2]
    assert ids_meta.extra["class_names"] == list(meta.names)
