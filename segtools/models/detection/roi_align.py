"""RoIAlign over a feature pyramid, in plain torch (``grid_sample``), equal to torchvision's.

torchvision's RoIAlign (``aligned=False``, the R-CNN models' setting) divides a box scaled
to the level into P×P bins, averages ``s×s`` bilinear samples at the centres of a regular
grid in each bin (``s`` = the sampling ratio, 2), and reads a sample as 0 when it lies more
than one pixel outside the map; nearer ones are clamped to the border. Here every sample of
every box of an image is one point of one ``grid_sample`` call (bilinear, coordinates
clamped first so that the interpolation is torchvision's), the out-of-range samples are
zeroed, and an ``s×s`` average pool gives the bins. ``aligned=True`` (detectron2) shifts
boxes by half a pixel and allows boxes under one pixel.

Boxes go to pyramid levels by the FPN rule ``⌊4 + log2(√area / 224) + 1e-6⌋`` clamped to
the levels present, with each level's scale inferred as the nearest power of two of its
size over the images' size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_ROIS_PER_CALL = 256  # boxes sampled per grid_sample call (bounds the temporary)


def roi_align(features: torch.Tensor, boxes: list[torch.Tensor], output_size: int, scale: float,
              sampling_ratio: int = 2, aligned: bool = False) -> torch.Tensor:
    """Pool boxes from one feature map.

    Parameters
    ----------
    features : B×C×H×W.
    boxes : per image, K×4 boxes ``(x1, y1, x2, y2)`` in input pixels.
    output_size : P (bins per side).
    scale : feature pixels per input pixel (1/4 for the first FPN level).
    sampling_ratio : samples per bin and axis (> 0).
    aligned : shift by half a pixel (detectron2's ``ROIAlignV2``).

    Returns
    -------
    (ΣK)×C×P×P, the boxes of image 0 first.
    """
    channels, height, width = features.shape[1:]
    grid = output_size * sampling_ratio
    out = []
    for image, image_boxes in enumerate(boxes):
        for start in range(0, image_boxes.shape[0], _ROIS_PER_CALL):
            chunk = image_boxes[start:start + _ROIS_PER_CALL].to(torch.promote_types(features.dtype, torch.float32))
            xs, x_ok = _sample_coordinates(chunk[:, 0], chunk[:, 2], scale, output_size, sampling_ratio, width, aligned)
            ys, y_ok = _sample_coordinates(chunk[:, 1], chunk[:, 3], scale, output_size, sampling_ratio, height, aligned)
            count = chunk.shape[0]
            # normalised coordinates of align_corners=False: pixel x ↦ (2x + 1) / W − 1
            gx = (2 * xs + 1) / width - 1
            gy = (2 * ys + 1) / height - 1
            points = torch.stack((gx[:, None, :].expand(count, grid, grid), gy[:, :, None].expand(count, grid, grid)), dim=-1)
            points = points.reshape(1, count * grid, grid, 2).to(features.dtype)
            sampled = F.grid_sample(features[image:image + 1], points, mode="bilinear", padding_mode="border",
                                    align_corners=False)
            sampled = sampled.view(channels, count, grid, grid).transpose(0, 1)
            valid = (y_ok[:, :, None] & x_ok[:, None, :]).to(sampled.dtype)
            out.append(F.avg_pool2d(sampled * valid[:, None], sampling_ratio))
    if not out:
        return features.new_zeros((0, channels, output_size, output_size))
    return torch.cat(out)


def _sample_coordinates(low: torch.Tensor, high: torch.Tensor, scale: float, bins: int, ratio: int, size: int,
                        aligned: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per box, the ``bins·ratio`` sample positions along one axis (clamped) and whether each
    is inside the map's one-pixel margin."""
    offset = 0.5 if aligned else 0.0
    start = low * scale - offset
    extent = high * scale - offset - start
    if not aligned:
        extent = extent.clamp(min=1.0)
    bin_size = extent / bins
    index = torch.arange(bins * ratio, device=low.device)
    cell = (index // ratio).to(low.dtype)
    sub = (index % ratio).to(low.dtype) + 0.5
    coords = start[:, None] + cell[None, :] * bin_size[:, None] + sub[None, :] * bin_size[:, None] / ratio
    inside = (coords >= -1.0) & (coords <= size)
    return coords.clamp(min=0, max=size - 1), inside


def infer_scale(feature_size: int, image_size: int) -> float:
    """The power of two nearest ``feature_size / image_size`` (torchvision's rule)."""
    return 2.0 ** round(math.log2(float(feature_size) / float(image_size)))


def box_levels(boxes: list[torch.Tensor], k_min: int, k_max: int, canonical_scale: int = 224,
               canonical_level: int = 4, eps: float = 1e-6) -> torch.Tensor:
    """FPN level (0-based from ``k_min``) of every box."""
    all_boxes = torch.cat(boxes)
    s = torch.sqrt((all_boxes[:, 2] - all_boxes[:, 0]) * (all_boxes[:, 3] - all_boxes[:, 1]))
    levels = torch.floor(canonical_level + torch.log2(s / canonical_scale) + torch.tensor(eps, dtype=s.dtype))
    return (torch.clamp(levels, min=k_min, max=k_max).to(torch.int64) - k_min)


class MultiScaleRoIAlign(nn.Module):
    """RoIAlign of each box on the pyramid level its size picks.

    Parameters
    ----------
    names : the feature maps used (``"0"`` … ``"3"``), finest first.
    output_size : bins per side (7 for boxes, 14 for masks).
    sampling_ratio : samples per bin and axis.
    aligned : detectron2's half-pixel shift.
    """

    def __init__(self, names: tuple[str, ...] = ("0", "1", "2", "3"), output_size: int = 7,
                 sampling_ratio: int = 2, aligned: bool = False) -> None:
        super().__init__()
        self.names, self.output_size = tuple(names), int(output_size)
        self.sampling_ratio, self.aligned = int(sampling_ratio), bool(aligned)

    def forward(self, features: dict[str, torch.Tensor], boxes: list[torch.Tensor],
                image_sizes: list[tuple[int, int]]) -> torch.Tensor:
        maps = [features[name] for name in self.names]
        tallest = max(size[0] for size in image_sizes)
        scales = [infer_scale(level.shape[-2], tallest) for level in maps]
        k_min, k_max = int(-math.log2(scales[0])), int(-math.log2(scales[-1]))
        total = sum(int(b.shape[0]) for b in boxes)
        result = maps[0].new_zeros((total, maps[0].shape[1], self.output_size, self.output_size))
        if total == 0:
            return result
        levels = box_levels(boxes, k_min, k_max)
        image_of = torch.cat([torch.full((int(b.shape[0]),), i, device=levels.device) for i, b in enumerate(boxes)])
        all_boxes = torch.cat(boxes)
        for level, (feature, scale) in enumerate(zip(maps, scales)):
            chosen = torch.where(levels == level)[0]
            if chosen.numel() == 0:
                continue
            per_image = [all_boxes[chosen[image_of[chosen] == i]] for i in range(len(boxes))]
            order = torch.cat([chosen[image_of[chosen] == i] for i in range(len(boxes))])
            pooled = roi_align(feature, per_image, self.output_size, scale, self.sampling_ratio, self.aligned)
            result[order] = pooled.to(result.dtype)
        return result
