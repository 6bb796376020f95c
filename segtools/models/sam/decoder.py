"""SAM's prompt encoder and mask decoder (``prompt_encoder.*``, ``mask_decoder.*`` of the
published checkpoints; MobileSAM shares them).

Coordinates given to :class:`PromptEncoder` are in pixels of the padded model input
(``input_size``×``input_size``), x before y; labels 1 foreground, 0 background, -1 padding;
a box is its two corners.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from segtools.models.sam.vit import LayerNorm2d, MLPBlock


class RandomFourierPositions(nn.Module):
    """Positional encoding by random spatial frequencies (``positional_encoding_gaussian_matrix``)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, features))

    def encode(self, unit_coords: torch.Tensor) -> torch.Tensor:
        """Coordinates in [0, 1] (…×2, x then y) → …×2·features."""
        angles = (2 * unit_coords - 1) @ self.positional_encoding_gaussian_matrix
        angles = 2 * math.pi * angles
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)

    def grid(self, h: int, w: int) -> torch.Tensor:
        """Encoding of every cell centre of an h×w grid: C×h×w."""
        device = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
        xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
        coords = torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w)], dim=-1)
        return self.encode(coords).permute(2, 0, 1)

    def points(self, coords: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Pixel coordinates (B×N×2, any float dtype) in an image of ``size`` (h, w) → B×N×C."""
        unit = torch.stack([coords[..., 0] / size[1], coords[..., 1] / size[0]], dim=-1)
        return self.encode(unit.to(torch.float32))


class PromptEncoder(nn.Module):
    def __init__(self, embed_dim: int = 256, embedding_size: tuple[int, int] = (64, 64),
                 input_size: tuple[int, int] = (1024, 1024), mask_in_chans: int = 16) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.input_image_size = input_size
        self.image_embedding_size = embedding_size
        self.pe_layer = RandomFourierPositions(embed_dim // 2)
        # 0 background point, 1 foreground point, 2 and 3 the box corners
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4), nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans), nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def dense_positions(self) -> torch.Tensor:
        """1×C×h×w encoding of the image embedding grid."""
        return self.pe_layer.grid(*self.image_embedding_size)[None]

    def _points(self, coords: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        coords = coords + 0.5  # pixel centres
        if pad:  # without a box, one padding point ends the sequence (as the model was trained)
            coords = torch.cat([coords, coords.new_zeros(coords.shape[0], 1, 2)], dim=1)
            labels = torch.cat([labels, labels.new_full((labels.shape[0], 1), -1)], dim=1)
        embedding = self.pe_layer.points(coords, self.input_image_size)
        labels = labels[..., None]
        embedding = torch.where(labels == -1, self.not_a_point_embed.weight, embedding)
        embedding = embedding + torch.where(labels == 0, self.point_embeddings[0].weight, 0.0)
        return embedding + torch.where(labels == 1, self.point_embeddings[1].weight, 0.0)

    def _boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        corners = self.pe_layer.points((boxes + 0.5).reshape(-1, 2, 2), self.input_image_size)
        corner_kind = torch.cat([self.point_embeddings[2].weight, self.point_embeddings[3].weight])
        return corners + corner_kind

    def forward(self, points: tuple[torch.Tensor, torch.Tensor] | None, boxes: torch.Tensor | None,
                masks: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Sparse (B×N×C) and dense (B×C×h×w) prompt embeddings."""
        batch = next((t.shape[0] for t in (points[0] if points else None, boxes, masks) if t is not None), 1)
        device = self.no_mask_embed.weight.device
        sparse = [torch.empty(batch, 0, self.embed_dim, device=device)]
        if points is not None:
            sparse.append(self._points(points[0], points[1], pad=boxes is None))
        if boxes is not None:
            sparse.append(self._boxes(boxes))
        if masks is not None:
            dense = self.mask_downscaling(masks)
        else:
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(batch, -1, *self.image_embedding_size)
        return torch.cat(sparse, dim=1), dense


class TokenAttention(nn.Module):
    """Attention with the projections narrowed by ``downsample`` (``q/k/v/out_proj``).

    Between the few prompt tokens and the h·w image tokens of each prompt, the projections
    of the long side are folded into the short side (exact algebra, different rounding):
    token → image attention scores ``q·(x Wk + bk)ᵀ = (q Wkᵀ)·xᵀ + const`` (the constant
    cancels in the softmax) and values ``P (x Wv + bv) = (P x) Wv + bv``; image → token
    attention ``(x Wq + bq) kᵀ = x (Wq kᵀ) + bq kᵀ`` and output ``Σ_h P_h v_h Wo_h = P (v Wo)``.
    Each turns two 256×128 projections of every image token into products with the tokens,
    less than half the work; a side shared by all prompts (batch 1) is projected once instead.
    """

    def __init__(self, dim: int, heads: int, downsample: int = 1) -> None:
        super().__init__()
        inner = dim // downsample
        self.heads = heads
        self.q_proj = nn.Linear(dim, inner)
        self.k_proj = nn.Linear(dim, inner)
        self.v_proj = nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.heads, c // self.heads).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                residual: torch.Tensor | None = None) -> torch.Tensor:
        """The attention output, plus ``residual`` when given (added inside the last product
        where the queries are the long side)."""
        b = max(q.shape[0], k.shape[0], v.shape[0])
        long_keys = k.shape[1] > 4 * q.shape[1] and k.shape[0] == v.shape[0] == b > 1
        long_queries = q.shape[1] > 4 * k.shape[1] and k.shape[0] == v.shape[0] == b
        if long_queries:
            return self._from_long_side(q, k, v, residual)
        if long_keys:
            out = self._to_long_side(q, k, v)
        else:
            # a batch-1 input shared by every prompt is projected once, then broadcast
            q, k, v = (self._split(proj(t)).expand(b, -1, -1, -1)
                       for proj, t in ((self.q_proj, q), (self.k_proj, k), (self.v_proj, v)))
            out = F.scaled_dot_product_attention(q, k, v)
            _, _, n, _ = out.shape
            out = self.out_proj(out.transpose(1, 2).reshape(b, n, -1))
        return out if residual is None else residual + out

    def _to_long_side(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Few queries (B×T×C) attending to many per-prompt keys/values (B×N×C)."""
        heads = self.heads
        b, t, _ = q.shape
        head_dim = self.q_proj.out_features // heads
        qh = self.q_proj(q).reshape(b, t, heads, head_dim).transpose(1, 2)  # B×H×T×d
        wk = self.k_proj.weight.reshape(heads, head_dim, -1)  # H×d×C
        folded = ((qh * head_dim ** -0.5) @ wk).reshape(b, heads * t, -1)  # B×(H·T)×C, scaled
        scores = folded @ k.transpose(1, 2)  # B×(H·T)×N
        weights = scores.softmax(dim=-1)
        mixed = (weights @ v).reshape(b, heads, t, -1)  # B×H×T×C: softmax-weighted raw values
        wv = self.v_proj.weight.reshape(heads, head_dim, -1)  # H×d×C
        out = mixed @ wv.transpose(1, 2) + self.v_proj.bias.reshape(heads, 1, head_dim)  # B×H×T×d
        return self.out_proj(out.transpose(1, 2).reshape(b, t, -1))

    def _from_long_side(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                        residual: torch.Tensor | None) -> torch.Tensor:
        """Many queries (B×N×C or a shared 1×N×C) attending to few per-prompt keys/values (B×T×C).

        Scores are laid out B×H×T×N, so the softmax runs over the T axis with the N image
        tokens as its contiguous inner run (a softmax over a last axis of a few tokens is slow),
        and the output product reads them transposed, without a copy. The output bias joins
        the mapped values as ``bias / H`` (each head's weights sum to 1), so the product also
        adds ``residual``.
        """
        heads = self.heads
        b, t, _ = k.shape
        head_dim = self.q_proj.out_features // heads
        kh = (self.k_proj(k) * head_dim ** -0.5).reshape(b, t, heads, head_dim).transpose(1, 2)  # B×H×T×d, scaled
        n = q.shape[1]
        if q.shape[0] == 1 < b:  # shared queries: projected once, one product per head over all prompts
            qh = self._split(self.q_proj(q))[0]  # H×N×d
            scores = (kh.transpose(0, 1).reshape(heads, b * t, head_dim) @ qh.transpose(1, 2))  # H×(B·T)×N
            scores = scores.reshape(heads, b, t, n).transpose(0, 1)  # B×H×T×N (a view)
        else:
            wq = self.q_proj.weight.reshape(heads, head_dim, -1)  # H×d×C
            folded = (kh @ wq).reshape(b, heads * t, -1)  # B×(H·T)×C
            bias = (kh @ self.q_proj.bias.reshape(heads, head_dim, 1)).reshape(b, heads * t, 1)
            scores = torch.baddbmm(bias, folded, q.transpose(1, 2)).reshape(b, heads, t, n)
        weights = scores.softmax(dim=2).reshape(b, heads * t, n)  # B×(H·T)×N
        vh = self.v_proj(v).reshape(b, t, heads, head_dim).transpose(1, 2)  # B×H×T×d
        wo = self.out_proj.weight.t().reshape(heads, head_dim, -1)  # H×d×C
        mapped = (vh @ wo + self.out_proj.bias / heads).reshape(b, heads * t, -1)  # B×(H·T)×C
        if residual is None:
            return weights.transpose(1, 2) @ mapped
        return torch.baddbmm(residual.expand(b, -1, -1), weights.transpose(1, 2), mapped)


class TwoWayBlock(nn.Module):
    """Token self-attention, token→image, MLP on tokens, image→token (with norms)."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, downsample: int, skip_first_pe: bool) -> None:
        super().__init__()
        self.self_attn = TokenAttention(dim, heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = TokenAttention(dim, heads, downsample)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLPBlock(dim, mlp_dim, nn.ReLU)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = TokenAttention(dim, heads, downsample)
        self.skip_first_layer_pe = skip_first_pe

    def forward(self, queries, keys, query_pe, key_pe):
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        k = keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(queries + query_pe, k, keys))
        queries = self.norm3(queries + self.mlp(queries))
        keys = self.norm4(self.cross_attn_image_to_token(k, queries + query_pe, queries, residual=keys))
        return queries, keys


class TwoWayTransformer(nn.Module):
    def __init__(self, depth: int = 2, dim: int = 256, heads: int = 8, mlp_dim: int = 2048, downsample: int = 2) -> None:
        super().__init__()
        self.layers = nn.ModuleList(TwoWayBlock(dim, heads, mlp_dim, downsample, i == 0) for i in range(depth))
        self.final_attn_token_to_image = TokenAttention(dim, heads, downsample)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(self, image: torch.Tensor, image_pe: torch.Tensor, tokens: torch.Tensor):
        keys = image.flatten(2).transpose(1, 2).contiguous()  # token-major, as every later op wants them
        key_pe = image_pe.flatten(2).transpose(1, 2).contiguous()
        queries = tokens
        for layer in self.layers:
            queries, keys = layer(queries, keys, tokens, key_pe)
        out = self.final_attn_token_to_image(queries + tokens, keys + key_pe, keys)
        return self.norm_final_attn(queries + out), keys


class MLP(nn.Module):
    """``layers.0…`` linear layers with ReLU between them."""

    def __init__(self, dim_in: int, hidden: int, dim_out: int, depth: int) -> None:
        super().__init__()
        dims = [dim_in] + [hidden] * (depth - 1) + [dim_out]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class MaskDecoder(nn.Module):
    """Image embedding + prompt tokens → mask logits at 4× the embedding grid, and IoU predictions."""

    def __init__(self, dim: int = 256, multimask: int = 3, depth: int = 2, heads: int = 8, mlp_dim: int = 2048,
                 iou_depth: int = 3, iou_hidden: int = 256) -> None:
        super().__init__()
        self.transformer = TwoWayTransformer(depth, dim, heads, mlp_dim)
        self.num_mask_tokens = multimask + 1
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, kernel_size=2, stride=2), LayerNorm2d(dim // 4), nn.GELU(),
            nn.ConvTranspose2d(dim // 4, dim // 8, kernel_size=2, stride=2), nn.GELU(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(MLP(dim, dim, dim // 8, 3) for _ in range(self.num_mask_tokens))
        self.iou_prediction_head = MLP(dim, iou_hidden, self.num_mask_tokens, iou_depth)

    def run_transformer(self, image_embedding: torch.Tensor, image_pe: torch.Tensor, sparse: torch.Tensor,
                        dense: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two-way transformer: output tokens B×T×C and image tokens B×hw×C (row-major)."""
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([output_tokens[None].expand(sparse.shape[0], -1, -1), sparse], dim=1)
        b = tokens.shape[0]
        if dense.shape[0] == 1 or dense.stride(0) == 0:  # no mask prompt: the image side is the same for all
            src = image_embedding + dense[:1]
        else:
            src = image_embedding.expand(b, -1, -1, -1) + dense
        return self.transformer(src, image_pe, tokens)  # keys broadcast until the first image update

    def predict_iou(self, hs: torch.Tensor, multimask: bool) -> torch.Tensor:
        """B×M predicted IoUs from the transformer's output tokens."""
        return self.iou_prediction_head(hs[:, 0])[:, self._chosen(multimask)]

    def _chosen(self, multimask: bool) -> slice:
        return slice(1, None) if multimask else slice(0, 1)

    def predict_masks(self, hs: torch.Tensor, keys: torch.Tensor, grid: tuple[int, int], multimask: bool) -> torch.Tensor:
        """B×M×4h×4w mask logits from the output tokens and the image tokens (h×w ``grid``).

        The two 2×2/stride-2 transposed convolutions are per-pixel linear maps, so they run as
        matrix products on the image tokens as they come out of the transformer (no NCHW copy),
        with the channel LayerNorm as ``F.layer_norm`` on the last axis; the hypernetwork's
        product then gives every mask pixel, and one permutation puts them in image order.
        """
        chosen = self._chosen(multimask)
        mask_tokens = hs[:, 1: 1 + self.num_mask_tokens][:, chosen]
        mlps = self.output_hypernetworks_mlps[chosen]
        hyper = torch.stack([mlp(mask_tokens[:, i]) for i, mlp in enumerate(mlps)], dim=1)  # B×M×C2
        up1, norm, _, up2, _ = self.output_upscaling
        b, n, c = keys.shape
        c1, c2 = up1.out_channels, up2.out_channels
        # weight[c, o, i, j] → columns (i, j, o)
        w1 = up1.weight.permute(0, 2, 3, 1).reshape(c, 4 * c1)
        x = torch.addmm(up1.bias.repeat(4), keys.reshape(b * n, c), w1).reshape(b * n * 4, c1)
        x = F.gelu(F.layer_norm(x, (c1,), norm.weight, norm.bias, norm.eps))
        w2 = up2.weight.permute(0, 2, 3, 1).reshape(c1, 4 * c2)
        x = F.gelu(torch.addmm(up2.bias.repeat(4), x, w2)).reshape(b, n * 16, c2)
        masks = x @ hyper.transpose(1, 2)  # B×(h·w·16)×M, pixels ordered (y, x, i, j, k, l)
        h, w = grid
        m = masks.shape[-1]
        masks = masks.reshape(b, h, w, 2, 2, 2, 2, m).permute(0, 7, 1, 3, 5, 2, 4, 6)
        return masks.reshape(b, m, 4 * h, 4 * w)

    def forward(self, image_embedding: torch.Tensor, image_pe: torch.Tensor, sparse: torch.Tensor,
                dense: torch.Tensor, multimask: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``image_embedding`` 1×C×h×w (shared by the B prompts); returns B×M×4h×4w logits and
        B×M IoU predictions, M = 3 with ``multimask`` (the disambiguating masks) else 1."""
        hs, keys = self.run_transformer(image_embedding, image_pe, sparse, dense)
        grid = tuple(image_embedding.shape[-2:])
        return self.predict_masks(hs, keys, grid, multimask), self.predict_iou(hs, multimask)
