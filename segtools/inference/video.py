"""Prediction over the frames of a video: one frame loop, pluggable per-frame work and outputs.

:func:`run_frames` is the loop every frame-wise tool runs: frames (decoded ahead in a reader
thread, :func:`segtools.io.video.prefetch`) go through ``process`` — any callable that maps
an iterator of H×W×3 RGB images to an iterator of one result per image, in order (so a
batching predictor can share forward passes between frames) — and each (frame, result) is
handed to a *sink*, which writes it. Frames a sink already holds (a resumed frame folder) are
skipped before any work.

* :func:`semantic_process`: class probabilities by a
  :class:`~segtools.inference.predictor.Predictor`, optionally smoothed across frames
  (:mod:`~segtools.inference.temporal`), then labels (or the probabilities themselves).
  Every semantic runner goes through it: the torch predictor and the numpy
  :class:`~segtools.backends.runner.RunnerPredictor` (ONNX Runtime, transformers) have the
  same ``predict_many``.
* :func:`instance_masks`: an instance model's detections per frame as instance-id PNGs (the
  pipe contract's instance mask: ``instance_class``, ``instance_score``).
* :func:`sam_process`: Segment Anything with the same prompts on every frame (each frame
  encoded once).

Sinks: :class:`LabelVideoSink` (a video of the labels in the class palette),
:class:`FrameFolderSink` (one label PNG with class metadata, or score map, or encoded PNG,
per frame, named by frame index; resumable), :class:`ResultsSink` (one COCO results file
for all frames, ``image_id`` = frame index). A sink has ``done`` (frame indices it already
holds), ``write(frame, result)``, ``commit()`` and ``abort()``.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, Optional, Protocol

import numpy as np

from segtools.io.meta import ClassMeta
from segtools.io.video import Frame


class Sink(Protocol):
    done: set

    def write(self, frame: Frame, result) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


def run_frames(frames: Iterable[Frame], process: Callable[[Iterable[np.ndarray]], Iterator], sink: Sink, *,
               on_frame: Optional[Callable[[Frame], None]] = None) -> int:
    """Run ``process`` over ``frames`` and write every result to ``sink``; returns the
    number of frames written.

    The sink is committed when the frames end — also when the source is stopped (a signal
    ends a live stream: what was written is kept, playable) — and when a frame cannot be
    decoded (the error is raised after the frames before it are written). Any other failure
    aborts the sink (no half output under its name).
    """
    from segtools.errors import InputError

    pending: list[Frame] = []
    failure: list[InputError] = []

    def images() -> Iterator[np.ndarray]:
        try:
            for frame in frames:
                if frame.index in sink.done:
                    continue
                pending.append(frame)
                yield frame.image
        except InputError as exc:  # a frame that cannot be decoded: end here, so the frames before it
            failure.append(exc)    # still in a batch are processed and written, then raise it

    written = 0
    try:
        for result in process(images()):
            frame = pending.pop(0)
            sink.write(frame, result)
            written += 1
            if on_frame is not None:
                on_frame(frame)
    except BaseException:
        sink.abort()
        raise
    if failure and not written and not sink.done:
        sink.abort()
    else:
        sink.commit()
    if failure:
        raise failure[0]
    return written


def semantic_process(predictor, *, temporal=None, probs: bool = False) -> Callable[[Iterable[np.ndarray]], Iterator]:
    """``process`` for :func:`run_frames`: a semantic ``predictor``'s labels per frame (H×W),
    or with ``probs`` its C×H×W probabilities; with ``temporal`` (a
    :class:`~segtools.inference.temporal.Temporal`) the probabilities are smoothed across
    frames first."""
    from segtools.labels import argmax_scores

    def process(images: Iterable[np.ndarray]) -> Iterator:
        if temporal is None and not probs:
            yield from predictor.predict_many(images, labels=True)
            return
        scores = predictor.predict_many(images)
        if temporal is not None:
            from segtools.inference.temporal import smooth_probabilities

            scores = smooth_probabilities(scores, temporal)
        for score in scores:
            yield np.array(score, copy=True) if probs else labels_of(score)

    def labels_of(score: np.ndarray) -> np.ndarray:
        if score.ndim == 3 and score.shape[0] > 1 and score.transpose(1, 2, 0).flags.c_contiguous:
            return np.argmax(score.transpose(1, 2, 0), axis=-1).astype(np.uint8 if score.shape[0] <= 256 else np.uint16)
        if score.ndim == 3 and score.shape[0] == 1:
            return (score[0] > 0.5).astype(np.uint8)
        return argmax_scores(score)

    return process


class BackgroundSink:
    """Another sink's writes done in a thread, in order, so that colouring and encoding a
    frame (OpenCV's encoder and zlib release the GIL) overlap the model's work on the next
    ones. At most ``depth`` frames wait; a write that fails is raised at the next ``write``
    or at ``commit`` (the sink is then aborted); ``abort`` drops the frames still waiting."""

    def __init__(self, sink: Sink, depth: int = 4) -> None:
        import queue
        import threading

        self.sink, self.done = sink, sink.done
        self._queue: "queue.Queue" = queue.Queue(max(1, int(depth)))
        self._error: Optional[BaseException] = None
        self._dropping = False
        self._thread = threading.Thread(target=self._work, name="segtools-frame-writer", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is None and not self._dropping:
                try:
                    self.sink.write(*item)
                except BaseException as exc:  # raised in the loop's thread
                    self._error = exc

    def write(self, frame: Frame, result) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((frame, result))

    def _finish(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def commit(self) -> None:
        self._finish()
        if self._error is not None:
            self.sink.abort()
            raise self._error
        self.sink.commit()

    def abort(self) -> None:
        self._dropping = True
        self._finish()
        self.sink.abort()


class LabelVideoSink:
    """Write each frame's labels as a video frame in the class palette (ignore in black),
    and the class metadata beside the video (:func:`segtools.io.mask_video.sidecar_path`)."""

    def __init__(self, writer, classes: ClassMeta) -> None:
        from segtools.io.mask_video import colour_table

        self.writer, self.classes = writer, classes
        self.done: set = set()
        self._table = colour_table(classes)

    def write(self, frame: Frame, labels: np.ndarray) -> None:
        from segtools.io.mask_video import colour_table, labels_to_frame

        labels = np.asarray(labels)
        if int(labels.max(initial=0)) >= len(self._table):
            self._table = colour_table(self.classes, int(labels.max()) + 1)
        self.writer.write(labels_to_frame(labels, self._table))

    def commit(self) -> None:
        from segtools.io.mask_video import write_sidecar

        path = self.writer.commit()
        write_sidecar(path, self.classes, allow_overwrite=True)

    def abort(self) -> None:
        self.writer.abort()


class PictureSink:
    """Write each frame's picture (H×W×3 RGB): into a video (a
    :class:`~segtools.io.video_out.VideoFileWriter`), or as ``000042.png`` under a folder."""

    def __init__(self, writer=None, folder=None, suffix: str = ".png") -> None:
        self.writer = writer
        self.frames = None
        self.done: set = set()
        if folder is not None:
            from segtools.io.video_out import FrameFolder

            self.frames = FrameFolder(folder, suffix)
            self.done = set(self.frames.done)

    def write(self, frame: Frame, picture: np.ndarray) -> None:
        if self.writer is not None:
            self.writer.write(picture)
            return
        from segtools.io.images import write_image

        write_image(picture, self.frames.path(frame.index))

    def commit(self) -> None:
        if self.writer is not None:
            self.writer.commit()

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()


class FrameFolderSink:
    """One output file per frame under a folder, named by frame index (``000042.png``):
    label PNGs with the class metadata, or ``.npz`` score maps with ``probs``. Each file is
    written atomically as its frame is done, so a stopped run resumes where it stopped
    (frames on disk are in ``done``)."""

    def __init__(self, folder, classes: ClassMeta, *, probs: bool = False, resume: bool = True) -> None:
        from segtools.io.video_out import FrameFolder

        self.frames = FrameFolder(folder, ".npz" if probs else ".png")
        self.classes, self.probs = classes, probs
        self.done: set = set(self.frames.done) if resume else set()

    def write(self, frame: Frame, result) -> None:
        from segtools.io.masks import write_label_mask, write_score_map

        if isinstance(result, bytes):  # an encoded PNG (an instance-id mask with its metadata)
            from segtools.io.streams import write_bytes

            write_bytes(self.frames.path(frame.index), result)
            return
        classes = self.classes
        if isinstance(result, tuple):  # (labels, their own metadata), e.g. instance ids per frame
            result, classes = result
        (write_score_map if self.probs else write_label_mask)(result, self.frames.path(frame.index), classes)

    def commit(self) -> None:
        pass

    def abort(self) -> None:  # frames written so far are whole files: kept for resuming
        pass


class ResultsSink:
    """All frames' detections in one COCO results file (``[{image_id, category_id,
    segmentation, bbox, score}]``, ``image_id`` = the frame index), written atomically when
    the frames end: ``entries(result, image_id)`` turns one frame's result into its entries."""

    def __init__(self, path, entries: Callable, *, overwrite: bool = False) -> None:
        from segtools.io.streams import check_output_path

        self.path, self.entries, self.overwrite = check_output_path(path, overwrite), entries, overwrite
        self.results: list = []
        self.done: set = set()

    def write(self, frame: Frame, result) -> None:
        self.results.extend(self.entries(result, frame.index))

    def commit(self) -> None:
        import json

        from segtools.io.streams import write_bytes

        write_bytes(self.path, (json.dumps(self.results, separators=(",", ":")) + "\n").encode(), self.overwrite)

    def abort(self) -> None:
        self.results = []


def instance_masks(predict_many: Callable[[Iterable[np.ndarray]], Iterator], class_names) -> Callable:
    """``process`` for :func:`run_frames`: each frame's instances (an iterator of
    :class:`~segtools.inference.instances.Instances` from ``predict_many``) as an encoded
    16-bit instance-id PNG with ``instance_class`` (the model's label − 1, names
    ``class_names``) and ``instance_score`` — what ``predict`` writes for an image."""
    def process(images: Iterable[np.ndarray]) -> Iterator[bytes]:
        from segtools.formats.instances import encode_instance_png, instance_meta
        from segtools.inference.instances import instance_id_mask

        for found in predict_many(images):
            ids, instance_class, instance_score = instance_id_mask(found)
            meta = instance_meta(instance_class, list(class_names))
            meta.extra["instance_score"] = instance_score
            yield encode_instance_png(ids, meta)

    return process


def instance_entries(found, image_id) -> list[dict]:
    """COCO results entries of one frame's :class:`~segtools.inference.instances.Instances`."""
    from segtools.inference.instances import coco_results

    return coco_results(found, image_id)


def sam_process(runner, *, points=None, labels=None, boxes=None, multimask: bool = False, clip: bool = False,
                output: str = "labels", everything=None) -> Callable:
    """``process`` for :func:`run_frames`: Segment Anything with the same prompts on every
    frame, each frame encoded once (SAM 1 keeps no memory between images: an object is not
    followed from frame to frame; that is SAM 2's video propagation).

    ``points`` 1×P×2 and ``labels`` 1×P, ``boxes`` B×4, in pixels of the frames; ``output``:
    ``"labels"`` (one mask as an H×W 0/1 label mask), ``"instances"`` (an encoded instance-id
    PNG, the best-scoring mask on top), ``"probs"`` (the chosen masks' probabilities, H×W or
    B×H×W float32), ``"masks"`` (``(masks, scores)``, for COCO results); ``everything``
    (:class:`~segtools.inference.sam_auto.EverythingOptions`) prompts each frame with a grid
    of points instead (``"instances"`` or ``"masks"``, the largest masks painted first).
    """
    def process(images: Iterable[np.ndarray]) -> Iterator:
        from segtools.inference.sam import best_masks
        from segtools.inference.sam_io import instance_png
        from segtools.io.images import to_rgb8

        for image in images:
            image = to_rgb8(image)
            if everything is not None:
                from segtools.inference.sam_auto import generate_masks

                found = generate_masks(runner, image, everything)
                masks, scores = found.masks, found.iou
                order = np.argsort(-masks.reshape(len(masks), -1).sum(1), kind="stable")  # small ones on top
            else:
                prediction = runner.predict(runner.encode(image), points, labels, boxes, multimask=multimask,
                                            clip=clip, return_logits=output == "probs")
                masks, scores, chosen = best_masks(prediction)
                order = np.argsort(scores, kind="stable")  # lowest score first: the best owns contested pixels
                if output == "probs":
                    logits = prediction.logits[np.arange(len(chosen)), chosen]
                    probs = (1 / (1 + np.exp(-logits))).astype(np.float32)
                    yield probs[0] if len(probs) == 1 else probs
                    continue
                if output == "labels":
                    yield masks[0].astype(np.uint8)
                    continue
            if output == "masks":
                yield masks, scores
            else:
                yield instance_png(masks, scores, [0] * len(masks), ["object"], order)

    return process


def sam_entries(found, image_id) -> list[dict]:
    """COCO results entries of one frame's ``(masks, scores)`` from :func:`sam_process`."""
    from segtools.inference.sam_io import coco_entries

    masks, scores = found
    return coco_entries(masks, scores, [1] * len(masks), image_id)
