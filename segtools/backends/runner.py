"""The runner interface and the numpy predictor every semantic runner goes through.

A :class:`SemanticRunner` knows one thing: how to turn a normalised N×3×h×w float32 batch
into N×C×h'×w' class scores (``outputs == "logits"``: softmax gives probabilities;
``"scores"``: non-negative scores, normalised over classes for probabilities), at its own
output resolution (SegFormer's is a quarter of the input). :class:`RunnerPredictor` wraps it
with what :class:`segtools.inference.predictor.Predictor` does for torch modules:

* images → 8-bit RGB (:func:`segtools.io.images.to_rgb8`), then resized when the runner or the
  user asks (``resize``: a fixed HEIGHT×WIDTH; else the preprocessing's ``resize_short`` /
  ``resize_factor``) with Pillow's bilinear filter on the 8-bit pixels (antialiased when it
  shrinks — what Hugging Face image processors do);
* ``(pixel · scale − mean) / std``;
* same-size images batched (``batch`` per call, fewer when the graph's batch is fixed);
* sliding windows over :func:`segtools.tiling.grid.tile_grid` tiles blended with
  :func:`segtools.tiling.blend.blend_weights` (a graph with a fixed input size is padded up to
  its tile), and TTA flips and scales (:class:`segtools.inference.tta.TTA`) with their
  probabilities averaged;
* scores brought to the image size with one bilinear resize (half-pixel centres, as
  ``torch.nn.functional.interpolate(..., align_corners=False)``), then argmax, softmax or
  normalisation.

Only numpy, OpenCV and Pillow are used: no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Protocol, Sequence

import numpy as np

from segtools.errors import InputError, UsageError
from segtools.io.meta import ClassMeta
from segtools.models.preprocessing import Preprocessing

OUTPUT_KINDS = ("logits", "scores")
#: Tile overlap when none is given (as the torch predictor's): a quarter of the tile.
DEFAULT_OVERLAP = 0.25


class SemanticRunner(Protocol):
    """What :class:`RunnerPredictor` needs from a back-end."""

    classes: ClassMeta | None
    num_classes: int | None
    preprocessing: Preprocessing
    outputs: str                        # "logits" or "scores"
    input_size: tuple[int, int] | None  # a fixed (height, width) the model needs, else None
    resize: tuple[int, int] | None      # the size images are resized to by default, else None
    max_batch: int | None               # a fixed batch size, else None

    def forward(self, batch: np.ndarray) -> np.ndarray:
        """N×3×h×w float32 (normalised) → N×C×h'×w' float32 scores."""


@dataclass(frozen=True)
class Window:
    """Sliding-window settings, as :class:`segtools.inference.predictor.Tiling` (which needs torch)."""

    size: tuple[int, int]
    overlap: int | float = DEFAULT_OVERLAP
    blend: str = "gaussian"


class RunnerPredictor:
    """Predict with any :class:`SemanticRunner`; the same public methods as the torch predictor
    (:meth:`predict_many` is what :func:`segtools.inference.files.predict_files` calls).

    Parameters
    ----------
    runner : the back-end.
    batch : images (or tiles) per forward call.
    tiling : a :class:`Window` (or the torch predictor's ``Tiling``), or ``None``.
    tta : a :class:`segtools.inference.tta.TTA`, or ``None``.
    resize : ``(height, width)`` every image is resized to before the model; ``None`` → the
        runner's own (a fixed-size graph's input, a processor's size), ``False`` → none.
    """

    def __init__(self, runner: SemanticRunner, *, batch: int = 4, tiling=None, tta=None,
                 resize: tuple[int, int] | None | bool = None) -> None:
        if batch < 1:
            raise UsageError(f"batch must be at least 1, not {batch}")
        if runner.outputs not in OUTPUT_KINDS:
            raise ValueError(f"runner outputs {runner.outputs!r}: expected one of {OUTPUT_KINDS}")
        self.runner, self.tiling, self.tta = runner, tiling, tta
        self.batch = int(batch) if not runner.max_batch else min(int(batch), runner.max_batch)
        if resize is None:
            resize = runner.resize if tiling is None else None
        self.resize = resize or None
        if tiling is not None and runner.input_size is not None:
            size = tuple(int(v) for v in _pair(tiling.size))
            if size != tuple(runner.input_size):
                raise UsageError(f"tile={size[0]}x{size[1]}: the model takes {runner.input_size[0]}x"
                                 f"{runner.input_size[1]} inputs only; tile at that size (or resize)")
        elif runner.input_size is not None and (self.resize is None or tuple(self.resize) != tuple(runner.input_size)):
            size = "none" if self.resize is None else f"{self.resize[0]}x{self.resize[1]}"
            raise UsageError(f"resize={size}: the model takes {runner.input_size[0]}x{runner.input_size[1]} inputs "
                             "only; resize to that (the default) or tile at that size")
        prep = runner.preprocessing
        scale = np.float32(prep.scale) / np.asarray(prep.std, np.float32)
        shift = np.asarray(prep.mean, np.float32) / np.asarray(prep.std, np.float32)
        # what each 8-bit value of each channel becomes (the same float32 arithmetic as v * scale - shift)
        self._lut = np.arange(256, dtype=np.float32)[None, :] * scale[:, None] - shift[:, None]

    # ------------------------------------------------------------------ public API

    def predict_scores(self, image: np.ndarray) -> np.ndarray:
        """Class probabilities C×H×W float32 for one image."""
        return next(self.predict_many([image]))

    def predict_labels(self, image: np.ndarray) -> np.ndarray:
        """Label mask H×W (uint8 up to 256 classes) for one image."""
        return next(self.predict_many([image], labels=True))

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        return list(self.predict_many(images))

    def predict_many(self, images: Iterable[np.ndarray], labels: bool = False) -> Iterator[np.ndarray]:
        """Yield C×H×W probabilities (or H×W labels) per image, in order, batching consecutive
        same-size images."""
        pending: list[np.ndarray] = []
        for image in images:
            image = rgb8(image)
            if pending and (image.shape != pending[0].shape or len(pending) == self.batch):
                yield from self._run(pending, labels)
                pending = []
            pending.append(image)
        if pending:
            yield from self._run(pending, labels)

    def normalise(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Same-size H×W×3 uint8 images → N×3×H×W float32 model input: one table look-up per
        channel plane, written in place (a quarter of the time of cast, scale and shift)."""
        height, width = images[0].shape[:2]
        x = np.empty((len(images), 3, height, width), np.float32)
        for n, image in enumerate(images):
            for channel in range(3):
                np.take(self._lut[channel], image[:, :, channel], out=x[n, channel])
        return x

    # ------------------------------------------------------------------ internals

    def _run(self, images: list[np.ndarray], labels: bool) -> list[np.ndarray]:
        height, width = images[0].shape[:2]
        size = tuple(self.resize) if self.resize else self.runner.preprocessing.resized(height, width)
        if size != (height, width):
            resample = getattr(self.runner, "resample", None)
            images = [resize_image(image, size, resample) for image in images]
        x = self.normalise(images)
        if self.tta is not None:
            probs = self._tta(x, (height, width))
            return list(argmax(probs, probabilities=True)) if labels else list(probs)
        scores = resize_scores(self._scores(x), (height, width))
        if labels:
            return list(argmax(scores))
        return list(self._activate(scores))

    def _scores(self, x: np.ndarray) -> np.ndarray:
        """Raw runner output for a normalised batch, whole or blended over tiles."""
        if self.tiling is None:
            return self._forward(x)
        return self._sliding(x)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(x), self.batch):
            scores = np.asarray(self.runner.forward(x[start:start + self.batch]))
            if scores.ndim != 4 or scores.shape[0] != min(self.batch, len(x) - start):
                raise InputError(f"the model returned shape {scores.shape}; expected N×C×H×W scores")
            out.append(scores.astype(np.float32, copy=False))
        return out[0] if len(out) == 1 else np.concatenate(out)

    def _sliding(self, x: np.ndarray) -> np.ndarray:
        from segtools.tiling.blend import blend_weights
        from segtools.tiling.grid import tile_grid

        count, _, height, width = x.shape
        tile_h, tile_w = (int(v) for v in _pair(self.tiling.size))
        if self.runner.input_size is not None and (height < tile_h or width < tile_w):
            padded = np.zeros((count, 3, max(height, tile_h), max(width, tile_w)), np.float32)
            padded[:, :, :height, :width] = x  # zero is the mean colour after normalisation
            return self._sliding(padded)[:, :, :height, :width]
        tiles = tile_grid(height, width, (tile_h, tile_w), overlap=self.tiling.overlap)
        if len(tiles) == 1:
            return resize_scores(self._forward(x), (height, width))
        window = blend_weights(tiles[0].h, tiles[0].w, self.tiling.blend).astype(np.float32)
        weight_sum = np.zeros((height, width), np.float32)
        for t in tiles:
            weight_sum[t.y:t.y1, t.x:t.x1] += window
        jobs = [(n, t) for n in range(count) for t in tiles]
        sums = None
        for start in range(0, len(jobs), self.batch):
            group = jobs[start:start + self.batch]
            crops = np.stack([x[n, :, t.y:t.y1, t.x:t.x1] for n, t in group])
            outputs = resize_scores(self._forward(crops), (tiles[0].h, tiles[0].w)) * window
            if sums is None:
                sums = np.zeros((count, outputs.shape[1], height, width), np.float32)
            for k, (n, t) in enumerate(group):
                sums[n, :, t.y:t.y1, t.x:t.x1] += outputs[k]
        return sums / weight_sum

    def _tta(self, x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Mean probabilities over the flips and scales, at ``size``."""
        height, width = x.shape[-2:]
        total = None
        for scale in self.tta.scales:
            scaled = x if scale == 1.0 else resize_scores(
                x, (max(1, round(height * scale)), max(1, round(width * scale))))
            for flip in self.tta.flips:
                scores = _flip(self._scores(np.ascontiguousarray(_flip(scaled, flip))), flip)
                probs = self._activate(resize_scores(np.ascontiguousarray(scores), size))
                total = probs if total is None else total + probs
        return total / np.float32(self.tta.variants)

    def _activate(self, scores: np.ndarray) -> np.ndarray:
        if self.runner.outputs == "scores":
            total = scores.sum(axis=1, keepdims=True)
            return scores / np.maximum(total, np.float32(1e-12))
        return softmax(scores)


def rgb8(image: np.ndarray) -> np.ndarray:
    """H×W×3 uint8 RGB from grey, grey+alpha, RGB or RGBA, after checking the shape."""
    from segtools.io.images import to_rgb8

    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.ndim == 3 and image.shape[2] not in (1, 2, 3, 4):
        raise InputError(f"an image is H×W or H×W×C with 1-4 channels, not shape {image.shape}")
    if image.dtype.kind not in "uifb":
        raise InputError(f"cannot predict on a {image.dtype} image; give 8- or 16-bit pixels")
    return to_rgb8(image)


def resize_image(image: np.ndarray, size: tuple[int, int], resample: int | None = None) -> np.ndarray:
    """An H×W×3 uint8 image resized to ``size`` (height, width) with Pillow (bilinear by default)."""
    from PIL import Image

    resample = Image.Resampling.BILINEAR if resample is None else resample
    return np.asarray(Image.fromarray(image).resize((int(size[1]), int(size[0])), resample=resample))


def resize_scores(scores: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """N×C×h×w float32 → N×C×``size`` by bilinear interpolation with half-pixel centres."""
    import cv2

    height, width = int(size[0]), int(size[1])
    if scores.shape[-2:] == (height, width):
        return scores
    count, channels = scores.shape[:2]
    out = np.empty((count, channels, height, width), np.float32)
    for n in range(count):
        for start in range(0, channels, 512):  # OpenCV resizes up to 512 channels at once
            part = np.ascontiguousarray(scores[n, start:start + 512].transpose(1, 2, 0), dtype=np.float32)
            resized = cv2.resize(part, (width, height), interpolation=cv2.INTER_LINEAR)
            out[n, start:start + 512] = resized.reshape(height, width, -1).transpose(2, 0, 1)
    return out


def softmax(scores: np.ndarray) -> np.ndarray:
    """Softmax over axis 1 (sigmoid for one channel), float32."""
    if scores.shape[1] == 1:
        return 1.0 / (1.0 + np.exp(-scores))
    shifted = scores - scores.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


def argmax(scores: np.ndarray, probabilities: bool = False) -> np.ndarray:
    """N×H×W labels from N×C×H×W scores (uint8 up to 256 classes; ties to the lower class;
    one channel: a positive logit, or p > 0.5 for ``probabilities``); each channel plane is
    compared whole, a contiguous sweep."""
    if scores.shape[1] == 1:
        return (scores[:, 0] > (0.5 if probabilities else 0.0)).astype(np.uint8)
    if scores.shape[1] > 256:
        return scores.argmax(axis=1).astype(np.int32)
    best = scores[:, 0].copy()
    labels = np.zeros(best.shape, np.uint8)
    for channel in range(1, scores.shape[1]):
        plane = scores[:, channel]
        labels[plane > best] = channel
        np.maximum(best, plane, out=best)
    return labels


def _flip(x: np.ndarray, flip: str) -> np.ndarray:
    return x[..., ::-1] if flip == "h" else x[..., ::-1, :] if flip == "v" else x


def _pair(size) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
