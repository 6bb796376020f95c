"""Deterministic weights and inputs for the golden-output model tests.

Shared by ``tools/make_golden.py`` (run once in a separate venv that has torchvision, to
record the reference outputs) and ``tests/test_models_golden.py`` (run in CI, without
torchvision). Every tensor of a state dict is a window of one fixed NumPy PCG64 random pool,
starting at an offset given by ``zlib.crc32`` of its key, so two models with the same keys
and shapes receive the same values whatever their code or torch version (and filling a
60 M-parameter model costs a fraction of a second). Only NumPy and torch are used here.

Scales keep activations O(1) through 100+ layers so that float32 agrees with float64 far
below the test tolerance: conv/linear weights uniform with variance 1/fan_in, BatchNorm
gains in [0.5, 1), running variances in [0.5, 1.5), small biases and running means.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

GOLDEN_DIR = Path(__file__).resolve().parent / "fixtures" / "golden"
INPUT_SHAPE = (1, 3, 96, 128)  # non-square, multiple of 16 (U-Net needs no padding)
SAMPLE_STRIDE = 4  # outputs are stored at every 4th row and column
INPUT_SEED = 20240608
POOL_SEED = 8
POOL_SIZE = 2**24  # float32 values (64 MiB), more than the largest tensor (9.4 M)


@dataclass(frozen=True)
class GoldenCase:
    """One golden fixture: our architecture + options, and the reference it must equal."""

    name: str
    arch: str
    num_classes: int
    options: dict = field(default_factory=dict)
    reference: str = ""
    heads: tuple[str, ...] = ("out",)


GOLDEN_CASES: tuple[GoldenCase, ...] = (
    GoldenCase("deeplabv3-resnet50", "deeplabv3-resnet50", 21, {"aux": True},
               "torchvision deeplabv3_resnet50(aux_loss=True)", ("out", "aux")),
    GoldenCase("deeplabv3-resnet101", "deeplabv3-resnet101", 21, {"aux": True},
               "torchvision deeplabv3_resnet101(aux_loss=True)", ("out", "aux")),
    GoldenCase("deeplabv3-mnv3", "deeplabv3-mnv3", 21, {"aux": True},
               "torchvision deeplabv3_mobilenet_v3_large(aux_loss=True)", ("out", "aux")),
    GoldenCase("fcn-resnet50", "fcn-resnet50", 21, {"aux": True},
               "torchvision fcn_resnet50(aux_loss=True)", ("out", "aux")),
    GoldenCase("fcn-resnet101", "fcn-resnet101", 21, {"aux": True},
               "torchvision fcn_resnet101(aux_loss=True)", ("out", "aux")),
    GoldenCase("lraspp-mnv3", "lraspp-mnv3", 21, {},
               "torchvision lraspp_mobilenet_v3_large()"),
    GoldenCase("deeplabv3plus-resnet50", "deeplabv3plus-resnet50", 21, {},
               "torchvision resnet50 trunk + DeepLabV3+ head transcript (OS 16, two decoder convs)"),
    GoldenCase("deeplabv3plus-resnet101-vainf-os8", "deeplabv3plus-resnet101", 21,
               {"output_stride": 8, "decoder_convs": 1},
               "torchvision resnet101 trunk + VainF/DeepLabV3Plus-Pytorch head layout (OS 8)"),
    GoldenCase("unet", "unet", 2, {},
               "milesial/Pytorch-UNet UNet(n_channels=3, n_classes=2, bilinear=False) transcript"),
    GoldenCase("unet-bilinear", "unet", 3, {"bilinear": True},
               "milesial/Pytorch-UNet UNet(n_channels=3, n_classes=3, bilinear=True) transcript"),
)


def key_seed(key: str) -> int:
    """Stable 32-bit seed of a state-dict key."""
    return zlib.crc32(key.encode("utf-8"))


@functools.lru_cache(maxsize=1)
def _pool() -> np.ndarray:
    """2**24 uniform [0, 1) float32 values; each tensor reads a window chosen by its key."""
    return np.random.default_rng(POOL_SEED).random(POOL_SIZE, dtype=np.float32)


def keyed_values(key: str, shape: tuple[int, ...]) -> tuple[np.ndarray, float, float]:
    """The value of state-dict entry ``key`` as ``offset + scale * window`` (float32).

    ``window`` is the slice of a fixed random pool starting at ``crc32(key)`` modulo the room
    left, so the values depend only on the key and the shape (and cost no generation).
    """
    size = int(np.prod(shape, dtype=np.int64))
    if size > POOL_SIZE:
        raise ValueError(f"{key}: {size} values exceed the pool of {POOL_SIZE}")
    start = key_seed(key) % (POOL_SIZE - size + 1)
    window = _pool()[start : start + size].reshape(shape)
    if key.endswith("running_var"):
        return window, 0.5, 1.0
    if key.endswith("running_mean"):
        return window, -0.1, 0.2
    if key.endswith("bias"):
        return window, -0.05, 0.1
    if len(shape) == 1:  # norm gains
        return window, 0.5, 0.5
    bound = float(np.sqrt(3.0 / int(np.prod(shape[1:]))))  # variance 1/fan_in
    return window, -bound, 2.0 * bound


def fill_deterministic(model) -> None:
    """Overwrite every parameter and buffer of a torch module with its keyed value.

    Works on a module built on the ``meta`` device too (it is materialised on the CPU).
    """
    import torch

    if any(tensor.is_meta for tensor in model.state_dict().values()):
        model.to_empty(device="cpu")
    with torch.no_grad():
        for key, tensor in model.state_dict(keep_vars=True).items():
            if key.endswith("num_batches_tracked"):
                tensor.fill_(key_seed(key) % 1000)
                continue
            window, offset, scale = keyed_values(key, tuple(tensor.shape))
            tensor.copy_(torch.from_numpy(window)).mul_(scale).add_(offset)


def golden_input() -> np.ndarray:
    """The fixed input batch (float64, roughly normalised-image range)."""
    return np.random.default_rng(INPUT_SEED).random(INPUT_SHAPE) * 4.0 - 2.0


def summarise(logits: np.ndarray) -> dict[str, np.ndarray]:
    """What a fixture stores about one N×C×H×W output: a strided sample and channel means."""
    return {
        "sample": logits[0, :, ::SAMPLE_STRIDE, ::SAMPLE_STRIDE].astype(np.float32),
        "channel_mean": logits[0].mean(axis=(1, 2)).astype(np.float64),
        "channel_abs_mean": np.abs(logits[0]).mean(axis=(1, 2)).astype(np.float64),
    }


# --- Segment Anything (tools/make_sam_golden.py, tests/test_sam_golden.py) -------------------
SAM_GOLDEN_DIR = GOLDEN_DIR / "sam"
SAM_IMAGE_SHAPE = (150, 200, 3)  # non-square: resized to 192x256 and padded to 256x256
SAM_IMAGE_SEED = 20240609
#: a small ViT (256-pixel input, 16x16 embedding grid, windows of 7 with padding, two global
#: blocks) in front of SAM's full-size prompt encoder and mask decoder
SAM_TINY = {"img_size": 256, "patch_size": 16, "embed_dim": 64, "depth": 4, "num_heads": 4,
            "window_size": 7, "global_attn": (1, 3)}


def sam_golden_image() -> np.ndarray:
    """A fixed H×W×3 uint8 picture: a gradient, two rectangles, a disc and some noise."""
    h, w, _ = SAM_IMAGE_SHAPE
    rng = np.random.default_rng(SAM_IMAGE_SEED)
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.stack([xx * 255 / w, yy * 255 / h, np.full((h, w), 90.0)], axis=-1)
    image[20:70, 30:90] = (220, 40, 40)
    image[90:140, 120:190] = (30, 200, 60)
    image[(yy - 60) ** 2 + (xx - 150) ** 2 < 25 ** 2] = (40, 60, 230)
    image += rng.normal(0, 8, image.shape)
    return image.clip(0, 255).astype(np.uint8)


#: prompt cases: name → points (B×N×2), labels (B×N), boxes (B×4), multimask, mask input from
SAM_PROMPT_CASES: dict[str, dict] = {
    "point": {"points": [[[60.0, 45.0]]], "labels": [[1]], "multimask": True},
    "points_fg_bg": {"points": [[[155.0, 130.0], [60.0, 45.0]]], "labels": [[1, 0]], "multimask": False},
    "box": {"boxes": [[28.0, 18.0, 92.0, 72.0]], "multimask": False},
    "box_point": {"boxes": [[118.0, 88.0, 192.0, 142.0]], "points": [[[150.0, 110.0]]], "labels": [[1]],
                  "multimask": False},
    "boxes3": {"boxes": [[28.0, 18.0, 92.0, 72.0], [118.0, 88.0, 192.0, 142.0], [124.5, 34.0, 176.0, 86.25]],
               "multimask": True},
    "mask_refine": {"points": [[[60.0, 45.0], [80.0, 60.0]]], "labels": [[1, 1]], "multimask": False,
                    "mask_from": "point"},
}

#: automatic mask generation cases (SamAutomaticMaskGenerator keyword arguments); random weights give
#: small logits, so the stability offset is narrowed from 1.0 to keep a few dozen masks
SAM_AMG_CASES: dict[str, dict] = {
    "amg": {"points_per_side": 8, "points_per_batch": 24, "pred_iou_thresh": 0.5,
            "stability_score_thresh": 0.65, "stability_score_offset": 0.05, "box_nms_thresh": 1.0},
    "amg_nms": {"points_per_side": 8, "points_per_batch": 64, "pred_iou_thresh": 0.0,
                "stability_score_thresh": 0.6, "stability_score_offset": 0.05, "box_nms_thresh": 0.7},
    "amg_crops": {"points_per_side": 8, "points_per_batch": 64, "pred_iou_thresh": 0.5,
                  "stability_score_thresh": 0.65, "stability_score_offset": 0.05, "box_nms_thresh": 1.0,
                  "crop_n_layers": 1, "crop_nms_thresh": 1.0, "crop_n_points_downscale_factor": 2},
    "amg_min_region": {"points_per_side": 8, "points_per_batch": 64, "pred_iou_thresh": 0.5,
                       "stability_score_thresh": 0.65, "stability_score_offset": 0.05, "box_nms_thresh": 1.0,
                       "min_mask_region_area": 40},
}
#: box NMS cases for torchvision.ops.nms: seed, number of boxes, IoU threshold
SAM_NMS_CASES = ((1, 300, 0.7), (2, 300, 0.5), (3, 50, 0.0))


def sam_nms_boxes(seed: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Random xyxy boxes (float32, in a 200-pixel square, many overlapping) and scores."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 150, (count, 2))
    wh = rng.uniform(5, 60, (count, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1).round().astype(np.float32)
    return boxes, rng.random(count).astype(np.float32)
