"""Temporal smoothing of class probabilities across the frames of a video, and flicker.

A per-frame model labels each frame on its own, so a pixel near a class boundary can change
label from frame to frame while nothing in the scene moved: flicker. An exponential moving
average (EMA) of the probabilities, ``s_t = a·p_t + (1 − a)·s_{t−1}`` (``a`` the weight of
the new frame; ``a = 1`` is no smoothing), trades a little lag for steadier labels.
:func:`flicker` measures the effect: the share of pixels whose label changes between
neighbouring frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Optional

import numpy as np

from segtools.errors import UsageError

METHODS = ("ema",)


@dataclass(frozen=True)
class Temporal:
    """Smoothing settings: ``method`` (``ema``) and ``alpha``, the weight of the new frame in (0, 1]."""

    method: str = "ema"
    alpha: float = 0.5

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UsageError(f"temporal={self.method!r}: choose {' or '.join(METHODS)} (e.g. ema:0.5)")
        if not 0.0 < self.alpha <= 1.0:
            raise UsageError(f"temporal=ema:{self.alpha}: the new frame's weight must be in (0, 1] (1: no smoothing)")


def parse_temporal(text: Optional[str]) -> Optional[Temporal]:
    """``"ema:0.5"`` → ``Temporal("ema", 0.5)``; ``"ema"`` → alpha 0.5; ``None``/``"none"`` → ``None``.

    >>> parse_temporal("ema:0.3"), parse_temporal("none")
    (Temporal(method='ema', alpha=0.3), None)
    """
    if text is None or str(text).strip().lower() in ("", "none", "off"):
        return None
    method, _, value = str(text).strip().lower().partition(":")
    try:
        alpha = float(value) if value else 0.5
    except ValueError:
        raise UsageError(f"temporal={text!r}: give ema:A, A the new frame's weight in (0, 1] (e.g. ema:0.5)") from None
    return Temporal(method, alpha)


class EMASmoother:
    """Running EMA of C×H×W probability maps (float32, updated in place; the first frame is
    taken as it is). A frame of another shape restarts the average."""

    def __init__(self, alpha: float) -> None:
        self.alpha = float(alpha)
        self.state: Optional[np.ndarray] = None

    def __call__(self, probs: np.ndarray) -> np.ndarray:
        probs = np.asarray(probs, dtype=np.float32)
        if self.alpha == 1.0:  # no memory: the frame as it is (s + (p − s) need not round to p)
            self.state = probs
        elif self.state is None or self.state.shape != probs.shape:
            self.state = np.array(probs, dtype=np.float32, copy=True)
        else:
            # s = s + a·(p − s): one temporary, the state updated in place
            delta = np.subtract(probs, self.state)
            delta *= self.alpha
            self.state += delta
        return self.state

    def reset(self) -> None:
        self.state = None


def smooth_probabilities(frames: Iterable[np.ndarray], temporal: Temporal) -> Iterator[np.ndarray]:
    """Yield the smoothed probabilities of each frame's C×H×W map, in order. Each yielded
    array is the smoother's state: use (or copy) it before asking for the next one."""
    smoother = EMASmoother(temporal.alpha)
    for probs in frames:
        yield smoother(probs)


def flicker(labels: Iterable[np.ndarray]) -> float:
    """The share of pixels whose label differs from the previous frame's, over all
    neighbouring pairs (0: no change; ``nan`` with fewer than two frames).

    >>> a = np.zeros((2, 2), np.uint8); b = a.copy(); b[0, 0] = 1
    >>> flicker([a, b, b])
    0.125
    """
    changed = pixels = 0
    previous = None
    for current in labels:
        current = np.asarray(current)
        if previous is not None:
            if current.shape != previous.shape:
                raise UsageError(f"flicker: frames of shapes {previous.shape} and {current.shape}")
            changed += int(np.count_nonzero(current != previous))
            pixels += current.size
        previous = current
    return changed / pixels if pixels else float("nan")
