"""Benchmark for `segtools train`: what one CamVid epoch costs on this machine.

Measures, side by side in one run:

* a training step (forward, loss, backward, AdamW) of ``lraspp-mnv3`` at 360×480, batch 8,
  and the seconds per CamVid epoch that implies (367 train images → 45 steps) plus one
  validation pass (101 images at 480×360);
* the data pipeline for one batch (decode, flip + scale + crop with one ``cv2.warpAffine``,
  colour jitter, normalise) against the same geometry done with ``scipy.ndimage``
  (``affine_transform``, order 1 image / order 0 mask), the common pure-scipy way;
* our cross-entropy (a weighted ``F.cross_entropy``) against ``torch.nn.functional``
  directly, and soft Dice, per call on a 8×11×360×480 batch.

Usage: python bench/train.py [--steps 3] [--camvid ../shared/data/camvid]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]


CPU_SECONDS: dict[int, float] = {}


def timed(fn, repeat: int) -> float:
    """Median wall seconds of ``repeat`` calls (after one warm-up call); the median process
    CPU seconds (all threads) is kept in ``CPU_SECONDS`` under the call's id."""
    fn()
    times, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    CPU_SECONDS[id(fn)] = float(np.median(cpu))
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--camvid", default=str(ROOT.parent / "shared" / "data" / "camvid"))
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()

    from segtools.models import build_model
    from segtools.train.augment import AugmentConfig, augment
    from segtools.models.preprocessing import Preprocessing
    from segtools.train.data import SegmentationDataset, find_pairs
    from segtools.train.losses import cross_entropy, soft_dice

    torch.manual_seed(0)
    camvid = Path(args.camvid)
    samples = find_pairs([str(camvid / "train")], [str(camvid / "trainannot")])
    pre = Preprocessing((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    config = AugmentConfig(crop=(360, 480), scale=(0.75, 1.5), hflip=0.5, brightness=0.2, contrast=0.2,
                           saturation=0.2)
    dataset = SegmentationDataset(samples, pre, ignore_index=11, augment_config=config, seed=0)
    rows = []

    def our_batch():
        return [dataset[(i, 0, 0)] for i in range(args.batch)]

    raw = [dataset.load(i) for i in range(args.batch)]

    def scipy_batch():
        from scipy import ndimage

        rng = np.random.default_rng(0)
        for image, mask in raw:
            s = rng.uniform(0.75, 1.5)
            matrix = np.diag([1 / s, 1 / s])
            ndimage.affine_transform(mask, matrix, output_shape=(360, 480), order=0, cval=11)
            for c in range(3):
                ndimage.affine_transform(image[..., c], matrix, output_shape=(360, 480), order=1)

    def our_geometry_only():
        rng = np.random.default_rng(0)
        geometry = AugmentConfig(crop=(360, 480), scale=(0.75, 1.5))
        for image, mask in raw:
            augment(image, mask, geometry, rng, 11)

    rows.append(("data: batch of 8 (decode+augment+normalise), ours", timed(our_batch, 3)))
    rows.append(("data: geometry of 8, ours (cv2.warpAffine)", timed(our_geometry_only, 3)))
    rows.append(("data: geometry of 8, scipy.ndimage.affine_transform", timed(scipy_batch, 3)))

    logits = torch.randn(args.batch, 11, 360, 480)
    target = torch.randint(0, 12, (args.batch, 360, 480))
    weights = torch.rand(11) + 0.5
    rows.append(("loss: CE weighted, ours", timed(lambda: cross_entropy(logits, target, class_weights=weights,
                                                                        ignore_index=11), 5)))
    rows.append(("loss: CE weighted, torch F.cross_entropy", timed(
        lambda: F.cross_entropy(logits, target, weight=weights, ignore_index=11), 5)))
    rows.append(("loss: soft Dice, ours", timed(lambda: soft_dice(logits, target, ignore_index=11), 5)))

    model = build_model("lraspp-mnv3", 11)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = torch.stack([item[0] for item in our_batch()])
    masks = torch.stack([item[1] for item in our_batch()])

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = cross_entropy(model(batch), masks, ignore_index=11)
        loss.backward()
        optimizer.step()

    step_seconds = timed(step, args.steps)
    step_cpu = CPU_SECONDS[id(step)]
    rows.append((f"train step lraspp-mnv3 360x480 batch {args.batch} (fwd+bwd+AdamW)", step_seconds))
    model.eval()
    one = batch[:1]
    def infer():
        with torch.inference_mode():
            model(one)

    infer_seconds = timed(infer, 3)
    infer_cpu = CPU_SECONDS[id(infer)]
    rows.append(("val forward lraspp-mnv3 1x360x480", infer_seconds))

    steps_per_epoch = len(samples) // args.batch
    epoch_seconds = steps_per_epoch * (step_seconds + rows[0][1]) + 101 * infer_seconds
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {len(samples)} CamVid train images")
    print(f"{'what':<72} {'seconds':>9}")
    for name, seconds in rows:
        print(f"{name:<72} {seconds:>9.4f}")
    print(f"{'=> one CamVid epoch (' + str(steps_per_epoch) + ' steps + data, 101 val images), estimated':<72} "
          f"{epoch_seconds:>9.1f}")
    print(f"{'=> 200 epochs, hours':<72} {200 * epoch_seconds / 3600:>9.1f}")
    threads = torch.get_num_threads()
    free_epoch = steps_per_epoch * (step_cpu / threads + rows[0][1]) + 101 * infer_cpu / threads
    print(f"{'train step CPU seconds (all threads) / val forward CPU seconds':<72} {step_cpu:>9.2f} / {infer_cpu:.2f}")
    print(f"{'=> one epoch if the ' + str(threads) + ' threads had the cores to themselves (CPU s / threads)':<72} "
          f"{free_epoch:>9.1f}")
    print(f"{'=> 200 epochs at that rate, hours':<72} {200 * free_epoch / 3600:>9.1f}")
    import os

    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
