"""Blending overlapping score tiles into one score map.

Each tile's scores are multiplied by a weight window and summed; the sum of the windows is
kept alongside and divided out at the end, so every pixel gets the weighted mean of the tiles
that cover it. A constant field therefore comes back exactly, whatever the weights.

Weight windows (:func:`blend_weights`):

- ``mean`` — all ones: the plain average of the overlapping tiles.
- ``linear`` — a separable tent: 1 in the middle, falling linearly towards each edge.
- ``gaussian`` — as MONAI's sliding-window inference (``compute_importance_map``): a separable
  Gaussian centred on the tile with σ = ``sigma_scale`` × tile size per axis.

All windows are normalised to a maximum of 1 and kept positive, so a pixel covered by one
tile only (an image corner) still gets that tile's score. The clamp is applied to each axis's
profile (at :data:`MIN_WEIGHT`, so the window's minimum is ``MIN_WEIGHT**2``), not to the 2-D
product as MONAI does: clamping the product flattens the window along its whole outer rim,
which turns Gaussian blending into a plain mean — with visible steps — along the image
border, where only the rims of tiles reach. Inside ``MIN_WEIGHT`` of the peak the two agree.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from segtools.errors import InputError, UsageError
from segtools.tiling.grid import Tile

BLEND_MODES = ("mean", "linear", "gaussian")
MIN_WEIGHT = 1e-3
_ALIASES = {"constant": "mean", "average": "mean", "avg": "mean", "none": "mean"}


def _check_mode(mode: str) -> str:
    mode = _ALIASES.get(str(mode).lower(), str(mode).lower())
    if mode not in BLEND_MODES:
        raise UsageError(f"unknown blend mode {mode!r}: choose one of {', '.join(BLEND_MODES)}")
    return mode


def _axis_profile(length: int, mode: str, sigma_scale: float) -> np.ndarray:
    """1-D weights over ``length`` pixel centres, float64, peak 1 (before clamping)."""
    offsets = np.arange(length, dtype=np.float64) - (length - 1) / 2.0  # distance from the centre
    if mode == "mean":
        return np.ones(length)
    if mode == "linear":
        half = length / 2.0
        return np.clip((half - np.abs(offsets)) / half, 0.0, 1.0)
    sigma = sigma_scale * length
    return np.exp(-0.5 * (offsets / sigma) ** 2)


@lru_cache(maxsize=16)
def _cached_weights(h: int, w: int, mode: str, sigma_scale: float) -> np.ndarray:
    rows, cols = (np.maximum(p / p.max(), MIN_WEIGHT) for p in
                  (_axis_profile(h, mode, sigma_scale), _axis_profile(w, mode, sigma_scale)))
    window = np.outer(rows, cols).astype(np.float32)
    window.setflags(write=False)
    return window


def blend_weights(h: int, w: int, mode: str = "gaussian", sigma_scale: float = 0.125) -> np.ndarray:
    """The weight window of an ``h``×``w`` tile.

    Parameters
    ----------
    h, w : tile size in pixels.
    mode : ``"mean"`` (ones), ``"linear"`` (tent) or ``"gaussian"``.
    sigma_scale : Gaussian σ as a fraction of the tile size per axis (MONAI's default 0.125).

    Returns
    -------
    np.ndarray
        float32 (h, w), separable, maximum 1, minimum ≥ ``MIN_WEIGHT**2`` (1e-6). Read-only (cached).

    Examples
    --------
    >>> weights = blend_weights(5, 5, "gaussian")
    >>> float(weights.max()), float(weights[2, 2]), weights[0, 0] < weights[0, 2] < 1
    (1.0, 1.0, np.True_)
    """
    if h < 1 or w < 1:
        raise UsageError(f"blend window needs a positive size, got {h}x{w}")
    if not sigma_scale > 0:
        raise UsageError(f"sigma_scale={sigma_scale}: must be > 0")
    return _cached_weights(int(h), int(w), _check_mode(mode), float(sigma_scale))


def _weigh(plane: np.ndarray, window: np.ndarray, out: np.ndarray) -> None:
    """``out = plane * window`` in float32. OpenCV converts float16 with SIMD (about 4× numpy's
    float16 cast); numpy handles every other dtype."""
    if plane.dtype in (np.float16, np.float32):
        import cv2

        if cv2.multiply(plane, window, dst=out, dtype=cv2.CV_32F) is out:
            return
    np.multiply(plane, window, out=out, dtype=np.float32, casting="unsafe")


class ScoreAccumulator:
    """Weighted mean of overlapping score tiles, C×H×W.

    Parameters
    ----------
    channels : number of classes C.
    height, width : output size in pixels.
    mode : blend window, see :func:`blend_weights`.
    dtype : accumulator dtype (float32 default; float64 for exactness on very long sums).
    out : optional zero-filled C×H×W array (e.g. a fresh ``np.lib.format.open_memmap``) to
        accumulate into, so a huge result never has to fit in memory. It holds the result
        after :meth:`result`.
    sigma_scale : Gaussian σ as a fraction of the tile size.

    Examples
    --------
    >>> from segtools.tiling.grid import tile_grid
    >>> field = np.full((2, 7, 9), 0.25, np.float32)
    >>> acc = ScoreAccumulator(2, 7, 9, mode="gaussian")
    >>> for tile in tile_grid(7, 9, 4, overlap=2):
    ...     acc.add(tile, field[:, tile.y:tile.y1, tile.x:tile.x1])
    >>> bool(np.allclose(acc.result(), 0.25))
    True
    """

    def __init__(self, channels: int, height: int, width: int, mode: str = "gaussian",
                 dtype: np.dtype | type = np.float32, out: np.ndarray | None = None,
                 sigma_scale: float = 0.125) -> None:
        if channels < 1 or height < 1 or width < 1:
            raise UsageError(f"score accumulator needs positive sizes, got {channels}x{height}x{width}")
        self.channels, self.height, self.width = int(channels), int(height), int(width)
        self.mode = _check_mode(mode)
        self.sigma_scale = float(sigma_scale)
        if out is None:
            out = np.zeros((self.channels, self.height, self.width), dtype=dtype)
        elif out.shape != (self.channels, self.height, self.width):
            raise UsageError(f"output array is {out.shape}, expected {(self.channels, self.height, self.width)}")
        self.sums = out
        self.weight_sum = np.zeros((self.height, self.width), np.float32)
        self._finished = False
        self._scratch: np.ndarray | None = None

    def add(self, tile: Tile, scores: np.ndarray) -> None:
        """Add one tile's scores (C×h×w, or h×w when C = 1), weighted by the blend window.

        ``scores`` covers the whole tile; any part outside the canvas (a padded grid, or a
        canvas that is one band of a larger image, with the tile shifted by the band's top)
        is dropped. The window is that of the full tile, so clipped tiles stay centred.
        """
        if self._finished:
            raise UsageError("ScoreAccumulator.add after result(): make a new accumulator")
        if scores.ndim == 2 and self.channels == 1:
            scores = scores[None]
        if scores.ndim != 3 or scores.shape[0] != self.channels or scores.shape[1:] != (tile.h, tile.w):
            raise InputError(f"score tile at y={tile.y} x={tile.x} has shape {scores.shape}, "
                             f"expected {(self.channels, tile.h, tile.w)}")
        top, left = max(0, tile.y), max(0, tile.x)
        bottom, right = min(self.height, tile.y1), min(self.width, tile.x1)
        if bottom <= top or right <= left:
            return  # entirely outside this canvas
        inner = (slice(top - tile.y, bottom - tile.y), slice(left - tile.x, right - tile.x))
        window = blend_weights(tile.h, tile.w, self.mode, self.sigma_scale)[inner]
        # one channel at a time through a reused scratch plane: it stays in cache, and no
        # fresh temporaries means no page faults (a large malloc is a fresh mmap each time)
        scratch = self._scratch_plane(window.shape)
        for channel in range(self.channels):
            _weigh(scores[channel][inner], window, scratch)
            target = self.sums[channel, top:bottom, left:right]
            np.add(target, scratch, out=target, casting="unsafe")
        self.weight_sum[top:bottom, left:right] += window

    def _scratch_plane(self, shape: tuple[int, int]) -> np.ndarray:
        if self._scratch is None or self._scratch.shape != shape:
            self._scratch = np.empty(shape, np.float32)
        return self._scratch

    @property
    def coverage(self) -> np.ndarray:
        """Boolean H×W: pixels that at least one tile covered."""
        return self.weight_sum > 0

    def result(self, band_rows: int = 256) -> np.ndarray:
        """Divide by the summed weights (in place, ``band_rows`` rows at a time) and return C×H×W.

        Pixels no tile covered are 0.
        """
        if not self._finished:
            for top in range(0, self.height, band_rows):
                rows = slice(top, min(top + band_rows, self.height))
                weight = self.weight_sum[rows]
                inverse = np.divide(1.0, weight, out=np.zeros_like(weight), where=weight > 0)
                band = self.sums[:, rows]
                np.multiply(band, inverse, out=band, casting="unsafe")
            self._finished = True
        return self.sums
