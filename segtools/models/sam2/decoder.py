"""SAM 2's prompt encoder and mask decoder (``sam_prompt_encoder.*``, ``sam_mask_decoder.*``).

Both are SAM's (:mod:`segtools.models.sam.decoder`) with SAM 2's changes:

* a box is two points labelled 2 and 3 (its corners), put before the clicks, and every
  point sequence ends with one padding point, box or not;
* the two-way transformer's MLPs are ``mlp.layers.0/1``;
* the decoder adds the stride-4 and stride-8 image features (already projected by
  ``conv_s0``/``conv_s1`` when the image was encoded) into its upscaling, squashes the IoU
  predictions with a sigmoid, predicts an object score from an extra token, and (as the
  published predictor is built) with one mask asked for, falls back to the best of the three
  candidates when the single mask is unstable.
"""

from __future__ import annotations

import torch
from torch import nn

from segtools.models.sam.decoder import MLP, MaskDecoder, PromptEncoder, TwoWayTransformer


class Sam2PromptEncoder(PromptEncoder):
    """SAM's prompt encoder; point labels 2 and 3 are a box's top-left and bottom-right corner."""

    def _points(self, coords: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        embedding = super()._points(coords, labels, pad)
        if pad:
            labels = torch.cat([labels, labels.new_full((labels.shape[0], 1), -1)], dim=1)
        labels = labels[..., None]
        embedding = embedding + torch.where(labels == 2, self.point_embeddings[2].weight, 0.0)
        return embedding + torch.where(labels == 3, self.point_embeddings[3].weight, 0.0)


class Sam2Transformer(TwoWayTransformer):
    """SAM's two-way transformer with the token MLP of each layer as ``mlp.layers.0/1``."""

    def __init__(self, depth: int = 2, dim: int = 256, heads: int = 8, mlp_dim: int = 2048) -> None:
        super().__init__(depth, dim, heads, mlp_dim)
        for layer in self.layers:
            layer.mlp = MLP(dim, mlp_dim, dim, 2)


class Sam2MaskDecoder(MaskDecoder):
    """Image embedding (+ high-resolution features) and prompt tokens → mask logits at 4× the
    embedding grid, IoU predictions in [0, 1] and an object score logit."""

    def __init__(self, dim: int = 256, multimask: int = 3, obj_score_mlp: bool = True,
                 dynamic_multimask: bool = True, stability_delta: float = 0.05,
                 stability_thresh: float = 0.98) -> None:
        super().__init__(dim, multimask)
        self.transformer = Sam2Transformer(2, dim, 8, 2048)
        self.obj_score_token = nn.Embedding(1, dim)
        self.conv_s0 = nn.Conv2d(dim, dim // 8, kernel_size=1)
        self.conv_s1 = nn.Conv2d(dim, dim // 4, kernel_size=1)
        self.pred_obj_score_head = MLP(dim, dim, 1, 3) if obj_score_mlp else nn.Linear(dim, 1)
        self.dynamic_multimask = dynamic_multimask
        self.stability_delta = stability_delta
        self.stability_thresh = stability_thresh

    def upscale(self, src: torch.Tensor, high_res: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        up1, norm, act1, up2, act2 = self.output_upscaling
        s0, s1 = high_res
        return act2(up2(act1(norm(up1(src) + s1))) + s0)

    def forward(self, image_embedding: torch.Tensor, image_pe: torch.Tensor, sparse: torch.Tensor,
                dense: torch.Tensor, multimask: bool, high_res: tuple[torch.Tensor, torch.Tensor] = ()
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``image_embedding`` 1×C×h×w and ``high_res`` (1×C/8×4h×4w, 1×C/4×2h×2w), shared
        by the B prompts; returns B×M×4h×4w logits, B×M IoU predictions (M = 3 with
        ``multimask``, else 1) and B×1 object score logits."""
        output_tokens = torch.cat([self.obj_score_token.weight, self.iou_token.weight, self.mask_tokens.weight], 0)
        tokens = torch.cat([output_tokens[None].expand(sparse.shape[0], -1, -1), sparse], dim=1)
        b = tokens.shape[0]
        if dense.shape[0] == 1 or dense.stride(0) == 0:  # no mask prompt: the image side is the same for all
            src = image_embedding + dense[:1]
        else:
            src = image_embedding.expand(b, -1, -1, -1) + dense
        _, c, h, w = src.shape
        hs, src = self.transformer(src, image_pe, tokens)
        mask_tokens = hs[:, 2: 2 + self.num_mask_tokens]
        upscaled = self.upscale(src.transpose(1, 2).reshape(-1, c, h, w), high_res).expand(b, -1, -1, -1)
        hyper = torch.stack([mlp(mask_tokens[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1)
        _, c2, h2, w2 = upscaled.shape
        masks = (hyper @ upscaled.reshape(b, c2, h2 * w2)).reshape(b, -1, h2, w2)
        iou = torch.sigmoid(self.iou_prediction_head(hs[:, 1]))
        object_score = self.pred_obj_score_head(hs[:, 0])
        if multimask:
            return masks[:, 1:], iou[:, 1:], object_score
        if self.dynamic_multimask and not self.training:
            masks, iou = self._stable_single(masks, iou)
            return masks, iou, object_score
        return masks[:, :1], iou[:, :1], object_score

    def _stable_single(self, masks: torch.Tensor, iou: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The single-mask output where its stability (area above +delta over area above
        -delta) reaches the threshold, else the candidate with the best predicted IoU."""
        rows = torch.arange(len(iou), device=iou.device)
        best = iou[:, 1:].argmax(dim=-1)
        best_masks, best_iou = masks[:, 1:][rows, best][:, None], iou[:, 1:][rows, best][:, None]
        single = masks[:, :1]
        flat = single.flatten(-2)
        inner = (flat > self.stability_delta).sum(-1).float()
        outer = (flat > -self.stability_delta).sum(-1).float()
        stable = torch.where(outer > 0, inner / outer, 1.0) >= self.stability_thresh
        return (torch.where(stable[..., None, None], single, best_masks),
                torch.where(stable, iou[:, :1], best_iou))
