"""Sliding-window inference: run a model tile by tile and blend the overlapping outputs.

The tiles come from :func:`segtools.tiling.grid.tile_grid` (edge tiles shifted inward, so every
tile is full size when the image is at least one tile large) and the weight windows from
:func:`segtools.tiling.blend.blend_weights`. Accumulation happens in torch on the model's device:
``sums += window · output`` and ``weights += window`` per tile, then ``sums / weights``.

What is blended is whatever ``forward`` returns — logits for segtools models, as MONAI's
``sliding_window_inference`` and mmsegmentation's ``slide_inference`` do; the predictor applies
softmax afterwards. A window of the same shape everywhere means the blend is a weighted mean, so
an image covered by a single tile gives exactly the whole-image output.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from segtools.errors import UsageError, require
from segtools.tiling.blend import blend_weights
from segtools.tiling.grid import SizeLike, Tile, as_pair, tile_grid

torch = require("torch", "models")


def sliding_window(forward: Callable[["torch.Tensor"], "torch.Tensor"], images: "torch.Tensor",
                   tile: SizeLike, overlap: int | float = 0, blend: str = "gaussian",
                   sigma_scale: float = 0.125, batch: int = 4,
                   window: "np.ndarray | torch.Tensor | None" = None) -> "torch.Tensor":
    """Blend ``forward`` over tiles of ``images``.

    Parameters
    ----------
    forward : maps an N×3×h×w tensor to N×C×h×w outputs (logits) at the same size.
    images : N×3×H×W input tensor (already normalised).
    tile : tile size in pixels, one int or ``(h, w)``; larger than the image → one tile per axis.
    overlap : overlap in pixels (int) or as a fraction of the tile (float in [0, 1)).
    blend : ``gaussian``, ``linear`` or ``mean`` weight window.
    sigma_scale : Gaussian σ as a fraction of the tile size (MONAI's default 0.125).
    batch : tiles per forward call (the tiles of all N images are batched together).
    window : a custom tile×tile weight window (positive), overriding ``blend`` — e.g. MONAI's
        window, whose Gaussian is clamped at 1e-3 after the 2-D product where
        :func:`~segtools.tiling.blend.blend_weights` clamps each axis (see its notes).

    Returns
    -------
    torch.Tensor
        N×C×H×W float32 blended outputs, on ``images.device``.
    """
    if images.ndim != 4:
        raise UsageError(f"sliding window expects N×C×H×W input, got shape {tuple(images.shape)}")
    if batch < 1:
        raise UsageError(f"batch must be at least 1, not {batch}")
    count, _, height, width = images.shape
    tile_h, tile_w = (int(v) for v in as_pair(tile, "tile size"))
    tiles = tile_grid(height, width, (tile_h, tile_w), overlap=overlap)
    if len(tiles) == 1:  # one tile covers the image: the weighted mean is the output itself
        return torch.cat([forward(images[i:i + batch]).float() for i in range(0, count, batch)])
    if window is None:
        window = blend_weights(tiles[0].h, tiles[0].w, blend, sigma_scale)
    window = torch.as_tensor(np.array(window, dtype=np.float32), device=images.device)
    if tuple(window.shape) != (tiles[0].h, tiles[0].w) or bool((window <= 0).any()):
        raise UsageError(f"the blend window must be positive and {tiles[0].h}×{tiles[0].w}, not {tuple(window.shape)}")
    weight_sum = torch.zeros((height, width), dtype=torch.float32, device=images.device)
    for t in tiles:
        weight_sum[t.y:t.y1, t.x:t.x1] += window
    sums: torch.Tensor | None = None
    jobs = [(n, t) for n in range(count) for t in tiles]
    for start in range(0, len(jobs), batch):
        group = jobs[start:start + batch]
        crops = torch.cat([images[n:n + 1, :, t.y:t.y1, t.x:t.x1] for n, t in group])
        outputs = forward(crops)
        if sums is None:
            sums = torch.zeros((count, outputs.shape[1], height, width), dtype=torch.float32, device=images.device)
        _accumulate(sums, outputs, group, window)
    return sums / weight_sum


def _accumulate(sums: "torch.Tensor", outputs: "torch.Tensor", group: list[tuple[int, Tile]],
                window: "torch.Tensor") -> None:
    weighted = outputs.float() * window
    for k, (n, t) in enumerate(group):
        sums[n, :, t.y:t.y1, t.x:t.x1] += weighted[k]
