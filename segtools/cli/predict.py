"""``segtools predict``: run a model on images; label PNGs (with legend) or score maps out."""

from __future__ import annotations

from typing import List, Optional

import typer
from typing_extensions import Annotated

from segtools.cli.common import info, progress
from segtools.cli.options import ClassesOpt, DaskOpt, JobsOpt, OutputOpt, OverwriteOpt, ShardOpt
from segtools.cli.predict_backends import BackendOpt, MeanOpt, ResizeOpt, ScaleOpt, StdOpt, TaskOpt, ThreadsOpt
from segtools.cli.predict_instances import InstanceFormatOpt, MaskThresholdOpt, MaxDetsOpt, MinScoreOpt
from segtools.cli.predict_sam import (BoxNmsOpt, BoxOpt, ClipOpt, CropLayersOpt, EmbeddingsOpt, EverythingOpt,
                                   MinRegionOpt, MultimaskOpt, PointOpt, PointsPerBatchOpt, PointsPerSideOpt,
                                   PredIouOpt, PromptsOpt, StabilityOpt)
from segtools.cli.video_opts import (CameraOpt, CodecOpt, EndOpt, EveryOpt, FpsLimitOpt, MaxFramesOpt,
                                    StartOpt, TemporalOpt)

ModelOpt = Annotated[Optional[str], typer.Option(
    "--model", "-m", help="Registry name (see `segtools weights list`) or a checkpoint/TorchScript file.")]
WeightsOpt = Annotated[Optional[str], typer.Option("--weights", "-w", help="Checkpoint file (state dict, segtools checkpoint, .safetensors).")]
ArchOpt = Annotated[Optional[str], typer.Option("--arch", help="Architecture of a plain state dict, e.g. deeplabv3-resnet50, unet.")]


def predict(
    inputs: Annotated[Optional[List[str]], typer.Argument(help="Images: files, folders, globs, @list.txt, or - for stdin.")] = None,
    model: ModelOpt = None,
    weights: WeightsOpt = None,
    arch: ArchOpt = None,
    output: OutputOpt = None,
    probs: Annotated[bool, typer.Option("--probs", help="Write class probabilities (.npz score map) instead of labels.")] = False,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda[:N] or mps.")] = "auto",
    batch: Annotated[int, typer.Option("--batch", "-b", min=1, help="Images (or tiles) per forward pass.")] = 4,
    amp: Annotated[bool, typer.Option("--amp", help="Mixed precision (fp16 on GPU, bf16 on CPU; fp32 with a warning on a CPU without native bf16, where it would run slower).")] = False,
    amp_dtype: Annotated[Optional[str], typer.Option("--amp-dtype", help="Precision for --amp: fp16 or bf16.")] = None,
    tta: Annotated[Optional[str], typer.Option("--tta", help="Test-time augmentation: flip[=h|v|hv][,scales=0.75,1,1.25].")] = None,
    tile: Annotated[Optional[str], typer.Option("--tile", help="Sliding window: tile size N or HEIGHTxWIDTH in pixels.")] = None,
    overlap: Annotated[Optional[str], typer.Option("--overlap", help="Tile overlap in pixels (64) or a fraction of the tile (0.25) (default: 0.25, a quarter of the tile; 0 shows seams).")] = None,
    blend: Annotated[str, typer.Option("--blend", help="Tile blending: gaussian, linear or mean.")] = "gaussian",
    classes: ClassesOpt = None,
    overwrite: OverwriteOpt = False,
    camera: CameraOpt = None,
    every: EveryOpt = 1,
    start: StartOpt = None,
    end: EndOpt = None,
    max_frames: MaxFramesOpt = None,
    temporal: TemporalOpt = None,
    fps_limit: FpsLimitOpt = None,
    codec: CodecOpt = None,
    fmt: InstanceFormatOpt = None,
    min_score: MinScoreOpt = None,
    max_dets: MaxDetsOpt = None,
    mask_threshold: MaskThresholdOpt = None,
    backend: BackendOpt = None,
    threads: ThreadsOpt = None,
    resize: ResizeOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    scale: ScaleOpt = None,
    task: TaskOpt = None,
    point: PointOpt = None,
    box: BoxOpt = None,
    prompts: PromptsOpt = None,
    multimask: MultimaskOpt = None,
    everything: EverythingOpt = False,
    points_per_side: PointsPerSideOpt = None,
    points_per_batch: PointsPerBatchOpt = None,
    pred_iou_thresh: PredIouOpt = None,
    stability_thresh: StabilityOpt = None,
    box_nms: BoxNmsOpt = None,
    crop_layers: CropLayersOpt = None,
    min_region: MinRegionOpt = None,
    embeddings: EmbeddingsOpt = None,
    clip: ClipOpt = False,
    dask: DaskOpt = None,
    shard: ShardOpt = None,
    jobs: JobsOpt = 1,
) -> None:
    """Segment images with a model: a label PNG per image (class names and palette inside),
    or with --probs a score map (.npz), at the image's original size.

    One input (a file or -) goes to -o FILE or stdout; a batch (a folder, glob, @list or
    several inputs) needs -o DIR and keeps the relative names. Same-size images are batched.

    Example: segtools predict street.jpg --model deeplabv3-mnv3-voc | segtools visualize --over street.jpg -o overlay.png

    Video (a file, cam:N or --camera N, a stream URL, or a frame folder with -o out.mp4): -o out.mp4 writes the
    labels in the palette, -o DIR one label PNG per frame (resumable); see docs/video.md.

    Example: segtools predict clip.mp4 --temporal ema:0.5 -o masks.mkv
    """
    from segtools.cli import predict_backends, predict_cluster

    if jobs != 1:  # worker processes: SAM's boxes → masks dataset job so far
        from segtools.cli.predict_sam import refuse_jobs

        refuse_jobs(locals())
    if predict_backends.wants_backend(**locals()):  # ONNX Runtime, transformers: no torch
        return predict_backends.predict_with_backend(**locals())
    import sys

    from segtools.cli.options import in_flags, output_targets, parse_overlap, parse_size
    from segtools.errors import UsageError
    from segtools.inference.files import legend, predict_files
    from segtools.inference.predictor import DEFAULT_OVERLAP, Predictor, Tiling
    from segtools.inference.tta import parse_tta
    from segtools.io.batch import photo_inputs
    from segtools.weights.loader import load_model

    from segtools.cli import predict_sam

    if predict_sam.wants_sam(locals()):  # Segment Anything: prompts or --everything
        return predict_sam.predict_sam(locals())
    from segtools.cli import predict_instances as instance_cli

    if instance_cli.wants_instances(model, weights, arch):
        from segtools.cli.video_opts import predict_options_request

        return instance_cli.predict_instances(
            inputs or [], model=model, weights=weights, arch=arch, output=output, fmt=fmt, min_score=min_score,
            max_dets=max_dets, mask_threshold=mask_threshold, device=device, batch=batch, amp=amp,
            amp_dtype=amp_dtype, overwrite=overwrite, dask=dask, shard=shard,
            refused={"--probs": probs, "--tta": tta, "--tile": tile, "--classes": classes, "--temporal": temporal},
            video=predict_options_request(locals()))
    instance_cli.refuse_instance_options(fmt, min_score, max_dets, mask_threshold)
    if tile is None and overlap is not None:
        raise UsageError("--overlap needs --tile")
    if amp_dtype is not None and amp_dtype not in ("fp16", "bf16"):
        raise UsageError(f"--amp-dtype {amp_dtype!r}: choose fp16 or bf16")
    tiling = Tiling(parse_size(tile, "--tile"), DEFAULT_OVERLAP if overlap is None else parse_overlap(overlap),
                    blend) if tile else None
    augment = parse_tta(tta)
    specs = inputs or ["-"]
    from segtools.cli.video_opts import predict_video, video_request

    video = video_request(specs, output, camera=camera, every=every, start=start, end=end, max_frames=max_frames,
                          temporal=temporal, fps_limit=fps_limit, codec=codec, overwrite=overwrite, probs=probs)
    if video is None:
        if specs == ["-"] and sys.stdin.isatty():
            raise UsageError("no input: give image files or a folder, or pipe an image into stdin")
        from segtools.cli.options import parse_shard, shard_items

        # a folder of photos with their masks beside them (x.jpg, x_mask.png): the photos
        items = shard_items(photo_inputs(specs, arrays=True), parse_shard(shard))
        targets = output_targets(items, specs, output, ".npz" if probs else ".png", overwrite)
    if predict_cluster.wanted(dask):  # each worker loads the model once and writes its items
        return predict_cluster.predict_on_cluster(
            dask, items if video is None else [], targets if video is None else [], video, model=model,
            weights=weights, arch=arch, classes=classes, device=device, amp=(amp_dtype or True) if amp else False,
            batch=batch, tiling=tiling, tta=augment, probs=probs, overwrite=overwrite)
    loaded = load_model(model=model, weights=weights, arch=arch, classes=classes, device="cpu")
    if loaded.note:
        info(in_flags(loaded.note, {"model": "--model"}))
    predictor = Predictor(loaded.model, loaded.preprocessing, device=device, amp=(amp_dtype or True) if amp else False,
                          batch=batch, tiling=tiling, tta=augment)
    if video is not None:
        predict_video(video, predictor, legend(loaded.classes, loaded.num_classes), probs=probs)
        return
    with progress(len(items), "predict") as advance:
        count = predict_files(predictor, [item.path for item in items], targets,
                              legend(loaded.classes, loaded.num_classes), probs=probs, overwrite=overwrite,
                              on_done=advance)
    if count > 1:
        info(f"predicted {count} images")


def register(app: typer.Typer) -> None:
    from segtools.cli.video_opts import names_no_video
    from segtools.io.remote import with_storage

    # s3://, gs://, memory://… inputs and output: each image read and written by whoever runs it (a video: staged)
    app.command("predict")(with_storage(predict, streamed=("inputs", "output"), streams=names_no_video))
