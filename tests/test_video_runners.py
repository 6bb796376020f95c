"""Every runner over a video: the default ONNX model (no torch), ``--backend torch``, an
instance model (COCO results with ``image_id`` = frame index, instance-id PNGs per frame) and
Segment Anything (the same prompts on every frame), each compared with the same command
over the clip's frames given as images; and the refusals that come before a model loads.

The clips are made here from CamVid frames (lossless FFV1, so a frame decodes to the picture
the image run reads); the instance model and SAM are small and random-initialised, as in
test_detection_cli.py and test_sam_cli.py.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import assert_one_line_error

cv2 = pytest.importorskip("cv2")

from segtools.io.masks import read_label_mask  # noqa: E402

SIZE = (96, 128)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """An FFV1 clip of 4 consecutive CamVid val frames and the same frames as PNGs."""
    from conftest import CAMVID

    files = sorted((CAMVID / "val").glob("0016E5_*.png"))[:4]
    if not files:
        pytest.skip("../shared/data/camvid is not present beside the project")
    folder = tmp_path_factory.mktemp("runners")
    frames_dir = folder / "frames"
    frames_dir.mkdir()
    writer = cv2.VideoWriter(str(folder / "clip.mkv"), cv2.VideoWriter_fourcc(*"FFV1"), 30.0, SIZE[::-1])
    for i, name in enumerate(files):
        frame = cv2.resize(cv2.imread(str(name)), SIZE[::-1], interpolation=cv2.INTER_AREA)
        writer.write(frame)
        cv2.imwrite(str(frames_dir / f"{i:06d}.png"), frame)
    writer.release()
    pair = folder / "frames_1_2"  # frames 1 and 2 as images, named by index (a COCO image_id is the stem)
    pair.mkdir()
    for i in (1, 2):
        (pair / f"{i:06d}.png").write_bytes((frames_dir / f"{i:06d}.png").read_bytes())
    return {"mkv": str(folder / "clip.mkv"), "frames": frames_dir, "pair": pair, "dir": folder}


def _labels(folder, name):
    return read_label_mask(str(folder / name)).labels


def test_the_default_onnx_model_runs_a_clip_without_torch_as_it_runs_the_frames(clip, tmp_path):
    pytest.importorskip("onnxruntime")
    import subprocess
    import sys

    from segtools.cli.predict_backends import default_onnx

    if default_onnx(None) is None:
        pytest.skip("the bundled ONNX twin of the default model is not here")
    # in a fresh process: the video path of the default model imports neither torch nor torchvision
    code = ("import sys; from segtools.cli.app import main\n"
            f"sys.argv = ['segtools', 'predict', {clip['mkv']!r}, '-o', {str(tmp_path / 'video')!r}, '--batch', '1']\n"
            "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    from conftest import run_cli

    images = run_cli("predict", str(clip["frames"]), "-o", str(tmp_path / "images"), "--batch", "1")
    assert images.code == 0, images.stderr
    assert sorted(os.listdir(tmp_path / "video")) == sorted(os.listdir(tmp_path / "images"))
    for name in sorted(os.listdir(tmp_path / "images")):  # the same runner on the same pixels: the same labels
        assert np.array_equal(_labels(tmp_path / "video", name), _labels(tmp_path / "images", name))


def test_temporal_smoothing_works_on_the_onnx_runners_probabilities(clip, cli, tmp_path):
    pytest.importorskip("onnxruntime")
    from segtools.cli.predict_backends import default_onnx
    from segtools.inference.temporal import flicker

    if default_onnx(None) is None:
        pytest.skip("the bundled ONNX twin of the default model is not here")
    runs = {}
    for name, extra in (("plain", []), ("ema1", ["--temporal", "ema:1"]), ("ema", ["--temporal", "ema:0.3"])):
        result = cli("predict", clip["mkv"], "-o", tmp_path / name, *extra)
        assert result.code == 0, result.stderr
        runs[name] = [_labels(tmp_path / name, n) for n in sorted(os.listdir(tmp_path / name))]
    assert all(np.mean(a != b) < 0.001 for a, b in zip(runs["plain"], runs["ema1"]))
    assert flicker(runs["ema"]) < flicker(runs["plain"])


def test_backend_torch_takes_the_torch_model_over_a_clip(clip, cli, tmp_path):
    pytest.importorskip("torch")
    video = cli("predict", clip["mkv"], "-o", tmp_path / "video", "--backend", "torch", "--batch", "1",
                "--max-frames", "2")
    images = cli("predict", str(clip["frames"]), "-o", tmp_path / "images", "--backend", "torch", "--batch", "1")
    assert video.code == 0 and images.code == 0, video.stderr + images.stderr
    for name in ("000000.png", "000001.png"):  # float ties aside (see test_video.py)
        assert np.mean(_labels(tmp_path / "video", name) != _labels(tmp_path / "images", name)) < 0.005


def test_refusals_come_before_the_model_loads(clip, cli, tmp_path):
    """A missing checkpoint would be exit 1 naming the file; these are usage errors first."""
    missing = str(tmp_path / "missing.pt")
    cases = [
        (["--probs", "-o", tmp_path / "p.mp4", "--weights", missing, "--arch", "unet"], "--probs"),
        (["--probs", "-o", tmp_path / "p.mp4"], "--probs"),
        (["--arch", "maskrcnn-resnet50-fpn", "--weights", missing, "-o", tmp_path / "i.mp4"], "-o DIR"),
        (["--arch", "maskrcnn-resnet50-fpn", "--weights", missing, "--format", "coco", "-o", tmp_path / "r.mp4"],
         "results.json"),
        (["--weights", missing, "--arch", "sam-vit-b", "--box", "1,1,9,9", "--box", "2,2,8,8",
          "-o", tmp_path / "s.mp4"], "one prompt"),
        (["--weights", missing, "--arch", "sam-vit-b", "--point", "5,5", "--embeddings", tmp_path / "e",
          "-o", tmp_path / "s"], "--embeddings"),
    ]
    for extra, words in cases:
        result = cli("predict", clip["mkv"], *map(str, extra))
        assert_one_line_error(result, 2)
        assert words in result.stderr, (extra, result.stderr)
        assert "missing.pt" not in result.stderr
    assert not [n for n in os.listdir(tmp_path) if n.endswith((".mp4", ".json"))]


def test_the_writer_thread_keeps_the_order_and_raises_a_failed_write_after_aborting():
    from segtools.inference.video import BackgroundSink, run_frames
    from segtools.io.video import Frame

    class Recorder:
        def __init__(self, fail_at=None):
            self.done, self.written, self.state, self.fail_at = set(), [], "open", fail_at

        def write(self, frame, result):
            if frame.index == self.fail_at:
                raise OSError("disk full")
            self.written.append((frame.index, result))

        def commit(self):
            self.state = "committed"

        def abort(self):
            self.state = "aborted"

    frames = [Frame(i, i / 30, np.full((2, 2, 3), i, np.uint8)) for i in range(20)]
    sink = Recorder()
    assert run_frames(frames, lambda images: (int(im[0, 0, 0]) * 10 for im in images), BackgroundSink(sink, 2)) == 20
    assert sink.written == [(i, i * 10) for i in range(20)] and sink.state == "committed"
    failing = Recorder(fail_at=5)
    with pytest.raises(OSError, match="disk full"):
        run_frames(frames, lambda images: (0 for _ in images), BackgroundSink(failing, 2))
    assert failing.state == "aborted" and [i for i, _ in failing.written] == [0, 1, 2, 3, 4]


# ---- instance models and SAM (torch)

@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    torch = pytest.importorskip("torch")
    import golden_detection

    from segtools.models.detection import build_detector
    from segtools.weights.checkpoint import make_checkpoint, save_checkpoint

    sizes = {"min_size": 128, "max_size": 192}
    with torch.device("meta"):
        model = build_detector("maskrcnn-resnet50-fpn", 91, **sizes)
    golden_detection.fill_detector(model)
    path = tmp_path_factory.mktemp("det") / "maskrcnn.pt"
    save_checkpoint(path, make_checkpoint("maskrcnn-resnet50-fpn", 91, model.state_dict(), arch_options=sizes))
    return path


@pytest.mark.usefixtures("torch_one_thread")
def test_an_instance_model_over_a_clip_writes_coco_results_by_frame_index_and_id_masks(clip, cli, tmp_path,
                                                                                       detector):
    common = ["--weights", str(detector), "--arch", "maskrcnn-resnet50-fpn", "--min-score", "0.05",
              "--batch", "1"]
    video = cli("predict", clip["mkv"], *common, "--format", "coco", "-o", tmp_path / "r.json", "--start", "1",
                "--max-frames", "2")
    assert video.code == 0, video.stderr
    entries = json.loads((tmp_path / "r.json").read_text())
    assert entries and {e["image_id"] for e in entries} <= {1, 2} and {e["image_id"] for e in entries} == {1, 2}
    # each frame's entries are the image run's on that frame (there the id is the file stem, 000001 → 1)
    image = cli("predict", clip["pair"], *common, "--format", "coco", "-o", tmp_path / "images.json")
    assert image.code == 0, image.stderr
    assert entries == json.loads((tmp_path / "images.json").read_text())
    masks = cli("predict", clip["mkv"], *common, "-o", tmp_path / "masks", "--start", "1", "--max-frames", "1")
    assert masks.code == 0, masks.stderr
    image = cli("predict", clip["frames"] / "000001.png", *common, "-o", tmp_path / "one.png")
    assert image.code == 0, image.stderr
    assert os.listdir(tmp_path / "masks") == ["000001.png"]
    assert (tmp_path / "masks" / "000001.png").read_bytes() == (tmp_path / "one.png").read_bytes()
    assert read_label_mask(str(tmp_path / "one.png")).meta.kind == "instance"


@pytest.fixture(scope="module")
def sam_weights(tmp_path_factory):
    torch = pytest.importorskip("torch")
    import golden_util

    from segtools.models.sam.model import SamConfig, build_sam

    model = build_sam(SamConfig(**golden_util.SAM_TINY))
    golden_util.fill_deterministic(model)
    path = tmp_path_factory.mktemp("sam") / "tiny_sam.pth"
    torch.save(model.state_dict(), path)
    return path


def test_sam_prompts_apply_to_every_frame_as_to_each_frame_alone(clip, cli, tmp_path, sam_weights):
    weights = ["--weights", str(sam_weights)]
    one = cli("predict", clip["mkv"], *weights, "--point", "60,45", "-o", tmp_path / "frames", "--max-frames", "2")
    assert one.code == 0, one.stderr
    boxes = cli("predict", clip["mkv"], *weights, "--box", "10,10,60,50", "--box", "70,40,120,90",
                "--format", "coco", "-o", tmp_path / "r.json", "--start", "1", "--max-frames", "2")
    assert boxes.code == 0, boxes.stderr
    entries = json.loads((tmp_path / "r.json").read_text())
    assert [e["image_id"] for e in entries] == [1, 1, 2, 2]
    images = cli("predict", clip["frames"], *weights, "--point", "60,45", "-o", tmp_path / "images")
    assert images.code == 0, images.stderr
    for index in (0, 1):  # byte for byte what the image run writes for that frame
        assert (tmp_path / "frames" / f"{index:06d}.png").read_bytes() == \
            (tmp_path / "images" / f"{index:06d}.png").read_bytes()
    image = cli("predict", clip["pair"], *weights, "--box", "10,10,60,50", "--box", "70,40,120,90", "--format", "coco",
                "-o", tmp_path / "images.json")
    assert image.code == 0, image.stderr
    assert entries == json.loads((tmp_path / "images.json").read_text())  # frames 1, 2 = images 000001, 000002
    # one prompt → a video of the mask (lossless FFV1: the labels come back)
    video = cli("predict", clip["mkv"], *weights, "--point", "60,45", "-o", tmp_path / "mask.mkv", "--max-frames", "2")
    assert video.code == 0, video.stderr
    from segtools.io.mask_video import mask_frames

    frames, meta, _ = mask_frames(str(tmp_path / "mask.mkv"))
    for frame in frames:
        assert np.array_equal(frame.image, _labels(tmp_path / "frames", f"{frame.index:06d}.png"))
    assert meta.names == ("background", "object")
