"""Training augmentations with OpenCV/numpy: one random transform for image and mask.

Geometry (flip, scale, rotation, crop) is composed into a single affine matrix and applied
with one ``cv2.warpAffine`` per array: bilinear for the image, nearest for the mask, so the
mask only ever holds values it held before (or ``ignore_index`` where the crop leaves the
picture). Elastic deformation follows the U-Net paper (Ronneberger et al. 2015): random
displacement vectors on a coarse grid (σ in pixels), upsampled bicubically to a smooth field,
applied with ``cv2.remap``. Colour jitter changes the image only.

Every random draw comes from the ``numpy.random.Generator`` passed in, so a sample is a
pure function of (image, mask, generator state): the loop seeds one generator per sample
from (seed, epoch, position) and runs are reproducible with any number of workers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from segtools.errors import UsageError


@dataclass(frozen=True)
class AugmentConfig:
    """What to randomise. Sizes are (height, width) in pixels; angles in degrees.

    ``crop`` None keeps the (scaled) image size. ``scale`` is the range of the random
    zoom factor; ``rotate`` the maximum absolute angle; ``hflip``/``vflip`` probabilities;
    ``brightness``/``contrast``/``saturation`` maximum relative changes (0.2 → ×[0.8, 1.2]);
    ``hue`` the maximum hue shift as a fraction of the colour wheel; ``elastic`` the
    probability of an elastic deformation with ``elastic_sigma`` pixels of displacement std
    on an ``elastic_grid``×``elastic_grid`` coarse grid.
    """

    crop: tuple[int, int] | None = None
    scale: tuple[float, float] = (1.0, 1.0)
    rotate: float = 0.0
    hflip: float = 0.0
    vflip: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    elastic: float = 0.0
    elastic_sigma: float = 10.0
    elastic_grid: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", tuple(float(v) for v in self.scale))  # JSON gives lists
        if self.crop is not None:
            object.__setattr__(self, "crop", tuple(int(v) for v in self.crop))
        low, high = self.scale
        if not (0 < low <= high):
            raise UsageError(f"scale ({low:g}, {high:g}): give 0 < low <= high, e.g. (0.5, 2.0)")
        for name in ("hflip", "vflip", "elastic"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UsageError(f"{name} probability must be within [0, 1]")
        if self.crop is not None and min(self.crop) < 1:
            raise UsageError(f"crop {self.crop}: sizes must be positive")
        if self.elastic_grid < 2:
            raise UsageError("elastic grid must be at least 2×2")

    @property
    def is_identity(self) -> bool:
        return (self.crop is None and self.scale == (1.0, 1.0) and self.rotate == 0 and self.hflip == 0
                and self.vflip == 0 and self.elastic == 0 and not self.has_colour)

    @property
    def has_colour(self) -> bool:
        return any((self.brightness, self.contrast, self.saturation, self.hue))


def affine_matrix(height: int, width: int, *, scale: float = 1.0,
                  angle: float = 0.0, hflip: bool = False, vflip: bool = False,
                  offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """The 2×3 forward map (source x, y → output x, y) for flip, then scale and rotation
    about the image centre, then a crop whose top-left corner is ``offset`` (y, x) in the
    scaled picture.
    """
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    flip = np.diag([-1.0 if hflip else 1.0, -1.0 if vflip else 1.0])
    theta = math.radians(angle)
    rotation = np.array([[math.cos(theta), math.sin(theta)], [-math.sin(theta), math.cos(theta)]])
    linear = scale * rotation @ flip
    centre_src = np.array([cx, cy])
    centre_scaled = np.array([scale * (width - 1) / 2.0, scale * (height - 1) / 2.0])
    translation = centre_scaled - linear @ centre_src - np.array([offset[1], offset[0]])
    return np.hstack([linear, translation[:, None]]).astype(np.float64)


def _random_offset(rng: np.random.Generator, scaled: int, crop: int) -> int:
    """Whole-pixel crop start along one axis: inside the picture when it is bigger, else a
    random pad (whole pixels keep a plain crop exact: no interpolation)."""
    slack = scaled - crop
    return int(rng.integers(0, slack + 1)) if slack >= 0 else int(rng.integers(slack, 1))


def random_geometry(image: np.ndarray, mask: np.ndarray, config: AugmentConfig, rng: np.random.Generator,
                    ignore_index: int, fill: float | tuple = 0) -> tuple[np.ndarray, np.ndarray]:
    """Flip, scale, rotate and crop ``image`` (H×W×C) and ``mask`` (H×W) with one matrix."""
    height, width = mask.shape
    scale = float(rng.uniform(*config.scale)) if config.scale[0] != config.scale[1] else config.scale[0]
    angle = float(rng.uniform(-config.rotate, config.rotate)) if config.rotate else 0.0
    hflip = bool(rng.random() < config.hflip) if config.hflip else False
    vflip = bool(rng.random() < config.vflip) if config.vflip else False
    scaled_h, scaled_w = max(1, round(height * scale)), max(1, round(width * scale))
    out_h, out_w = config.crop if config.crop is not None else (scaled_h, scaled_w)
    offset = (_random_offset(rng, scaled_h, out_h), _random_offset(rng, scaled_w, out_w))
    if scale == 1.0 and angle == 0.0 and not (hflip or vflip) and (out_h, out_w) == (height, width):
        return image, mask
    matrix = affine_matrix(height, width, scale=scale, angle=angle, hflip=hflip,
                           vflip=vflip, offset=offset)
    fill_value = tuple(float(v) for v in np.broadcast_to(fill, (image.shape[2] if image.ndim == 3 else 1,)))
    image_out = cv2.warpAffine(image, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=fill_value)
    if image.ndim == 3 and image_out.ndim == 2:  # OpenCV drops a single channel
        image_out = image_out[..., None]
    mask_out = _warp_mask_affine(mask, matrix, (out_w, out_h), ignore_index)
    return image_out, mask_out


def _warp_mask_affine(mask: np.ndarray, matrix: np.ndarray, dsize: tuple[int, int], ignore_index: int) -> np.ndarray:
    source = mask if mask.dtype in (np.uint8, np.uint16, np.int16) else mask.astype(np.int32)
    if source.dtype == np.int32:  # nearest-neighbour remap of int32 via float32 is exact up to 2**24
        source = source.astype(np.float32)
    out = cv2.warpAffine(source, matrix, dsize, flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=float(ignore_index))
    return out.astype(mask.dtype, copy=False)


def elastic_field(height: int, width: int, rng: np.random.Generator, sigma: float = 10.0,
                  grid: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Sampling maps (map_x, map_y) float32 H×W for a smooth random deformation.

    Displacements are drawn from N(0, σ²) pixels on a ``grid``×``grid`` lattice and
    upsampled with bicubic interpolation (as in the U-Net paper).
    """
    coarse = rng.normal(0.0, sigma, size=(2, grid, grid)).astype(np.float32)
    dx = cv2.resize(coarse[0], (width, height), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(coarse[1], (width, height), interpolation=cv2.INTER_CUBIC)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return xs + dx, ys + dy


def elastic_deform(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, ignore_index: int,
                   sigma: float = 10.0, grid: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Apply one random elastic deformation to both arrays (bilinear image, nearest mask)."""
    height, width = mask.shape
    map_x, map_y = elastic_field(height, width, rng, sigma, grid)
    image_out = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    if image.ndim == 3 and image_out.ndim == 2:
        image_out = image_out[..., None]
    source = mask.astype(np.float32) if mask.dtype not in (np.uint8, np.uint16, np.int16) else mask
    mask_out = cv2.remap(source, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101)
    return image_out, mask_out.astype(mask.dtype, copy=False)


def colour_jitter(image: np.ndarray, config: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Random brightness, contrast, saturation and hue changes of a uint8 RGB (or grey) image."""
    if not config.has_colour:
        return image
    pixels = image.astype(np.float32)
    if config.brightness:
        pixels *= rng.uniform(1 - config.brightness, 1 + config.brightness)
    if config.contrast:
        mean = pixels.mean()
        pixels = (pixels - mean) * rng.uniform(1 - config.contrast, 1 + config.contrast) + mean
    is_rgb = pixels.ndim == 3 and pixels.shape[2] == 3
    if is_rgb and config.saturation:
        grey = pixels @ np.array([0.299, 0.587, 0.114], np.float32)
        factor = rng.uniform(1 - config.saturation, 1 + config.saturation)
        pixels = (pixels - grey[..., None]) * factor + grey[..., None]
    pixels = np.clip(pixels, 0, 255)
    if is_rgb and config.hue:
        hsv = cv2.cvtColor(pixels.astype(np.uint8), cv2.COLOR_RGB2HSV_FULL)
        shift = int(round(rng.uniform(-config.hue, config.hue) * 256))
        hsv[..., 0] = (hsv[..., 0].astype(np.int16) + shift).astype(np.uint8)  # wraps around the wheel
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL)
    return pixels.round().astype(np.uint8)


def augment(image: np.ndarray, mask: np.ndarray, config: AugmentConfig, rng: np.random.Generator,
            ignore_index: int, fill: float | tuple = 0) -> tuple[np.ndarray, np.ndarray]:
    """Geometry, then elastic deformation, then colour: uint8 H×W×C image and H×W mask in,
    the same kinds out (at ``config.crop`` size when given)."""
    image, mask = random_geometry(image, mask, config, rng, ignore_index, fill)
    if config.elastic and rng.random() < config.elastic:
        image, mask = elastic_deform(image, mask, rng, ignore_index, config.elastic_sigma, config.elastic_grid)
    image = colour_jitter(image, config, rng)
    return image, mask
