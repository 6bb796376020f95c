"""Segmentation losses over logits, ignore-aware, with optional per-class weights.

Every loss takes ``logits`` N×C×H×W (raw network outputs, any float dtype) and ``target``
N×H×W integer class indices, where pixels equal to ``ignore_index`` contribute nothing.
Losses are computed in float32 whatever the input precision (so they behave under AMP).

Conventions (all documented in docs/train.md):

* **cross-entropy** follows :func:`torch.nn.functional.cross_entropy`: with class weights
  ``w`` the mean is ``Σ w[y]·(−log p_y) / Σ w[y]`` over non-ignored pixels.
* **soft Dice** is computed per class over the whole batch (all images and pixels pooled),
  ``dice_c = (2·Σ p_c·g_c + s) / (Σ p_c + Σ g_c + s)``, loss ``1 − Σ w_c·dice_c / Σ w_c``.
* **focal** (Lin et al. 2017) ``−α[y]·(1 − p_y)^γ·log p_y`` averaged over non-ignored
  pixels (not normalised by α); ``α`` is one number for every class or one per class.
* **Tversky** (Salehi et al. 2017) ``(TP + s) / (TP + α·FP + β·FN + s)`` per class, pooled
  like Dice; α weighs false positives, β false negatives; α = β = 0.5 is soft Dice.
* **OHEM** cross-entropy (online hard example mining, as PSPNet's and mmseg's
  ``OHEMPixelSampler``): only the pixels whose true-class probability is below ``thresh``
  count, and at least the ``min_kept`` fraction of the non-ignored pixels, the hardest
  first; the (class-weighted) mean over the kept pixels.
* **Lovász-softmax** (Berman et al. 2018): the Lovász extension of the Jaccard loss of each
  class over the batch's pixels, averaged over the classes present in the target — a
  convex, piecewise-linear surrogate of ``1 − IoU`` that equals it exactly when the
  probabilities are 0 or 1; class weights weigh that average.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from segtools.errors import UsageError

LOSS_NAMES = ("ce", "dice", "focal", "tversky", "ohem", "lovasz")


def _valid_mask(target: torch.Tensor, ignore_index: int | None) -> torch.Tensor:
    if ignore_index is None:
        return torch.ones_like(target, dtype=torch.bool)
    return target != ignore_index


def _probs_and_onehot(logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None):
    """Softmax probabilities and one-hot target, both N×C×H×W float32, zero at ignored pixels."""
    num_classes = logits.shape[1]
    valid = _valid_mask(target, ignore_index)
    probs = torch.softmax(logits.float(), dim=1) * valid.unsqueeze(1)
    safe_target = torch.where(valid, target, torch.zeros_like(target)).long()
    onehot = F.one_hot(safe_target, num_classes).permute(0, 3, 1, 2).float() * valid.unsqueeze(1)
    return probs, onehot


def _class_mean(per_class: torch.Tensor, class_weights: torch.Tensor | None) -> torch.Tensor:
    if class_weights is None:
        return per_class.mean()
    w = class_weights.to(per_class)
    return (per_class * w).sum() / w.sum()


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, *, class_weights: torch.Tensor | None = None,
                  ignore_index: int | None = 255, label_smoothing: float = 0.0) -> torch.Tensor:
    """Pixel-wise cross-entropy (the weighted mean of torch's ``F.cross_entropy``).

    Returns 0 (with a gradient) when every pixel is ignored, rather than NaN.
    """
    valid = _valid_mask(target, ignore_index)
    if not bool(valid.any()):
        return logits.float().sum() * 0.0
    weight = class_weights.to(logits.device, torch.float32) if class_weights is not None else None
    return F.cross_entropy(logits.float(), target.long(), weight=weight,
                           ignore_index=-100 if ignore_index is None else ignore_index,
                           label_smoothing=label_smoothing)


def soft_dice(logits: torch.Tensor, target: torch.Tensor, *, class_weights: torch.Tensor | None = None,
              ignore_index: int | None = 255, smooth: float = 1.0) -> torch.Tensor:
    """Multi-class soft Dice loss, ``1 − (weighted) mean over classes of the batch Dice``."""
    probs, onehot = _probs_and_onehot(logits, target, ignore_index)
    dims = (0, 2, 3)
    intersection = (probs * onehot).sum(dims)
    denominator = probs.sum(dims) + onehot.sum(dims)
    dice = (2.0 * intersection + smooth) / (denominator + smooth)
    return 1.0 - _class_mean(dice, class_weights)


def tversky(logits: torch.Tensor, target: torch.Tensor, *, alpha: float = 0.5, beta: float = 0.5,
            class_weights: torch.Tensor | None = None, ignore_index: int | None = 255,
            smooth: float = 1.0) -> torch.Tensor:
    """Tversky loss ``1 − mean_c (TP + s)/(TP + α·FP + β·FN + s)``; α on FP, β on FN."""
    probs, onehot = _probs_and_onehot(logits, target, ignore_index)
    dims = (0, 2, 3)
    true_pos = (probs * onehot).sum(dims)
    false_pos = (probs * (1.0 - onehot)).sum(dims)
    false_neg = ((1.0 - probs) * onehot).sum(dims)
    index = (true_pos + smooth) / (true_pos + alpha * false_pos + beta * false_neg + smooth)
    return 1.0 - _class_mean(index, class_weights)


def focal(logits: torch.Tensor, target: torch.Tensor, *, gamma: float = 2.0,
          alpha: float | Sequence[float] | torch.Tensor | None = None,
          class_weights: torch.Tensor | None = None, ignore_index: int | None = 255) -> torch.Tensor:
    """Softmax focal loss, mean over non-ignored pixels of ``−α[y]·(1 − p_y)^γ·log p_y``.

    ``alpha`` and ``class_weights`` both scale a pixel's term by its true class (they
    multiply when both are given); ``gamma = 0`` and no weights give plain cross-entropy.
    """
    valid = _valid_mask(target, ignore_index)
    if not bool(valid.any()):
        return logits.float().sum() * 0.0
    safe_target = torch.where(valid, target, torch.zeros_like(target)).long()
    log_probs = torch.log_softmax(logits.float(), dim=1)
    log_pt = log_probs.gather(1, safe_target.unsqueeze(1)).squeeze(1)
    pt = log_pt.exp()
    term = -((1.0 - pt).clamp(min=0.0) ** gamma) * log_pt
    scale = torch.ones(logits.shape[1], dtype=torch.float32, device=logits.device)
    if alpha is not None:
        scale = scale * torch.as_tensor(alpha, dtype=torch.float32, device=logits.device)
    if class_weights is not None:
        scale = scale * class_weights.to(logits.device, torch.float32)
    term = term * scale[safe_target]
    return term[valid].mean()


def _check_ohem(thresh: float, min_kept: float) -> None:
    if not 0.0 < thresh <= 1.0:
        raise UsageError(f"ohem_thresh={thresh}: give a probability in (0, 1]")
    if not 0.0 <= min_kept <= 1.0:
        raise UsageError(f"ohem_min_kept={min_kept}: give a fraction of the pixels in [0, 1]")


def ohem_cross_entropy(logits: torch.Tensor, target: torch.Tensor, *, thresh: float = 0.7, min_kept: float = 0.1,
                       class_weights: torch.Tensor | None = None, ignore_index: int | None = 255) -> torch.Tensor:
    """Cross-entropy over the hard pixels only: true-class probability below ``thresh``, and at
    least the ``min_kept`` fraction of the non-ignored pixels (the lowest probabilities;
    the threshold rises to the probability of the last one kept)."""
    _check_ohem(thresh, min_kept)
    valid = _valid_mask(target, ignore_index)
    if not bool(valid.any()):
        return logits.float().sum() * 0.0
    safe_target = torch.where(valid, target, torch.zeros_like(target)).long()
    log_pt = torch.log_softmax(logits.float(), dim=1).gather(1, safe_target.unsqueeze(1)).squeeze(1)
    with torch.no_grad():
        prob = log_pt.exp()[valid]
        kept = min(prob.numel() - 1, int(min_kept * prob.numel()))
        floor = torch.kthvalue(prob, kept + 1).values if kept > 0 else prob.new_tensor(0.0)
        hard = valid.clone()
        hard[valid] = prob < torch.clamp(floor, min=thresh)
        if not bool(hard.any()):  # every pixel easy (and min_kept 0): nothing to learn from
            return logits.float().sum() * 0.0
    weight = torch.ones_like(log_pt) if class_weights is None else class_weights.to(log_pt)[safe_target]
    weight = weight * hard
    return -(log_pt * weight).sum() / weight.sum()


def lovasz_softmax(logits: torch.Tensor, target: torch.Tensor, *, class_weights: torch.Tensor | None = None,
                   ignore_index: int | None = 255) -> torch.Tensor:
    """Lovász-softmax loss over the batch's pixels, averaged over the classes present in ``target``.

    Per class: the pixels' errors ``|[y = c] − p_c|`` sorted in decreasing order, dotted with
    the increments of the Jaccard loss ``1 − |F ∖ M| / |F ∪ M|`` along that order (``F``
    the class's pixels, ``M`` the errors so far) — all classes in one sort.
    """
    valid = _valid_mask(target, ignore_index)
    if not bool(valid.any()):
        return logits.float().sum() * 0.0
    num_classes = logits.shape[1]
    probs = torch.softmax(logits.float(), dim=1).transpose(0, 1)[:, valid]          # C×P, rows contiguous
    labels = target[valid].long()
    present = torch.bincount(labels, minlength=num_classes) > 0
    probs = probs[present]
    fg = (labels.unsqueeze(0) == torch.arange(num_classes, device=labels.device)[present].unsqueeze(1)).to(probs.dtype)
    errors, order = torch.sort((fg - probs).abs(), dim=1, descending=True)
    fg_sorted = fg.gather(1, order)
    total = fg_sorted.sum(1, keepdim=True)
    taken = fg_sorted.cumsum(1)
    # the Jaccard loss after k pixels: 1 − (|F| − fg taken) / (|F| + non-fg taken)
    jaccard = 1.0 - (total - taken) / (total + torch.arange(1, taken.shape[1] + 1, device=taken.device) - taken)
    increments = torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], dim=1)
    per_class = (errors * increments).sum(1)
    if class_weights is None:
        return per_class.mean()
    w = class_weights.to(per_class)[present]
    return (per_class * w).sum() / w.sum()


@dataclass
class LossTerm:
    """One named term of a combined loss and its weight."""

    name: str
    weight: float
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class CombinedLoss:
    """A weighted sum of loss terms; ``terms(...)`` also returns each term's value."""

    terms: list[LossTerm] = field(default_factory=list)

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.with_terms(logits, target)[0]

    def with_terms(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The total loss (a tensor with grad) and each term's float value by name."""
        total = None
        values: dict[str, float] = {}
        for term in self.terms:
            value = term.fn(logits, target)
            values[term.name] = float(value.detach())
            weighted = term.weight * value
            total = weighted if total is None else total + weighted
        return total, values


def parse_loss_spec(spec: str, weights: str | Sequence[float] | None = None) -> list[tuple[str, float]]:
    """``"ce+dice"`` and ``"0.5,0.5"`` → ``[("ce", 0.5), ("dice", 0.5)]`` (default weight 1 each)."""
    names = [part.strip().lower() for part in str(spec).split("+") if part.strip()]
    if not names:
        raise UsageError("loss is empty; give e.g. ce, dice or ce+dice")
    for name in names:
        if name not in LOSS_NAMES:
            raise UsageError(f"loss: unknown loss {name!r}; choose from {', '.join(LOSS_NAMES)} (join with '+')")
    if len(set(names)) != len(names):
        raise UsageError(f"loss {spec!r} names a loss twice")
    if weights is None or (isinstance(weights, str) and not weights.strip()):
        values = [1.0] * len(names)
    else:
        try:
            values = [float(w) for w in (weights.split(",") if isinstance(weights, str) else weights)]
        except ValueError:
            raise UsageError(f"loss weights {weights!r}: give comma-separated numbers, e.g. 0.5,0.5") from None
        if len(values) != len(names):
            raise UsageError(f"loss weights: {len(values)} value(s) for {len(names)} loss term(s) in {spec!r}")
        if any(not (v >= 0) for v in values) or sum(values) <= 0:
            raise UsageError("loss weights must be non-negative numbers, not all zero")
    return list(zip(names, values))


def build_loss(spec: str, weights: str | Sequence[float] | None = None, *, ignore_index: int | None = 255,
               class_weights: torch.Tensor | None = None, focal_gamma: float = 2.0,
               focal_alpha: float | Sequence[float] | None = None, tversky_alpha: float = 0.5,
               tversky_beta: float = 0.5, label_smoothing: float = 0.0, smooth: float = 1.0,
               ohem_thresh: float = 0.7, ohem_min_kept: float = 0.1) -> CombinedLoss:
    """Build the loss a spec such as ``"ce+dice"`` names; class weights apply to every term.

    Example
    -------
    >>> loss = build_loss("ce+dice", "0.5,0.5", ignore_index=11)
    >>> [t.name for t in loss.terms], [t.weight for t in loss.terms]
    (['ce', 'dice'], [0.5, 0.5])
    """
    terms = parse_loss_spec(spec, weights)
    if any(name == "ohem" for name, _ in terms):
        _check_ohem(ohem_thresh, ohem_min_kept)
    makers: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
        "ce": lambda x, y: cross_entropy(x, y, class_weights=class_weights, ignore_index=ignore_index,
                                         label_smoothing=label_smoothing),
        "dice": lambda x, y: soft_dice(x, y, class_weights=class_weights, ignore_index=ignore_index, smooth=smooth),
        "focal": lambda x, y: focal(x, y, gamma=focal_gamma, alpha=focal_alpha, class_weights=class_weights,
                                    ignore_index=ignore_index),
        "tversky": lambda x, y: tversky(x, y, alpha=tversky_alpha, beta=tversky_beta, class_weights=class_weights,
                                        ignore_index=ignore_index, smooth=smooth),
        "ohem": lambda x, y: ohem_cross_entropy(x, y, thresh=ohem_thresh, min_kept=ohem_min_kept,
                                                class_weights=class_weights, ignore_index=ignore_index),
        "lovasz": lambda x, y: lovasz_softmax(x, y, class_weights=class_weights, ignore_index=ignore_index),
    }
    return CombinedLoss([LossTerm(name, weight, makers[name]) for name, weight in terms])
