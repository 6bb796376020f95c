"""Region proposal network at inference (torchvision's ``RegionProposalNetwork`` in eval).

Per image: decode every anchor's deltas, keep each level's ``pre_nms_top_n`` best
objectness logits, clip to the image, drop boxes under 1e-3 pixels and scores under
``score_thresh``, NMS at ``nms_thresh`` within each level, keep the ``post_nms_top_n`` best.
"""

from __future__ import annotations

import torch
from torch import nn

from segtools.models.detection.anchors import AnchorGenerator
from segtools.models.detection.boxes import batched_nms, clip_boxes, decode_boxes, small_boxes_removed
from segtools.models.detection.heads import RPNHead


def _flatten(maps: list[torch.Tensor], values: int) -> torch.Tensor:
    """N×(A·values)×H×W per level → N×(ΣHWA)×values, location-major then anchor."""
    out = []
    for level in maps:
        n, _, h, w = level.shape
        out.append(level.view(n, -1, values, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, values))
    return torch.cat(out, dim=1)


class RegionProposalNetwork(nn.Module):
    """Anchors + head + proposal filtering; module names ``anchor_generator`` and ``head``."""

    def __init__(self, head: RPNHead, anchor_generator: AnchorGenerator | None = None, *,
                 pre_nms_top_n: int = 1000, post_nms_top_n: int = 1000, nms_thresh: float = 0.7,
                 score_thresh: float = 0.0, min_size: float = 1e-3) -> None:
        super().__init__()
        self.anchor_generator = anchor_generator or AnchorGenerator()
        self.head = head
        self.pre_nms_top_n, self.post_nms_top_n = int(pre_nms_top_n), int(post_nms_top_n)
        self.nms_thresh, self.score_thresh, self.min_size = float(nms_thresh), float(score_thresh), float(min_size)

    def forward(self, batch: torch.Tensor, features: dict[str, torch.Tensor],
                image_sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
        """Proposals (K×4, by decreasing objectness) per image, in the resized image's pixels."""
        maps = list(features.values())
        logits, deltas = self.head(maps)
        sizes = [tuple(m.shape[-2:]) for m in maps]
        dtype = torch.promote_types(maps[0].dtype, torch.float32)  # pixel coordinates never in half precision
        anchors = self.anchor_generator(tuple(batch.shape[-2:]), sizes, dtype, maps[0].device)
        per_level = [int(h * w * (logit.shape[1])) for (h, w), logit in zip(sizes, logits)]
        objectness = _flatten(logits, 1).squeeze(-1)
        deltas_flat = _flatten(deltas, 4)
        num_images = objectness.shape[0]
        proposals = decode_boxes(deltas_flat.reshape(-1, 4), anchors.repeat(num_images, 1), (1.0, 1.0, 1.0, 1.0))
        proposals = proposals.view(num_images, -1, 4)
        levels = torch.cat([torch.full((n,), i, dtype=torch.int64, device=objectness.device)
                            for i, n in enumerate(per_level)])
        top, offset = [], 0
        for part in objectness.split(per_level, dim=1):
            top.append(part.topk(min(self.pre_nms_top_n, part.shape[1]), dim=1)[1] + offset)
            offset += part.shape[1]
        top_idx = torch.cat(top, dim=1)
        rows = torch.arange(num_images, device=objectness.device)[:, None]
        scores_all = torch.sigmoid(objectness[rows, top_idx])
        boxes_all = proposals[rows, top_idx]
        levels_all = levels[top_idx]
        result = []
        for boxes, scores, lvl, size in zip(boxes_all, scores_all, levels_all, image_sizes):
            boxes = clip_boxes(boxes, size)
            keep = small_boxes_removed(boxes, self.min_size)
            boxes, scores, lvl = boxes[keep], scores[keep], lvl[keep]
            keep = torch.where(scores >= self.score_thresh)[0]
            boxes, scores, lvl = boxes[keep], scores[keep], lvl[keep]
            keep = batched_nms(boxes, scores, lvl, self.nms_thresh)[: self.post_nms_top_n]
            result.append(boxes[keep])
        return result
