"""Stopping a video run: SIGINT/SIGTERM finish the output (playable, under its name), a killed
run leaves nothing under the final name, --fps-limit paces a source, frames/s at a terminal.

The runs are ``segtools visualize`` over a folder of frame masks (no model to load), paced by
``--fps-limit`` so that a signal arrives mid-run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from segtools.io.masks import write_label_mask  # noqa: E402
from segtools.io.meta import load_classes  # noqa: E402
from segtools.io.video import open_source  # noqa: E402

FRAMES = 40


@pytest.fixture(scope="module")
def mask_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("live") / "masks"
    folder.mkdir()
    meta = load_classes("camvid")
    rng = np.random.default_rng(0)
    for i in range(FRAMES):
        labels = np.repeat(np.repeat(rng.integers(0, 11, (6, 8)).astype(np.uint8), 8, 0), 8, 1)
        write_label_mask(labels, folder / f"{i:06d}.png", meta)
    return folder


def start(args, cwd) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "segtools", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_part(folder, proc, timeout=90.0) -> None:
    """Until the video's temp file exists (frames are being written)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(name.endswith(".part.mp4") for name in os.listdir(folder)):
            return
        if proc.poll() is not None:
            pytest.fail(f"ended early: {proc.stderr.read().decode()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("no frame was written in time")


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_run_and_leaves_a_playable_video(mask_folder, tmp_path, sig, code):
    proc = start(["visualize", mask_folder, "-o", "out.mp4", "--fps-limit", "10"], tmp_path)
    wait_for_part(tmp_path, proc)
    time.sleep(0.5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    err = err.decode()
    assert proc.returncode == code, err
    assert "stopped by" in err and "Traceback" not in err
    assert os.listdir(tmp_path) == ["out.mp4"]  # the temp file renamed, nothing else
    with open_source(str(tmp_path / "out.mp4")) as source:
        frames = list(source.frames())
    assert 1 <= len(frames) < FRAMES and frames[0].image.shape == (48, 64, 3)


def test_a_killed_run_leaves_no_video_under_the_final_name(mask_folder, tmp_path):
    proc = start(["visualize", mask_folder, "-o", "out.mp4", "--fps-limit", "10"], tmp_path)
    wait_for_part(tmp_path, proc)
    proc.kill()
    proc.wait(timeout=30)
    assert not (tmp_path / "out.mp4").exists()


def test_fps_limit_paces_the_frames_and_frames_per_second_show_at_a_terminal(mask_folder, tmp_path, cli,
                                                                              monkeypatch):
    from segtools.cli import common

    monkeypatch.setattr(common, "stderr_is_terminal", lambda: True)
    started = time.monotonic()
    result = cli("visualize", mask_folder, "-o", tmp_path / "out.mp4", "--max-frames", "6", "--fps-limit", "10")
    elapsed = time.monotonic() - started
    assert result.code == 0, result.stderr
    assert elapsed >= 0.5  # 6 frames at most 10 per second: 5 intervals of 0.1 s
    assert "frames/s" in result.stderr and "6 frame(s) to" in result.stderr
    monkeypatch.setattr(common, "stderr_is_terminal", lambda: False)
    quiet = cli("visualize", mask_folder, "-o", tmp_path / "again.mp4", "--max-frames", "2")
    assert "\r" not in quiet.stderr


@pytest.fixture
def mjpeg_stream():
    """A local HTTP MJPEG stream (multipart JPEG frames, 20 per second, no end): a live source."""
    import http.server
    import threading

    class Stream(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            try:
                for i in range(100_000):
                    data = cv2.imencode(".jpg", np.full((48, 64, 3), (i * 10) % 256, np.uint8))[1].tobytes()
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(data)
                                     + data + b"\r\n")
                    time.sleep(0.05)
            except OSError:  # the reader went away
                pass

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stream)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/live.mjpg"
    server.shutdown()
    server.server_close()


def test_a_live_stream_runs_until_a_signal_then_exits_0_with_a_playable_video(mjpeg_stream, tmp_path):
    with open_source(mjpeg_stream) as source:
        assert source.live and source.kind == "stream" and source.frame_count is None
    proc = start(["visualize", mjpeg_stream, "--classes", "camvid", "-o", "out.mp4"], tmp_path)
    wait_for_part(tmp_path, proc)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert "stopped by interrupt" in err.decode()
    with open_source(str(tmp_path / "out.mp4")) as source:
        assert len(list(source.frames())) >= 1
