"""Downloads against a real HTTP server on 127.0.0.1: success, resume, bad hash, 404, stall."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from segtools.errors import InputError
from segtools.weights.download import download, hash_prefix_from_name

PAYLOAD = bytes(range(256)) * 4000  # 1 024 000 bytes
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        self.server.requests.append((self.path, self.headers.get("Range")))
        if self.path == "/missing.pth":
            self.send_error(404, "Not Found")
            return
        start = 0
        ranged = self.headers.get("Range")
        if ranged and self.path != "/norange.pth":
            start = int(ranged.split("=")[1].split("-")[0])
            if start >= len(PAYLOAD):
                self.send_response(416)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path == "/stall.pth":
            self.wfile.write(body[:1000])
            self.wfile.flush()
            self.server.release.wait(10)  # send nothing more until the test is over
            return
        if self.path == "/cut.pth":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.requests = []
    httpd.release = threading.Event()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.release.set()
        httpd.shutdown()
        httpd.server_close()


def test_download_success_verifies_sha256_and_reports_progress(server, tmp_path):
    _, base = server
    seen = []
    result = download(f"{base}/ok.pth", tmp_path / "w" / "ok.pth", sha256=SHA,
                      progress=lambda done, total: seen.append((done, total)))
    assert result.path.read_bytes() == PAYLOAD
    assert result.sha256 == SHA and result.size == len(PAYLOAD) and not result.resumed
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert not (tmp_path / "w" / "ok.pth.part").exists()


def test_download_resumes_a_partial_file_with_a_range_request(server, tmp_path):
    httpd, base = server
    dest = tmp_path / "model.pth"
    (tmp_path / "model.pth.part").write_bytes(PAYLOAD[:300_000])
    result = download(f"{base}/model.pth", dest, hash_prefix=SHA[:8])
    assert result.resumed
    assert httpd.requests[-1] == ("/model.pth", "bytes=300000-")
    assert dest.read_bytes() == PAYLOAD


def test_download_cut_midway_keeps_part_and_resumes_next_time(server, tmp_path):
    httpd, base = server
    dest = tmp_path / "cut.pth"
    with pytest.raises(InputError, match="again to resume"):
        download(f"{base}/cut.pth", dest, sha256=SHA)
    part = tmp_path / "cut.pth.part"
    assert part.stat().st_size == len(PAYLOAD) // 2 and not dest.exists()
    # the second attempt asks for the rest (this server then cuts the rest in half again)
    with pytest.raises(InputError):
        download(f"{base}/cut.pth", dest, sha256=SHA)
    assert httpd.requests[-1][1] == f"bytes={len(PAYLOAD) // 2}-"
    assert download(f"{base}/ok.pth", dest, sha256=SHA).resumed  # finish from another mirror
    assert dest.read_bytes() == PAYLOAD


def test_download_restarts_when_the_server_ignores_range(server, tmp_path):
    _, base = server
    dest = tmp_path / "n.pth"
    (tmp_path / "n.pth.part").write_bytes(b"x" * 1000)  # junk that must not survive
    result = download(f"{base}/norange.pth", dest, sha256=SHA)
    assert not result.resumed and dest.read_bytes() == PAYLOAD


def test_download_complete_part_answered_416_is_verified_and_renamed(server, tmp_path):
    _, base = server
    (tmp_path / "full.pth.part").write_bytes(PAYLOAD)
    assert download(f"{base}/full.pth", tmp_path / "full.pth", sha256=SHA).path.read_bytes() == PAYLOAD


def test_download_bad_hash_deletes_the_file(server, tmp_path):
    _, base = server
    dest = tmp_path / "bad.pth"
    with pytest.raises(InputError, match="SHA-256 mismatch"):
        download(f"{base}/bad.pth", dest, sha256="0" * 64)
    assert not dest.exists() and not (tmp_path / "bad.pth.part").exists()


def test_download_404_is_a_clear_error_and_leaves_nothing(server, tmp_path):
    _, base = server
    with pytest.raises(InputError, match="HTTP 404"):
        download(f"{base}/missing.pth", tmp_path / "m.pth")
    assert list(tmp_path.iterdir()) == []


def test_download_stalled_server_times_out_and_keeps_the_part(server, tmp_path):
    _, base = server
    dest = tmp_path / "stall.pth"
    with pytest.raises(InputError, match="stalled"):
        download(f"{base}/stall.pth", dest, timeout=0.5)
    assert (tmp_path / "stall.pth.part").stat().st_size == 1000 and not dest.exists()


def test_download_offline_refuses_before_any_request(server, tmp_path, monkeypatch):
    httpd, base = server
    monkeypatch.setenv("SEGTOOLS_OFFLINE", "1")
    with pytest.raises(InputError, match="offline"):
        download(f"{base}/ok.pth", tmp_path / "o.pth")
    assert httpd.requests == []


def test_download_unreachable_host_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="cannot connect"):
        download("http://127.0.0.1:9/none.pth", tmp_path / "x.pth", timeout=2)


def test_hash_prefix_from_torch_hub_file_names():
    assert hash_prefix_from_name("lraspp_mobilenet_v3_large-d234d4ea.pth") == "d234d4ea"
    assert hash_prefix_from_name("unet_carvana_scale0.5_epoch2.pth") == ""
