"""Benchmark video: ``predict`` over a clip against the bare forward loop of the same runner,
the decode/encode floor, and the flicker that ``--temporal ema:A`` removes on CamVid's
consecutive frames.

    python bench/video.py [--frames 40] [--repeat 3] [--batch 4] [--backend auto|onnx|torch] [--device auto]

1. Speed, on a 480×360 clip made here (MJPG ``.avi``, from the first CamVid val frames, looped),
   with the runner ``predict`` takes for the default model (``auto``: its ONNX twin in ONNX
   Runtime when onnxruntime is installed, else the torch model; ``--backend`` chooses):
   * decode only, and decode + encode to ``.mp4`` (mp4v): the floor any pipeline pays;
   * the bare forward loop of that runner over pre-decoded, pre-normalised frames (same
     batches): ``InferenceSession.run`` through ``OnnxRunner.forward``, or the torch module;
   * the predictor's label loop over pre-decoded arrays (normalise, forward, resize, argmax);
   * ``predict`` as the command runs it (:func:`segtools.cli.video_opts.predict_video`:
     decode in the reader thread, predict, colour and encode to ``.mp4`` in the writer
     thread), plain, with the writes in the loop's own thread, and with ``--temporal
     ema:0.5``. Goal: ≥ 0.95× the bare forward loop's frames/s.
   Rounds are interleaved (every row once per round), best and median of ``--repeat``; the
   load average is printed before and after.
2. Flicker (share of pixels whose label changes between neighbouring frames) and mIoU against
   the CamVid val labels, for the default model's per-frame labels and EMA-smoothed ones
   (the val frames are one sequence, 30 frames apart).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
import cv2  # noqa: E402

from segtools.inference.temporal import EMASmoother, flicker  # noqa: E402
from segtools.io.video import open_source  # noqa: E402

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


def load_average() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


class Model:
    """The default model as ``predict`` runs it: a predictor, its class legend, and a bare
    forward over a normalised batch."""

    def __init__(self, backend: str, device: str, batch: int) -> None:
        from segtools.cli.predict_backends import default_onnx
        from segtools.inference.files import legend

        if backend == "auto":
            backend = "onnx" if default_onnx(None) is not None else "torch"
        self.backend = backend
        if backend == "onnx":
            from segtools.backends.onnx import open_onnx
            from segtools.backends.runner import RunnerPredictor

            path = default_onnx(None)
            if path is None:
                sys.exit("the bundled ONNX model (or onnxruntime) is missing; give --backend torch")
            runner = open_onnx(str(path), device=device)
            self.predictor = RunnerPredictor(runner, batch=batch)
            self.classes = legend(runner.classes, runner.num_classes)
            self.where = f"ONNX Runtime {__import__('onnxruntime').__version__} ({path.name})"
        else:
            import torch

            from segtools.inference.predictor import Predictor
            from segtools.weights.loader import load_model

            loaded = load_model(model=None, weights=None, arch=None, classes=None, device="cpu")
            self.predictor = Predictor(loaded.model, loaded.preprocessing, device=device, batch=batch)
            self.classes = legend(loaded.classes, loaded.num_classes)
            self.where = f"torch {torch.__version__}, {torch.get_num_threads()} threads, {self.predictor.device}"

    def normalised(self, frames: list[np.ndarray], batch: int) -> list:
        chunks = [frames[i:i + batch] for i in range(0, len(frames), batch)]
        if self.backend == "onnx":
            return [self.predictor.normalise(chunk) for chunk in chunks]
        return [self.predictor.to_tensor(chunk) for chunk in chunks]

    def forward_all(self, batches: list) -> None:
        if self.backend == "onnx":
            for x in batches:
                self.predictor.runner.forward(x)
            return
        import torch

        with torch.inference_mode():
            for x in batches:
                out = self.predictor.model(x)
                out = out["out"] if isinstance(out, dict) else out
            if self.predictor.device.type == "cuda":
                torch.cuda.synchronize()


def speed(args, model: Model) -> None:
    from segtools.cli import common
    from segtools.cli.video_opts import VideoRequest, predict_video
    from segtools.inference.temporal import Temporal
    from segtools.io.video import FrameRange
    from segtools.io.video_out import VideoFileWriter

    common.STATE.quiet = True
    folder = tempfile.mkdtemp(prefix="segtools-bench-video-")
    clip = make_clip(os.path.join(folder, "clip.avi"), args.frames)
    frames = decoded(clip)
    batches = model.normalised(frames, args.batch)

    def bare() -> None:
        model.forward_all(batches)

    def labels_loop() -> None:
        for _ in model.predictor.predict_many(frames, labels=True):
            pass

    def decode() -> None:
        decoded(clip)

    def decode_encode() -> None:
        writer = VideoFileWriter(os.path.join(folder, "copy.mp4"), 30.0, allow_overwrite=True)
        with open_source(clip) as source:
            for frame in source.frames():
                writer.write(frame.image)
        writer.commit()

    def command(temporal=None, background=True):
        def run() -> None:
            from segtools.inference import video

            request = VideoRequest(clip, FrameRange(), os.path.join(folder, "masks.mp4"), True, temporal, None, None,
                                   True)
            threaded = video.BackgroundSink
            if not background:  # the sink written in the loop's own thread, as before the writer thread
                video.BackgroundSink = lambda sink: sink
            try:
                predict_video(request, model.predictor, model.classes)
            finally:
                video.BackgroundSink = threaded
        return run

    bare_name = "bare forward loop (pre-decoded, pre-normalised)"
    rows = {"decode only": decode, "decode + encode (.mp4, mp4v)": decode_encode, bare_name: bare,
            "predictor labels loop (pre-decoded arrays)": labels_loop,
            "predict clip.avi -o masks.mp4": command(),
            "  the same, writes in the loop's thread": command(background=False),
            "predict clip.avi -o masks.mp4 --temporal ema:0.5": command(Temporal("ema", 0.5))}
    bare()  # warm-up
    command()()
    before = load_average()
    times: dict[str, list] = {name: [] for name in rows}
    cpu: dict[str, list] = {name: [] for name in rows}
    for _ in range(args.repeat):
        for name, fn in rows.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            times[name].append(len(frames) / (time.perf_counter() - start))
            cpu[name].append((time.process_time() - start_cpu) * 1000 / len(frames))
    after = load_average()
    best = {name: max(values) for name, values in times.items()}
    median = {name: statistics.median(values) for name, values in times.items()}
    cpu_ms = {name: min(values) for name, values in cpu.items()}
    print(f"\n{len(frames)} frames 360×480, batch {args.batch}, {model.where}; {args.repeat} interleaved rounds; "
          f"load average {before} before, {after} after")
    print("wall clock: frames/s (best, median) and the ratio to the bare forward loop; CPU: ms of this process's "
          "CPU time (all threads) per frame, least of the rounds, and the bare loop's share of it")
    print(f"{'run':<50} {'best f/s':>9} {'median f/s':>10} {'best ×':>7} {'median ×':>9} {'CPU ms/f':>9} "
          f"{'CPU ×':>6}")
    for name in rows:
        print(f"{name:<50} {best[name]:9.2f} {median[name]:10.2f} {best[name] / best[bare_name]:6.2f}× "
              f"{median[name] / median[bare_name]:8.2f}× {cpu_ms[name]:9.1f} {cpu_ms[bare_name] / cpu_ms[name]:5.2f}×")


def flicker_study(args, model: Model) -> None:
    files = sorted((CAMVID / "val").glob("*.png"))[: args.flicker_frames]
    annots = [CAMVID / "valannot" / f.name for f in files]
    predictor = model.predictor
    alphas = (1.0, 0.7, 0.5, 0.3)
    smoothers = {a: EMASmoother(a) for a in alphas}
    labels = {a: [] for a in alphas}
    num = len(model.classes.names) if model.classes.names else 11
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
    parser.add_argument("--backend", default="auto", choices=("auto", "onnx", "torch"))
    parser.add_argument("--flicker-frames", type=int, default=101)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-flicker", action="store_true")
    args = parser.parse_args()
    if not (CAMVID / "val").is_dir():
        sys.exit(f"{CAMVID} is not present")
    model = Model(args.backend, args.device, args.batch)
    print(f"default model in {model.where}, OpenCV {cv2.__version__}, {os.cpu_count()} CPUs")
    if not args.skip_speed:
        speed(args, model)
    if not args.skip_flicker:
        flicker_study(args, model)


if __name__ == "__main__":
    main()
