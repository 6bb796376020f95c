"""SAM's image encoder: a plain ViT with windowed and global attention blocks, decomposed
relative position biases and a convolutional neck (``image_encoder.*`` of ``sam_vit_*.pth``).

Input: N×3×S×S normalised, padded image (S = ``img_size``, 1024 for the published models).
Output: N×``out_chans``×S/16×S/16 image embedding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of an N×C×H×W tensor (``weight``/``bias`` per channel)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class MLPBlock(nn.Module):
    """Two linear layers with an activation between them (``lin1``, ``lin2``)."""

    def __init__(self, dim: int, hidden: int, act: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.act(self.lin1(x)))


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, in_chans: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)  # N×H×W×C


def _relative_table(table: torch.Tensor, size: int) -> torch.Tensor:
    """``table[i - j + size - 1]`` for query i, key j along one axis: size×size×C."""
    if table.shape[0] != 2 * size - 1:  # a table trained for another size: resample it
        table = F.interpolate(table.t()[None], size=2 * size - 1, mode="linear")[0].t()
    index = torch.arange(size, device=table.device)
    return table[index[:, None] - index[None, :] + size - 1]


class Attention(nn.Module):
    """Multi-head self-attention over an N×H×W×C grid, with decomposed relative positions."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool, rel_pos: bool, grid: tuple[int, int]) -> None:
        super().__init__()
        self.heads = heads
        head_dim = dim // heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.use_rel_pos = rel_pos
        if rel_pos:
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * grid[0] - 1, head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * grid[1] - 1, head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(n, h * w, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each n×heads×hw×d
        bias = None
        if self.use_rel_pos:
            grid_q = q.reshape(n, self.heads, h, w, -1)
            along_h = torch.einsum("bnhwc,hkc->bnhwk", grid_q, _relative_table(self.rel_pos_h, h))
            along_w = torch.einsum("bnhwc,wkc->bnhwk", grid_q, _relative_table(self.rel_pos_w, w))
            bias = (along_h[..., :, None] + along_w[..., None, :]).reshape(n, self.heads, h * w, h * w)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        out = out.reshape(n, self.heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(n, h, w, -1)
        return self.proj(out)


def window_partition(x: torch.Tensor, size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """N×H×W×C → (N·windows)×size×size×C, zero-padding H and W up to multiples of ``size``."""
    n, h, w, c = x.shape
    pad_h, pad_w = (-h) % size, (-w) % size
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(n, hp // size, size, wp // size, size, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, size, size, c), (hp, wp)


def window_unpartition(windows: torch.Tensor, size: int, padded: tuple[int, int], hw: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`window_partition`, the padding cut off."""
    hp, wp = padded
    n = windows.shape[0] // ((hp // size) * (wp // size))
    x = windows.reshape(n, hp // size, wp // size, size, size, -1).permute(0, 1, 3, 2, 4, 5).reshape(n, hp, wp, -1)
    return x[:, : hw[0], : hw[1]].contiguous()


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float, qkv_bias: bool, rel_pos: bool,
                 window: int, grid: tuple[int, int]) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, qkv_bias, rel_pos, grid if window == 0 else (window, window))
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLPBlock(dim, int(dim * mlp_ratio))
        self.window_size = window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)
        if self.window_size > 0:
            h, w = x.shape[1], x.shape[2]
            x, padded = window_partition(x, self.window_size)
            x = window_unpartition(self.attn(x), self.window_size, padded, (h, w))
        else:
            x = self.attn(x)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class ImageEncoderViT(nn.Module):
    """The ViT-B/L/H encoder of SAM (``depth`` blocks, global attention at ``global_attn``)."""

    def __init__(self, img_size: int = 1024, patch_size: int = 16, embed_dim: int = 768, depth: int = 12,
                 num_heads: int = 12, mlp_ratio: float = 4.0, out_chans: int = 256, qkv_bias: bool = True,
                 use_rel_pos: bool = True, window_size: int = 14, global_attn: tuple[int, ...] = (2, 5, 8, 11)) -> None:
        super().__init__()
        self.img_size = img_size
        grid = (img_size // patch_size, img_size // patch_size)
        self.patch_embed = PatchEmbed(patch_size, 3, embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid[0], grid[1], embed_dim))
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, use_rel_pos,
                  0 if i in global_attn else window_size, grid)
            for i in range(depth))
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dim, out_chans, kernel_size=1, bias=False),
            LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(out_chans),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.neck(x.permute(0, 3, 1, 2))
