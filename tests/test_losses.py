"""Losses against values worked out by hand on tiny tensors.

The fixture: one image, two classes, three pixels in a row.
  pixel a: logits (0, ln 3) → p = (1/4, 3/4)
  pixel b: logits (ln 3, 0) → p = (3/4, 1/4)
  pixel c: ignored (value 255) with wild logits that must not matter.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from segtools.errors import UsageError
from segtools.train.losses import build_loss, cross_entropy, focal, parse_loss_spec, soft_dice, tversky

LN3 = math.log(3.0)


def logits_abc() -> torch.Tensor:
    # N=1, C=2, H=1, W=3
    return torch.tensor([[[[0.0, LN3, 50.0]], [[LN3, 0.0, -50.0]]]], requires_grad=True)


def target(*labels: int) -> torch.Tensor:
    return torch.tensor([[list(labels)]])


def test_cross_entropy_ignores_the_ignored_pixel():
    # a → class 1 (p 3/4), b → class 1 (p 1/4)
    value = cross_entropy(logits_abc(), target(1, 1, 255), ignore_index=255)
    assert value.item() == pytest.approx((math.log(4 / 3) + math.log(4)) / 2, abs=1e-6)


def test_cross_entropy_class_weights_use_the_weighted_mean():
    # a (0, ln 3) → class 1, p 3/4; b (ln 3, 0) → class 1, p 1/4; d (0, ln 3) → class 0, p 1/4
    # weights (1, 2): Σ w·(−ln p) / Σ w = (2·ln(4/3) + 2·ln 4 + 1·ln 4) / (2 + 2 + 1)
    logits = torch.tensor([[[[0.0, LN3, 0.0]], [[LN3, 0.0, LN3]]]])
    value = cross_entropy(logits, target(1, 1, 0), class_weights=torch.tensor([1.0, 2.0]), ignore_index=255)
    expected = (2 * math.log(4 / 3) + 2 * math.log(4) + 1 * math.log(4)) / (2 + 2 + 1)
    assert value.item() == pytest.approx(expected, abs=1e-6)


def test_cross_entropy_matches_torch_with_weights_ignore_and_smoothing():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 7, 9, generator=generator)
    labels = torch.randint(0, 6, (2, 7, 9), generator=generator)
    labels[labels == 5] = 255
    weights = torch.rand(5, generator=generator) + 0.1
    ours = cross_entropy(logits, labels, class_weights=weights, ignore_index=255, label_smoothing=0.1)
    reference = F.cross_entropy(logits, labels, weight=weights, ignore_index=255, label_smoothing=0.1)
    assert ours.item() == pytest.approx(reference.item(), rel=1e-6)


def test_everything_ignored_gives_zero_not_nan():
    logits = logits_abc()
    for fn in (cross_entropy, focal):
        value = fn(logits, target(255, 255, 255), ignore_index=255)
        assert value.item() == 0.0
        value.backward()
        assert torch.isfinite(logits.grad).all()


def test_soft_dice_by_hand_with_smoothing_and_class_weights():
    # a → 1, b → 1, c ignored. class 1: 2·TP = 2·(3/4 + 1/4) = 2, Σp = 1, Σg = 2 → (2+1)/(3+1) = 3/4
    # class 0: TP = 0, Σp = 1/4 + 3/4 = 1, Σg = 0 → (0+1)/(1+1) = 1/2
    value = soft_dice(logits_abc(), target(1, 1, 255), ignore_index=255, smooth=1.0)
    assert value.item() == pytest.approx(1 - (3 / 4 + 1 / 2) / 2, abs=1e-6)
    weighted = soft_dice(logits_abc(), target(1, 1, 255), ignore_index=255, smooth=1.0,
                         class_weights=torch.tensor([1.0, 3.0]))
    assert weighted.item() == pytest.approx(1 - (1 / 2 + 3 * 3 / 4) / 4, abs=1e-6)


def test_tversky_by_hand_and_equal_to_dice_at_one_half():
    # class 1: TP 1, FP 0, FN (1/4 + 3/4) = 1; class 0: TP 0, FP 1, FN 0
    value = tversky(logits_abc(), target(1, 1, 255), alpha=0.7, beta=0.3, ignore_index=255, smooth=1.0)
    expected = 1 - ((1 + 1) / (1 + 0.3 * 1 + 1) + (0 + 1) / (0 + 0.7 * 1 + 1)) / 2
    assert value.item() == pytest.approx(expected, abs=1e-6)
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, 6, 6, generator=generator)
    labels = torch.randint(0, 4, (2, 6, 6), generator=generator)
    assert tversky(logits, labels, alpha=0.5, beta=0.5, smooth=0.0).item() == pytest.approx(
        soft_dice(logits, labels, smooth=0.0).item(), abs=1e-6)


def test_focal_by_hand_with_gamma_and_alpha():
    # a → 1 with p 3/4: (1/4)²·ln(4/3); b → 1 with p 1/4: (3/4)²·ln 4; mean over the 2 valid pixels
    value = focal(logits_abc(), target(1, 1, 255), gamma=2.0, ignore_index=255)
    expected = (math.log(4 / 3) / 16 + 9 * math.log(4) / 16) / 2
    assert value.item() == pytest.approx(expected, abs=1e-6)
    with_alpha = focal(logits_abc(), target(1, 1, 255), gamma=2.0, alpha=[0.25, 0.75], ignore_index=255)
    assert with_alpha.item() == pytest.approx(0.75 * expected, abs=1e-6)


def test_focal_with_gamma_zero_is_cross_entropy():
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(1, 3, 5, 5, generator=generator)
    labels = torch.randint(0, 3, (1, 5, 5), generator=generator)
    assert focal(logits, labels, gamma=0.0).item() == pytest.approx(cross_entropy(logits, labels).item(), rel=1e-6)


def test_combined_loss_is_the_weighted_sum_and_reports_terms():
    loss = build_loss("ce+dice", "0.5,0.25", ignore_index=255)
    total, terms = loss.with_terms(logits_abc(), target(1, 1, 255))
    ce = (math.log(4 / 3) + math.log(4)) / 2
    dice = 1 - (3 / 4 + 1 / 2) / 2
    assert terms == pytest.approx({"ce": ce, "dice": dice}, abs=1e-6)
    assert total.item() == pytest.approx(0.5 * ce + 0.25 * dice, abs=1e-6)
    total.backward()


@pytest.mark.parametrize("spec, weights, message", [
    ("ce+lovasz", None, "unknown loss"),
    ("ce+dice", "1", "1 value"),
    ("ce", "x", "comma-separated"),
    ("ce+ce", None, "twice"),
    ("ce+dice", "0,0", "not all zero"),
])
def test_bad_loss_specs_are_usage_errors(spec, weights, message):
    with pytest.raises(UsageError, match=message):
        parse_loss_spec(spec, weights)
