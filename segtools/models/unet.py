"""U-Net (Ronneberger et al. 2015) with BatchNorm, in the milesial/Pytorch-UNet layout.

Module names and shapes at depth 4 equal those of milesial/Pytorch-UNet's ``UNet``
(``inc``, ``down1`` … ``down4``, ``up1`` … ``up4``, ``outc``; ``double_conv.{0,1,3,4}``,
``maxpool_conv.1``, ``up`` (transposed conv) and ``conv``), so its Carvana checkpoints load
with ``strict=True``. Depth 2–5 and the base width generalise the same rule: stage ``i``
has ``base · 2**i`` channels; with bilinear upsampling the deepest stage and every decoder
stage but the last are halved (milesial's ``factor``).

Input sizes that are not multiples of ``2**depth`` are padded symmetrically (reflection, or
edge replication for tiny inputs) and the logits cropped back, so the output always has the
input's size. (milesial instead pads each upsampled map to its skip's size; the two agree
whenever the input is a multiple of ``2**depth``.)
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn


class DoubleConv(nn.Module):
    """(3×3 conv → BN → ReLU) × 2; ``mid_channels`` between them (default ``out``)."""

    def __init__(
        self, in_channels: int, out_channels: int, mid_channels: int | None = None, bias: bool = False
    ) -> None:
        super().__init__()
        mid_channels = mid_channels or out_channels
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, 3, padding=1, bias=bias),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_channels, out_channels, 3, padding=1, bias=bias),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.double_conv(x)


class Down(nn.Module):
    """2×2 max-pool then :class:`DoubleConv` (``maxpool_conv.{0,1}``)."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = False) -> None:
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels, bias=bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool_conv(x)


class Up(nn.Module):
    """Upsample ×2, concatenate ``[skip, upsampled]``, then :class:`DoubleConv`.

    Bilinear mode (``align_corners=True``) keeps the channels and lets the DoubleConv halve
    them (mid = ``in // 2``); transposed mode halves them in a 2×2 stride-2 transposed conv.
    """

    def __init__(
        self, in_channels: int, out_channels: int, bilinear: bool = False, bias: bool = False
    ) -> None:
        super().__init__()
        if bilinear:
            self.up: nn.Module = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            self.conv = DoubleConv(in_channels, out_channels, in_channels // 2, bias=bias)
        else:
            self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
            self.conv = DoubleConv(in_channels, out_channels, bias=bias)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        dy, dx = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]
        if dy or dx:  # only when the caller did not pad the input to a multiple of 2**depth
            x = F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([skip, x], dim=1))


class OutConv(nn.Module):
    """1×1 conv to the class logits (``outc.conv``)."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class UNet(nn.Module):
    """U-Net returning logits N×``num_classes``×H×W at the input size.

    Parameters
    ----------
    num_classes : int
        Output channels.
    in_channels : int
        Input channels (3 for RGB).
    depth : int
        Number of down-sampling stages, 2–5 (milesial: 4).
    base_channels : int
        Channels of the first stage (milesial: 64).
    bilinear : bool
        Bilinear upsampling instead of transposed convolutions (milesial's Carvana
        checkpoints use transposed convolutions, ``bilinear=False``).
    conv_bias : bool
        Bias in the 3×3 convolutions (milesial's current code has none; early versions had).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        depth: int = 4,
        base_channels: int = 64,
        bilinear: bool = False,
        conv_bias: bool = False,
    ) -> None:
        super().__init__()
        if not 2 <= depth <= 5:
            raise ValueError(f"U-Net depth must be 2 to 5, not {depth}")
        if base_channels < 2 or base_channels % 2:
            raise ValueError(f"U-Net base_channels must be even and ≥ 2, not {base_channels}")
        self.depth = depth
        factor = 2 if bilinear else 1
        widths = [base_channels * 2**level for level in range(depth + 1)]
        self.inc = DoubleConv(in_channels, widths[0], bias=conv_bias)
        for level in range(1, depth + 1):
            out = widths[level] // factor if level == depth else widths[level]
            self.add_module(f"down{level}", Down(widths[level - 1], out, bias=conv_bias))
        for step in range(1, depth + 1):
            level = depth - step  # the skip this step joins
            out = widths[level] if level == 0 else widths[level] // factor
            self.add_module(f"up{step}", Up(widths[level + 1], out, bilinear, bias=conv_bias))
        self.outc = OutConv(widths[0], num_classes)

    def _pad_to_multiple(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
        multiple = 2**self.depth
        height, width = x.shape[-2], x.shape[-1]
        pad_h, pad_w = -height % multiple, -width % multiple
        pads = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
        if not (pad_h or pad_w):
            return x, pads
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        return F.pad(x, pads, mode=mode), pads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2], x.shape[-1]
        x, (left, _, top, _) = self._pad_to_multiple(x)
        skips = [self.inc(x)]
        for level in range(1, self.depth + 1):
            skips.append(getattr(self, f"down{level}")(skips[-1]))
        out = skips.pop()
        for step in range(1, self.depth + 1):
            out = getattr(self, f"up{step}")(out, skips.pop())
        logits = self.outc(out)
        return logits[..., top : top + height, left : left + width]

    def forward_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        """``(logits, None)``: U-Net has no auxiliary head (same call as the other models)."""
        return self.forward(x), None


def unet_options_from_state_dict(state: Mapping[str, torch.Tensor]) -> dict:
    """Infer :class:`UNet` options from a milesial-layout state dict.

    Parameters
    ----------
    state : mapping of str to Tensor
        Keys ``inc.…``, ``downN.…``, ``upN.…``, ``outc.…`` (prefixes already stripped).

    Returns
    -------
    dict
        ``num_classes, in_channels, depth, base_channels, bilinear, conv_bias``.

    Raises
    ------
    KeyError
        When the keys are not a U-Net's.
    """
    first = state["inc.double_conv.0.weight"]
    depth = sum(1 for key in state if key.startswith("down") and key.endswith("double_conv.0.weight"))
    return {
        "num_classes": int(state["outc.conv.weight"].shape[0]),
        "in_channels": int(first.shape[1]),
        "depth": depth,
        "base_channels": int(first.shape[0]),
        "bilinear": "up1.up.weight" not in state,
        "conv_bias": "inc.double_conv.0.bias" in state,
    }
