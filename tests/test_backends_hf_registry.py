"""Registered Hugging Face checkpoints: ``weights pull`` fetches a multi-file entry (a tiny
random-initialised SegFormer saved with save_pretrained, served by a real HTTP server on
127.0.0.1) into one cached folder, resuming a half-pulled one; ``predict --model NAME``
runs it through transformers; missing and corrupt files are one-line errors."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from segtools.weights import registry
from tests.conftest import assert_one_line_error

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

FILES = ("config.json", "preprocessor_config.json", "model.safetensors")


@pytest.fixture(scope="module")
def tiny_segformer(tmp_path_factory) -> Path:
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

    folder = tmp_path_factory.mktemp("hub") / "tiny"
    torch.manual_seed(1)
    config = SegformerConfig(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16],
                             patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 2], mlp_ratios=[2, 2],
                             decoder_hidden_size=16, num_labels=3, id2label={0: "road", 1: "car", 2: "sky"},
                             label2id={"road": 0, "car": 1, "sky": 2})
    SegformerForSemanticSegmentation(config).eval().save_pretrained(folder)
    SegformerImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    assert all((folder / name).is_file() for name in FILES)
    return folder


class _Hub(BaseHTTPRequestHandler):
    """Files of ``server.root`` at ``/tiny/NAME``, with Range; a name in ``server.cut`` is
    sent half-way once, then the connection drops."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        name = self.path.rsplit("/", 1)[-1]
        self.server.requests.append((name, self.headers.get("Range")))
        path = self.server.root / name
        if not self.path.startswith("/tiny/") or not path.is_file():
            self.send_error(404, "Not Found")
            return
        body = path.read_bytes()
        start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if name in self.server.cut:
            self.server.cut.discard(name)
            self.wfile.write(body[start:start + (len(body) - start) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body[start:])


@pytest.fixture
def hub(tiny_segformer, tmp_path, monkeypatch):
    """(server, entry): the tiny model served on 127.0.0.1 and registered as ``tiny-segformer``."""
    monkeypatch.setenv("SEGTOOLS_HOME", str(tmp_path / "home"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    httpd.daemon_threads = True
    httpd.root, httpd.requests, httpd.cut = tiny_segformer, [], set()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    template = registry.BUILTIN["segformer-b0-ade"]
    entry = dataclasses.replace(template, name="tiny-segformer", url=f"http://127.0.0.1:{httpd.server_address[1]}/tiny/",
                                files=FILES, classes={"names": ["road", "car", "sky"], "ignore_index": None},
                                num_classes=3)
    monkeypatch.setitem(registry.BUILTIN, entry.name, entry)
    try:
        yield httpd, entry
    finally:
        httpd.shutdown()
        httpd.server_close()


def _reference_labels(folder: Path, image: np.ndarray) -> np.ndarray:
    processor = transformers.AutoImageProcessor.from_pretrained(folder)
    model = transformers.AutoModelForSemanticSegmentation.from_pretrained(folder).eval()
    with torch.no_grad():
        outputs = model(**processor(images=[image], return_tensors="pt"))
    return processor.post_process_semantic_segmentation(outputs, target_sizes=[image.shape[:2]])[0].numpy()


def test_registry_lists_the_nvidia_segformer_checkpoints():
    ade = [registry.BUILTIN[f"segformer-b{k}-ade"] for k in range(6)]
    city = [registry.BUILTIN[f"segformer-b{k}-cityscapes"] for k in range(6)]
    for entry in ade + city:
        assert entry.backend == "hf" and entry.files == ("config.json", "preprocessor_config.json", "pytorch_model.bin")
        assert entry.url.startswith("https://huggingface.co/nvidia/segformer-b") and entry.url.endswith("/resolve/main/")
        assert "NVIDIA Source Code License" in entry.license and not entry.sha256 and not entry.file_sha256
        assert registry.summary(entry)["task"] == "semantic" and entry.file_size_mb > 10
    assert [e.metrics["miou"] for e in ade] == [37.4, 42.2, 46.5, 49.4, 50.3, 51.0]
    assert [e.metrics["miou"] for e in city] == [76.2, 78.5, 81.0, 81.7, 82.3, 82.4]
    assert {e.num_classes for e in ade} == {150} and {e.num_classes for e in city} == {19}
    assert "finetuned-ade-640-640" in ade[5].url and all("cityscapes-1024-1024" in e.url for e in city)


def test_pull_then_predict_by_name_equals_transformers(hub, tiny_segformer, cli, tmp_path):
    from PIL import Image

    from segtools.io.masks import read_label_mask

    server, entry = hub
    image = np.random.default_rng(3).integers(0, 255, (40, 56, 3), np.uint8)
    Image.fromarray(image).save(tmp_path / "a.png")
    result = cli("predict", str(tmp_path / "a.png"), "--model", entry.name, "-o", str(tmp_path / "early.png"))
    assert_one_line_error(result, 1)
    assert f"segtools weights pull {entry.name}" in result.stderr

    result = cli("weights", "pull", entry.name)
    assert result.code == 0, result.stderr
    folder = registry.local_path(entry)
    assert folder == registry.weights_dir() / entry.name and registry.is_available(entry)
    for name in FILES:
        assert (folder / name).read_bytes() == (tiny_segformer / name).read_bytes()
    assert [name for name, _ in server.requests] == list(FILES)
    result = cli("weights", "pull", entry.name)  # cached: nothing fetched again
    assert result.code == 0 and len(server.requests) == 3

    result = cli("predict", str(tmp_path / "a.png"), "--model", entry.name, "-o", str(tmp_path / "a_labels.png"))
    assert result.code == 0, result.stderr
    mask = read_label_mask(str(tmp_path / "a_labels.png"))
    assert (mask.labels == _reference_labels(tiny_segformer, image)).all()
    assert mask.meta.names == ("road", "car", "sky")
    result = cli("predict", str(tmp_path / "a.png"), "--model", entry.name, "--backend", "torch",
                 "-o", str(tmp_path / "t.png"))
    assert_one_line_error(result, 2)
    assert "Hugging Face checkpoint" in result.stderr


def test_a_half_pulled_folder_resumes(hub, tiny_segformer):
    server, entry = hub
    server.cut.add("model.safetensors")
    from segtools.errors import InputError

    with pytest.raises(InputError, match="run the same command again"):
        registry.pull(entry)
    folder = registry.local_path(entry)
    assert (folder / "config.json").is_file() and not (folder / "model.safetensors").exists()
    assert (folder / "model.safetensors.part").stat().st_size > 0 and not registry.is_available(entry)

    pulled = registry.pull(entry)
    assert pulled.status == "downloaded" and pulled.download.resumed
    assert list(pulled.download.files) == ["model.safetensors"]  # the finished files are not fetched again
    assert server.requests[-1][1] is not None and server.requests[-1][1].startswith("bytes=")
    expected = hashlib.sha256((tiny_segformer / "model.safetensors").read_bytes()).hexdigest()
    assert pulled.download.files["model.safetensors"] == expected
    assert (folder / "model.safetensors").read_bytes() == (tiny_segformer / "model.safetensors").read_bytes()
    assert registry.is_available(entry) and not (folder / "model.safetensors.part").exists()


def test_missing_and_corrupt_files_are_one_line_errors(hub, cli, monkeypatch, tmp_path):
    server, entry = hub
    missing = dataclasses.replace(entry, name="tiny-missing", files=(*FILES, "extra.json"))
    monkeypatch.setitem(registry.BUILTIN, missing.name, missing)
    result = cli("weights", "pull", missing.name)
    assert_one_line_error(result, 1)
    assert "extra.json: HTTP 404" in result.stderr and not registry.is_available(missing)

    corrupt = dataclasses.replace(entry, name="tiny-corrupt", file_sha256={"model.safetensors": "0" * 64})
    monkeypatch.setitem(registry.BUILTIN, corrupt.name, corrupt)
    result = cli("weights", "pull", corrupt.name)
    assert_one_line_error(result, 1)
    assert "SHA-256 mismatch" in result.stderr
    folder = registry.local_path(corrupt)
    assert not (folder / "model.safetensors").exists() and not (folder / "model.safetensors.part").exists()

    assert cli("weights", "pull", entry.name).code == 0  # a cached file damaged after the pull
    (registry.local_path(entry) / "model.safetensors").write_bytes(b"not a safetensors file")
    from PIL import Image

    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "a.png")
    result = cli("predict", str(tmp_path / "a.png"), "--model", entry.name, "-o", str(tmp_path / "o.png"))
    assert_one_line_error(result, 1)
    assert "transformers cannot load" in result.stderr and not (tmp_path / "o.png").exists()
