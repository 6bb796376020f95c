"""Exponential moving average of a model's weights (Polyak averaging), as timm and mmseg keep it.

After every optimisation step each floating-point tensor ``e`` of the average moves towards
the model's ``w``: ``e ← d·e + (1 − d)·w`` with ``d = min(decay, (1 + step) / (10 + step))``
(the warm-up lets the average follow the fast early changes); BatchNorm's counters are
copied. Validation and the saved checkpoints use the averaged weights; the raw ones are
kept for resuming.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch


class WeightAverage:
    """The running average of ``model``'s state dict."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema decay must be in (0, 1), not {decay}")
        self.decay = float(decay)
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1.0 + step) / (10.0 + step))
        for key, value in model.state_dict().items():
            average = self.state[key]
            if average.is_floating_point():
                average.mul_(d).add_(value.detach(), alpha=1.0 - d)
            else:
                average.copy_(value)

    def load(self, state: dict) -> None:
        for key, value in state.items():
            self.state[key].copy_(value)

    @contextlib.contextmanager
    def applied(self, model: torch.nn.Module) -> Iterator[None]:
        """Run the block with the averaged weights in ``model``, then put the raw ones back."""
        raw = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.state)
        try:
            yield
        finally:
            model.load_state_dict(raw)
