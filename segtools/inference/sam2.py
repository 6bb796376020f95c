"""Prompted segmentation with SAM 2.1: encode an image once, decode each prompt on it.

:class:`Sam2Runner` follows the published image predictor step for step: the image resized
to 1024×1024 (both sides, no padding; bilinear with antialiasing, on pixels scaled to
[0, 1]) and normalised by ImageNet's mean/std; prompts (pixels of the original image, COCO's
convention) scaled by 1024 / width and 1024 / height, a box turned into two corner points
put before the clicks; the decoder fed the image embedding and the stride-4/8 features;
masks upscaled from 256×256 straight to the original size (bilinear) and thresholded at 0;
the returned low-resolution logits clipped to ±32.

It has :class:`~segtools.inference.sam.SamRunner`'s interface (``encode``, ``decode``,
``upscale``, ``predict``), so the segment-everything generator
(:func:`segtools.inference.sam_auto.generate_masks`) and the embedding cache run on it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segtools.errors import InputError, UsageError
from segtools.inference.sam_io import EmbeddingCache

# torch is imported by the functions that need it: ``predict`` asks :func:`is_sam2_model`
# for every run, torch-free.


@dataclass
class Sam2Embedding:
    """An image's SAM 2 encoder output (the fields of
    :class:`~segtools.inference.sam.ImageEmbedding`, plus one): ``features`` 1×C×64×64 (the
    no-memory embedding added), ``original_size`` and ``input_size`` (1024, 1024) as (h, w),
    ``high_res`` the decoder's projected stride-4 and stride-8 features."""

    features: object
    original_size: tuple[int, int]
    input_size: tuple[int, int]
    high_res: tuple = ()


@dataclass
class Sam2Prediction:
    """:class:`~segtools.inference.sam.Prediction`'s fields (``masks`` B×M×H×W bool, ``iou``
    B×M, ``low_res`` B×M×256×256 logits, ``logits`` B×M×H×W when asked for) plus
    ``object_score`` (B×1 logits: is the object in the image at all; what video
    propagation uses to mark it absent)."""

    masks: np.ndarray
    iou: np.ndarray
    low_res: np.ndarray
    logits: np.ndarray | None = None
    object_score: np.ndarray | None = None


class Sam2Runner:
    """A SAM 2.1 model on a device; :meth:`encode` an image, then :meth:`predict` its prompts."""

    def __init__(self, model, device="cpu") -> None:
        import torch

        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.img_size = int(model.img_size)

    # -- image -------------------------------------------------------------------------------
    def preprocess(self, image: np.ndarray):
        """H×W×3 uint8 → 1×3×S×S normalised model input (S = 1024)."""
        import torch
        import torch.nn.functional as F

        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError(f"image: expected H×W×3 uint8 RGB, got {image.shape} {image.dtype}")
        x = torch.as_tensor(image, device=self.device).permute(2, 0, 1)[None].float().div(255)
        x = F.interpolate(x, (self.img_size, self.img_size), mode="bilinear", align_corners=False, antialias=True)
        return (x - self.model.pixel_mean) / self.model.pixel_std

    def encode(self, image: np.ndarray) -> Sam2Embedding:
        """Run the image encoder once for ``image`` (H×W×3 uint8 RGB)."""
        import torch

        with torch.inference_mode():
            features, high_res = self.model.encode(self.preprocess(image))
        size = (self.img_size, self.img_size)
        return Sam2Embedding(features, tuple(image.shape[:2]), size, high_res)

    # -- prompts -----------------------------------------------------------------------------
    def scale_coords(self, coords, embedding):
        """Pixels of the original image → pixels of the 1024×1024 model input (a new tensor)."""
        h, w = embedding.original_size
        coords = coords.clone()
        coords[..., 0] = coords[..., 0] / w
        coords[..., 1] = coords[..., 1] / h
        return coords * self.img_size

    def decode(self, embedding: Sam2Embedding, points=None, labels=None, boxes=None, mask_input=None,
               multimask: bool = True, coords_dtype=None, object_score: bool = False):
        """Low-res logits (B×M×256×256, not clipped) and IoU predictions (B×M) for prompts
        already checked and in original-image pixels (and B×1 object scores with
        ``object_score``); coordinates are scaled in ``coords_dtype`` (default float32)."""
        import torch

        with torch.inference_mode():
            return self._decode(embedding, points, labels, boxes, mask_input, multimask,
                                coords_dtype or torch.float32, object_score)

    def _decode(self, embedding, points, labels, boxes, mask_input, multimask, coords_dtype, object_score):
        import torch

        if not getattr(embedding, "high_res", ()):
            raise InputError("embedding: not a SAM 2 image embedding (it lacks the high-resolution features)")
        model, device = self.model, self.device
        parts, kinds = [], []
        if boxes is not None:
            corners = torch.as_tensor(np.asarray(boxes, np.float64).reshape(-1, 2, 2), dtype=coords_dtype, device=device)
            parts.append(self.scale_coords(corners, embedding))
            kinds.append(torch.tensor([[2, 3]], device=device).expand(len(corners), 2))
        if points is not None:
            coords = torch.as_tensor(np.asarray(points, np.float64), dtype=coords_dtype, device=device)
            parts.append(self.scale_coords(coords, embedding))
            kinds.append(torch.as_tensor(np.asarray(labels), dtype=torch.int64, device=device))
        point_pair = None
        if parts:
            batch = max(p.shape[0] for p in parts)
            point_pair = (torch.cat([p.expand(batch, -1, -1) for p in parts], dim=1),
                          torch.cat([k.expand(batch, -1) for k in kinds], dim=1))
        mask_t = None
        if mask_input is not None:
            mask_t = torch.as_tensor(np.asarray(mask_input), dtype=torch.float32, device=device)
            mask_t = mask_t.reshape(-1, 1, *mask_t.shape[-2:])
        sparse, dense = model.sam_prompt_encoder(point_pair, None, mask_t)
        features = embedding.features.to(device, torch.float32)
        high_res = tuple(f.to(device, torch.float32) for f in embedding.high_res)
        low_res, iou, score = model.sam_mask_decoder(features, model.sam_prompt_encoder.dense_positions(), sparse,
                                                     dense, multimask, high_res)
        return (low_res, iou, score) if object_score else (low_res, iou)

    def decode_above(self, embedding: Sam2Embedding, points, labels, iou_above: float, multimask: bool = True,
                     coords_dtype=None):
        """The segment-everything generator's entry point
        (:meth:`~segtools.inference.sam.SamRunner.decode_above`): IoU predictions of all B
        point prompts (B×M), the indices R of those with a candidate above ``iou_above``, and
        their low-res logits (R×M×256×256). Here every prompt is decoded in full (SAM 2's
        decoder is not split at the IoU head)."""
        import torch

        low_res, iou = self.decode(embedding, points, labels, multimask=multimask,
                                   coords_dtype=coords_dtype or torch.float64)
        rows = torch.nonzero((iou > iou_above).any(dim=1)).flatten()
        return iou, rows, low_res[rows]

    def upscale(self, low_res, embedding):
        """Low-res logits → logits at the original image size (one bilinear resize, as two
        products with one matrix per axis)."""
        from segtools.inference.sam import resize_logits, upscale_matrix

        (h, w), (out_h, out_w) = low_res.shape[-2:], embedding.original_size
        return resize_logits(low_res, upscale_matrix(h, out_h, out_h, out_h), upscale_matrix(w, out_w, out_w, out_w))

    def predict(self, embedding: Sam2Embedding, points=None, labels=None, boxes=None, mask_input=None,
                multimask: bool = True, clip: bool = False, return_logits: bool = False) -> Sam2Prediction:
        """Masks for a batch of prompts on one encoded image (see
        :func:`~segtools.inference.sam.check_prompts`): points B×N×2 with labels B×N, boxes
        B×4 (one box per row, its clicks after it), ``mask_input`` B×256×256 low-res logits."""
        import torch

        from segtools.inference.sam import check_prompts

        if points is None and boxes is None and mask_input is None:
            raise UsageError("give a point, a box or a mask prompt")
        points, labels, boxes = check_prompts(points, labels, boxes, embedding.original_size, clip)
        low_res, iou, score = self.decode(embedding, points, labels, boxes, mask_input, multimask,
                                          object_score=True)
        with torch.inference_mode():
            logits = self.upscale(low_res, embedding)
        return Sam2Prediction(masks=(logits > self.model.mask_threshold).cpu().numpy(), iou=iou.cpu().numpy(),
                              low_res=low_res.clamp(-32.0, 32.0).cpu().numpy(),
                              logits=logits.cpu().numpy() if return_logits else None,
                              object_score=score.cpu().numpy())


class Sam2EmbeddingCache(EmbeddingCache):
    """:class:`~segtools.inference.sam_io.EmbeddingCache` for SAM 2: the high-resolution
    features are kept beside the embedding (float16, ``DIR/<model key>/<image sha256>.npz``)."""

    tensor_names = ("features", "high_res_0", "high_res_1")

    def embedding(self, tensors: dict, original_size: tuple, input_size: tuple) -> Sam2Embedding:
        return Sam2Embedding(tensors["features"], original_size, input_size,
                             (tensors["high_res_0"], tensors["high_res_1"]))

    def tensors(self, embedding: Sam2Embedding) -> dict:
        return {"features": embedding.features, "high_res_0": embedding.high_res[0],
                "high_res_1": embedding.high_res[1]}


def make_runner(model, device, embeddings: str | None):
    """(runner, cache) for ``predict``: a :class:`Sam2Runner` and, with ``embeddings`` (a
    folder), its embedding cache keyed by the model's fingerprint."""
    from segtools.inference.sam_io import model_key

    runner = Sam2Runner(model, device)
    cache = Sam2EmbeddingCache(Path(embeddings), model_key(model)) if embeddings else None
    return runner, cache


def is_sam2_model(model: str | None, weights: str | None, arch: str | None) -> bool:
    """Whether ``predict``'s model options name a SAM 2.1 model (a SAM 2.1 ``arch``, a
    registry entry of one, or a file whose name starts with ``sam2``); reads no file."""
    from segtools.inference.sam_io import names_family
    from segtools.models.sam2 import SAM2_ARCHS

    return names_family(model, weights, arch, SAM2_ARCHS, ("sam2",))


def load_sam2_model(model: str | None = None, weights: str | None = None, arch: str | None = None):
    """The SAM 2.1 image model of a registry name or a checkpoint file (``{"model": state}``
    or a bare state dict, loaded as data with ``weights_only``).

    ``arch`` (a :data:`~segtools.models.sam2.SAM2_ARCHS` name), or the registry entry's, is
    the variant expected: a checkpoint of another one is refused, naming what it is.
    """
    from segtools.inference.sam_io import read_promptable_state
    from segtools.models.sam2 import SAM2_ARCHS
    from segtools.models.sam2.model import load_sam2

    state, expect, source = read_promptable_state(model, weights, arch, SAM2_ARCHS, "SAM 2.1", "sam2.1-hiera-tiny")
    return load_sam2(state, expect=expect, source=source)


def runner_if_sam2(model, weights, arch, device, embeddings: str | None):
    """``predict``'s (runner, cache) when its model options name a SAM 2.1 model, else None
    (the caller goes on with SAM / MobileSAM)."""
    if not is_sam2_model(model, weights, arch):
        return None
    return make_runner(load_sam2_model(model, weights, arch), device, embeddings)
