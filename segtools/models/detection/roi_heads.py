"""Second stage at inference: box classification/regression and the mask branch.

Per image: softmax over the classes, per-class boxes decoded (weights 10, 10, 5, 5) and
clipped, background dropped, every (proposal, class) pair above ``score_thresh`` kept,
boxes under 0.01 pixels dropped, NMS at ``nms_thresh`` per class, the
``detections_per_img`` best kept. The mask branch pools 14×14 features of the kept boxes
and returns each box's mask probabilities (28×28) for its own class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segtools.models.detection.boxes import batched_nms, clip_boxes, decode_boxes, small_boxes_removed
from segtools.models.detection.roi_align import MultiScaleRoIAlign

BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)


class RoIHeads(nn.Module):
    """Module names as torchvision's: ``box_head``, ``box_predictor``, ``mask_head``,
    ``mask_predictor`` (the mask ones ``None`` for box-only models)."""

    def __init__(self, box_head: nn.Module, box_predictor: nn.Module, mask_head: nn.Module | None = None,
                 mask_predictor: nn.Module | None = None, *, score_thresh: float = 0.05, nms_thresh: float = 0.5,
                 detections_per_img: int = 100, aligned: bool = False,
                 box_weights: tuple[float, float, float, float] = BOX_WEIGHTS) -> None:
        super().__init__()
        self.box_roi_pool = MultiScaleRoIAlign(output_size=7, sampling_ratio=2, aligned=aligned)
        self.box_head, self.box_predictor = box_head, box_predictor
        self.mask_roi_pool = MultiScaleRoIAlign(output_size=14, sampling_ratio=2, aligned=aligned) if mask_head else None
        self.mask_head, self.mask_predictor = mask_head, mask_predictor
        self.score_thresh, self.nms_thresh = float(score_thresh), float(nms_thresh)
        self.detections_per_img = int(detections_per_img)
        self.box_weights = tuple(box_weights)

    def forward(self, features: dict[str, torch.Tensor], proposals: list[torch.Tensor],
                image_sizes: list[tuple[int, int]]) -> list[dict[str, torch.Tensor]]:
        pooled = self.box_roi_pool(features, proposals, image_sizes)
        class_logits, box_deltas = self.box_predictor(self.box_head(pooled))
        detections = self._detections(class_logits, box_deltas, proposals, image_sizes)
        if self.mask_head is not None:
            boxes = [d["boxes"] for d in detections]
            logits = self.mask_predictor(self.mask_head(self.mask_roi_pool(features, boxes, image_sizes)))
            labels = torch.cat([d["labels"] for d in detections])
            probs = logits.sigmoid()[torch.arange(labels.numel(), device=labels.device), labels][:, None]
            for detection, part in zip(detections, probs.split([b.shape[0] for b in boxes])):
                detection["masks"] = part
        return detections

    def _detections(self, class_logits: torch.Tensor, box_deltas: torch.Tensor, proposals: list[torch.Tensor],
                    image_sizes: list[tuple[int, int]]) -> list[dict[str, torch.Tensor]]:
        num_classes = class_logits.shape[-1]
        counts = [p.shape[0] for p in proposals]
        boxes_all = decode_boxes(box_deltas, torch.cat(proposals), self.box_weights).split(counts)
        scores_all = F.softmax(class_logits, -1).split(counts)
        out = []
        for boxes, scores, size in zip(boxes_all, scores_all, image_sizes):
            boxes = clip_boxes(boxes, size)
            labels = torch.arange(num_classes, device=boxes.device).view(1, -1).expand_as(scores)
            boxes, scores, labels = boxes[:, 1:].reshape(-1, 4), scores[:, 1:].reshape(-1), labels[:, 1:].reshape(-1)
            keep = torch.where(scores > self.score_thresh)[0]
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = small_boxes_removed(boxes, 1e-2)
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = batched_nms(boxes, scores, labels, self.nms_thresh)[: self.detections_per_img]
            out.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
        return out
