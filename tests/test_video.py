"""Video in and out: sources, frame selection, the reader thread, writers and codecs, temporal
smoothing, and ``predict``/``postprocess``/``visualize`` over clips made here from CamVid frames."""

from __future__ import annotations

import itertools
import os
import socket
import threading

import numpy as np
import pytest
from conftest import assert_one_line_error

os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # before this process first uses FFmpeg: no decoder chatter
cv2 = pytest.importorskip("cv2")

from segtools.errors import InputError, OutputError, UsageError  # noqa: E402
from segtools.inference.temporal import EMASmoother, Temporal, flicker, parse_temporal  # noqa: E402
from segtools.io.mask_video import PaletteDecoder, colour_table, mask_frames, read_sidecar  # noqa: E402
from segtools.io.masks import read_label_mask  # noqa: E402
from segtools.io.meta import load_classes  # noqa: E402
from segtools.io.video import Frame, FrameRange, open_source, prefetch, public_url  # noqa: E402
from segtools.io.video_out import VideoFileWriter, writable_codecs  # noqa: E402

SIZE = (96, 128)  # H×W of the test clips: CamVid frames at a quarter of 360×480 keep the model quick


def camvid_frames(camvid, count: int, size=SIZE) -> list[np.ndarray]:
    """``count`` consecutive frames of the first CamVid val sequence, RGB, resized."""
    files = sorted((camvid / "val").glob("0016E5_*.png"))[:count]
    frames = [cv2.imread(str(f))[..., ::-1] for f in files]
    return [np.ascontiguousarray(cv2.resize(f, size[::-1], interpolation=cv2.INTER_AREA)) for f in frames]


def write_clip(path, frames, fourcc: str, fps: float = 30.0) -> str:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (frames[0].shape[1], frames[0].shape[0]))
    assert writer.isOpened(), f"this OpenCV cannot write {fourcc}"
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()
    return str(path)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """A lossless FFV1 clip (decodes to the frames exactly) and an MJPG one of 8 CamVid frames."""
    from conftest import CAMVID

    if not (CAMVID / "val").is_dir():
        pytest.skip("../shared/data/camvid is not present beside the project")
    folder = tmp_path_factory.mktemp("clips")
    frames = camvid_frames(CAMVID, 8)
    frame_dir = folder / "frames"
    frame_dir.mkdir()
    for i, frame in enumerate(frames):
        cv2.imwrite(str(frame_dir / f"f_{i}.png"), frame[..., ::-1])
    return {"frames": frames, "mkv": write_clip(folder / "clip.mkv", frames, "FFV1"),
            "avi": write_clip(folder / "clip.avi", frames, "MJPG"), "folder": str(frame_dir), "dir": folder}


# ---- sources and frame selection

def test_a_lossless_clip_reads_back_as_the_frames_it_was_made_of(clips):
    with open_source(clips["mkv"]) as source:
        assert (source.kind, source.frame_count, source.fps, source.live) == ("file", 8, 30.0, False)
        frames = list(source.frames())
    assert [f.index for f in frames] == list(range(8))
    assert all(np.array_equal(f.image, ref) for f, ref in zip(frames, clips["frames"]))
    assert frames[3].time == pytest.approx(3 / 30)


@pytest.mark.parametrize("selection, indices", [
    (FrameRange(every=3), [0, 3, 6]),
    (FrameRange(start=2, end=6), [2, 3, 4, 5]),
    (FrameRange(start=1, every=2, max_frames=2), [1, 3]),
    (FrameRange(start=0.1, end=0.2), [3, 4, 5]),  # seconds at 30 frames/s: frames 3..5
])
def test_every_start_end_and_max_frames_choose_the_frames(clips, selection, indices):
    for spec in (clips["mkv"], clips["folder"]):
        with open_source(spec) as source:
            frames = list(source.frames(selection))
        assert [f.index for f in frames] == indices, spec
        assert all(np.array_equal(f.image, clips["frames"][f.index]) for f in frames), spec


def test_a_frame_folder_is_read_in_natural_order_and_its_frames_must_share_a_size(tmp_path):
    for i in (10, 2, 1):
        cv2.imwrite(str(tmp_path / f"frame_{i}.png"), np.full((4, 6, 3), i, np.uint8))
    with open_source(str(tmp_path)) as source:
        assert [int(f.image[0, 0, 0]) for f in source.frames()] == [1, 2, 10]
    cv2.imwrite(str(tmp_path / "frame_11.png"), np.zeros((5, 6, 3), np.uint8))
    with open_source(str(tmp_path)) as source, pytest.raises(InputError, match="frame 3 is 6×5 px"):
        list(source.frames())


def test_range_options_are_checked():
    with pytest.raises(UsageError, match="every"):
        FrameRange(every=0)
    with pytest.raises(UsageError, match="not after"):
        FrameRange(start=5, end=5).bounds(30.0)
    from segtools.cli.video_opts import parse_frame_or_time

    assert parse_frame_or_time("0:01:05.5", "--start") == 65.5
    with pytest.raises(UsageError, match="--start '4.5'"):
        parse_frame_or_time("4.5", "--start")


def test_prefetch_keeps_order_passes_errors_after_the_frames_before_and_stops_its_thread():
    def frames():
        for i in range(5):
            yield Frame(i, 0.0, np.zeros(1))
        raise InputError("frame 5 is broken")

    seen = []
    with pytest.raises(InputError, match="frame 5"):
        for frame in prefetch(frames(), depth=2):
            seen.append(frame.index)
    assert seen == list(range(5))
    stopped = threading.Event()
    endless = (Frame(i, 0.0, np.zeros(1)) for i in itertools.count())
    for frame in prefetch(endless, depth=2, stop=stopped.set):
        if frame.index == 3:
            break
    assert stopped.is_set()
    assert not any(t.name == "segtools-video-reader" and t.is_alive() for t in threading.enumerate())


def test_prefetch_of_a_live_source_keeps_the_latest_frames():
    import time

    def frames():
        for i in range(50):
            yield Frame(i, 0.0, np.zeros(1))

    got = []
    for frame in prefetch(frames(), depth=2, latest=True):
        if not got:
            time.sleep(0.2)  # a slow consumer: the reader drops old frames meanwhile
        got.append(frame.index)
    assert got[-1] == 49 and len(got) < 50


# ---- bad sources

def test_a_truncated_video_raises_naming_the_frame_after_the_frames_before(clips, tmp_path):
    data = open(clips["avi"], "rb").read()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    seen = []
    with open_source(str(cut)) as source, pytest.raises(InputError, match=r"cut\.avi: frame (\d) cannot be decoded"):
        for frame in source.frames():
            seen.append(frame.index)
    assert 0 < len(seen) < 8 and seen == list(range(len(seen)))


def test_a_stream_that_cannot_be_opened_is_named_without_its_credentials():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(InputError) as caught:
        open_source(f"http://admin:hunter2@127.0.0.1:{port}/live.mjpg")
    message = str(caught.value)
    assert f"http://127.0.0.1:{port}/live.mjpg" in message and "hunter2" not in message and "admin" not in message
    assert public_url("rtsp://u:p@cam:554/a?b=1") == "rtsp://cam:554/a?b=1"


def test_bad_files_and_cameras_are_one_line_errors(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 2048)
    with pytest.raises(InputError, match="not a video OpenCV's FFmpeg can read"):
        open_source(str(junk))
    with pytest.raises(InputError, match="no such file"):
        open_source(str(tmp_path / "missing.mp4"))
    with pytest.raises(InputError, match="camera 99"):
        open_source("cam:99")


# ---- writers and codecs

def test_the_build_writes_mp4v_and_a_lossless_codec_and_names_them_when_one_is_refused(tmp_path):
    codecs = dict(writable_codecs())
    assert codecs.get("mp4v") == ".mp4" and "FFV1" in codecs
    writer = VideoFileWriter(tmp_path / "out.mp4", 30, codec="zzzz")
    with pytest.raises(OutputError) as caught:
        writer.write(np.zeros((8, 8, 3), np.uint8))
    assert "zzzz" in str(caught.value) and "mp4v (.mp4)" in str(caught.value)
    assert os.listdir(tmp_path) == []  # no temp file left


def test_a_video_appears_under_its_name_only_when_committed(tmp_path, clips):
    target = tmp_path / "out.mkv"
    writer = VideoFileWriter(target, 30)
    for frame in clips["frames"][:3]:
        writer.write(frame)
    assert not target.exists() and len(os.listdir(tmp_path)) == 1  # the temp file beside it
    writer.commit()
    assert os.listdir(tmp_path) == ["out.mkv"]
    with open_source(str(target)) as source:
        assert [np.array_equal(f.image, ref) for f, ref in zip(source.frames(), clips["frames"])] == [True] * 3
    aborted = VideoFileWriter(tmp_path / "gone.mp4", 30)
    aborted.write(clips["frames"][0])
    aborted.abort()
    assert os.listdir(tmp_path) == ["out.mkv"]


def test_palette_frames_decode_to_their_labels_exactly_and_nearly_after_lossy_noise():
    meta = load_classes("camvid")
    labels = np.random.default_rng(0).integers(0, 12, (40, 50)).astype(np.uint8)
    labels[labels == 11] = meta.ignore_index
    table = colour_table(meta)
    decode = PaletteDecoder(meta)
    assert np.array_equal(decode(table[labels]), labels)
    noisy = np.clip(table[labels].astype(int) + np.random.default_rng(1).integers(-6, 7, (40, 50, 3)), 0, 255)
    assert np.array_equal(decode(noisy.astype(np.uint8)), labels)


# ---- temporal smoothing

def test_ema_is_the_weighted_running_mean_and_alpha_one_changes_nothing():
    rng = np.random.default_rng(0)
    maps = [rng.random((3, 4, 5)).astype(np.float32) for _ in range(4)]
    smoother, expected = EMASmoother(0.3), maps[0]
    for probs in maps:
        out = smoother(probs)
        expected = probs if probs is maps[0] else 0.3 * probs + 0.7 * expected
        assert np.allclose(out, expected, atol=1e-6)
    assert all(np.array_equal(EMASmoother(1.0)(p), p) for p in maps)
    assert parse_temporal("ema:0.25") == Temporal("ema", 0.25) and parse_temporal(None) is None
    for bad in ("ema:0", "ema:1.5", "median:3", "ema:x"):
        with pytest.raises(UsageError):
            parse_temporal(bad)


def test_flicker_is_the_share_of_pixels_that_change_between_neighbours():
    a = np.zeros((4, 4), np.uint8)
    b = a.copy()
    b[:2] = 1
    assert flicker([a, b, b, a]) == pytest.approx((8 + 0 + 8) / 48)
    assert np.isnan(flicker([a]))


# ---- the commands

pytest.importorskip("torch")


def test_predict_over_a_clip_equals_predict_over_its_frames(clips, cli, tmp_path):
    """Each frame of a lossless clip is labelled as the same picture given as a PNG is, up to
    float rounding: the two runs allocate their buffers differently, which moves a few argmax
    ties (< 0.5 % of pixels), while a neighbouring frame differs in far more."""
    images = cli("predict", clips["folder"], "-o", tmp_path / "images", "--batch", "1", "--backend", "torch")
    assert images.code == 0, images.stderr
    result = cli("predict", clips["mkv"], "-o", tmp_path / "frames", "--every", "2", "--batch", "1", "--backend", "torch")
    assert result.code == 0, result.stderr
    assert sorted(os.listdir(tmp_path / "frames")) == ["000000.png", "000002.png", "000004.png", "000006.png"]
    for index in (0, 2, 4, 6):
        frame = read_label_mask(str(tmp_path / "frames" / f"{index:06d}.png"))
        image = read_label_mask(str(tmp_path / "images" / f"f_{index}.png"))
        neighbour = read_label_mask(str(tmp_path / "images" / f"f_{index + 1}.png"))
        assert np.mean(frame.labels != image.labels) < 0.005
        assert np.mean(frame.labels != neighbour.labels) > 4 * np.mean(frame.labels != image.labels) + 0.01
        assert frame.meta.names == image.meta.names and frame.meta.names[0] == "Sky"


def test_predict_to_a_video_writes_the_palette_and_its_classes_and_resumes_a_frame_folder(clips, cli, tmp_path):
    result = cli("predict", clips["mkv"], "-o", tmp_path / "masks.mkv", "--max-frames", "4")
    assert result.code == 0, result.stderr
    assert read_sidecar(tmp_path / "masks.mkv").names[0] == "Sky"
    assert cli("predict", clips["mkv"], "-o", tmp_path / "frames", "--max-frames", "4").code == 0
    frames, meta, _ = mask_frames(str(tmp_path / "masks.mkv"))
    for frame in frames:  # FFV1 is lossless: the video's colours decode to the labels
        assert np.array_equal(frame.image, read_label_mask(str(tmp_path / "frames" / f"{frame.index:06d}.png")).labels)
    # resume: remove two frames, keep the others untouched
    kept = tmp_path / "frames" / "000000.png"
    before = kept.stat().st_mtime_ns
    os.unlink(tmp_path / "frames" / "000002.png")
    os.unlink(tmp_path / "frames" / "000003.png")
    again = cli("predict", clips["mkv"], "-o", tmp_path / "frames", "--max-frames", "4")
    assert again.code == 0 and "resuming: 2 frame(s)" in again.stderr and "2 frame(s) to" in again.stderr
    assert kept.stat().st_mtime_ns == before
    assert sorted(os.listdir(tmp_path / "frames")) == [f"{i:06d}.png" for i in range(4)]


def test_temporal_smoothing_lowers_flicker_and_ema_one_is_no_smoothing(clips, cli, tmp_path):
    def labels(folder):
        return [read_label_mask(str(folder / name)).labels for name in sorted(os.listdir(folder))]

    for name, extra in (("plain", []), ("ema1", ["--temporal", "ema:1"]), ("ema", ["--temporal", "ema:0.3"])):
        result = cli("predict", clips["mkv"], "-o", tmp_path / name, *extra)
        assert result.code == 0, result.stderr
    plain, ema1, smoothed = labels(tmp_path / "plain"), labels(tmp_path / "ema1"), labels(tmp_path / "ema")
    # ema:1 takes the probabilities' argmax, the plain run the logits': the same but for float ties
    assert all(np.mean(a != b) < 0.001 for a, b in zip(plain, ema1))
    assert flicker(smoothed) < flicker(plain)


def test_a_truncated_clip_keeps_the_frames_before_and_fails_in_one_line(clips, cli, tmp_path):
    data = open(clips["avi"], "rb").read()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    result = cli("predict", cut, "-o", tmp_path / "frames")
    assert_one_line_error(result, 1)
    assert "frame" in result.stderr and "truncated" in result.stderr
    written = len(os.listdir(tmp_path / "frames"))
    assert 0 < written < 8 and f"frame {written} cannot be decoded" in result.stderr
    video = cli("predict", cut, "-o", tmp_path / "cut.mp4")
    assert_one_line_error(video, 1)
    with open_source(str(tmp_path / "cut.mp4")) as source:  # the frames before it, playable
        assert len(list(source.frames())) == written


def test_video_usage_errors(clips, cli, tmp_path):
    cases = [
        (["predict", clips["mkv"]], "-o out.mp4"),
        (["predict", clips["mkv"], "--probs", "-o", tmp_path / "p.mp4"], "--probs"),
        (["predict", clips["folder"], "-o", tmp_path / "d", "--every", "0"], "--every"),
        (["predict", clips["mkv"], "-o", tmp_path / "d", "--start", "4.5"], "--start"),
        (["predict", clips["mkv"], "-o", tmp_path / "d", "--temporal", "ema:3"], "--temporal"),
        (["predict", clips["mkv"], "-o", tmp_path / "o.png"], "a folder"),
        (["predict", "--camera", "0", clips["mkv"], "-o", tmp_path / "o.mp4"], "--camera"),
        (["postprocess", tmp_path / "none.png", "--every", "2"], "--every"),
    ]
    for args, flag in cases:
        result = cli(*args)
        assert_one_line_error(result)
        assert result.code == 2, (args, result.stderr)
        assert flag is None or flag in result.stderr, (args, result.stderr)
    refused = cli("predict", clips["mkv"], "-o", tmp_path / "o.mp4", "--codec", "zzzz", "--max-frames", "1")
    assert_one_line_error(refused, 1)
    assert "mp4v (.mp4)" in refused.stderr and not (tmp_path / "o.mp4").exists()
    assert not any(name.endswith(".part.mp4") for name in os.listdir(tmp_path))


def test_postprocess_and_visualize_over_a_mask_video_and_a_frame_folder(clips, cli, tmp_path):
    assert cli("predict", clips["mkv"], "-o", tmp_path / "frames", "--max-frames", "3").code == 0
    assert cli("postprocess", tmp_path / "frames", "-o", tmp_path / "masks.mkv").code == 0  # frames → mask video
    # postprocess of the mask video = postprocess of each frame mask
    assert cli("postprocess", tmp_path / "masks.mkv", "--min-area", "40", "-o", tmp_path / "clean").code == 0
    assert cli("postprocess", tmp_path / "frames", "--min-area", "40", "-o", tmp_path / "clean_png").code == 0
    for i in range(3):
        a = read_label_mask(str(tmp_path / "clean" / f"{i:06d}.png")).labels
        b = read_label_mask(str(tmp_path / "clean_png" / f"{i:06d}.png")).labels
        assert np.array_equal(a, b)
    # visualize over the clip: each picture is the overlay of that frame
    result = cli("visualize", tmp_path / "frames", "--over", clips["mkv"], "-o", tmp_path / "over")
    assert result.code == 0, result.stderr
    from segtools.viz.overlay import overlay_labels

    meta = read_label_mask(str(tmp_path / "frames" / "000001.png")).meta
    expected = overlay_labels(clips["frames"][1], read_label_mask(str(tmp_path / "frames" / "000001.png")).labels, meta)
    picture = cv2.imread(str(tmp_path / "over" / "000001.png"))[..., ::-1]
    assert np.array_equal(picture, expected)
    video = cli("visualize", tmp_path / "masks.mkv", "--over", clips["mkv"], "-o", tmp_path / "over.mp4")
    assert video.code == 0, video.stderr
    with open_source(str(tmp_path / "over.mp4")) as source:
        assert len(list(source.frames())) == 3
    no_classes = tmp_path / "bare.mkv"
    os.rename(tmp_path / "masks.mkv", no_classes)
    missing = cli("visualize", no_classes, "-o", tmp_path / "x.mp4")
    assert_one_line_error(missing, 1)
    assert "--classes" in missing.stderr
