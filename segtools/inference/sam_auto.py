"""Segment everything: SAM prompted by a grid of points, its masks filtered and de-duplicated.

:func:`generate_masks` returns the masks the published automatic mask generator returns at
the same settings, in the same order, but works on whole batches: a batch's candidates are
filtered by predicted IoU *before* they are upscaled, stability scores are counted on the
whole batch at once, boxes come from row/column reductions, and masks stay bit-packed
until the end (no run-length encoding and decoding per batch).

Order of the steps (each as in the reference): per crop, per batch of points: decode three
candidates per point, keep predicted IoU > ``pred_iou_thresh``, upscale, keep stability ≥
``stability_thresh``, threshold, drop masks touching a crop edge that is not an image edge;
per crop, box NMS by predicted IoU (the detection models' NMS kernel); across crops, box NMS favouring smaller crops; then,
with ``min_region``, small holes and islands removed and NMS again (unchanged masks first).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import product

import numpy as np
import torch

from segtools.errors import UsageError
from segtools.inference.sam import SamRunner
from segtools.models.detection.boxes import nms


@dataclass(frozen=True)
class EverythingOptions:
    """The automatic mask generator's parameters, with its defaults."""

    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_thresh: float = 0.95
    stability_offset: float = 1.0
    box_nms: float = 0.7
    crop_layers: int = 0
    crop_nms: float = 0.7
    crop_overlap: float = 512 / 1500
    crop_points_downscale: int = 1
    min_region: int = 0

    def check(self) -> "EverythingOptions":
        for name in ("points_per_side", "points_per_batch", "crop_points_downscale"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name}={getattr(self, name)}: must be at least 1")
        for name in ("crop_layers", "min_region", "stability_offset"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name}={getattr(self, name)}: must not be negative")
        for name in ("box_nms", "crop_nms", "crop_overlap", "stability_thresh"):
            if not 0 <= getattr(self, name) <= 1:
                raise UsageError(f"{name}={getattr(self, name)}: must be in [0, 1]")
        if self.points_per_side // self.crop_points_downscale ** self.crop_layers < 1:
            raise UsageError("crop_layers: the deepest crop layer would get no points "
                             "(lower crop_points_downscale or crop_layers)")
        return self


@dataclass
class MaskSet:
    """N masks (bool N×H×W), their xyxy pixel boxes (inclusive), predicted IoUs, stability
    scores, prompting points (x, y) and crop boxes (xyxy), in the generator's order."""

    masks: np.ndarray
    boxes: np.ndarray
    iou: np.ndarray
    stability: np.ndarray
    points: np.ndarray
    crop_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.int64))

    def __len__(self) -> int:
        return len(self.iou)


def point_grid(per_side: int) -> np.ndarray:
    """per_side² points (x, y) in [0, 1]², cell centres, row by row."""
    side = np.linspace(1 / (2 * per_side), 1 - 1 / (2 * per_side), per_side)
    return np.stack(np.meshgrid(side, side), axis=-1).reshape(-1, 2)


def crop_boxes(height: int, width: int, layers: int, overlap_ratio: float) -> tuple[list[list[int]], list[int]]:
    """The whole image, then (2^i)² overlapping crops for layer i = 1..layers (xyxy), and layers."""
    boxes, layer_of = [[0, 0, width, height]], [0]
    for layer in range(1, layers + 1):
        n = 2 ** layer
        overlap = int(overlap_ratio * min(height, width) * (2 / n))
        crop_w = int(math.ceil((overlap * (n - 1) + width) / n))
        crop_h = int(math.ceil((overlap * (n - 1) + height) / n))
        for x0, y0 in product([int((crop_w - overlap) * i) for i in range(n)],
                              [int((crop_h - overlap) * i) for i in range(n)]):
            boxes.append([x0, y0, min(x0 + crop_w, width), min(y0 + crop_h, height)])
            layer_of.append(layer)
    return boxes, layer_of


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Indices kept by greedy box NMS, highest score first, on numpy boxes/scores: the
    detection models' kernel (torchvision's rule) run on float32 tensors."""
    kept = nms(torch.as_tensor(np.asarray(boxes), dtype=torch.float32),
               torch.as_tensor(np.asarray(scores), dtype=torch.float32), threshold)
    return kept.numpy()


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """xyxy boxes (inclusive pixel indices) of N×H×W bool masks; 0,0,0,0 for an empty mask."""
    n, h, w = masks.shape
    rows, cols = masks.any(dim=2), masks.any(dim=1)
    def edges(hit: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.arange(size, device=hit.device)
        last = torch.where(hit, index, -1).amax(dim=1)
        first = torch.where(hit, index, size).amin(dim=1)
        return first, last
    y0, y1 = edges(rows, h)
    x0, x1 = edges(cols, w)
    boxes = torch.stack([x0, y0, x1, y1], dim=1)
    return torch.where((x1 >= x0)[:, None], boxes, torch.zeros_like(boxes))


def stability_scores(logits: torch.Tensor, offset: float, threshold: float = 0.0) -> torch.Tensor:
    """IoU of the masks thresholded at ``threshold`` ± ``offset`` (N×H×W logits → N)."""
    high = (logits > threshold + offset).flatten(1).sum(1)
    low = (logits > threshold - offset).flatten(1).sum(1)
    return high / low


def _near_crop_edge(boxes: torch.Tensor, crop: list[int], image: list[int], atol: float = 20.0) -> torch.Tensor:
    offset = torch.tensor([crop[0], crop[1], crop[0], crop[1]], device=boxes.device)
    boxes = (boxes + offset).float()
    crop_t = torch.tensor(crop, dtype=torch.float32, device=boxes.device)
    image_t = torch.tensor(image, dtype=torch.float32, device=boxes.device)
    near_crop = torch.isclose(boxes, crop_t[None], atol=atol, rtol=0)
    near_image = torch.isclose(boxes, image_t[None], atol=atol, rtol=0)
    return (near_crop & ~near_image).any(dim=1)


def _process_crop(runner: SamRunner, image: np.ndarray, crop: list[int], grid: np.ndarray,
                  options: EverythingOptions) -> dict:
    x0, y0, x1, y1 = crop
    height, width = image.shape[:2]
    part = np.ascontiguousarray(image[y0:y1, x0:x1])
    embedding = runner.encode(part)
    points = grid * np.array(part.shape[:2])[None, ::-1]
    kept: dict[str, list] = {"masks": [], "boxes": [], "iou": [], "stability": [], "points": []}
    for start in range(0, len(points), options.points_per_batch):
        batch = points[start:start + options.points_per_batch]
        # the upscaling network runs only for points with a candidate above the IoU filter
        iou, rows, low_res = runner.decode_above(embedding, batch[:, None, :], np.ones((len(batch), 1)),
                                                 options.pred_iou_thresh if options.pred_iou_thresh > 0 else -math.inf)
        per_point = iou.shape[1]
        iou = iou.flatten(0, 1)
        batch_points = torch.as_tensor(np.repeat(batch, per_point, axis=0))
        # candidate k of prompt rows[r] is row r·M + k of low_res; its index in the batch is rows[r]·M + k
        candidates = (rows[:, None] * per_point + torch.arange(per_point, device=rows.device)).flatten()
        passing = iou[candidates] > options.pred_iou_thresh if options.pred_iou_thresh > 0 else \
            torch.ones(len(candidates), dtype=torch.bool, device=iou.device)
        index = candidates[passing]
        if len(index) == 0:
            continue
        with torch.inference_mode():
            logits = runner.upscale(low_res.flatten(0, 1)[passing][:, None], embedding)[:, 0]
            stability = stability_scores(logits, options.stability_offset, runner.model.mask_threshold)
            if options.stability_thresh > 0:
                good = stability >= options.stability_thresh
                index, logits, stability = index[good], logits[good], stability[good]
            masks = logits > runner.model.mask_threshold
            del logits
            boxes = mask_boxes(masks)
            inside = ~_near_crop_edge(boxes, crop, [0, 0, width, height])
            index, masks, boxes, stability = index[inside], masks[inside], boxes[inside], stability[inside]
        if len(index):
            kept["masks"].append(np.packbits(masks.cpu().numpy(), axis=-1))
            kept["boxes"].append(boxes.cpu().numpy())
            kept["iou"].append(iou[index].cpu().numpy())
            kept["stability"].append(stability.cpu().numpy())
            kept["points"].append(batch_points[index.cpu()].numpy())
    if not kept["iou"]:
        return {}
    data = {key: np.concatenate(value) for key, value in kept.items()}
    keep = _nms(data["boxes"], data["iou"], options.box_nms)
    data = {key: value[keep] for key, value in data.items()}
    data["boxes"] = data["boxes"] + np.array([x0, y0, x0, y0])
    data["points"] = data["points"] + np.array([x0, y0])
    data["crop_boxes"] = np.repeat(np.array([crop]), len(keep), axis=0)
    data["crop"] = [crop] * len(keep)
    return data


def _unpack(data: dict, height: int, width: int) -> np.ndarray:
    masks = np.zeros((len(data["iou"]), height, width), bool)
    for i, ((x0, y0, x1, y1), packed) in enumerate(zip(data["crop"], data["masks"])):
        masks[i, y0:y1, x0:x1] = np.unpackbits(packed, axis=-1, count=x1 - x0).astype(bool)
    return masks


def remove_small_regions(mask: np.ndarray, min_area: int) -> tuple[np.ndarray, bool]:
    """Fill holes, then drop islands, smaller than ``min_area`` pixels (8-connected, as the
    reference); returns the mask and whether it changed."""
    import cv2

    changed = False
    for holes in (True, False):
        work = (mask ^ holes).astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(work, connectivity=8)
        sizes = stats[1:, cv2.CC_STAT_AREA]
        small = np.flatnonzero(sizes < min_area) + 1
        if len(small) == 0:
            continue
        changed = True
        table = np.zeros(count, bool)
        if holes:
            table[0] = True
            table[small] = True
        else:
            table[1:] = True
            table[small] = False
            if not table.any():
                table[int(np.argmax(sizes)) + 1] = True
        mask = table[labels]
    return mask, changed


def generate_masks(runner: SamRunner, image: np.ndarray, options: EverythingOptions = EverythingOptions()) -> MaskSet:
    """All masks of ``image`` (H×W×3 uint8), as the automatic mask generator finds them."""
    options.check()
    height, width = image.shape[:2]
    boxes, layers = crop_boxes(height, width, options.crop_layers, options.crop_overlap)
    grids = [point_grid(int(options.points_per_side / options.crop_points_downscale ** i))
             for i in range(options.crop_layers + 1)]
    parts = [part for part in (_process_crop(runner, image, box, grids[layer], options)
                               for box, layer in zip(boxes, layers)) if part]
    if not parts:
        empty = np.zeros((0, 4), np.int64)
        return MaskSet(np.zeros((0, height, width), bool), empty, np.zeros(0, np.float32),
                       np.zeros(0, np.float32), np.zeros((0, 2)), empty)
    data = {key: (sum((p[key] for p in parts), []) if isinstance(parts[0][key], list)
                  else np.concatenate([p[key] for p in parts])) for key in parts[0]}
    if len(boxes) > 1:
        crop = data["crop_boxes"].astype(np.float32)
        keep = _nms(data["boxes"], 1 / ((crop[:, 2] - crop[:, 0]) * (crop[:, 3] - crop[:, 1])), options.crop_nms)
        data = {k: ([v[i] for i in keep] if isinstance(v, list) else v[keep]) for k, v in data.items()}
    masks = _unpack(data, height, width)
    result = MaskSet(masks, data["boxes"], data["iou"], data["stability"], data["points"], data["crop_boxes"])
    if options.min_region > 0 and len(result):
        result = _postprocess_small_regions(result, options.min_region, max(options.box_nms, options.crop_nms))
    return result


def _postprocess_small_regions(found: MaskSet, min_area: int, threshold: float) -> MaskSet:
    cleaned = [remove_small_regions(mask, min_area) for mask in found.masks]
    masks = np.stack([mask for mask, _ in cleaned])
    unchanged = np.array([0.0 if changed else 1.0 for _, changed in cleaned], np.float32)
    boxes = mask_boxes(torch.from_numpy(masks)).numpy()
    keep = _nms(boxes, unchanged, threshold)
    changed = unchanged[keep] == 0
    new_boxes = found.boxes[keep].copy()
    new_boxes[changed] = boxes[keep][changed]
    new_masks = found.masks[keep].copy()
    new_masks[changed] = masks[keep][changed]
    return MaskSet(new_masks, new_boxes, found.iou[keep], found.stability[keep], found.points[keep],
                   found.crop_boxes[keep])
