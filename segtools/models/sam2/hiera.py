"""SAM 2's image encoder: a Hiera trunk (``image_encoder.trunk.*``) and a feature pyramid
neck (``image_encoder.neck.convs.*``), as in the published SAM 2.1 checkpoints.

The trunk works on N×H×W×C token maps. Each stage but the first starts with a block that
halves the map by max-pooling its queries (and its shortcut, after a linear widening);
blocks attend within windows (zero-padded to a whole number of windows; the padding takes
part as keys, as in the reference) or globally. The neck maps each stage to ``d_model``
channels and adds the upsampled coarser level on the chosen top-down levels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segtools.models.sam.vit import window_partition as to_windows
from segtools.models.sam.vit import window_unpartition as from_windows  # the windows of SAM's ViT


class Mlp(nn.Module):
    """``layers.0…`` linear layers with an activation between them."""

    def __init__(self, dim_in: int, hidden: int, dim_out: int, depth: int, act: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        dims = [dim_in] + [hidden] * (depth - 1) + [dim_out]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = self.act(x)
        return x


def _pool(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Max-pool an N×H×W×C map by ``stride`` (floor)."""
    return F.max_pool2d(x.permute(0, 3, 1, 2), stride, stride).permute(0, 2, 3, 1)


class MultiScaleAttention(nn.Module):
    """Self-attention whose queries may be max-pooled by ``q_stride`` (``qkv``, ``proj``)."""

    def __init__(self, dim: int, dim_out: int, heads: int, q_stride: int = 0) -> None:
        super().__init__()
        self.heads = heads
        self.q_stride = q_stride
        self.qkv = nn.Linear(dim, dim_out * 3)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, h, w, _ = x.shape
        q, k, v = self.qkv(x).reshape(n, h * w, 3, self.heads, -1).unbind(2)
        if self.q_stride:
            q = _pool(q.reshape(n, h, w, -1), self.q_stride)
            h, w = q.shape[1:3]
            q = q.reshape(n, h * w, self.heads, -1)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.proj(out.transpose(1, 2).reshape(n, h, w, -1))


class MultiScaleBlock(nn.Module):
    """Norm, (windowed) attention, residual; norm, MLP, residual. A block that widens the
    channels pools its queries and projects its shortcut (``proj``)."""

    def __init__(self, dim: int, dim_out: int, heads: int, mlp_ratio: float = 4.0, q_stride: int = 0,
                 window: int = 0) -> None:
        super().__init__()
        self.dim, self.dim_out, self.window, self.q_stride = dim, dim_out, window, q_stride
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = MultiScaleAttention(dim, dim_out, heads, q_stride)
        self.norm2 = nn.LayerNorm(dim_out, eps=1e-6)
        self.mlp = Mlp(dim_out, int(dim_out * mlp_ratio), dim_out, 2)
        if dim != dim_out:
            self.proj = nn.Linear(dim, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.dim != self.dim_out:
            shortcut = self.proj(x)
            if self.q_stride:
                shortcut = _pool(shortcut, self.q_stride)
        window = self.window
        if window:
            hw = x.shape[1:3]
            x, padded = to_windows(x, window)
        x = self.attn(x)
        if window:
            if self.q_stride:  # the windows were pooled with their queries
                window //= self.q_stride
                hw = shortcut.shape[1:3]
                padded = (hw[0] + (-hw[0]) % window, hw[1] + (-hw[1]) % window)
            x = from_windows(x, window, padded, hw)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """7×7 convolution, stride 4 (``proj``); returns N×H×W×C."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=7, stride=4, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class Hiera(nn.Module):
    """The hierarchical trunk: ``stages`` blocks per stage, channels and heads doubling at
    each new stage, which (for the first ``q_pool`` new stages) halves the map.

    ``window_spec`` gives each stage's window; the first block of a stage keeps the previous
    stage's window (shrunk by the pooling), as in the reference. ``global_blocks`` attend to
    the whole map. Returns the last block's output of every stage, N×C×H×W, finest first.
    """

    def __init__(self, embed_dim: int = 96, heads: int = 1, stages: tuple[int, ...] = (2, 3, 16, 3),
                 global_blocks: tuple[int, ...] = (12, 16, 20), window_spec: tuple[int, ...] = (8, 4, 14, 7),
                 pos_size: tuple[int, int] = (14, 14), q_pool: int = 3, q_stride: int = 2,
                 dim_mul: float = 2.0, head_mul: float = 2.0) -> None:
        super().__init__()
        self.stage_ends = [sum(stages[: i + 1]) - 1 for i in range(len(stages))]
        pool_blocks = [end + 1 for end in self.stage_ends[:-1]][:q_pool]
        self.patch_embed = PatchEmbed(embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, embed_dim, *pos_size))
        self.pos_embed_window = nn.Parameter(torch.zeros(1, embed_dim, window_spec[0], window_spec[0]))
        self.blocks = nn.ModuleList()
        stage = 0
        dim = embed_dim
        for i in range(sum(stages)):
            window = 0 if i in global_blocks else window_spec[stage]
            dim_out = dim
            if i - 1 in self.stage_ends:
                dim_out, heads, stage = int(dim * dim_mul), int(heads * head_mul), stage + 1
            self.blocks.append(MultiScaleBlock(dim, dim_out, heads, q_stride=q_stride if i in pool_blocks else 0,
                                               window=window))
            dim = dim_out
        self.channels = [self.blocks[i].dim_out for i in self.stage_ends]

    def positions(self, h: int, w: int) -> torch.Tensor:
        """The background position embedding resized (bicubic) to h×w plus the tiled window one: 1×h×w×C."""
        pos = F.interpolate(self.pos_embed, size=(h, w), mode="bicubic")
        window = self.pos_embed_window
        pos = pos + window.tile(1, 1, h // window.shape[2], w // window.shape[3])
        return pos.permute(0, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.patch_embed(x)
        x = x + self.positions(*x.shape[1:3])
        out = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.stage_ends:
                out.append(x.permute(0, 3, 1, 2))
        return out


class Lateral(nn.Module):
    """One 1×1 convolution (``conv``), as the checkpoints name it."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim_in, dim_out, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class FpnNeck(nn.Module):
    """``convs[k]`` maps the k-th coarsest stage to ``d_model`` channels; levels in
    ``top_down`` (0 = finest) add the nearest-upsampled (×2) next coarser output."""

    def __init__(self, channels: list[int], d_model: int = 256, top_down: tuple[int, ...] = (2, 3)) -> None:
        super().__init__()
        self.convs = nn.ModuleList(Lateral(c, d_model) for c in reversed(channels))
        self.top_down = tuple(top_down)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        n = len(features) - 1
        out: list = [None] * len(features)
        previous = None
        for i in range(n, -1, -1):
            lateral = self.convs[n - i](features[i])
            if i in self.top_down and previous is not None:
                previous = lateral + F.interpolate(previous.float(), scale_factor=2.0, mode="nearest")
            else:
                previous = lateral
            out[i] = previous
        return out


class ImageEncoder(nn.Module):
    """``trunk`` + ``neck``; returns the neck's levels, finest first, without the coarsest
    ``scalp`` ones (SAM 2.1 drops the stride-32 level)."""

    def __init__(self, trunk: Hiera, neck: FpnNeck, scalp: int = 1) -> None:
        super().__init__()
        self.trunk = trunk
        self.neck = neck
        self.scalp = scalp

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels = self.neck(self.trunk(x))
        return levels[: len(levels) - self.scalp] if self.scalp else levels
