"""Video options shared by ``predict``, ``postprocess`` and ``visualize``, and their runs.

A command adds the option aliases below to its signature, asks :func:`video_request` whether
its inputs are a video (a video file, ``cam:N``/``--camera N``, a stream URL, or a frame
folder when the output is a video or a video option is given), and, when they are, hands the
request to its runner here (:func:`predict_video`, …). Everything that computes is in the
library: :mod:`segtools.io.video` (sources), :mod:`segtools.io.video_out` (writers),
:mod:`segtools.inference.video` (the frame loop), :mod:`segtools.inference.temporal`.

Only typer and the standard library are imported at module level (start-up time).
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Iterator, Optional, Sequence

import typer

from segtools.errors import UsageError

CameraOpt = Annotated[Optional[int], typer.Option(
    "--camera", min=0, metavar="N", help="Read camera N (the same as the input cam:N).")]
EveryOpt = Annotated[int, typer.Option("--every", min=1, metavar="N", help="Video: take every N-th frame.")]
StartOpt = Annotated[Optional[str], typer.Option(
    "--start", metavar="FRAME|TIME", help="Video: first frame, as an index (120) or a time (4s, 1:05, 0:01:05.5).")]
EndOpt = Annotated[Optional[str], typer.Option(
    "--end", metavar="FRAME|TIME", help="Video: stop before this frame index or time.")]
MaxFramesOpt = Annotated[Optional[int], typer.Option(
    "--max-frames", min=1, metavar="N", help="Video: at most N frames.")]
TemporalOpt = Annotated[Optional[str], typer.Option(
    "--temporal", metavar="ema:A", help="Video: smooth class probabilities across frames, "
    "new = A·frame + (1−A)·previous (A in (0, 1]; ema:0.5).")]
FpsLimitOpt = Annotated[Optional[float], typer.Option(
    "--fps-limit", min=0.01, metavar="FPS", help="Video: at most FPS frames per second (a live source's extra "
    "frames are dropped; a file is read no faster).")]
CodecOpt = Annotated[Optional[str], typer.Option(
    "--codec", metavar="FOURCC", help="Video output codec (default by extension: .mp4 mp4v, .avi MJPG, "
    ".mkv FFV1 lossless, .webm VP80).")]

#: Library parameter → flag, for messages.
FLAGS = {"every": "--every", "start": "--start", "end": "--end", "max_frames": "--max-frames",
         "temporal": "--temporal", "codec": "--codec", "fps": "--fps-limit"}

_TIME = re.compile(r"(?:(\d+):)?(?:(\d+):)?(\d+(?:\.\d*)?)")


def parse_frame_or_time(text: Optional[str], option: str) -> int | float | None:
    """``"120"`` → frame 120 (an int); ``"4s"``, ``"4.5s"``, ``"1:05"``, ``"0:01:05.5"`` → seconds (a float).

    >>> parse_frame_or_time("120", "--start"), parse_frame_or_time("1:05", "--start"), parse_frame_or_time("2.5s", "--end")
    (120, 65.0, 2.5)
    """
    if text is None:
        return None
    word = str(text).strip().lower()
    if word.isdigit():
        return int(word)
    match = _TIME.fullmatch(word[:-1] if word.endswith("s") and ":" not in word else word)
    if match and (word.endswith("s") or ":" in word):
        parts = [float(p) for p in match.groups() if p is not None]
        seconds = 0.0
        for part in parts:
            seconds = seconds * 60 + part
        return seconds
    raise UsageError(f"{option} {text!r}: give a frame index (120) or a time (4s, 2.5s, 1:05, 0:01:05.5)")


@dataclass
class VideoRequest:
    """What a command was asked to do with a video: the source, the frames, the output."""

    source: str
    selection: object  # segtools.io.video.FrameRange
    output: str
    to_video: bool  # a video file; else a frame folder
    temporal: object = None  # segtools.inference.temporal.Temporal
    fps_limit: Optional[float] = None
    codec: Optional[str] = None
    overwrite: bool = False


def video_request(specs: Sequence[str], output: Optional[str], *, camera: Optional[int] = None, every: int = 1,
                  start: Optional[str] = None, end: Optional[str] = None, max_frames: Optional[int] = None,
                  temporal: Optional[str] = None, fps_limit: Optional[float] = None, codec: Optional[str] = None,
                  overwrite: bool = False, over: Optional[str] = None, probs: bool = False,
                  results: bool = False) -> Optional[VideoRequest]:
    """A :class:`VideoRequest` when the inputs are a video, else ``None`` (the command runs
    as over images). A folder is a video's frames when the output is a video file, a video
    option is given, or ``over`` (visualize's photos) is a video. Options that only make
    sense for a video, given for images, are refused, and so is ``probs`` (score maps) into
    a video file — before any model is loaded. With ``results`` (``--format coco``) the
    output is one results file for all frames."""
    from segtools.io.video import is_video_file, is_video_spec

    specs = [s for s in specs if s != "-"] if camera is not None else list(specs)
    asked = [flag for flag, value in (("--every", every != 1), ("--start", start), ("--end", end),
                                      ("--max-frames", max_frames), ("--temporal", temporal),
                                      ("--fps-limit", fps_limit), ("--codec", codec)) if value]
    video_out = output not in (None, "-") and is_video_file(output)
    over_video = over is not None and is_video_spec(over)
    if camera is not None:
        if specs:
            raise UsageError(f"--camera {camera} is the input: drop {specs[0]!r} (or use cam:{camera} as the input)")
        source = f"cam:{camera}"
    elif len(specs) == 1 and (is_video_spec(specs[0]) or os.path.isdir(specs[0]) and (video_out or asked or over_video)):
        source = specs[0]
    elif any(is_video_spec(s) for s in specs):
        raise UsageError("one video at a time: give one video file, camera or stream (or a frame folder)")
    else:
        if over_video:
            raise UsageError(f"--over {over}: a video pairs with a mask video or a folder of frame masks, "
                             "not with mask files")
        if asked:
            raise UsageError(f"{asked[0]} applies to a video input: give a video file, cam:N, a stream URL, or a frame "
                             "folder with -o out.mp4")
        return None
    from segtools.cli.options import parameters_as_flags
    from segtools.inference.temporal import parse_temporal
    from segtools.io.video import FrameRange

    if output in (None, "-"):
        raise UsageError("a video input needs -o out.mp4 (a video) or -o DIR (one file per frame)")
    if probs and video_out:
        raise UsageError("--probs writes a score map per frame: give -o DIR, not a video file")
    with parameters_as_flags(FLAGS):
        selection = FrameRange(every, parse_frame_or_time(start, "--start"), parse_frame_or_time(end, "--end"),
                               max_frames)
        request = VideoRequest(source, selection, output, video_out, parse_temporal(temporal), fps_limit, codec,
                               overwrite)
        if results:
            if video_out or codec:
                raise UsageError("--format coco writes one results file for all frames: give -o results.json, "
                                 "not a video")
            request.to_video = False
        elif video_out:
            from segtools.io.video_out import codec_for

            codec_for(output, codec)
        elif codec:
            raise UsageError("--codec applies to a video output (-o out.mp4), not to a frame folder")
        elif os.path.splitext(output)[1].lower() in (".png", ".jpg", ".jpeg", ".npz", ".npy", ".tif", ".tiff",
                                                     ".bmp", ".webp") and not os.path.isdir(output):
            raise UsageError(f"-o {output}: a video's frames go to a folder (-o DIR, one file per frame) or a video "
                             "file (.mp4, .mkv, .avi, .mov, .webm)")
    return request


# ---- running

class Stop:
    """Which signal (if any) stopped a run."""

    def __init__(self) -> None:
        self.signal: Optional[int] = None


@contextmanager
def stop_on_signals(source) -> Iterator[Stop]:
    """SIGINT and SIGTERM stop ``source`` after the frame in hand (the output is then
    finished and kept); a second SIGINT interrupts at once."""
    stop = Stop()

    def handler(signum, _frame) -> None:
        if stop.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.signal = signum
        source.stop()

    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: no handlers
        pass
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def throttle(frames, fps_limit: Optional[float], live: bool):
    """At most ``fps_limit`` frames per second: a live source's frames that come sooner are
    dropped (the picture stays current); a file's are delayed."""
    if not fps_limit:
        yield from frames
        return
    interval, last = 1.0 / fps_limit, None
    for frame in frames:
        now = time.monotonic()
        if last is not None and now - last < interval:
            if live:
                continue
            time.sleep(interval - (now - last))
            now = time.monotonic()
        last = now
        yield frame


class RateMeter:
    """Frames per second on stderr (one updated line) while it is a terminal and not --quiet."""

    def __init__(self, label: str, total: Optional[int]) -> None:
        from segtools.cli.common import STATE, stderr_is_terminal

        self.show = not STATE.quiet and stderr_is_terminal()
        self.label, self.total = label, total
        self.count, self.started, self.shown = 0, time.monotonic(), 0.0

    def __call__(self, frame) -> None:
        self.count += 1
        now = time.monotonic()
        if self.show and now - self.shown >= 0.5:
            self.shown = now
            rate = self.count / max(now - self.started, 1e-9)
            of = f"/{self.total}" if self.total else ""
            sys.stderr.write(f"\r{self.label}: frame {frame.index}{of}, {self.count} done, {rate:.1f} frames/s ")
            sys.stderr.flush()

    def close(self) -> float:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        if self.show and self.count:
            sys.stderr.write("\n")
        return self.count / elapsed


def run_request(request: VideoRequest, process, label: str, make_sink, open_frames=None) -> int:
    """Open the source (``open_frames()`` → ``(frames, source)``, by default the request's
    video), run the frame loop into the sink ``make_sink(source)`` builds, and report;
    returns the number of frames written. A signal stops it cleanly: the output is kept, and
    the command exits 0 for a live source (which has no end), else 130 (SIGINT) or 143
    (SIGTERM)."""
    from segtools.cli.common import info
    from segtools.cli.options import parameters_as_flags
    from segtools.inference.video import BackgroundSink, run_frames
    from segtools.io.video import open_source, prefetch

    with parameters_as_flags(FLAGS):
        if open_frames is None:
            source = open_source(request.source)
            frames = source.frames(request.selection)
        else:
            frames, source = open_frames()
        try:
            sink = BackgroundSink(make_sink(source))  # writing overlaps the model's next frames
            if sink.done:
                info(f"resuming: {len(sink.done)} frame(s) already in {request.output}")
            meter = RateMeter(label, source.frame_count)
            with stop_on_signals(source) as stop:
                frames = throttle(frames, request.fps_limit, source.live)
                try:
                    written = run_frames(prefetch(frames, stop=source.stop, latest=source.live), process, sink,
                                         on_frame=meter)
                finally:
                    rate = meter.close()
        finally:
            source.close()
    if stop.signal is not None:
        name = "interrupt" if stop.signal == signal.SIGINT else "terminate signal"
        info(f"stopped by {name} after {written} frame(s); {request.output} is complete up to there")
        if not source.live:
            raise typer.Exit(128 + stop.signal)
    else:
        info(f"{written} frame(s) to {request.output} ({rate:.1f} frames/s)")
    return written


def predict_options_request(options: dict) -> Optional[VideoRequest]:
    """:func:`video_request` from ``predict``'s options (by parameter name), for the paths
    that take them as a dict (ONNX/transformers runners, instance models, SAM)."""
    get = options.get
    return video_request(get("inputs") or ["-"], get("output"), camera=get("camera"), every=get("every") or 1,
                         start=get("start"), end=get("end"), max_frames=get("max_frames"), temporal=get("temporal"),
                         fps_limit=get("fps_limit"), codec=get("codec"), overwrite=bool(get("overwrite")),
                         probs=bool(get("probs")), results=get("fmt") == "coco")


def predict_video(request: VideoRequest, predictor, classes, *, probs: bool = False) -> int:
    """``segtools predict`` over a video: labels (or with --probs score maps) per frame, by
    any semantic predictor — the torch :class:`~segtools.inference.predictor.Predictor` or a
    runner's :class:`~segtools.backends.runner.RunnerPredictor` (ONNX, transformers)."""
    from segtools.inference.video import FrameFolderSink, LabelVideoSink, semantic_process

    if probs and request.to_video:
        raise UsageError("--probs writes a score map per frame: give -o DIR, not a video file")
    runner = getattr(predictor, "runner", predictor)
    if request.temporal is not None and getattr(runner, "labels_out", False):
        raise UsageError("--temporal smooths class probabilities; this model returns labels only")

    def make_sink(source):
        if request.to_video:
            from segtools.io.video_out import VideoFileWriter

            fps = source.fps / max(1, request.selection.every)
            return LabelVideoSink(VideoFileWriter(request.output, fps, request.codec, request.overwrite), classes)
        return FrameFolderSink(request.output, classes, probs=probs)

    process = semantic_process(predictor, temporal=request.temporal, probs=probs)
    return run_request(request, process, "predict", make_sink)


def names_no_video(options: dict) -> bool:
    """Whether a command's options (keyword arguments) ask for no video: no input, ``--over``
    or output is a video file, camera or stream, and no video option is set. Its storage
    URLs are then read and written item by item (``with_storage``'s ``streams``); a video's
    decoder and encoder need local files, so a video's URLs are staged."""
    from segtools.io.video import is_video_spec

    given = options.get("inputs") or options.get("masks") or []
    specs = [*([given] if isinstance(given, str) else given), options.get("output"), options.get("over")]
    if any(spec not in (None, "-") and is_video_spec(str(spec)) for spec in specs):
        return False
    return options.get("every", 1) in (None, 1) and not any(
        options.get(name) is not None for name in ("camera", "start", "end", "max_frames", "temporal", "fps_limit",
                                                   "codec"))
