"""Training data (pairing, checks, patch sampler, split, epoch order) and LR schedules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from segtools.errors import InputError, UsageError
from segtools.io.masks import encode_label_mask
from segtools.labels import class_counts
from segtools.models.preprocessing import Preprocessing
from segtools.train.data import (EpochSampler, SegmentationDataset, find_pairs,
                                 sample_patch, scan_masks, split_validation)
from segtools.train.schedule import Schedule


def write_pair(folder, name: str, labels: np.ndarray, image_shape=None) -> None:
    import cv2

    (folder / "img").mkdir(exist_ok=True)
    (folder / "lbl").mkdir(exist_ok=True)
    shape = image_shape or labels.shape
    cv2.imwrite(str(folder / "img" / f"{name}.png"), np.full((*shape, 3), 90, np.uint8))
    (folder / "lbl" / f"{name}.png").write_bytes(encode_label_mask(labels.astype(np.uint8)))


def test_pairs_are_matched_by_name_and_checked(tmp_path):
    for i in range(3):
        write_pair(tmp_path, f"f{i}", np.full((6, 8), i, np.uint8))
    samples = find_pairs([str(tmp_path / "img")], [str(tmp_path / "lbl")])
    assert [s.name for s in samples] == ["f0.png", "f1.png", "f2.png"]
    counts = scan_masks(samples, num_classes=3, ignore_index=255)
    assert counts.pixels.tolist() == [48, 48, 48] and counts.images == 3


def test_image_without_mask_is_an_error(tmp_path):
    write_pair(tmp_path, "a", np.zeros((4, 4)))
    write_pair(tmp_path, "b", np.zeros((4, 4)))
    (tmp_path / "lbl" / "b.png").unlink()
    with pytest.raises(InputError, match="without a mask") as raised:
        find_pairs([str(tmp_path / "img")], [str(tmp_path / "lbl")])
    assert "allow-missing" not in str(raised.value) and "allow_missing" not in str(raised.value)  # train has no such option


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "lbl").mkdir()
    with pytest.raises(InputError, match="no png"):
        find_pairs([str(tmp_path / "img")], [str(tmp_path / "lbl")])


def test_mask_value_outside_the_classes_names_the_value_and_file(tmp_path):
    write_pair(tmp_path, "a", np.array([[0, 1], [7, 255]]))
    samples = find_pairs([str(tmp_path / "img")], [str(tmp_path / "lbl")])
    with pytest.raises(InputError, match=r"a\.png: holds label value\(s\) 7"):
        scan_masks(samples, num_classes=3, ignore_index=255)
    assert class_counts(np.array([0, 2, 255]), 3, 255).tolist() == [1, 0, 1]


def test_image_and_mask_of_different_sizes_is_an_error(tmp_path):
    write_pair(tmp_path, "a", np.zeros((4, 6)), image_shape=(5, 6))
    samples = find_pairs([str(tmp_path / "img")], [str(tmp_path / "lbl")])
    with pytest.raises(InputError, match="6×5 but its mask"):
        scan_masks(samples, num_classes=2, ignore_index=255)
    dataset = SegmentationDataset(samples, Preprocessing(), ignore_index=255)
    with pytest.raises(InputError, match="must match"):
        dataset[0]


def test_patch_sampler_finds_foreground():
    mask = np.zeros((200, 300), np.uint8)
    mask[150:190, 250:290] = 3  # a small object in one corner
    for seed in range(5):
        y, x = sample_patch(mask, (50, 50), np.random.default_rng(seed), min_foreground=0.05, candidates=256)
        assert (mask[y:y + 50, x:x + 50] != 0).mean() >= 0.05
    # impossible threshold: the best candidate, still inside the image
    y, x = sample_patch(mask, (50, 50), np.random.default_rng(0), min_foreground=0.99)
    assert 0 <= y <= 150 and 0 <= x <= 250
    # a mask smaller than the patch: corner 0 along that axis
    assert sample_patch(np.zeros((10, 400)), (50, 50), np.random.default_rng(0))[0] == 0


def test_validation_split_is_seeded_and_disjoint():
    samples = list(range(20))
    train, val = split_validation(samples, 0.25, seed=3)
    assert len(val) == 5 and not set(train) & set(val) and sorted(train + val) == samples
    assert split_validation(samples, 0.25, seed=3) == (train, val)
    with pytest.raises(UsageError):
        split_validation(samples, 1.0, seed=0)


def test_epoch_order_depends_only_on_seed_and_epoch():
    sampler = EpochSampler(10, seed=1)
    sampler.set_epoch(2)
    first = list(sampler)
    assert EpochSampler(10, seed=1).keys() != first  # epoch 0 differs
    again = EpochSampler(10, seed=1)
    again.set_epoch(2)
    assert list(again) == first and sorted(k[0] for k in first) == list(range(10))
    longer = EpochSampler(4, seed=1, limit=10)
    keys = longer.keys()
    assert len(keys) == 10 and [k[2] for k in keys] == [0] * 4 + [1] * 4 + [2] * 2


def test_preprocessing_normalises_channels_first():
    pre = Preprocessing(mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0))
    image = np.full((2, 3, 3), 255, np.uint8)
    out = pre.apply(image)
    assert out.shape == (3, 2, 3) and out.dtype == np.float32
    assert out[:, 0, 0].tolist() == pytest.approx([2.0, 1.0, 0.5])
    assert pre.fill == pytest.approx((127.5, 127.5, 127.5))


def test_schedules_by_hand():
    poly = Schedule("poly", 0.01, total_steps=100, power=0.9)
    assert poly.lr_at(0) == pytest.approx(0.01)
    assert poly.lr_at(50) == pytest.approx(0.01 * 0.5 ** 0.9)
    assert poly.lr_at(100) == 0.0
    cosine = Schedule("cosine", 0.01, total_steps=100, min_lr=0.001)
    assert cosine.lr_at(50) == pytest.approx(0.001 + 0.009 * 0.5)
    assert cosine.lr_at(100) == pytest.approx(0.001)
    step = Schedule("step", 0.1, total_steps=100, step_size=30, gamma=0.1)
    assert [step.lr_at(t) for t in (0, 29, 30, 60)] == pytest.approx([0.1, 0.1, 0.01, 0.001])
    warm = Schedule("constant", 1.0, total_steps=10, warmup=4, warmup_factor=0.0)
    assert [warm.lr_at(t) for t in range(6)] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 1.0])
    assert math.isfinite(Schedule("poly", 1.0, total_steps=1).lr_at(5))
    with pytest.raises(UsageError):
        Schedule("exp", 0.1, total_steps=10)


def test_class_weights_from_a_method_or_a_file(tmp_path):
    from segtools.train.setup import read_class_weights
    from segtools.weights.classes import PixelCounts

    counts = PixelCounts(np.array([100, 300]), np.array([400, 400]), 2, 0)
    assert read_class_weights("inverse", counts, 2, 0.999).tolist() == pytest.approx([2.0, 2 / 3])
    (tmp_path / "w.txt").write_text("0.5, 2\n")
    assert read_class_weights(str(tmp_path / "w.txt"), counts, 2, 0.999).tolist() == [0.5, 2.0]
    (tmp_path / "w3.json").write_text("[1, 2, 3]")
    with pytest.raises(InputError, match="needs 2"):
        read_class_weights(str(tmp_path / "w3.json"), counts, 2, 0.999)
    with pytest.raises(UsageError):
        read_class_weights("nonsense", counts, 2, 0.999)
