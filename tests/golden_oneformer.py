"""Cases of the OneFormer post-processing golden test: raw model outputs drawn from a seeded
generator (the same bits in any environment), the request, and where the fixture lives.

``tools/make_oneformer_golden.py`` (run where torchvision is installed) records what
transformers' ``OneFormerImageProcessor`` makes of each case; ``tests/test_universal_post.py``
re-draws the outputs and checks segtools' own post-processing against that record.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "golden" / "oneformer_post.json"

#: name: (task, queries, classes, mask height, mask width, target size, threshold, fused class ids)
CASES = {
    "instance-up": ("instance", 8, 3, 16, 24, (50, 70), 0.0, ()),
    "instance-down": ("instance", 8, 3, 32, 32, (20, 25), 0.2, ()),
    "instance-many-classes": ("instance", 12, 20, 20, 20, (61, 47), 0.05, ()),
    "panoptic-fused": ("panoptic", 8, 3, 16, 24, (50, 70), 0.5, (0, 2)),
    "panoptic-same-size": ("panoptic", 10, 5, 24, 24, (24, 24), 0.3, ()),
    "panoptic-down": ("panoptic", 10, 5, 40, 36, (17, 23), 0.2, (1,)),
    "panoptic-none-pass": ("panoptic", 6, 3, 16, 16, (30, 30), 0.999, ()),
}


def outputs(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Q×(K+1) class logits and Q×h×w mask logits of case ``name`` (float32)."""
    _, queries, classes, height, width, _, _, _ = CASES[name]
    rng = np.random.default_rng(sorted(CASES).index(name) + 11)
    class_logits = rng.normal(size=(queries, classes + 1)) * 4
    class_logits[:, -1] -= 2  # fewer "no object" winners
    # each coarse cell belongs to one query (logit ≈ +6, elsewhere ≈ −6), a few to two, so that
    # queries win most of their own pixels and the 0.8 overlap rule keeps some and drops some
    owner = rng.integers(0, queries, size=(height // 4 + 1, width // 4 + 1))
    second = np.where(rng.random(owner.shape) < 0.15, rng.integers(0, queries, size=owner.shape), -1)
    coarse = np.where((np.arange(queries)[:, None, None] == owner) | (np.arange(queries)[:, None, None] == second),
                      6.0, -6.0)
    masks = coarse.repeat(4, axis=1).repeat(4, axis=2)[:, :height, :width] + rng.normal(size=(queries, height, width))
    return class_logits.astype(np.float32), masks.astype(np.float32)


def runs(segmentation: np.ndarray) -> list[list[int]]:
    """A segment-id map as [value, count] runs in row-major order."""
    flat = np.asarray(segmentation).astype(np.int64).ravel()
    starts = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]])
    counts = np.diff(np.r_[starts, flat.size])
    return [[int(v), int(c)] for v, c in zip(flat[starts], counts)]


def from_runs(pairs: list[list[int]], shape: tuple[int, int]) -> np.ndarray:
    values, counts = np.array(pairs, np.int64).T
    return np.repeat(values, counts).reshape(shape)
