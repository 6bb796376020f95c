"""Video in: files, cameras, streams and frame folders as one sequence of RGB frames.

A *video source* is named by one string: a video file (``clip.mp4``, ``.avi``, ``.mkv``, …,
whatever OpenCV's bundled FFmpeg reads, recognised by its extension), a camera (``cam:0``,
the CLI's ``--camera 0``), a stream URL (``rtsp://``, ``http(s)://``, …), or a folder of
frames (images, in natural file-name order).

:func:`open_source` opens one (every failure an :class:`~segtools.errors.InputError` that
names it — a URL without its user name and password), :meth:`VideoSource.frames` yields
:class:`Frame` objects (index, time in seconds, H×W×3 uint8 RGB) through a
:class:`FrameRange` (``every``, ``start``/``end`` as a frame index or seconds,
``max_frames``), and :func:`prefetch` decodes them in a reader thread, a bounded queue ahead
of the consumer, so decoding overlaps inference (OpenCV and torch both release the GIL).

A video file that stops decoding before the frame count its container declares (truncated,
corrupt) raises an :class:`~segtools.errors.InputError` naming the frame, after every frame
before it was yielded.
"""

from __future__ import annotations

import os
import queue
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

import numpy as np

from segtools.errors import InputError, UsageError
from segtools.io.remote import STREAM_SCHEMES

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts",
                    ".mts", ".m2ts", ".3gp", ".ogv", ".mjpeg", ".y4m")
FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: Frames rate assumed for a frame folder (and a source that does not say).
DEFAULT_FPS = 30.0
#: Seconds to wait for a stream to open or deliver a frame before giving up.
STREAM_TIMEOUT_S = 10.0

_CAMERA = re.compile(r"cam:(\d{1,3})")


def quiet_opencv() -> None:
    """Keep OpenCV's and FFmpeg's own log lines (codec tag fallbacks, decoder warnings) off
    stderr: segtools says what went wrong itself, in one line."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
    import cv2

    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    except AttributeError:  # an OpenCV build without the logging module
        pass


@contextmanager
def silent_stderr() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for a moment: OpenCV's FFmpeg wrapper prints some
    notes (codec tag fallbacks) straight to it, past any log level."""
    import sys

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def public_url(url: str) -> str:
    """``url`` without a user name or password, for messages.

    >>> public_url("rtsp://admin:secret@10.0.0.5:554/live?x=1")
    'rtsp://10.0.0.5:554/live?x=1'
    >>> public_url("http://cam.local/mjpeg")
    'http://cam.local/mjpeg'
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    return f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"


def is_stream(spec: str) -> bool:
    return str(spec).lower().startswith(STREAM_SCHEMES)


def camera_index(spec: str) -> Optional[int]:
    """The camera index of ``cam:N``, else ``None``."""
    match = _CAMERA.fullmatch(str(spec).strip().lower())
    return int(match.group(1)) if match else None


def is_video_file(spec: str) -> bool:
    return Path(str(spec)).suffix.lower() in VIDEO_EXTENSIONS


def is_video_spec(spec: str) -> bool:
    """Whether ``spec`` names a video without looking at any folder: a video file, a camera
    or a stream URL (a frame folder is a video only where a command says so)."""
    return is_video_file(spec) or camera_index(spec) is not None or is_stream(spec)


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its ``index`` in the source (0-based), ``time`` in seconds from the
    start, and ``image``, H×W×3 uint8 RGB."""

    index: int
    time: float
    image: np.ndarray


@dataclass(frozen=True)
class FrameRange:
    """Which frames to take: from ``start`` up to (not including) ``end`` — each an ``int``
    frame index or a ``float`` time in seconds, ``None`` for the first/last — every
    ``every``-th one, at most ``max_frames`` of them."""

    every: int = 1
    start: int | float | None = None
    end: int | float | None = None
    max_frames: Optional[int] = None

    def __post_init__(self) -> None:
        if self.every < 1:
            raise UsageError(f"every={self.every}: take every N-th frame, N >= 1")
        if self.max_frames is not None and self.max_frames < 1:
            raise UsageError(f"max_frames={self.max_frames}: must be at least 1")
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise UsageError(f"{name}={value}: must be >= 0 (a frame index or seconds)")

    def bounds(self, fps: float) -> tuple[int, Optional[int]]:
        """(first frame index, end frame index or ``None``) at ``fps`` frames per second."""
        def frame(value, default):
            if value is None:
                return default
            return int(value) if isinstance(value, int) else int(round(float(value) * fps))

        first, last = frame(self.start, 0), frame(self.end, None)
        if last is not None and last <= first:
            raise UsageError(f"end={self.end} is not after start={self.start or 0}: no frames to take")
        return first, last

    def selects(self, index: int, first: int) -> bool:
        return index >= first and (index - first) % self.every == 0


class VideoSource:
    """An opened video source; iterate :meth:`frames`, then :meth:`close`.

    ``kind`` is ``file``, ``camera``, ``stream`` or ``folder``; ``name`` what messages call
    it (a URL without credentials); ``fps`` frames per second (:data:`DEFAULT_FPS` when the
    source does not say); ``frame_count`` the frames a file or folder declares (``None`` for
    live sources and containers that do not say); ``live`` whether it has no end.
    """

    def __init__(self, spec: str, kind: str, name: str, capture=None, files: Optional[list[Path]] = None,
                 fps: Optional[float] = None) -> None:
        self.spec, self.kind, self.name = spec, kind, name
        self._capture, self._files = capture, files
        self.fps = fps if fps and fps > 0 else DEFAULT_FPS
        self.frame_count: Optional[int] = None
        if files is not None:
            self.frame_count = len(files)
        elif kind == "file":
            import cv2

            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            self.frame_count = count if count > 0 else None
        self._stop = threading.Event()

    @property
    def live(self) -> bool:
        return self.kind in ("camera", "stream")

    def stop(self) -> None:
        """Ask :meth:`frames` to end after the frame it is decoding (thread-safe)."""
        self._stop.set()

    def close(self) -> None:
        self.stop()
        if self._capture is not None:
            self._capture.release()

    def __enter__(self) -> "VideoSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def frames(self, selection: FrameRange = FrameRange()) -> Iterator[Frame]:
        """The selected frames in order. Frames before ``start`` are skipped by seeking where
        the container allows it (a file), else decoded and dropped; frames between the ones
        taken are grabbed without being converted."""
        first, end = selection.bounds(self.fps)
        taken = 0
        for index, image in self._decoded(first, end, selection):
            yield Frame(index, index / self.fps, image)
            taken += 1
            if selection.max_frames is not None and taken >= selection.max_frames:
                return

    def _decoded(self, first: int, end: Optional[int], selection: FrameRange) -> Iterator[tuple[int, np.ndarray]]:
        if self._files is not None:
            yield from self._folder_frames(first, end, selection)
            return
        import cv2

        capture, index = self._capture, 0
        if first and self.kind == "file" and capture.set(cv2.CAP_PROP_POS_FRAMES, first):
            index = int(capture.get(cv2.CAP_PROP_POS_FRAMES)) or first
        while not self._stop.is_set() and (end is None or index < end):
            if not selection.selects(index, first):
                if not capture.grab():
                    break
                index += 1
                continue
            ok, bgr = capture.read()
            if not ok or bgr is None:
                break
            yield index, _bgr_to_rgb(bgr, f"{self.name}: frame {index}")
            index += 1
        else:
            return
        self._check_ended(index, end)

    def _check_ended(self, index: int, end: Optional[int]) -> None:  # decoding stopped at frame index
        if self.kind == "file":
            expected = self.frame_count if end is None else min(end, self.frame_count or end)
            if self.frame_count is not None and index < expected - 1:
                raise InputError(f"{self.name}: frame {index} cannot be decoded (the video is truncated or corrupt; "
                                 f"{self.frame_count} frames declared); frames before it were written")
        elif self.live:
            raise InputError(f"{self.name}: the {self.kind} stopped delivering frames at frame {index}")

    def _folder_frames(self, first: int, end: Optional[int], selection: FrameRange) -> Iterator[tuple[int, np.ndarray]]:
        from segtools.io.images import read_image, to_rgb8

        size = None
        for index, path in enumerate(self._files):
            if self._stop.is_set() or end is not None and index >= end:
                return
            if not selection.selects(index, first):
                continue
            image = to_rgb8(read_image(str(path)))
            if size is not None and image.shape != size:
                raise InputError(f"{path}: frame {index} is {image.shape[1]}×{image.shape[0]} px, the frames before "
                                 f"it {size[1]}×{size[0]} px; a video's frames have one size")
            size = image.shape
            yield index, image


def open_source(spec: str, *, folder_frames: bool = True) -> VideoSource:
    """Open the video source ``spec`` (see the module docstring).

    Raises
    ------
    InputError
        No such file or camera, a stream that cannot be opened (named without credentials),
        a file OpenCV's FFmpeg cannot read, a folder without frames.
    """
    spec = str(spec)
    camera = camera_index(spec)
    if folder_frames and camera is None and not is_stream(spec) and os.path.isdir(spec):
        return _open_folder(spec)
    from segtools.io.limits import check_pixels

    quiet_opencv()
    import cv2

    if camera is not None:
        capture = cv2.VideoCapture(camera)
        if not capture.isOpened():
            raise InputError(f"camera {camera} (cam:{camera}): cannot be opened (no such camera, no permission, "
                             "or another program holds it)")
        source = VideoSource(spec, "camera", f"camera {camera}", capture, fps=capture.get(cv2.CAP_PROP_FPS))
    elif is_stream(spec):
        name = public_url(spec)
        timeout = int(STREAM_TIMEOUT_S * 1000)
        capture = cv2.VideoCapture(spec, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout,
                                                           cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout])
        if not capture.isOpened():
            raise InputError(f"{name}: the stream cannot be opened (unreachable, refused, not a video, or it needs "
                             "credentials); check the address")
        source = VideoSource(spec, "stream", name, capture, fps=capture.get(cv2.CAP_PROP_FPS))
    else:
        from segtools.io.streams import check_file_name, mark_input

        check_file_name(spec)
        if not os.path.exists(spec):
            raise InputError(f"{spec}: no such file")
        if not os.path.isfile(spec):
            raise InputError(f"{spec}: not a regular file")
        if not os.access(spec, os.R_OK):
            raise InputError(f"{spec}: permission denied")
        capture = cv2.VideoCapture(spec, cv2.CAP_FFMPEG)
        if not capture.isOpened():
            raise InputError(f"{spec}: not a video OpenCV's FFmpeg can read (truncated, corrupt, or an unknown "
                             "codec or container)")
        mark_input(spec)
        source = VideoSource(spec, "file", spec, capture, fps=capture.get(cv2.CAP_PROP_FPS))
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if width > 0 and height > 0:
        check_pixels(width, height, source.name)
    return source


def _open_folder(spec: str) -> VideoSource:
    from segtools.io.batch import expand_inputs

    items = expand_inputs([spec], extensions=FRAME_EXTENSIONS)
    files = [Path(item.path) for item in sorted(items, key=lambda item: _natural_key(item.rel))]
    return VideoSource(spec, "folder", spec, files=files)


def _natural_key(name: str) -> list:
    """Sort ``frame_2`` before ``frame_10``: digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _bgr_to_rgb(bgr: np.ndarray, name: str) -> np.ndarray:
    if bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
        raise InputError(f"{name}: {bgr.dtype} pixels of shape {bgr.shape}; segtools reads 8-bit colour video")
    import cv2

    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


# ---- decoding ahead of the consumer

_DONE = object()


def prefetch(frames: Iterable[Frame], depth: int = 4, stop: Optional[Callable[[], None]] = None,
             latest: bool = False) -> Iterator[Frame]:
    """Iterate ``frames`` in a reader thread, up to ``depth`` frames ahead of the caller.

    With ``latest`` (a live source) a full queue drops its oldest frame for the new one, so
    the caller always gets recent frames instead of a growing backlog; otherwise the reader
    waits (no frame of a file is lost).

    An exception in the reader (a corrupt frame) is raised here, in order, after the frames
    decoded before it. When the caller stops early (``break``, an exception, closing the
    generator), ``stop`` is called (e.g. :meth:`VideoSource.stop`) and the thread is joined.
    """
    buffer: "queue.Queue" = queue.Queue(maxsize=max(1, depth))
    finished = threading.Event()

    def put(item) -> bool:
        while not finished.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                if latest and item is not _DONE and not isinstance(item, BaseException):
                    try:
                        buffer.get_nowait()
                    except queue.Empty:
                        pass
                continue
        return False

    def read() -> None:
        try:
            for frame in frames:
                if not put(frame):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    thread = threading.Thread(target=read, name="segtools-video-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        finished.set()
        if stop is not None:
            stop()
        thread.join(timeout=STREAM_TIMEOUT_S)
