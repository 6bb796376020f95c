"""``segtools predict`` over a video with an instance model or Segment Anything.

Semantic models of every back-end go through :func:`segtools.cli.video_opts.predict_video`;
the two here choose the sink for their kinds of output and run the same frame loop
(:func:`segtools.cli.video_opts.run_request`):

* an instance model (Mask / Faster R-CNN, YOLO-seg, a universal model with ``--task
  instance``): ``-o DIR`` one instance-id PNG per frame (``000042.png``, resumable), or
  ``--format coco -o results.json`` one COCO results file, ``image_id`` = frame index;
* SAM: the same prompts on every frame (pixels of the frames; each frame encoded once), or
  ``--everything``: ``-o DIR`` (a 0/1 label PNG per frame for one prompt, an instance-id PNG
  for several, ``--probs`` score maps), ``-o out.mp4`` for one prompt (a video of the mask),
  or ``--format coco``.

Only the standard library is imported at module level.
"""

from __future__ import annotations

from typing import Callable, Sequence


def _sink(request, fmt: str, entries: Callable, folder_classes=None, probs: bool = False):
    """The sink of a request: COCO results, or a frame folder."""
    from segtools.inference.video import FrameFolderSink, ResultsSink
    from segtools.io.meta import ClassMeta

    if fmt == "coco":
        return ResultsSink(request.output, entries, overwrite=request.overwrite)
    return FrameFolderSink(request.output, folder_classes or ClassMeta(), probs=probs)


def _refuse_instance_request(request) -> None:
    from segtools.errors import UsageError

    if request.to_video:
        raise UsageError("an instance model writes instance ids: give -o DIR (one 16-bit PNG per frame) or "
                         "--format coco -o results.json, not a video")
    if request.temporal is not None:
        raise UsageError("--temporal smooths class probabilities; an instance model has none")


def predict_instances_video(request, predict_many: Callable, class_names: Sequence[str], fmt: str) -> int:
    """Run an instance model (``predict_many``: images → one
    :class:`~segtools.inference.instances.Instances` each) over the frames of ``request``;
    ``class_names`` are the model's classes without the background."""
    from segtools.cli.video_opts import run_request
    from segtools.inference.video import instance_entries, instance_masks

    _refuse_instance_request(request)
    process = predict_many if fmt == "coco" else instance_masks(predict_many, class_names)
    return run_request(request, process, "predict", lambda source: _sink(request, fmt, instance_entries))


def predict_sam_video(request, runner, *, points=None, labels=None, boxes=None, multimask: bool = False,
                      clip: bool = False, probs: bool = False, fmt: str = "mask", everything=None) -> int:
    """Run SAM over the frames of ``request``: the same prompts on every frame (``points``
    1×P×2 with ``labels`` 1×P, ``boxes`` B×4, pixels of the frames), or ``everything``."""
    from segtools.cli.video_opts import run_request
    from segtools.errors import UsageError
    from segtools.inference.video import LabelVideoSink, sam_entries, sam_process
    from segtools.io.meta import ClassMeta

    one_mask = everything is None and (boxes is None or len(boxes) == 1)
    output = "masks" if fmt == "coco" else "probs" if probs else "labels" if one_mask else "instances"
    if request.to_video and output != "labels":
        raise UsageError("a video of masks takes one prompt (one point set or one box); several masks are "
                         "instance ids: give -o DIR (one PNG per frame) or --format coco -o results.json")
    binary = ClassMeta(names=("background", "object"), palette=((0, 0, 0), (255, 255, 255)), ignore_index=None)
    classes = ClassMeta(names=("object",), ignore_index=None) if probs else binary
    process = sam_process(runner, points=points, labels=labels, boxes=boxes, multimask=multimask, clip=clip,
                          output=output, everything=everything)

    def make_sink(source):
        if request.to_video:
            from segtools.io.video_out import VideoFileWriter

            fps = source.fps / max(1, request.selection.every)
            return LabelVideoSink(VideoFileWriter(request.output, fps, request.codec, request.overwrite), binary)
        return _sink(request, fmt, sam_entries, classes, probs)

    return run_request(request, process, "predict", make_sink)


def predict_detector_video(request, fmt: str, *, model, weights, arch, min_score: float, max_dets: int,
                           mask_threshold: float, device: str, amp, batch: int) -> int:
    """A Mask / Faster R-CNN (``segtools.inference.instances``) over the frames of ``request``."""
    from segtools.cli.options import parameters_as_flags
    from segtools.cli.predict_instances import FLAGS
    from segtools.inference.instances import InstanceRunner, load_detector

    _refuse_instance_request(request)  # before the model loads
    with parameters_as_flags(FLAGS):
        loaded = load_detector(model=model, weights=weights, arch=arch, box_score_thresh=min_score,
                               box_detections_per_img=max_dets)
        runner = InstanceRunner(loaded.model, device=device, amp=amp, batch=batch, mask_threshold=mask_threshold)
    return predict_instances_video(request, runner.predict_many, loaded.label_names[1:], fmt)


def predict_sam_options_video(request, options: dict, points: list, boxes: list, dataset_file) -> int:
    """``predict`` with SAM over a video, from ``predict``'s options (prompts parsed by
    :mod:`segtools.cli.predict_sam`: ``points`` ``(x, y, label)``, ``boxes`` ``(x0, y0, x1, y1)``)."""
    import numpy as np

    from segtools.errors import UsageError

    if dataset_file:
        raise UsageError("--prompts with box annotations labels a dataset of images, not a video; give the prompts "
                         "as --point/--box or a points/boxes JSON (the same prompts for every frame)")
    if options.get("embeddings"):
        raise UsageError("--embeddings keeps the encodings of images for the next run; a video's frames are "
                         "encoded once each as they come")
    everything = None
    if options.get("everything"):
        from segtools.cli.predict_sam import EVERYTHING_OPTIONS
        from segtools.inference.sam_auto import EverythingOptions

        everything = EverythingOptions(**{k: options[k] for k in EVERYTHING_OPTIONS
                                          if options.get(k) is not None}).check()
    from segtools.inference.device import resolve_device
    from segtools.inference.sam import SamRunner
    from segtools.inference.sam_io import load_sam_model

    point_xy = np.array([p[:2] for p in points], np.float64).reshape(1, -1, 2) if points else None
    labels = np.array([p[2] for p in points], np.int64).reshape(1, -1) if points else None
    box_arr = np.array(boxes, np.float64).reshape(-1, 4) if boxes else None
    single_point = point_xy is not None and point_xy.shape[1] == 1 and box_arr is None
    multimask = options.get("multimask")
    fmt = options.get("fmt") or "mask"
    probs = bool(options.get("probs"))
    one_mask = everything is None and (box_arr is None or len(box_arr) == 1)
    if request.to_video and (fmt == "coco" or probs or not one_mask):  # refused before the model loads
        raise UsageError("a video of masks takes one prompt (one point set or one box); several masks are "
                         "instance ids: give -o DIR (one PNG per frame) or --format coco -o results.json")
    runner = SamRunner(load_sam_model(options.get("model"), options.get("weights"), options.get("arch")),
                       resolve_device(options.get("device") or "auto"))
    return predict_sam_video(request, runner, points=point_xy, labels=labels, boxes=box_arr,
                             multimask=single_point if multimask is None else bool(multimask),
                             clip=bool(options.get("clip")), probs=probs, fmt=fmt, everything=everything)
