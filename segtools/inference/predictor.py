"""The predictor: image arrays in, class probabilities out, at the original size.

:class:`Predictor` wraps any module whose ``forward`` maps N×3×H×W normalised float input to
N×C×H×W logits (a tensor, a torchvision-style ``{"out": ...}`` dict, or a tuple whose first
item is the logits — TorchScript exports included). It

* converts grey, RGB, RGBA, 8- and 16-bit images to 8-bit RGB (:func:`segtools.io.images.to_rgb8`,
  as training reads its images), then to normalised float (a
  :class:`~segtools.models.preprocessing.Preprocessing`: pixels × ``scale``, then
  ``(x − mean) / std``);
* optionally resizes (``resize_short`` pixels for the shorter side, or ``resize_factor``) and
  brings the logits back to the original size (bilinear);
* runs under :func:`torch.inference_mode`, channels-last, on ``cpu``/``cuda``/``mps``, with
  optional autocast (``amp``: fp16 on CUDA, bf16 on CPU), whole-image, or in tiles
  (:mod:`~segtools.inference.sliding`), with optional TTA (:mod:`~segtools.inference.tta`);
* batches same-size images (:meth:`Predictor.predict_many`);
* returns softmax probabilities (sigmoid when the model has one output channel).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np

from segtools.errors import InputError, UsageError, require
from segtools.inference.device import cpu_amp_fallback, resolve_device
from segtools.inference.tta import TTA, tta_probabilities
from segtools.backends.runner import rgb8  # the model input check all runners share
from segtools.models.preprocessing import IMAGENET, Preprocessing

torch = require("torch", "models")
F = torch.nn.functional

BLENDS = ("gaussian", "linear", "mean")


#: Tile overlap when none is given: a quarter of the tile.
DEFAULT_OVERLAP = 0.25


@dataclass(frozen=True)
class Tiling:
    """Sliding-window settings: tile size (pixels, one int or (height, width)), overlap in
    pixels (or a fraction of the tile; default a quarter, as MONAI's sliding-window inference:
    without overlap the tile borders show as seams), blend window (``gaussian``, ``linear`` or
    ``mean``)."""

    size: int | tuple[int, int]
    overlap: int | float = DEFAULT_OVERLAP
    blend: str = "gaussian"

    def __post_init__(self) -> None:
        if self.blend not in BLENDS:
            raise UsageError(f"blend {self.blend!r}: choose {', '.join(BLENDS[:-1])} or {BLENDS[-1]}")


class Predictor:
    """Run a segmentation model on images given as numpy arrays.

    Parameters
    ----------
    model : the network (put in eval mode and moved to ``device`` here).
    preprocessing : a :class:`~segtools.models.preprocessing.Preprocessing` or its dict;
        ``None`` → :data:`~segtools.models.preprocessing.IMAGENET` (the torchvision convention).
    device : ``auto``, ``cpu``, ``cuda[:N]`` or ``mps``.
    amp : autocast: ``False``, ``True`` (fp16 on CUDA/MPS, bf16 on CPU), ``"fp16"`` or ``"bf16"``.
    batch : images (or tiles) per forward pass.
    tiling : run in overlapping tiles instead of on the whole image.
    tta : test-time augmentation (flips, scales).
    channels_last : use the channels-last memory format (faster convolutions on most back-ends).
    """

    def __init__(self, model: "torch.nn.Module", preprocessing: Preprocessing | Mapping | None = None, *,
                 device: str = "auto", amp: bool | str = False, batch: int = 4, tiling: Tiling | None = None, tta: TTA | None = None,
                 channels_last: bool = True) -> None:
        if batch < 1:
            raise UsageError(f"batch must be at least 1, not {batch}")
        self.device = resolve_device(device)
        self.preprocessing = Preprocessing.of(preprocessing, IMAGENET)
        self.batch, self.tiling, self.tta = int(batch), tiling, tta
        self.amp_dtype = _amp_dtype(amp, self.device)
        self.channels_last = channels_last and self.device.type != "mps"
        self.model = model.eval().to(self.device)
        if self.channels_last and not isinstance(model, torch.jit.ScriptModule):
            self.model = self.model.to(memory_format=torch.channels_last)
        self._mean = torch.tensor(self.preprocessing.mean, dtype=torch.float32).view(1, 3, 1, 1).to(self.device)
        self._std = torch.tensor(self.preprocessing.std, dtype=torch.float32).view(1, 3, 1, 1).to(self.device)
        self._scale = self.preprocessing.scale

    # ------------------------------------------------------------------ public API

    def predict_scores(self, image: np.ndarray) -> np.ndarray:
        """Class probabilities C×H×W float32 for one H×W[×C] image (8/16-bit or float in [0, 1])."""
        return self.predict_batch([image])[0]

    def predict_labels(self, image: np.ndarray) -> np.ndarray:
        """Label mask H×W (uint8 when it fits, else uint16) for one image."""
        return next(self.predict_many([image], labels=True))

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Probabilities for images of any sizes; same-size neighbours share forward passes."""
        return list(self.predict_many(images))

    def predict_many(self, images: Iterable[np.ndarray], labels: bool = False) -> Iterator[np.ndarray]:
        """Yield C×H×W probabilities (or, with ``labels``, H×W label masks) per image, in order,
        batching consecutive same-size images.

        Labels skip the softmax when there is no TTA (the argmax of the logits is the argmax
        of the probabilities), which saves a full pass over C×H×W floats per image.
        """
        pending: list[np.ndarray] = []
        for image in images:
            image = rgb8(image)
            if pending and (image.shape != pending[0].shape or len(pending) == self.batch):
                yield from self._run(pending, labels)
                pending = []
            pending.append(image)
        if pending:
            yield from self._run(pending, labels)

    # ------------------------------------------------------------------ internals

    def to_tensor(self, images: Sequence[np.ndarray]) -> "torch.Tensor":
        """Stack same-size H×W×3 arrays into a normalised N×3×H×W float32 tensor on the device."""
        stacked = np.stack(images)
        scale = self._scale
        # N×H×W×3 memory viewed as N×3×H×W is already channels-last; normalise in place
        x = torch.from_numpy(stacked).to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        x = x.mul_(scale / self._std).sub_(self._mean / self._std)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x.contiguous()

    def _run(self, images: list[np.ndarray], labels: bool = False) -> list[np.ndarray]:
        height, width = images[0].shape[:2]
        with torch.inference_mode():
            x = self.to_tensor(images)
            size = self.preprocessing.resized(height, width)
            if size != (height, width):
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
            if self.tta is not None:
                probs = tta_probabilities(self._logits, x, self.tta, _activate)
                if probs.shape[-2:] != (height, width):
                    probs = F.interpolate(probs, size=(height, width), mode="bilinear", align_corners=False)
            else:
                logits = self._logits(x).float()
                if logits.shape[-2:] != (height, width):
                    logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
                if labels:
                    return list(_argmax_labels(logits).cpu().numpy())
                probs = _activate(logits)
            if labels:
                return list(_argmax_labels(probs, probabilities=True).cpu().numpy())
            out = probs.float().cpu().numpy()
        return list(out)  # C×H×W views; channels-last outputs keep their (H, W, C) memory order

    def _logits(self, x: "torch.Tensor") -> "torch.Tensor":
        if self.tiling is not None:
            from segtools.inference.sliding import sliding_window

            return sliding_window(self._forward, x, self.tiling.size, self.tiling.overlap,
                                  self.tiling.blend, batch=self.batch)
        return self._forward(x)

    def _forward(self, x: "torch.Tensor") -> "torch.Tensor":
        if self.amp_dtype is not None:
            with torch.autocast(self.device.type, dtype=self.amp_dtype):
                out = self.model(x)
        else:
            out = self.model(x)
        out = _logits_of(out)
        if out.ndim != 4 or out.shape[0] != x.shape[0]:
            raise InputError(f"the model returned shape {tuple(out.shape)}; expected N×C×H×W logits")
        if out.shape[-2:] != x.shape[-2:]:  # e.g. a foreign TorchScript model at a lower stride
            out = F.interpolate(out.float(), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return out


def _logits_of(out) -> "torch.Tensor":
    if isinstance(out, Mapping):
        if "out" in out:
            return out["out"]
        out = next(iter(out.values()))
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise InputError(f"the model returned a {type(out).__name__}; expected a logits tensor")
    return out


def _activate(logits: "torch.Tensor") -> "torch.Tensor":
    """Sigmoid for one channel, else softmax over channels — computed along the innermost
    axis when the logits are channels-last (3× faster on CPU than a strided softmax)."""
    if logits.shape[1] == 1:
        return torch.sigmoid(logits)
    if logits.is_contiguous(memory_format=torch.channels_last) and not logits.is_contiguous():
        return torch.softmax(logits.permute(0, 2, 3, 1), dim=-1).permute(0, 3, 1, 2)
    return torch.softmax(logits, dim=1)


def _argmax_labels(scores: "torch.Tensor", probabilities: bool = False) -> "torch.Tensor":
    """N×H×W labels from N×C×H×W logits (or probabilities): argmax, or a positive logit
    (p > 0.5) for one channel; uint8 up to 256 classes."""
    if scores.shape[1] == 1:
        return (scores[:, 0] > (0.5 if probabilities else 0.0)).to(torch.uint8)
    if scores.shape[1] <= 256 and scores.is_contiguous():
        return _running_argmax(scores)
    labels = scores.argmax(dim=1)
    return labels.to(torch.uint8 if scores.shape[1] <= 256 else torch.int32)


def _running_argmax(scores: "torch.Tensor") -> "torch.Tensor":
    """argmax over the channels of an N×C×H×W (NCHW-contiguous) tensor, as uint8.

    torch's argmax reduces across the strided channel axis slowly on CPU (~3.5× slower than
    this); here each channel plane is compared whole against the running maximum, so every
    pass is a contiguous, vectorised sweep. Ties go to the lower class, as with argmax.
    """
    best = scores[:, 0].clone()
    labels = torch.zeros(best.shape, dtype=torch.uint8, device=scores.device)
    for channel in range(1, scores.shape[1]):
        plane = scores[:, channel]
        labels.masked_fill_(plane > best, channel)
        torch.maximum(best, plane, out=best)
    return labels


def _amp_dtype(amp: bool | str, device: "torch.device"):
    """The autocast dtype for ``amp`` on ``device``; ``None`` (fp32) also when the device is a
    CPU without native arithmetic in that half type (a warning says so)."""
    dtype = _requested_amp_dtype(amp, device)
    if dtype is not None and device.type == "cpu":
        reason = cpu_amp_fallback("bf16" if dtype == torch.bfloat16 else "fp16")
        if reason:
            logging.getLogger("segtools").warning(reason)
            return None
    return dtype


def _requested_amp_dtype(amp: bool | str, device: "torch.device"):
    if amp is False or amp is None or str(amp).lower() in ("", "0", "false", "no", "off", "fp32"):
        return None
    name = str(amp).lower()
    if name in ("fp16", "float16", "half"):
        return torch.float16
    if name in ("bf16", "bfloat16"):
        return torch.bfloat16
    if amp is True or name in ("1", "true", "yes", "on", "auto"):
        return torch.bfloat16 if device.type == "cpu" else torch.float16
    raise UsageError(f"amp {amp!r}: use fp16 or bf16 (or True for the device's default)")
