"""segtools.labels: the shared kernels against plain numpy and dict references."""

from __future__ import annotations

import numpy as np
import pytest

from segtools.errors import InputError
from segtools.labels import argmax_scores, class_counts, remap_labels, value_counts


def _dict_remap(labels, sources, targets):
    table = dict(zip(sources, targets))
    return np.vectorize(lambda v: table.get(int(v), int(v)), otypes=[np.int64])(labels)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64])
def test_remap_labels_matches_a_dict(dtype):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 40, (17, 23)).astype(dtype)
    sources, targets = (3, 7, 39, 100), (255, 0, 1, 2)
    out = remap_labels(labels, sources, targets)
    assert out.shape == labels.shape
    assert out.tolist() == _dict_remap(labels, sources, targets).tolist()
    assert out.dtype == np.uint8


def test_remap_labels_negative_and_huge_values_use_searchsorted():
    labels = np.array([[-5, 0, 70000, 3]], np.int64)
    out = remap_labels(labels, (70000, -5, 9), (1, 2, 3))
    assert out.tolist() == _dict_remap(labels, (70000, -5, 9), (1, 2, 3)).tolist() == [[2, 0, 1, 3]]


def test_remap_labels_output_dtype_fits_the_targets():
    labels = np.array([0, 1, 2], np.uint8)
    assert remap_labels(labels, (1,), (300,)).dtype == np.uint16
    assert remap_labels(labels, (1,), (-1,)).dtype == np.int64
    assert remap_labels(labels, (), ()).tolist() == [0, 1, 2]
    with pytest.raises(ValueError):
        remap_labels(labels, (1, 2), (0,))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, bool])
def test_value_counts_matches_bincount(dtype):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2 if dtype is bool else 200, (31, 29)).astype(dtype)
    expected = np.bincount(labels.ravel().astype(np.int64))
    counts = value_counts(labels)
    assert counts.dtype == np.int64 and counts.tolist() == expected.tolist()


def test_value_counts_edges():
    assert value_counts(np.zeros((0, 4), np.uint8)).tolist() == []
    assert value_counts(np.array([255], np.uint8)).tolist() == [0] * 255 + [1]
    with pytest.raises(InputError, match="mask.npy: label value -1 is out of range"):
        value_counts(np.array([-1, 2]), "mask.npy")
    with pytest.raises(InputError, match="integer"):
        value_counts(np.array([0.5]))


@pytest.mark.parametrize("ignore", [255, (254, 255), None])
def test_class_counts_matches_bincount(ignore):
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 5, (40, 40)).astype(np.uint8)
    labels[:3] = 255 if ignore is not None else 4
    if ignore == (254, 255):
        labels[3] = 254
    counts = class_counts(labels, 5, ignore)
    flat = labels.ravel()
    expected = np.bincount(flat[flat < 5], minlength=5)
    assert counts.dtype == np.int64 and counts.tolist() == expected.tolist()


def test_class_counts_ignore_inside_the_classes_counts_zero():
    assert class_counts(np.array([0, 1, 1, 2]), 3, 1).tolist() == [1, 0, 1]


def test_class_counts_names_values_that_are_neither_classes_nor_ignored():
    with pytest.raises(InputError, match=r"m\.png: holds label value\(s\) 3, 9, which are not classes 0\.\.2 "
                                         r"nor the ignore index 255"):
        class_counts(np.array([0, 3, 9, 255], np.uint8), 3, 255, "m.png")
    with pytest.raises(InputError, match=r"value\(s\) -4, 70000"):
        class_counts(np.array([0, -4, 70000]), 3, None)
    assert class_counts(np.array([0, -1, 2]), 3, -1).tolist() == [1, 0, 1]


@pytest.mark.parametrize("classes", [1, 2, 21, 300])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_argmax_scores_matches_np_argmax(classes, dtype):
    rng = np.random.default_rng(classes)
    scores = rng.random((classes, 13, 11)).astype(dtype)
    scores[:, 0, :] = 0.5  # ties everywhere on one row: the lower class wins
    labels = argmax_scores(scores)
    assert labels.dtype == (np.uint8 if classes <= 256 else np.uint16)
    assert labels.tolist() == np.argmax(scores, axis=0).tolist()


def test_argmax_scores_nan_and_strided_input_like_np_argmax():
    rng = np.random.default_rng(5)
    scores = rng.random((4, 6, 7), np.float32)
    scores[2, 1, 1] = np.nan
    scores[0, 2, 2] = scores[3, 2, 2] = np.nan
    assert argmax_scores(scores).tolist() == np.argmax(scores, axis=0).tolist()
    channels_last = np.ascontiguousarray(scores.transpose(1, 2, 0)).transpose(2, 0, 1)
    assert argmax_scores(channels_last).tolist() == np.argmax(scores, axis=0).tolist()
    integers = rng.integers(0, 3, (5, 4, 4))
    assert argmax_scores(integers).tolist() == np.argmax(integers, axis=0).tolist()


def test_argmax_scores_refuses_other_shapes():
    with pytest.raises(InputError, match="C×H×W"):
        argmax_scores(np.zeros((4, 4), np.float32))
    with pytest.raises(InputError, match="C×H×W"):
        argmax_scores(np.zeros((0, 4, 4), np.float32))
