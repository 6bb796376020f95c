"""Augmentations: one transform for image and mask, nearest for masks, seeded and exact."""

from __future__ import annotations

import numpy as np
import pytest

from segtools.errors import UsageError
from segtools.train.augment import AugmentConfig, augment, colour_jitter, elastic_deform, random_geometry

IGNORE = 255


def blocks(height: int = 48, width: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A mask of 8×8 blocks of classes 0..4 and an image whose red channel is 40·class."""
    ys, xs = np.mgrid[0:height, 0:width]
    mask = (((ys // 8) + (xs // 8)) % 5).astype(np.uint8)
    image = np.stack([mask * 40, np.full_like(mask, 100), xs.astype(np.uint8)], axis=2).astype(np.uint8)
    return image, mask


def test_identity_config_returns_the_inputs():
    image, mask = blocks()
    out_image, out_mask = augment(image, mask, AugmentConfig(), np.random.default_rng(0), IGNORE)
    assert np.array_equal(out_image, image) and np.array_equal(out_mask, mask)


def test_horizontal_flip_is_exact_for_both():
    image, mask = blocks()
    out_image, out_mask = random_geometry(image, mask, AugmentConfig(hflip=1.0), np.random.default_rng(0), IGNORE)
    assert np.array_equal(out_mask, mask[:, ::-1])
    assert np.array_equal(out_image, image[:, ::-1])


def test_rotation_and_scale_move_image_and_mask_together():
    image, mask = blocks()
    config = AugmentConfig(crop=(40, 40), scale=(0.8, 1.3), rotate=25.0, hflip=0.5)
    agree = []
    for seed in range(5):
        out_image, out_mask = random_geometry(image, mask, config, np.random.default_rng(seed), IGNORE)
        assert out_mask.shape == (40, 40) and out_image.shape == (40, 40, 3)
        assert set(np.unique(out_mask)) <= set(range(5)) | {IGNORE}  # nearest: no new labels
        # away from block edges the bilinear image equals 40·class of the nearest-sampled mask
        valid = out_mask != IGNORE
        inner = valid.copy()
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                inner &= np.roll(np.roll(out_mask, dy, 0), dx, 1) == out_mask
        inner[[0, -1], :] = inner[:, [0, -1]] = False
        diff = np.abs(out_image[..., 0].astype(int) - 40 * out_mask.astype(int))
        agree.append(np.mean(diff[inner] <= 2))
    assert min(agree) > 0.98


def test_crop_bigger_than_image_pads_with_ignore_and_fill():
    image, mask = blocks(20, 30)
    out_image, out_mask = random_geometry(image, mask, AugmentConfig(crop=(40, 50)), np.random.default_rng(3),
                                          IGNORE, fill=(7, 8, 9))
    assert out_mask.shape == (40, 50)
    padded = out_mask == IGNORE
    assert padded.sum() == 40 * 50 - 20 * 30
    assert (out_image[padded] == [7, 8, 9]).all()


def test_same_generator_state_gives_the_same_sample():
    image, mask = blocks()
    config = AugmentConfig(crop=(32, 32), scale=(0.5, 2.0), rotate=10, hflip=0.5, brightness=0.3,
                           contrast=0.3, saturation=0.3, hue=0.05, elastic=1.0)
    first = augment(image, mask, config, np.random.default_rng(42), IGNORE)
    second = augment(image, mask, config, np.random.default_rng(42), IGNORE)
    other = augment(image, mask, config, np.random.default_rng(43), IGNORE)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not np.array_equal(first[0], other[0])


def test_elastic_deformation_keeps_labels_and_moves_pixels():
    image, mask = blocks()
    out_image, out_mask = elastic_deform(image, mask, np.random.default_rng(0), IGNORE, sigma=6.0)
    assert out_mask.shape == mask.shape and out_mask.dtype == mask.dtype
    assert set(np.unique(out_mask)) <= set(np.unique(mask))
    assert (out_mask != mask).mean() > 0.02
    assert np.abs(out_image[..., 0].astype(int) - 40 * out_mask.astype(int)).mean() < 10


def test_colour_jitter_changes_only_the_image():
    image, mask = blocks()
    config = AugmentConfig(brightness=0.5, contrast=0.5, saturation=0.5, hue=0.1)
    out = colour_jitter(image, config, np.random.default_rng(1))
    assert out.dtype == np.uint8 and out.shape == image.shape and not np.array_equal(out, image)
    _, out_mask = augment(image, mask, config, np.random.default_rng(1), IGNORE)
    assert np.array_equal(out_mask, mask)


@pytest.mark.parametrize("kwargs", [{"scale": (2.0, 1.0)}, {"hflip": 1.5}, {"crop": (0, 4)}])
def test_bad_settings_are_usage_errors(kwargs):
    with pytest.raises(UsageError):
        AugmentConfig(**kwargs)
