"""Anchor boxes over the levels of a feature pyramid (torchvision's ``AnchorGenerator``).

One size per level (32, 64, 128, 256, 512 pixels for the R-CNN FPN models) and three aspect
ratios (height / width = 0.5, 1, 2) at every cell; a cell's anchors are centred on the
cell's top-left pixel, rounded to whole pixels, in the order location (row-major), then
ratio — the order of the RPN head's outputs after flattening.
"""

from __future__ import annotations

import torch
from torch import nn

DEFAULT_SIZES: tuple[tuple[int, ...], ...] = ((32,), (64,), (128,), (256,), (512,))
DEFAULT_RATIOS: tuple[float, ...] = (0.5, 1.0, 2.0)


def cell_anchors(sizes: tuple[int, ...], ratios: tuple[float, ...]) -> torch.Tensor:
    """The A×4 anchors of one cell, centred on 0: ratio-major, then size."""
    scales = torch.as_tensor(sizes, dtype=torch.float32, device="cpu")
    aspect = torch.as_tensor(ratios, dtype=torch.float32, device="cpu")
    h_ratios = torch.sqrt(aspect)
    w_ratios = 1 / h_ratios
    ws = (w_ratios[:, None] * scales[None, :]).view(-1)
    hs = (h_ratios[:, None] * scales[None, :]).view(-1)
    return (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round()


class AnchorGenerator(nn.Module):
    """Anchors for a padded batch: one (ΣHᵢWᵢA)×4 tensor, the same for every image.

    Parameters
    ----------
    sizes : per level, the anchor sizes in pixels.
    ratios : aspect ratios (height / width), the same at every level.
    """

    def __init__(self, sizes: tuple[tuple[int, ...], ...] = DEFAULT_SIZES,
                 ratios: tuple[float, ...] = DEFAULT_RATIOS) -> None:
        super().__init__()
        self.sizes, self.ratios = tuple(sizes), tuple(ratios)

    def num_anchors_per_location(self) -> int:
        return len(self.sizes[0]) * len(self.ratios)

    def forward(self, batch_size: tuple[int, int], feature_sizes: list[tuple[int, int]],
                dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """Anchors of all levels, level after level; strides are the padded batch size over
        each level's size (integer division)."""
        levels = []
        cells = [cell_anchors(level, self.ratios) for level in self.sizes]  # on the CPU, whatever the default device
        for (rows, cols), base in zip(feature_sizes, cells):
            stride_y, stride_x = batch_size[0] // rows, batch_size[1] // cols
            shift_x = torch.arange(0, cols, dtype=torch.int32, device=device) * stride_x
            shift_y = torch.arange(0, rows, dtype=torch.int32, device=device) * stride_y
            grid_y, grid_x = torch.meshgrid(shift_y, shift_x, indexing="ij")
            grid_x, grid_y = grid_x.reshape(-1), grid_y.reshape(-1)
            shifts = torch.stack((grid_x, grid_y, grid_x, grid_y), dim=1)
            levels.append((shifts.view(-1, 1, 4) + base.to(dtype=dtype, device=device).view(1, -1, 4)).reshape(-1, 4))
        return torch.cat(levels)
