"""``postprocess`` and ``visualize`` over mask videos and folders of per-frame masks.

The inputs are the masks ``segtools predict`` writes for a video: a mask video (its classes
beside it in ``NAME.classes.json``, or ``--classes``) or a frame folder (``000042.png``, the
frame index in the name). ``visualize --over clip.mp4`` draws each mask frame over the photo
frame of the same index. The frame loop, signals and the output are those of
:func:`segtools.cli.video_opts.run_request`.
"""

from __future__ import annotations

from typing import Optional

from segtools.cli.video_opts import VideoRequest, run_request
from segtools.errors import UsageError


def _masks_opener(request: VideoRequest, classes, palette):
    from segtools.io.mask_video import mask_frames

    def open_frames():
        frames, meta, source = mask_frames(request.source, request.selection, classes, palette)
        source.meta = meta
        return frames, source

    return open_frames


def _output_fps(source) -> float:
    from segtools.io.video import DEFAULT_FPS

    return getattr(source, "fps", None) or DEFAULT_FPS


def postprocess_video(request: VideoRequest, options) -> int:
    """``segtools postprocess`` over a mask video or frame folder: each frame cleaned by
    :func:`segtools.morphology.postprocess.postprocess`, written as a mask video or frames."""
    from segtools.inference.video import FrameFolderSink, LabelVideoSink
    from segtools.io.masks import LabelMask
    from segtools.io.meta import ClassMeta
    from segtools.morphology.postprocess import postprocess

    if options.thresholded:
        raise UsageError("--threshold and --min-confidence apply to score maps; a video holds label masks")
    if options.instances and request.to_video:
        raise UsageError("--instances writes instance ids: give -o DIR (one 16-bit PNG per frame), not a video")
    state = {}

    def make_sink(source):
        meta = options.classes or source.meta or ClassMeta()
        state["meta"] = meta
        if request.to_video:
            from segtools.io.video_out import VideoFileWriter

            return LabelVideoSink(VideoFileWriter(request.output, _output_fps(source), request.codec,
                                                  request.overwrite), meta)
        return FrameFolderSink(request.output, meta)

    def process(items):
        for labels in items:
            cleaned, meta = postprocess(LabelMask(labels, state["meta"], request.source), options)
            yield (cleaned, meta) if options.instances else cleaned

    return run_request(request, process, "postprocess", make_sink,
                       _masks_opener(request, options.classes, None))


def visualize_video(request: VideoRequest, over: Optional[str], classes, palette, *, alpha: float = 0.5,
                    contours: bool = False, thickness: Optional[int] = None, ext: str = "png") -> int:
    """``segtools visualize`` over a mask video or frame folder: each frame coloured, or drawn
    over ``over`` (a video or a frame folder of photos, paired by frame index)."""
    from segtools.inference.video import PictureSink
    from segtools.io.mask_video import mask_frames, pair_by_index
    from segtools.io.video import FrameRange, open_source
    from segtools.viz.video import frame_painter

    state = {}

    def open_frames():
        masks, meta, source = mask_frames(request.source, request.selection, classes, palette)
        state["meta"] = classes or meta
        if over is None:
            return masks, source
        photos = open_source(over)
        source.fps = photos.fps
        first = request.selection.start

        def paired():
            try:
                yield from pair_by_index(masks, photos.frames(FrameRange(start=first)), photos.name)
            finally:
                photos.close()

        return paired(), source

    def make_sink(source):
        if request.to_video:
            from segtools.io.video_out import VideoFileWriter

            return PictureSink(VideoFileWriter(request.output, _output_fps(source), request.codec, request.overwrite))
        return PictureSink(folder=request.output, suffix=".jpg" if ext.lower().lstrip(".") in ("jpg", "jpeg") else ".png")

    def process(items):
        yield from frame_painter(state["meta"], alpha=alpha, contours=contours, thickness=thickness)(items)

    return run_request(request, process, "visualize", make_sink, open_frames)
