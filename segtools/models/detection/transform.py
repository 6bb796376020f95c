"""Input and output geometry of the R-CNN models (torchvision's ``GeneralizedRCNNTransform``).

In: every image normalised (``(x − mean) / std`` on [0, 1] pixels), resized bilinearly by
``min(min_size / shorter side, max_size / longer side)`` (sizes floored), and the batch
zero-padded at the bottom/right to a multiple of 32. Out: boxes scaled back to the original
image (float32 ratios, as torchvision computes them) and the 28×28 mask probabilities
pasted into the image: each box grown by 30/28 (the mask's one-pixel border), rounded down
to whole pixels, the padded mask resized bilinearly to the box and placed there.

The paste is one batched product per chunk of masks, ``Wy · mask · Wxᵀ``, with ``Wy``/``Wx``
the bilinear interpolation weights of each image row/column (zero outside the box), so no
Python loop runs over instances.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_PASTE_CHUNK = 16  # masks pasted at once (bounds the chunk×H×W float temporary)


def resized_size(height: int, width: int, min_size: int, max_size: int) -> tuple[int, int]:
    """The size an image of ``height × width`` is resized to."""
    scale = min(min_size / min(height, width), max_size / max(height, width))
    return math.floor(height * scale), math.floor(width * scale)


def prepare_batch(images: list[torch.Tensor], mean: tuple[float, ...], std: tuple[float, ...], min_size: int,
                  max_size: int, size_divisible: int = 32) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Normalise, resize and pad 3×H×W float images in [0, 1] into one batch.

    Returns the N×3×H'×W' batch and each image's resized size.
    """
    resized = []
    for image in images:
        m = torch.as_tensor(mean, dtype=image.dtype, device=image.device)[:, None, None]
        s = torch.as_tensor(std, dtype=image.dtype, device=image.device)[:, None, None]
        image = (image - m) / s
        size = resized_size(image.shape[-2], image.shape[-1], min_size, max_size)
        resized.append(F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0])
    sizes = [tuple(int(v) for v in r.shape[-2:]) for r in resized]
    height = int(math.ceil(max(h for h, _ in sizes) / size_divisible) * size_divisible)
    width = int(math.ceil(max(w for _, w in sizes) / size_divisible) * size_divisible)
    batch = resized[0].new_zeros((len(resized), resized[0].shape[0], height, width))
    for i, r in enumerate(resized):
        batch[i, :, : r.shape[1], : r.shape[2]].copy_(r)
    return batch, sizes


def rescale_boxes(boxes: torch.Tensor, resized: tuple[int, int], original: tuple[int, int]) -> torch.Tensor:
    """Boxes from the resized image back to the original's pixels."""
    ratio_h, ratio_w = (torch.tensor(o, dtype=torch.float32, device=boxes.device)
                        / torch.tensor(r, dtype=torch.float32, device=boxes.device)
                        for o, r in zip(original, resized))
    return torch.stack((boxes[:, 0] * ratio_w, boxes[:, 1] * ratio_h, boxes[:, 2] * ratio_w, boxes[:, 3] * ratio_h),
                       dim=1)


def _axis_weights(low: torch.Tensor, high: torch.Tensor, size: int, source: int, dtype: torch.dtype) -> torch.Tensor:
    """K×size×source bilinear weights mapping a ``source``-long mask axis onto image
    pixels ``low … high`` (inclusive, integers) of each box; zero outside it."""
    length = (high - low + 1).clamp(min=1)
    pixel = torch.arange(size, device=low.device)
    offset = pixel[None, :] - low[:, None]  # index into the resized mask
    inside = (offset >= 0) & (offset < length[:, None]) & (pixel[None, :] <= high[:, None])
    scale = (source / length.to(dtype))[:, None]
    real = (scale * (offset.to(dtype) + 0.5) - 0.5).clamp(min=0)
    index = torch.floor(real).to(torch.int64).clamp(max=source - 1)
    lam = (real - index.to(dtype)).clamp(0, 1)
    upper = (index + 1).clamp(max=source - 1)
    weights = torch.zeros((low.shape[0], size, source), dtype=dtype, device=low.device)
    weights.scatter_add_(2, index[..., None], ((1 - lam) * inside)[..., None])
    weights.scatter_add_(2, upper[..., None], (lam * inside)[..., None])
    return weights


def paste_masks(masks: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int],
                threshold: float | None = 0.5) -> torch.Tensor:
    """Paste K×1×M×M mask probabilities into an image of ``size = (height, width)``.

    Returns K×H×W: booleans ``> threshold``, or the probabilities when ``threshold`` is None.
    """
    height, width = size
    count = masks.shape[0]
    dtype = masks.dtype if masks.dtype in (torch.float32, torch.float64) else torch.float32
    out = torch.zeros((count, height, width), dtype=torch.bool if threshold is not None else dtype,
                      device=masks.device)
    if count == 0:
        return out
    m = masks.shape[-1]
    padded = F.pad(masks[:, 0].to(dtype), (1, 1, 1, 1))
    scale = float(m + 2) / m
    boxes = boxes.to(dtype)
    half_w = (boxes[:, 2] - boxes[:, 0]) * 0.5 * scale
    half_h = (boxes[:, 3] - boxes[:, 1]) * 0.5 * scale
    cx, cy = (boxes[:, 2] + boxes[:, 0]) * 0.5, (boxes[:, 3] + boxes[:, 1]) * 0.5
    grown = torch.stack((cx - half_w, cy - half_h, cx + half_w, cy + half_h), dim=1).to(torch.int64)
    for start in range(0, count, _PASTE_CHUNK):
        part = slice(start, start + _PASTE_CHUNK)
        rows = _axis_weights(grown[part, 1], grown[part, 3], height, m + 2, dtype)
        cols = _axis_weights(grown[part, 0], grown[part, 2], width, m + 2, dtype)
        pasted = rows @ padded[part] @ cols.transpose(1, 2)
        out[part] = pasted > threshold if threshold is not None else pasted
    return out
