"""Video out: a video file written beside its target and renamed into place, the codecs this
OpenCV build can write, and frame folders that resume where a run stopped.

:class:`VideoFileWriter` opens OpenCV's writer on the temp file of a
:class:`segtools.io.streams.AtomicFile` (``.NAME.XXXXXXXX.part.EXT``, the extension kept so
FFmpeg picks the container) when the first frame arrives, and :meth:`~VideoFileWriter.commit`
closes it (the container's index written: a playable file) and commits the atomic file
(renamed onto the target); :meth:`~VideoFileWriter.abort` removes it. A killed run so leaves
no half video under the final name.

The codec comes from the extension (:data:`DEFAULT_CODECS`: ``.mp4``/``.mov`` MPEG-4 Part 2
``mp4v``, ``.avi`` Motion JPEG, ``.mkv`` lossless FFV1, ``.webm`` VP8) or is given as a
FourCC. A codec the build cannot write is refused, naming those it can
(:func:`writable_codecs`, probed once per process by writing a tiny clip).

:class:`FrameFolder` names frames by their index (``000042.png``) and tells which are done,
so a run can skip them (resume).
"""

from __future__ import annotations

import os
import re
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np

from segtools.errors import InputError, OutputError, UsageError

#: Codec (FourCC) per extension when none is given. mp4v plays everywhere without a licence
#: question; FFV1 in Matroska is lossless, the choice for mask videos read back as labels.
DEFAULT_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "FFV1", ".webm": "VP80"}
#: Codecs worth probing, with a container to probe them in.
CANDIDATE_CODECS = (("mp4v", ".mp4"), ("avc1", ".mp4"), ("hev1", ".mp4"), ("av01", ".mp4"), ("MJPG", ".avi"),
                    ("XVID", ".avi"), ("FFV1", ".mkv"), ("HFYU", ".avi"), ("png ", ".avi"), ("VP80", ".webm"),
                    ("VP90", ".webm"))
#: Codecs that keep every pixel exactly (a mask video in one of them reads back as the labels).
LOSSLESS_CODECS = ("FFV1", "HFYU", "png ")


def check_codec(codec: str) -> str:
    """A FourCC as OpenCV wants it: four characters (shorter ones padded with spaces)."""
    if not 1 <= len(codec) <= 4 or not codec.isascii() or not codec.strip():
        raise UsageError(f"codec={codec!r}: give a FourCC of up to four characters, e.g. mp4v, MJPG, FFV1")
    return codec.ljust(4)


def codec_for(path: str | os.PathLike, codec: Optional[str] = None) -> str:
    """The FourCC to write ``path`` with: ``codec``, else the extension's default."""
    if codec:
        return check_codec(codec)
    suffix = Path(path).suffix.lower()
    if suffix not in DEFAULT_CODECS:
        raise UsageError(f"{path}: choose a video extension ({', '.join(DEFAULT_CODECS)}) or give codec=FOURCC")
    return DEFAULT_CODECS[suffix]


@lru_cache(maxsize=1)
def writable_codecs() -> tuple[tuple[str, str], ...]:
    """(FourCC, extension) pairs this OpenCV build can write, probed by writing two frames."""
    from segtools.io.video import quiet_opencv, silent_stderr

    quiet_opencv()
    import cv2

    found = []
    with tempfile.TemporaryDirectory(prefix="segtools-codecs-") as folder, silent_stderr():
        for fourcc, suffix in CANDIDATE_CODECS:
            path = os.path.join(folder, f"probe_{fourcc.strip()}{suffix}")
            writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), 10.0, (32, 32))
            ok = writer.isOpened()
            if ok:
                for value in (0, 128):
                    writer.write(np.full((32, 32, 3), value, np.uint8))
            writer.release()
            if ok and os.path.exists(path) and os.path.getsize(path) > 0:
                found.append((fourcc.strip(), suffix))
    return tuple(found)


def describe_writable() -> str:
    codecs = writable_codecs()
    if not codecs:
        return "this OpenCV build writes no video codec (it lacks FFmpeg): write a frame folder (-o DIR/) instead"
    return "this OpenCV build writes " + ", ".join(f"{fourcc} ({suffix})" for fourcc, suffix in codecs)


class VideoFileWriter:
    """Write RGB frames (H×W×3 uint8, one size) to a video file, atomically.

    Parameters
    ----------
    path : the target (its extension chooses the container).
    fps : frames per second.
    codec : a FourCC, else the extension's default (:func:`codec_for`).
    allow_overwrite : allow replacing a file this run read.
    """

    def __init__(self, path: str | os.PathLike, fps: float, codec: Optional[str] = None,
                 allow_overwrite: bool = False) -> None:
        from segtools.io.streams import check_output_path

        self.path = check_output_path(path, allow_overwrite)
        self.codec = codec_for(self.path, codec)
        if not fps or fps <= 0:
            raise UsageError(f"fps={fps}: frames per second must be positive")
        self.fps = float(fps)
        self.allow_overwrite = allow_overwrite
        self.frames = 0
        self._writer = None
        self._file = None  # the AtomicFile whose temp file OpenCV writes
        self._size: Optional[tuple[int, int]] = None

    def _open(self, height: int, width: int) -> None:
        from segtools.io.video import quiet_opencv, silent_stderr

        quiet_opencv()
        import cv2

        from segtools.io.streams import AtomicFile

        self._file = AtomicFile(self.path, self.allow_overwrite, suffix=".part" + self.path.suffix)
        with silent_stderr():
            self._writer = cv2.VideoWriter(self._file.tmp, cv2.VideoWriter_fourcc(*self.codec), self.fps,
                                           (width, height))
        if not self._writer.isOpened():
            self.abort()
            raise OutputError(f"{self.path}: cannot write codec {self.codec.strip()!r} into "
                              f"{self.path.suffix or 'a file without extension'}; {describe_writable()}")
        self._size = (height, width)

    def write(self, rgb: np.ndarray) -> None:
        """Append one frame (H×W×3 uint8 RGB; grey H×W is repeated into three channels)."""
        rgb = np.asarray(rgb)
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[..., None], 3, axis=2)
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] not in (3, 4):
            raise InputError(f"a video frame is H×W×3 uint8, not {rgb.dtype} of shape {rgb.shape}")
        if self._writer is None:
            self._open(*rgb.shape[:2])
        if rgb.shape[:2] != self._size:
            raise InputError(f"{self.path}: frame {self.frames} is {rgb.shape[1]}×{rgb.shape[0]} px, the video "
                             f"{self._size[1]}×{self._size[0]} px")
        self._writer.write(np.ascontiguousarray(rgb[..., 2::-1]))
        self.frames += 1

    def commit(self) -> Path:
        """Finish the file (playable) and move it onto the target. A video without frames is
        not written (an error)."""
        if self._writer is None:
            raise OutputError(f"{self.path}: no frames to write; nothing was written")
        self._writer.release()
        self._writer = None
        path, self._file = self._file.commit(), None
        return path

    def abort(self) -> None:
        """Drop the temp file."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self._file is not None:
            self._file.abort()
            self._file = None


_FRAME_NAME = re.compile(r"(\d{6,})\.(png|npz|npy|jpg)")


def frame_name(index: int, suffix: str = ".png") -> str:
    """``000042.png``: a frame's file name, its index zero-padded to six digits (sorts in order)."""
    return f"{index:06d}{suffix}"


class FrameFolder:
    """A folder of per-frame outputs named by frame index; frames already there are done."""

    def __init__(self, folder: str | os.PathLike, suffix: str = ".png") -> None:
        from segtools.io.batch import check_output_dir

        self.folder = check_output_dir(folder)
        self.suffix = suffix
        self.done = self._existing()

    def _existing(self) -> set[int]:
        try:
            names = os.listdir(self.folder)
        except OSError:
            return set()
        found = set()
        for name in names:
            match = _FRAME_NAME.fullmatch(name)
            if match and "." + match.group(2) == self.suffix and (self.folder / name).stat().st_size > 0:
                found.add(int(match.group(1)))
        return found

    def path(self, index: int) -> Path:
        return self.folder / frame_name(index, self.suffix)
