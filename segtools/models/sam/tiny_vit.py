"""TinyViT, MobileSAM's image encoder, laid out key for key as ``mobile_sam.pt``'s
``image_encoder.*`` (patch embedding by two stride-2 convolutions, an MBConv stage, three
stages of windowed attention with a depthwise local convolution, SAM's neck; the unused
classification head ``norm_head``/``head`` is kept so that the checkpoint loads strictly).

Input: N×3×1024×1024 normalised, padded image. Output: N×256×64×64.

Equal to MobileSAM's TinyViT as the ``ultralytics`` package ships it (same keys, outputs within
1e-4 on golden fixtures: tests/test_sam_mobile.py, docs/sam.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segtools.models.sam.vit import LayerNorm2d


class ConvBN(nn.Sequential):
    """Convolution without bias, then BatchNorm (``c``, ``bn``)."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, padding: int = 0, groups: int = 1) -> None:
        super().__init__()
        self.add_module("c", nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(cout))


class PatchEmbed(nn.Module):
    def __init__(self, cin: int, dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(ConvBN(cin, dim // 2, 3, 2, 1), nn.GELU(), ConvBN(dim // 2, dim, 3, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual: 1×1 expand, 3×3 depthwise, 1×1 project, residual, GELU."""

    def __init__(self, dim: int, expand: float) -> None:
        super().__init__()
        hidden = int(dim * expand)
        self.conv1 = ConvBN(dim, hidden)
        self.act1 = nn.GELU()
        self.conv2 = ConvBN(hidden, hidden, 3, 1, 1, groups=hidden)
        self.act2 = nn.GELU()
        self.conv3 = ConvBN(hidden, dim)
        self.act3 = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3(self.act2(self.conv2(self.act1(self.conv1(x)))))
        return self.act3(x + y)


class PatchMerging(nn.Module):
    """Tokens (or a feature map) → tokens at half the resolution (stride 1 into the last stage)."""

    def __init__(self, resolution: tuple[int, int], dim: int, out_dim: int) -> None:
        super().__init__()
        self.resolution = resolution
        stride = 1 if out_dim in (320, 448, 576) else 2
        self.conv1 = ConvBN(dim, out_dim)
        self.act = nn.GELU()
        self.conv2 = ConvBN(out_dim, out_dim, 3, stride, 1, groups=out_dim)
        self.conv3 = ConvBN(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            h, w = self.resolution
            x = x.view(x.shape[0], h, w, -1).permute(0, 3, 1, 2)
        x = self.conv3(self.act(self.conv2(self.act(self.conv1(x)))))
        return x.flatten(2).transpose(1, 2)


class ConvLayer(nn.Module):
    def __init__(self, dim: int, resolution: tuple[int, int], depth: int, out_dim: int, expand: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(MBConv(dim, expand) for _ in range(depth))
        self.downsample = PatchMerging(resolution, dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.norm(x))))


class WindowAttention(nn.Module):
    """Attention inside a window with a learned bias per head and per (|dy|, |dx|) offset."""

    def __init__(self, dim: int, key_dim: int, heads: int, window: int) -> None:
        super().__init__()
        self.heads, self.key_dim = heads, key_dim
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * key_dim * heads)
        self.proj = nn.Linear(key_dim * heads, dim)
        self.attention_biases = nn.Parameter(torch.zeros(heads, window * window))
        ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
        ys, xs = ys.flatten(), xs.flatten()
        offsets = (ys[:, None] - ys[None, :]).abs() * window + (xs[:, None] - xs[None, :]).abs()
        self.register_buffer("attention_bias_idxs", offsets, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(self.norm(x)).view(b, n, self.heads, -1)
        q, k, v = qkv.split([self.key_dim] * 3, dim=3)
        bias = self.attention_biases[:, self.attention_bias_idxs]
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(b, n, -1))


class TinyViTBlock(nn.Module):
    def __init__(self, dim: int, resolution: tuple[int, int], heads: int, window: int, mlp_ratio: float) -> None:
        super().__init__()
        self.resolution, self.window = resolution, window
        self.attn = WindowAttention(dim, dim // heads, heads, window)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.local_conv = ConvBN(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.resolution
        b, length, c = x.shape
        s = self.window
        if h == s and w == s:
            y = self.attn(x)
        else:
            y = x.view(b, h, w, c)
            pad_b, pad_r = (-h) % s, (-w) % s
            if pad_b or pad_r:
                y = F.pad(y, (0, 0, 0, pad_r, 0, pad_b))
            ph, pw = h + pad_b, w + pad_r
            y = y.view(b, ph // s, s, pw // s, s, c).transpose(2, 3).reshape(-1, s * s, c)
            y = self.attn(y)
            y = y.view(b, ph // s, pw // s, s, s, c).transpose(2, 3).reshape(b, ph, pw, c)
            y = y[:, :h, :w].reshape(b, length, c)
        x = x + y
        x = self.local_conv(x.transpose(1, 2).reshape(b, c, h, w)).view(b, c, length).transpose(1, 2)
        return x + self.mlp(x)


class BasicLayer(nn.Module):
    def __init__(self, dim: int, resolution: tuple[int, int], depth: int, heads: int, window: int,
                 mlp_ratio: float, out_dim: int | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(TinyViTBlock(dim, resolution, heads, window, mlp_ratio) for _ in range(depth))
        self.downsample = PatchMerging(resolution, dim, out_dim) if out_dim is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x) if self.downsample is not None else x


class TinyViT(nn.Module):
    def __init__(self, img_size: int = 1024, out_chans: int = 256, embed_dims=(64, 128, 160, 320),
                 depths=(2, 2, 6, 2), num_heads=(2, 4, 5, 10), window_sizes=(7, 7, 14, 7), mlp_ratio: float = 4.0,
                 expand: float = 4.0, num_classes: int = 1000) -> None:
        super().__init__()
        self.img_size = img_size
        self.patch_embed = PatchEmbed(3, embed_dims[0])
        grid = img_size // 4
        layers: list[nn.Module] = []
        for i, dim in enumerate(embed_dims):
            scale = 2 ** (i - 1 if i == 3 else i)
            resolution = (grid // scale, grid // scale)
            out_dim = embed_dims[min(i + 1, len(embed_dims) - 1)]
            if i == 0:
                layers.append(ConvLayer(dim, resolution, depths[i], out_dim, expand))
            else:
                layers.append(BasicLayer(dim, resolution, depths[i], num_heads[i], window_sizes[i], mlp_ratio,
                                         out_dim if i < len(embed_dims) - 1 else None))
        self.layers = nn.ModuleList(layers)
        self.out_grid = grid // 2 ** (len(embed_dims) - 2)
        self.norm_head = nn.LayerNorm(embed_dims[-1])  # classification head of the pre-training, unused
        self.head = nn.Linear(embed_dims[-1], num_classes)
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dims[-1], out_chans, kernel_size=1, bias=False), LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, bias=False), LayerNorm2d(out_chans))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        b, _, c = x.shape
        x = x.view(b, self.out_grid, self.out_grid, c).permute(0, 3, 1, 2)
        return self.neck(x)
