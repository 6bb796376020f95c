"""Prompted segmentation with SAM: encode an image once, decode each prompt in milliseconds.

:class:`SamRunner` follows the published predictor step for step: the image's longest side
resized to the model's input size (1024) with Pillow's bilinear filter, normalised by SAM's
pixel mean/std and zero-padded to a square; prompts (pixels of the original image, COCO's
convention) scaled by the same factors; masks upscaled to the padded input, cropped and
resized to the original image (bilinear), and thresholded at 0.

Prompts are batched: ``points`` B×N×2 with ``labels`` B×N, ``boxes`` B×4 — one mask (or
three with ``multimask``) per row, all decoded in one pass over the cached embedding.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from segtools.errors import InputError, UsageError


def input_shape(height: int, width: int, longest: int) -> tuple[int, int]:
    """Size (h, w) of an image resized so that its longest side is ``longest`` pixels."""
    scale = longest / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def resize_longest(image: np.ndarray, longest: int) -> np.ndarray:
    """H×W×3 uint8 → the same image with its longest side ``longest`` (Pillow bilinear)."""
    from PIL import Image

    h, w = input_shape(image.shape[0], image.shape[1], longest)
    return np.array(Image.fromarray(image).resize((w, h), Image.BILINEAR))


@dataclass
class ImageEmbedding:
    """An image's encoder output and the sizes needed to map prompts and masks.

    ``features`` 1×C×h×w (float32 or float16 as cached), ``original_size`` and
    ``input_size`` as (h, w): the image, and the image resized before padding.
    """

    features: torch.Tensor
    original_size: tuple[int, int]
    input_size: tuple[int, int]


@functools.lru_cache(maxsize=64)
def _bilinear_weights(source: int, size: int) -> torch.Tensor:
    """size×source float64: one axis of ``F.interpolate(mode="bilinear", align_corners=False)``
    as a matrix (each output pixel's two source weights), read off by resizing unit impulses
    in float32 — the weights exactly as the float32 kernel computes them (its source positions
    come from a float32 scale), which is what the reference implementations run."""
    impulses = torch.eye(source, dtype=torch.float32)[None]  # channel i: the impulse at i
    return F.interpolate(impulses, size=size, mode="linear", align_corners=False)[0].t().double().contiguous()


@functools.lru_cache(maxsize=64)
def upscale_matrix(source: int, padded: int, kept: int, size: int) -> torch.Tensor:
    """size×source float32: a bilinear resize of ``source`` pixels to ``padded``, the first
    ``kept`` of them, and a bilinear resize of those to ``size`` — both steps are linear along
    an axis, so they compose into one matrix (exact algebra; float32 rounding of the product).
    ``padded == kept == size`` is one resize. Shared: do not modify the result."""
    first = _bilinear_weights(source, padded)[:kept]
    matrix = first if padded == kept == size else _bilinear_weights(kept, size) @ first
    return matrix.float()


def resize_logits(logits: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``rows @ logits @ colsᵀ`` over the last two axes of ``logits`` (…×h×w → …×H×W), with
    ``rows`` H×h and ``cols`` W×w, in the cheaper order. Replaces interpolating every mask
    to 1024² and again to the image: two small matrix products per mask."""
    rows, cols = rows.to(logits.device, logits.dtype), cols.to(logits.device, logits.dtype)
    *lead, h, w = logits.shape
    (out_h, _), (out_w, _) = rows.shape, cols.shape
    flat = logits.reshape(-1, h, w)
    if out_h * h * w + out_h * w * out_w <= h * w * out_w + out_h * h * out_w:
        out = torch.matmul(rows, flat) @ cols.t()
    else:
        out = torch.matmul(rows, flat @ cols.t())
    return out.reshape(*lead, out_h, out_w)


@dataclass
class Prediction:
    """``masks`` B×M×H×W bool, ``iou`` B×M predicted IoU, ``low_res`` B×M×256×256 logits
    (``logits`` B×M×H×W when asked for)."""

    masks: np.ndarray
    iou: np.ndarray
    low_res: np.ndarray
    logits: np.ndarray | None = None


def check_prompts(points, labels, boxes, size: tuple[int, int], clip: bool = False):
    """Checked float64 copies of point (B×N×2) / label (B×N) / box (B×4) prompts.

    A point or box outside the ``size`` (h, w) image is an error naming it, or, with
    ``clip``, moved to the nearest pixel of the image. Boxes need x0 ≤ x1 and y0 ≤ y1.
    """
    h, w = size
    if points is not None:
        points = np.array(points, dtype=np.float64, ndmin=3)
        labels = np.array(labels if labels is not None else np.ones(points.shape[:2]), dtype=np.int64, ndmin=2)
        if points.shape[-1] != 2 or labels.shape != points.shape[:2]:
            raise UsageError(f"points: expected B×N×2 with labels B×N, got {points.shape} and {labels.shape}")
        if not np.isin(labels, (0, 1)).all():
            raise UsageError("labels: a point label is 1 (foreground) or 0 (background)")
        if not np.isfinite(points).all():
            raise UsageError("points: not finite")
        outside = (points[..., 0] < 0) | (points[..., 0] > w) | (points[..., 1] < 0) | (points[..., 1] > h)
        if outside.any() and not clip:
            x, y = points[outside][0]
            raise InputError(f"point={x:g},{y:g}: outside the {w}x{h} image (clip: move it to the image edge)")
        points = np.stack([points[..., 0].clip(0, w), points[..., 1].clip(0, h)], axis=-1)
    if boxes is not None:
        boxes = np.array(boxes, dtype=np.float64, ndmin=2)
        if boxes.shape[-1] != 4 or boxes.ndim != 2:
            raise UsageError(f"boxes: expected B×4, got {boxes.shape}")
        if not np.isfinite(boxes).all():
            raise UsageError("boxes: not finite")
        outside = (boxes[:, [0, 2]] < 0).any(1) | (boxes[:, [0, 2]] > w).any(1) | \
            (boxes[:, [1, 3]] < 0).any(1) | (boxes[:, [1, 3]] > h).any(1)
        if outside.any() and not clip:
            box = boxes[outside][0]
            raise InputError(f"box={','.join(f'{v:g}' for v in box)}: outside the {w}x{h} image "
                             "(clip: move it to the image edge)")
        boxes = np.stack([boxes[:, 0].clip(0, w), boxes[:, 1].clip(0, h), boxes[:, 2].clip(0, w),
                          boxes[:, 3].clip(0, h)], axis=1)
        if ((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])).any():
            box = boxes[(boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])][0]
            raise InputError(f"box={','.join(f'{v:g}' for v in box)}: needs x0 <= x1 and y0 <= y1")
    if points is not None and boxes is not None and points.shape[0] != boxes.shape[0]:
        if points.shape[0] != 1:
            raise UsageError("points and boxes: give one point set for all boxes or one per box")
        points = np.repeat(points, boxes.shape[0], axis=0)
        labels = np.repeat(labels, boxes.shape[0], axis=0)
    return points, labels, boxes


class SamRunner:
    """A SAM model on a device; :meth:`encode` an image, then :meth:`predict` its prompts."""

    def __init__(self, model, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.img_size = int(model.img_size)

    # -- image -------------------------------------------------------------------------------
    def preprocess(self, image: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
        """H×W×3 uint8 → 1×3×S×S normalised, padded model input, and the resized (h, w)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError(f"image: expected H×W×3 uint8 RGB, got {image.shape} {image.dtype}")
        resized = resize_longest(image, self.img_size)
        x = torch.as_tensor(resized, device=self.device).permute(2, 0, 1)[None].float()
        x = (x - self.model.pixel_mean) / self.model.pixel_std
        h, w = resized.shape[:2]
        return F.pad(x, (0, self.img_size - w, 0, self.img_size - h)), (h, w)

    @torch.inference_mode()
    def encode(self, image: np.ndarray) -> ImageEmbedding:
        """Run the image encoder once for ``image`` (H×W×3 uint8 RGB)."""
        x, input_size = self.preprocess(image)
        return ImageEmbedding(self.model.image_encoder(x), tuple(image.shape[:2]), input_size)

    # -- prompts -----------------------------------------------------------------------------
    def scale_coords(self, coords: np.ndarray, embedding: ImageEmbedding) -> np.ndarray:
        """Pixels of the original image → pixels of the resized model input (float64)."""
        (oh, ow), (nh, nw) = embedding.original_size, embedding.input_size
        coords = np.array(coords, dtype=np.float64)
        coords[..., 0] *= nw / ow
        coords[..., 1] *= nh / oh
        return coords

    def _prompt_embeddings(self, embedding: ImageEmbedding, points, labels, boxes, mask_input,
                           coords_dtype) -> tuple[torch.Tensor, torch.Tensor]:
        model = self.model
        point_pair = None
        if points is not None:
            coords = torch.as_tensor(self.scale_coords(points, embedding), dtype=coords_dtype, device=self.device)
            point_pair = (coords, torch.as_tensor(labels, dtype=torch.int64, device=self.device))
        box_t = None
        if boxes is not None:
            scaled = self.scale_coords(np.asarray(boxes, dtype=np.float64).reshape(-1, 2, 2), embedding)
            box_t = torch.as_tensor(scaled.reshape(-1, 4), dtype=torch.float32, device=self.device)
        mask_t = None
        if mask_input is not None:
            mask_t = torch.as_tensor(np.asarray(mask_input), dtype=torch.float32, device=self.device)
            mask_t = mask_t.reshape(-1, 1, *mask_t.shape[-2:])
        return model.prompt_encoder(point_pair, box_t, mask_t)

    @torch.inference_mode()
    def decode(self, embedding: ImageEmbedding, points=None, labels=None, boxes=None, mask_input=None,
               multimask: bool = True, coords_dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-res logits (B×M×256×256) and IoU predictions (B×M) for prompts already checked
        and in original-image pixels. ``coords_dtype`` float64 keeps the scaled coordinates in
        double precision until they are normalised (as the automatic generator does)."""
        model = self.model
        sparse, dense = self._prompt_embeddings(embedding, points, labels, boxes, mask_input, coords_dtype)
        features = embedding.features.to(self.device, torch.float32)
        return model.mask_decoder(features, model.prompt_encoder.dense_positions(), sparse, dense, multimask)

    @torch.inference_mode()
    def decode_above(self, embedding: ImageEmbedding, points, labels, iou_above: float, multimask: bool = True,
                     coords_dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`decode` for the prompts that can pass an IoU filter: the IoU predictions of
        all B prompts (B×M), the indices R of the prompts with a candidate above ``iou_above``,
        and their low-res logits (R×M×256×256). The IoU comes from the transformer's output
        tokens alone, so the mask upscaling network runs only on those R prompts."""
        model = self.model
        decoder = model.mask_decoder
        sparse, dense = self._prompt_embeddings(embedding, points, labels, None, None, coords_dtype)
        features = embedding.features.to(self.device, torch.float32)
        hs, keys = decoder.run_transformer(features, model.prompt_encoder.dense_positions(), sparse, dense)
        iou = decoder.predict_iou(hs, multimask)
        rows = torch.nonzero((iou > iou_above).any(dim=1)).flatten()
        low_res = decoder.predict_masks(hs[rows], keys[rows], tuple(features.shape[-2:]), multimask)
        return iou, rows, low_res

    def upscale(self, low_res: torch.Tensor, embedding: ImageEmbedding) -> torch.Tensor:
        """Low-res logits → logits at the original image size: bilinear to the padded input,
        padding removed, bilinear to the image — as two products with one matrix per axis."""
        h, w = low_res.shape[-2:]
        (kept_h, kept_w), (out_h, out_w) = embedding.input_size, embedding.original_size
        return resize_logits(low_res, upscale_matrix(h, self.img_size, kept_h, out_h),
                             upscale_matrix(w, self.img_size, kept_w, out_w))

    @torch.inference_mode()
    def predict(self, embedding: ImageEmbedding, points=None, labels=None, boxes=None, mask_input=None,
                multimask: bool = True, clip: bool = False, return_logits: bool = False) -> Prediction:
        """Masks for a batch of prompts on one encoded image (see :func:`check_prompts`)."""
        if points is None and boxes is None and mask_input is None:
            raise UsageError("give a point, a box or a mask prompt")
        points, labels, boxes = check_prompts(points, labels, boxes, embedding.original_size, clip)
        low_res, iou = self.decode(embedding, points, labels, boxes, mask_input, multimask)
        logits = self.upscale(low_res, embedding)
        return Prediction(masks=(logits > self.model.mask_threshold).cpu().numpy(), iou=iou.cpu().numpy(),
                          low_res=low_res.cpu().numpy(), logits=logits.cpu().numpy() if return_logits else None)


def best_masks(prediction: Prediction) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The highest-IoU candidate of each prompt: masks B×H×W, iou B, index B."""
    index = prediction.iou.argmax(axis=1)
    rows = np.arange(len(index))
    return prediction.masks[rows, index], prediction.iou[rows, index], index
