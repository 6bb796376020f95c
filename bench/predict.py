"""Benchmark ``segtools.inference``: predictor overhead, sliding window vs MONAI, GPU precision.

    python bench/predict.py [--images 20] [--size 512] [--repeat 2]

1. Batch predict over N uint8 images of S² pixels with :class:`Predictor` (conversion,
   normalisation, batching, then probabilities — softmax, to numpy — or label masks, as
   ``segtools predict`` writes without ``--probs``) against the bare model forward passes on
   pre-normalised tensors of the same batches and memory layout. Target: ratio ≤ 1.10.
2. :func:`segtools.inference.sliding.sliding_window` against MONAI's
   ``sliding_window_inference`` with the same tile, overlap and Gaussian blending, same model,
   same input: time and max |difference| (target ≤ 1e-5). MONAI is optional: install it in a
   separate venv, never as a project dependency.
3. With CUDA: DeepLabV3-MobileNetV3 and U-Net throughput at 1024×2048, fp32 vs fp16 vs bf16.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from _timing import best_seconds
import torch

from segtools.inference.predictor import Predictor
from segtools.inference.sliding import sliding_window
from segtools.models import ARCHITECTURES, build_model


def best_time(fn, repeat: int) -> float:
    return best_seconds(fn, repeat)


def bench_batch(arch: str, images: list[np.ndarray], batch: int, repeat: int, channels_last: bool) -> tuple:
    torch.manual_seed(0)
    model = build_model(arch, 21 if arch != "unet" else 11).eval()
    prep = ARCHITECTURES[arch].preprocessing
    mean = torch.tensor(prep["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(prep["std"]).view(1, 3, 1, 1)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    tensors = [((torch.from_numpy(np.stack(images[i:i + batch])).permute(0, 3, 1, 2).float() / 255 - mean) / std)
               .contiguous(memory_format=layout) for i in range(0, len(images), batch)]
    model = model.to(memory_format=layout)  # the bare baseline gets the same memory layout

    def bare() -> None:
        with torch.inference_mode():
            for x in tensors:
                model(x)

    predictor = Predictor(model, prep, device="cpu", batch=batch, channels_last=channels_last)
    bare()  # warm-up (allocator, oneDNN kernels)
    predictor.predict_batch(images[:batch])
    t_bare, t_scores = interleaved_best(bare, lambda: predictor.predict_batch(images), repeat)
    _, t_labels = interleaved_best(bare, lambda: list(predictor.predict_many(images, labels=True)), repeat)
    return t_bare, t_scores, t_labels


def interleaved_best(first, second, repeat: int) -> tuple[float, float]:
    """Best-of-``repeat`` times of two callables run alternately, so that load from other
    processes hits both alike."""
    times: tuple[list, list] = ([], [])
    for _ in range(repeat):
        for fn, bucket in ((first, times[0]), (second, times[1])):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return min(times[0]), min(times[1])


def bench_sliding(repeat: int, height: int, width: int, tile: int, overlap: int) -> None:
    try:
        from monai.inferers import sliding_window_inference
    except ImportError:
        print("\nsliding window vs MONAI: skipped (monai not importable; install it in a bench venv)")
        return
    torch.manual_seed(0)
    model = build_model("unet", 11, depth=4, base_channels=16).eval()
    x = torch.randn(1, 3, height, width)
    ours = lambda: sliding_window(model, x, tile, overlap, batch=4, window=monai_window(tile))  # noqa: E731
    ours_default = lambda: sliding_window(model, x, tile, overlap, "gaussian", batch=4)  # noqa: E731
    theirs = lambda: sliding_window_inference(x, (tile, tile), 4, model, overlap=overlap / tile,  # noqa: E731
                                              mode="gaussian", sigma_scale=0.125)
    with torch.inference_mode():
        a, b = ours(), theirs()
        diff = float((a - b).abs().max())
        rim = float((ours_default() - b).abs().max())
        t_ours, t_theirs = interleaved_best(ours, theirs, repeat)
    print(f"\nsliding window, U-Net(base 16) 11 classes, {height}×{width}, tile {tile}, overlap {overlap}, "
          "gaussian σ=0.125·tile, 4 tiles/batch")
    print(f"{'implementation':<40}{'seconds':>10}")
    print(f"{'segtools.inference.sliding_window':<40}{t_ours:>10.3f}")
    print(f"{'monai.inferers.sliding_window_inference':<40}{t_theirs:>10.3f}")
    print(f"speed ratio monai/segtools = {t_theirs / t_ours:.3f}   max |diff| = {diff:.2e} (same window)")
    print(f"with segtools' default window (clamped per axis, not after the product): max |diff| = {rim:.2e}, "
          "(the windows differ only where they are clamped, at tile rims)")


def monai_window(size: int, sigma_scale: float = 0.125) -> np.ndarray:
    """MONAI's Gaussian importance map: the 2-D product of unnormalised Gaussians, then
    clamped below at max(min, 1e-3)."""
    offsets = np.arange(size, dtype=np.float32) - (size - 1) / 2.0
    profile = np.exp(offsets ** 2 / (-2 * (sigma_scale * size) ** 2)).astype(np.float32)
    window = np.outer(profile, profile)
    return np.maximum(window, max(float(window.min()), 1e-3))


def bench_gpu(repeat: int) -> None:
    if not torch.cuda.is_available():
        print("\nGPU precision: skipped (no CUDA device)")
        return
    x = np.random.default_rng(0).integers(0, 256, (1024, 2048, 3), dtype=np.uint8)
    print("\nGPU throughput at 1024×2048 (images/s)")
    for arch, classes in (("deeplabv3-mnv3", 21), ("unet", 11)):
        model = build_model(arch, classes).eval()
        row = [arch]
        for amp in (False, "fp16", "bf16"):
            predictor = Predictor(model, ARCHITECTURES[arch].preprocessing, device="cuda", amp=amp, batch=1)
            predictor.predict_scores(x)
            torch.cuda.synchronize()
            seconds = best_time(lambda: [predictor.predict_scores(x) for _ in range(5)], repeat) / 5
            row.append(f"{'fp32' if not amp else amp}: {1 / seconds:.2f}")
        print("  ".join(row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--archs", default="deeplabv3-mnv3,lraspp-mnv3")
    parser.add_argument("--skip-batch", action="store_true", help="skip the batch-predict part")
    parser.add_argument("--skip-sliding", action="store_true", help="skip the MONAI comparison")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8) for _ in range(args.images)]
    print(f"\nbatch predict: {args.images} images of {args.size}², batch {args.batch}, CPU")
    print(f"{'model':<16}{'layout':<15}{'bare forward s':>15}{'probs s':>9}{'ratio':>7}{'labels s':>10}{'ratio':>7}")
    for arch in ([] if args.skip_batch else args.archs.split(",")):
        for channels_last in (False, True):
            t_bare, t_pred, t_labels = bench_batch(arch, images, args.batch, args.repeat, channels_last)
            layout = "channels_last" if channels_last else "contiguous"
            print(f"{arch:<16}{layout:<15}{t_bare:>15.3f}{t_pred:>9.3f}{t_pred / t_bare:>7.3f}"
                  f"{t_labels:>10.3f}{t_labels / t_bare:>7.3f}")
    if not args.skip_sliding:
        bench_sliding(max(args.repeat, 2), 768, 1024, 256, 64)
    bench_gpu(args.repeat)


if __name__ == "__main__":
    main()
