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
    ("ce+hinge", None, "unknown loss"),
    ("ce+dice", "1", "1 value"),
    ("ce", "x", "comma-separated"),
    ("ce+ce", None, "twice"),
    ("ce+dice", "0,0", "not all zero"),
])
def test_bad_loss_specs_are_usage_errors(spec, weights, message):
    with pytest.raises(UsageError, match=message):
        parse_loss_spec(spec, weights)


# ---- OHEM and Lovász-softmax --------------------------------------------------------------

def _random_case(seed: int, n=2, c=4, h=5, w=6, ignore=255):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, h, w, generator=g) * 2
    labels = torch.randint(0, c, (n, h, w), generator=g)
    labels[torch.rand(n, h, w, generator=g) < 0.15] = ignore
    return logits.requires_grad_(), labels


def test_ohem_keeps_the_hardest_fraction_and_the_pixels_below_the_threshold():
    from segtools.train.losses import ohem_cross_entropy

    logits, labels = _random_case(0)
    valid = labels != 255
    log_p = torch.log_softmax(logits.detach(), 1).gather(1, labels.clamp(max=3).unsqueeze(1)).squeeze(1)[valid]
    ordered = torch.sort(log_p.exp()).values
    for thresh, fraction in ((0.7, 0.1), (0.05, 0.3), (0.999, 0.0)):
        kept = min(ordered.numel() - 1, int(fraction * ordered.numel()))
        cut = max(thresh, float(ordered[kept])) if kept > 0 else thresh
        hard = log_p.exp() < cut
        expected = -log_p[hard].mean()
        value = ohem_cross_entropy(logits, labels, thresh=thresh, min_kept=fraction, ignore_index=255)
        assert value.item() == pytest.approx(expected.item(), rel=1e-6)
        assert int(hard.sum()) >= kept
    # everything counts: plain cross-entropy
    full = ohem_cross_entropy(logits, labels, thresh=1.0, min_kept=1.0, ignore_index=255)
    assert full.item() == pytest.approx(cross_entropy(logits, labels, ignore_index=255).item(), rel=1e-6)
    weights = torch.tensor([1.0, 2.0, 0.5, 3.0])
    weighted = ohem_cross_entropy(logits, labels, thresh=1.0, min_kept=1.0, class_weights=weights, ignore_index=255)
    assert weighted.item() == pytest.approx(
        cross_entropy(logits, labels, class_weights=weights, ignore_index=255).item(), rel=1e-6)
    weighted.backward()
    assert torch.isfinite(logits.grad).all()


def test_ohem_settings_out_of_range_are_usage_errors():
    with pytest.raises(UsageError, match="ohem_thresh"):
        build_loss("ohem", ohem_thresh=0.0)
    with pytest.raises(UsageError, match="ohem_min_kept"):
        build_loss("ce+ohem", ohem_min_kept=1.5)
    build_loss("ce", ohem_thresh=0.0)  # not asked for: not checked


def _lovasz_by_prefix_sets(probs: list[list[float]], labels: list[int]) -> float:
    """The Lovász extension from its definition: for each class present, the errors in
    decreasing order, each times the rise of the Jaccard loss |M| / |F ∪ M| of the set M of
    pixels taken so far, written with Python sets (no cumulative sums)."""
    classes = sorted(set(labels))
    losses = []
    for c in classes:
        fg = {i for i, y in enumerate(labels) if y == c}
        errors = [abs((1.0 if i in fg else 0.0) - p[c]) for i, p in enumerate(probs)]
        order = sorted(range(len(labels)), key=lambda i: -errors[i])
        taken: set[int] = set()
        previous, total = 0.0, 0.0
        for i in order:
            taken.add(i)
            jaccard = len(taken) / len(fg | taken)
            total += errors[i] * (jaccard - previous)
            previous = jaccard
        losses.append(total)
    return sum(losses) / len(losses)


def test_lovasz_softmax_equals_its_definition_on_soft_probabilities():
    from segtools.train.losses import lovasz_softmax

    for seed in range(4):
        logits, labels = _random_case(seed)
        value = lovasz_softmax(logits, labels, ignore_index=255)
        valid = labels != 255
        probs = torch.softmax(logits.detach(), 1).permute(0, 2, 3, 1)[valid].tolist()
        assert value.item() == pytest.approx(_lovasz_by_prefix_sets(probs, labels[valid].tolist()), abs=1e-5)
        value.backward()
        assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_lovasz_softmax_is_one_minus_iou_at_hard_predictions():
    from segtools.train.losses import lovasz_softmax

    g = torch.Generator().manual_seed(7)
    labels = torch.randint(0, 3, (1, 8, 9), generator=g)
    labels[0, 0, :3] = 255
    predicted = torch.randint(0, 4, (1, 8, 9), generator=g)  # class 3: predicted, never in the target
    logits = F.one_hot(predicted, 4).permute(0, 3, 1, 2).float() * 200.0  # probabilities exactly 0 or 1
    valid = labels != 255
    ious = []
    for c in range(3):  # the classes present in the target
        truth, guess = (labels == c) & valid, (predicted == c) & valid
        ious.append(float((truth & guess).sum()) / float((truth | guess).sum()))
    expected = 1.0 - sum(ious) / 3
    assert lovasz_softmax(logits, labels, ignore_index=255).item() == pytest.approx(expected, abs=1e-6)
    perfect = F.one_hot(labels.clamp(max=2), 4).permute(0, 3, 1, 2).float() * 200.0
    assert lovasz_softmax(perfect, labels, ignore_index=255).item() == pytest.approx(0.0, abs=1e-7)
    weights = torch.tensor([1.0, 0.0, 0.0, 5.0])  # only class 0 counts (class 3 is absent)
    assert lovasz_softmax(logits, labels, ignore_index=255, class_weights=weights).item() == \
        pytest.approx(1.0 - ious[0], abs=1e-6)


def test_lovasz_and_ohem_of_an_all_ignored_batch_are_zero_with_a_gradient():
    from segtools.train.losses import lovasz_softmax, ohem_cross_entropy

    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    labels = torch.full((1, 2, 2), 255)
    for fn in (lovasz_softmax, ohem_cross_entropy):
        value = fn(logits, labels, ignore_index=255)
        assert value.item() == 0.0
        value.backward()
