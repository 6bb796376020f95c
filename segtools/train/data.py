"""Training data: image/mask pairs, an up-front check, the patch sampler and the dataset.

Pairs come from the spine's batch inputs (:func:`segtools.io.batch.expand_inputs` and
:func:`~segtools.io.batch.pair_items`), so folders, globs and ``@list.txt`` work as in every
other command. :func:`scan_masks` reads every mask once before training starts: a value
outside the classes or an image/mask size mismatch is an error naming the file, and the
per-class pixel counts it returns feed ``--class-weights``.

A training sample is a pure function of (pair, seed, epoch): the dataset seeds one
``numpy.random.Generator`` per sample from those three numbers, so data order and
augmentation are the same with 0 or 8 loader workers and after ``--resume``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from segtools.errors import InputError, UsageError
from segtools.models.preprocessing import Preprocessing
from segtools.train.augment import AugmentConfig, augment


@dataclass(frozen=True)
class Sample:
    """One training pair: paths to the image and its label mask, and a name for messages."""

    image: str
    mask: str
    name: str


def find_pairs(images: Sequence[str], masks: Sequence[str], *, allow_missing: bool = False) -> list[Sample]:
    """Pair image and mask inputs (folders, files, globs, ``@list.txt``) by relative name.

    Raises
    ------
    InputError
        No inputs, or an image without a mask (unless ``allow_missing``).
    """
    from segtools.formats.cityscapes import semantic_frame_files
    from segtools.io.batch import expand_inputs, pair_items, without_labels

    if not images or not masks:
        raise UsageError("give training images and their masks (folders, files, globs or @lists)")
    image_items = without_labels(expand_inputs(images, allow_stdin=False))  # photos and masks in one folder
    mask_items = semantic_frame_files(expand_inputs(masks, allow_stdin=False))  # gtFine: the labelTrainIds
    pairing = pair_items(image_items, mask_items, allow_missing=True, names=("image", "mask"))
    if not allow_missing and (pairing.only_left or pairing.only_right):  # train has no --allow-missing
        parts = [f"{len(items)} {what} without {other}: {_first(items)}" for items, what, other in
                 ((pairing.only_left, "image(s)", "a mask"), (pairing.only_right, "mask(s)", "an image")) if items]
        raise InputError("; ".join(parts) + " (every training image needs a mask of the same name: "
                         "add or remove files, or give @lists of the pairs)")
    if not pairing.pairs:
        raise InputError("the training set is empty: no image pairs with a mask")
    return [Sample(image.path, mask.path, image.rel) for image, mask in pairing.pairs]


def _first(items, count: int = 3) -> str:
    return ", ".join(item.path for item in items[:count]) + (", ..." if len(items) > count else "")


def split_validation(samples: Sequence[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Hold out ``fraction`` of the pairs (at least one, chosen by ``seed``) for validation."""
    if not 0.0 <= fraction < 1.0:
        raise UsageError(f"val_split {fraction}: give a fraction in [0, 1)")
    if fraction == 0.0:
        return list(samples), []
    if len(samples) < 2:
        raise InputError("cannot split one image pair into training and validation; "
                         "give validation images and masks, or a validation split of 0")
    count = min(len(samples) - 1, max(1, round(len(samples) * fraction)))
    order = np.random.default_rng([seed, 0x5EED]).permutation(len(samples))
    held = set(order[:count].tolist())
    train = [s for i, s in enumerate(samples) if i not in held]
    val = [s for i, s in enumerate(samples) if i in held]
    return train, val


@dataclass(frozen=True)
class _ScanJob:
    sample: Sample
    num_classes: int
    ignore_index: int | None
    colours: object


def _scan_one(job: _ScanJob) -> tuple[np.ndarray, int]:
    from segtools.io.masks import read_label_mask
    from segtools.io.sniff import sniff
    from segtools.labels import class_counts

    labels = read_label_mask(job.sample.mask, job.colours).labels
    with open(job.sample.image, "rb") as handle:
        head = sniff(handle.read(512))
    if head.width is not None and (head.height, head.width) != labels.shape:
        raise InputError(f"{job.sample.image}: image is {head.width}×{head.height} but its mask "
                         f"{job.sample.mask} is {labels.shape[1]}×{labels.shape[0]} (W×H); they must match")
    counts = class_counts(labels, job.num_classes, job.ignore_index, job.sample.mask)
    return counts, int(labels.size - counts.sum())


def scan_masks(samples: Sequence[Sample], num_classes: int, ignore_index: int | None, *, colours=None,
               jobs: int = 1, on_done=None):
    """Check every pair (mask values, image/mask size) and count pixels per class.

    Returns
    -------
    segtools.weights.classes.PixelCounts
        ``pixels`` per class, ``present_pixels`` (valid pixels of the images holding each
        class, for median-frequency weights) and the number of ``images``.
    """
    from segtools.io.parallel import pmap
    from segtools.weights.classes import PixelCounts

    if not samples:
        raise InputError("the training set is empty")
    pixels = np.zeros(num_classes, np.int64)
    present = np.zeros(num_classes, np.int64)
    jobs_list = [_ScanJob(s, num_classes, ignore_index, colours) for s in samples]
    ignored = 0
    for counts, ignored_here in pmap(_scan_one, jobs_list, jobs, processes=False, on_done=on_done):
        pixels += counts
        present += np.where(counts > 0, counts.sum(), 0)
        ignored += ignored_here
    return PixelCounts(pixels, present, len(samples), ignored)


def sample_patch(mask: np.ndarray, size: tuple[int, int], rng: np.random.Generator, *, min_foreground: float = 0.0,
                 background: int = 0, ignore_index: int | None = 255, candidates: int = 64) -> tuple[int, int]:
    """Top-left corner (y, x) of a ``size`` patch whose foreground fraction is at least
    ``min_foreground``.

    Foreground is every pixel that is neither ``background`` nor ignored. ``candidates``
    random corners are scored at once from an integral image; a random one of those that
    pass is returned, else the best. Along an axis where the mask is smaller than the patch
    the corner is 0 (the caller pads).
    """
    height, width = mask.shape
    patch_h, patch_w = size
    span_y, span_x = max(0, height - patch_h), max(0, width - patch_w)
    ys = rng.integers(0, span_y + 1, candidates)
    xs = rng.integers(0, span_x + 1, candidates)
    if min_foreground <= 0:
        return int(ys[0]), int(xs[0])
    foreground = mask != background
    if ignore_index is not None:
        foreground &= mask != ignore_index
    integral = np.zeros((height + 1, width + 1), np.int64)
    integral[1:, 1:] = foreground.cumsum(0).cumsum(1)
    y1, x1 = np.minimum(ys + patch_h, height), np.minimum(xs + patch_w, width)
    inside = integral[y1, x1] - integral[ys, x1] - integral[y1, xs] + integral[ys, xs]
    fraction = inside / float(patch_h * patch_w)
    passing = np.flatnonzero(fraction >= min_foreground)
    best = int(passing[0]) if passing.size else int(np.argmax(fraction))
    return int(ys[best]), int(xs[best])


def crop_pad(image: np.ndarray, mask: np.ndarray, corner: tuple[int, int], size: tuple[int, int],
             ignore_index: int, fill: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``size`` at ``corner`` (y, x); pad past the border with ``fill`` / ``ignore_index``."""
    y, x = corner
    patch_h, patch_w = size
    image_part = image[y:y + patch_h, x:x + patch_w]
    mask_part = mask[y:y + patch_h, x:x + patch_w]
    if mask_part.shape == (patch_h, patch_w):
        return image_part, mask_part
    image_out = np.empty((patch_h, patch_w, image.shape[2]), image.dtype)
    image_out[...] = np.asarray(fill, dtype=np.float64).round().astype(image.dtype)
    mask_out = np.full((patch_h, patch_w), ignore_index, mask.dtype)
    h, w = mask_part.shape
    image_out[:h, :w] = image_part
    mask_out[:h, :w] = mask_part
    return image_out, mask_out


class SegmentationDataset:
    """Map-style dataset (works with ``torch.utils.data.DataLoader``).

    Training datasets take keys ``(index, epoch, round)`` and return an augmented, normalised
    ``(image 3×h×w float32, mask h×w int64)`` pair; validation datasets (``augment=None``,
    no ``patch``) take plain indices and return the whole picture.
    """

    def __init__(self, samples: Sequence[Sample], preprocessing: Preprocessing, *, ignore_index: int,
                 augment_config: AugmentConfig | None = None, seed: int = 0, patch: tuple[int, int] | None = None,
                 min_foreground: float = 0.0, background: int = 0, colours=None) -> None:
        self.samples = list(samples)
        self.preprocessing = preprocessing
        self.ignore_index = ignore_index
        self.augment_config = augment_config
        self.seed = seed
        self.patch = patch
        self.min_foreground = min_foreground
        self.background = background
        self.colours = colours

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw uint8 RGB image and integer mask of pair ``index``, sizes checked."""
        from segtools.io.images import read_image, to_rgb8
        from segtools.io.masks import read_label_mask

        sample = self.samples[index]
        image = to_rgb8(read_image(sample.image))
        mask = read_label_mask(sample.mask, self.colours).labels
        if image.shape[:2] != mask.shape:
            raise InputError(f"{sample.image}: image is {image.shape[1]}×{image.shape[0]} but its mask "
                             f"{sample.mask} is {mask.shape[1]}×{mask.shape[0]} (W×H); they must match")
        return image, mask

    def __getitem__(self, key):
        import torch

        index, epoch, round_ = key if isinstance(key, tuple) else (int(key), None, 0)
        image, mask = self.load(index)
        if epoch is not None:
            rng = np.random.default_rng([self.seed, epoch, index, round_])
            if self.patch is not None:
                corner = sample_patch(mask, self.patch, rng, min_foreground=self.min_foreground,
                                      background=self.background, ignore_index=self.ignore_index)
                image, mask = crop_pad(image, mask, corner, self.patch, self.ignore_index, self.preprocessing.fill)
            if self.augment_config is not None and not self.augment_config.is_identity:
                image, mask = augment(image, mask, self.augment_config, rng, self.ignore_index,
                                      self.preprocessing.fill)
        tensor = torch.from_numpy(self.preprocessing.apply(image))
        return tensor, torch.from_numpy(mask.astype(np.int64))


def collate(batch: Sequence[tuple]) -> tuple:
    """Stack ``(image, mask)`` pairs into a batch; pictures of different sizes are an
    :class:`InputError` that says how to fix it (instead of torch's stack error)."""
    import torch

    shapes = {tuple(image.shape) for image, _ in batch}
    if len(shapes) > 1:
        sizes = ", ".join(f"{s[2]}×{s[1]}" for s in sorted(shapes)[:3])
        raise InputError(f"training images differ in size ({sizes}) and cannot be batched; "
                         "give a crop size (crop HxW) or a patch size (patch), or a batch of 1")
    return torch.stack([image for image, _ in batch]), torch.stack([mask for _, mask in batch])


class EpochSampler:
    """Yields ``(index, epoch)`` keys in a seeded order that depends only on (seed, epoch).

    ``set_epoch`` picks the epoch; ``limit`` keeps only the first keys (``--steps-per-epoch``).
    It lives in the main process, so it works with persistent loader workers.
    """

    def __init__(self, size: int, seed: int, limit: int | None = None) -> None:
        self.size, self.seed, self.limit, self.epoch = size, seed, limit, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def keys(self) -> list[tuple[int, int, int]]:
        """This epoch's ``(index, epoch, round)`` keys; more than ``size`` keys repeat the
        set in fresh orders (``round`` 1, 2, …), each with its own augmentation draws."""
        wanted = self.size if self.limit is None else self.limit
        keys: list[tuple[int, int, int]] = []
        round_ = 0
        while len(keys) < wanted:
            order = np.random.default_rng([self.seed, self.epoch, round_]).permutation(self.size)
            keys.extend((int(i), self.epoch, round_) for i in order[: wanted - len(keys)])
            round_ += 1
        return keys

    def __iter__(self):
        return iter(self.keys())

    def __len__(self) -> int:
        return self.size if self.limit is None else self.limit
