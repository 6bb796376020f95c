"""Benchmark video: ``predict`` over a clip against the bare forward loop, the decode/encode
floor, and the flicker that ``--temporal ema:A`` removes on CamVid's consecutive frames.

    python bench/video.py [--frames 40] [--repeat 3] [--batch 4] [--device auto] [--flicker-frames 101]

1. Speed, on a 480×360 clip made here (MJPG ``.avi``, from the first CamVid val frames, looped):
   * decode only, and decode + encode to ``.mp4`` (mp4v): the floor any pipeline pays;
   * the bare model forward loop over pre-decoded, pre-normalised frames (same batches,
     channels-last), and the :class:`~segtools.inference.predictor.Predictor` label loop
     over pre-decoded arrays;
   * ``predict`` as the command runs it (:func:`segtools.cli.video_opts.predict_video`:
     decode in the reader thread, predict, colour, encode to ``.mp4``), plain and with
     ``--temporal ema:0.5``. Goal: ≥ 0.95× the bare forward loop's frames/s.
   Rounds are interleaved, best of ``--repeat``.
2. Flicker (share of pixels whose label changes between neighbouring frames) and mIoU against
   the CamVid val labels, for the default model's per-frame labels and EMA-smoothed ones
   (the val frames are one sequence, 30 frames apart).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
import cv2  # noqa: E402
import torch  # noqa: E402

from segtools.inference.predictor import Predictor  # noqa: E402
from segtools.inference.temporal import EMASmoother, flicker  # noqa: E402
from segtools.io.video import FrameRange, open_source  # noqa: E402
from segtools.weights.loader import load_model  # noqa: E402

CAMVID = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"


def make_clip(path: str, count: int) -> str:
    files = sorted((CAMVID / "val").glob("*.png"))
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (480, 360))
    for i in range(count):
        frame = cv2.imread(str(files[i % len(files)]))
        writer.write(cv2.resize(frame, (480, 360)) if frame.shape[:2] != (360, 480) else frame)
    writer.release()
    return path


def decoded(clip: str) -> list[np.ndarray]:
    with open_source(clip) as source:
        return [frame.image for frame in source.frames()]


def rate(frames: int, fn, repeat_times: list) -> None:
    start = time.perf_counter()
    fn()
    repeat_times.append(frames / (time.perf_counter() - start))


def speed(args, loaded) -> None:
    from segtools.cli.video_opts import VideoRequest, predict_video
    from segtools.cli import common
    from segtools.inference.files import legend
    from segtools.inference.temporal import Temporal
    from segtools.io.video_out import VideoFileWriter

    common.STATE.quiet = True
    folder = tempfile.mkdtemp(prefix="segtools-bench-video-")
    clip = make_clip(os.path.join(folder, "clip.avi"), args.frames)
    frames = decoded(clip)
    predictor = Predictor(loaded.model, loaded.preprocessing, device=args.device, batch=args.batch)
    classes = legend(loaded.classes, loaded.num_classes)
    batches = [predictor.to_tensor(frames[i:i + args.batch]) for i in range(0, len(frames), args.batch)]

    def bare() -> None:
        with torch.inference_mode():
            for x in batches:
                out = predictor.model(x)
                out = out["out"] if isinstance(out, dict) else out
            if predictor.device.type == "cuda":
                torch.cuda.synchronize()

    def labels_loop() -> None:
        for _ in predictor.predict_many(frames, labels=True):
            pass

    def decode() -> None:
        decoded(clip)

    def decode_encode() -> None:
        writer = VideoFileWriter(os.path.join(folder, "copy.mp4"), 30.0)
        with open_source(clip) as source:
            for frame in source.frames():
                writer.write(frame.image)
        writer.commit()

    def command(temporal=None):
        def run() -> None:
            request = VideoRequest(clip, FrameRange(), os.path.join(folder, "masks.mp4"), True, temporal, None, None,
                                   True)
            predict_video(request, predictor, classes)
        return run

    rows = {"decode only": decode, "decode + encode (.mp4, mp4v)": decode_encode,
            "bare forward loop (pre-decoded, pre-normalised)": bare,
            "Predictor labels loop (pre-decoded arrays)": labels_loop,
            "predict clip.avi -o masks.mp4": command(),
            "predict clip.avi -o masks.mp4 --temporal ema:0.5": command(Temporal("ema", 0.5))}
    bare()  # warm-up
    times: dict[str, list] = {name: [] for name in rows}
    for _ in range(args.repeat):
        for name, fn in rows.items():
            rate(len(frames), fn, times[name])
    best = {name: max(values) for name, values in times.items()}
    reference = best["bare forward loop (pre-decoded, pre-normalised)"]
    print(f"\n{len(frames)} frames 360×480, batch {args.batch}, {predictor.device}, torch threads "
          f"{torch.get_num_threads()}, best of {args.repeat} interleaved rounds")
    print(f"{'run':<52} {'frames/s':>9} {'vs bare forward':>16}")
    for name, value in best.items():
        print(f"{name:<52} {value:9.2f} {value / reference:15.2f}×")


def flicker_study(args, loaded) -> None:
    files = sorted((CAMVID / "val").glob("*.png"))[: args.flicker_frames]
    annots = [CAMVID / "valannot" / f.name for f in files]
    predictor = Predictor(loaded.model, loaded.preprocessing, device=args.device, batch=args.batch)
    alphas = (1.0, 0.7, 0.5, 0.3)
    smoothers = {a: EMASmoother(a) for a in alphas}
    labels = {a: [] for a in alphas}
    num = loaded.num_classes or 11
    confusion = {a: np.zeros((num, num), np.int64) for a in alphas}
    images = (cv2.imread(str(f))[..., ::-1] for f in files)
    for probs, annot in zip(predictor.predict_many(images), annots):
        truth = cv2.imread(str(annot), cv2.IMREAD_UNCHANGED)
        valid = truth < num
        for a in alphas:
            label = np.argmax(smoothers[a](probs), axis=0).astype(np.uint8)
            labels[a].append(label)
            confusion[a] += np.bincount(truth[valid].astype(np.int64) * num + label[valid],
                                        minlength=num * num).reshape(num, num)
    print(f"\nflicker on {len(files)} consecutive CamVid val frames (sequence 0016E5, 30 frames apart), "
          "default model")
    print(f"{'labels':<26} {'flicker':>8} {'mIoU':>7} {'pixel acc':>10}")
    truth_flicker = flicker(cv2.imread(str(a), cv2.IMREAD_UNCHANGED) for a in annots)
    for a in alphas:
        c = confusion[a]
        iou = np.diag(c) / np.maximum(c.sum(0) + c.sum(1) - np.diag(c), 1)
        name = "per frame (no smoothing)" if a == 1.0 else f"--temporal ema:{a}"
        print(f"{name:<26} {flicker(labels[a]):8.4f} {iou[c.sum(1) > 0].mean():7.4f} "
              f"{np.diag(c).sum() / c.sum():10.4f}")
    print(f"{'ground truth labels':<26} {truth_flicker:8.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--flicker-frames", type=int, default=101)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-flicker", action="store_true")
    args = parser.parse_args()
    if not (CAMVID / "val").is_dir():
        sys.exit(f"{CAMVID} is not present")
    loaded = load_model(model=None, weights=None, arch=None, classes=None, device="cpu")
    print(f"default model, OpenCV {cv2.__version__}, torch {torch.__version__}, {os.cpu_count()} CPUs")
    if not args.skip_speed:
        speed(args, loaded)
    if not args.skip_flicker:
        flicker_study(args, loaded)


if __name__ == "__main__":
    main()
