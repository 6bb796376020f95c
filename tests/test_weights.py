"""Checkpoints (save/load as data, refusal of code), class-balancing weights, the registry, weights CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import assert_one_line_error

from segtools.errors import InputError, UsageError
from segtools.weights.classes import class_weights, count_pixels

torch = pytest.importorskip("torch")

from segtools.models import build_model  # noqa: E402
from segtools.weights import registry  # noqa: E402
from segtools.weights.checkpoint import (  # noqa: E402
    FORMAT, file_kind, load_checkpoint, make_checkpoint, save_checkpoint)


def _tiny_unet(classes: int = 3):
    torch.manual_seed(0)
    return build_model("unet", classes, depth=2, base_channels=4)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGTOOLS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


# ------------------------------------------------------------------ checkpoints


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_checkpoint_round_trip_keeps_tensors_and_metadata(tmp_path, suffix):
    model = _tiny_unet()
    payload = make_checkpoint("unet", 3, model.state_dict(), classes={"names": ["a", "b", "c"]},
                              preprocessing={"mean": [0.1] * 3, "std": [0.2] * 3, "scale": 1 / 255},
                              arch_options={"depth": 2, "base_channels": 4}, epoch=7)
    path = save_checkpoint(tmp_path / f"m{suffix}", payload)
    assert file_kind(path) == ("safetensors" if suffix == ".safetensors" else "torch-zip")
    loaded = load_checkpoint(path)
    assert loaded["format"] == FORMAT and loaded["arch"] == "unet" and loaded["num_classes"] == 3
    assert loaded["classes"]["names"] == ["a", "b", "c"] and loaded["epoch"] == 7
    assert loaded["arch_options"] == {"depth": 2, "base_channels": 4}
    for key, value in model.state_dict().items():
        assert torch.equal(loaded["state_dict"][key], value), key
    assert not list(tmp_path.glob("*.part"))


def test_raw_and_wrapped_state_dicts_are_normalised(tmp_path):
    state = _tiny_unet().state_dict()
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, tmp_path / "wrapped.pth")
    torch.save({**state, "mask_values": [0, 1]}, tmp_path / "milesial.pth")
    for name in ("wrapped.pth", "milesial.pth"):
        loaded = load_checkpoint(tmp_path / name)
        assert loaded["format"] == "state-dict"
        assert set(loaded["state_dict"]) == set(state), name


class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_checkpoint(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": _tiny_unet().state_dict(), "payload": _RunsCode(str(marker))}, path)
    return path, marker


def test_pickle_that_would_run_code_is_refused(tmp_path):
    path, marker = _evil_checkpoint(tmp_path)
    with pytest.raises(InputError, match="refusing to load"):
        load_checkpoint(path)
    assert not marker.exists()


def test_pickle_that_would_run_code_is_one_line_error_in_cli(tmp_path, cli):
    path, marker = _evil_checkpoint(tmp_path)
    image = tmp_path / "img.npy"
    np.save(image, np.zeros((8, 8, 3), np.uint8))
    for args in (("predict", str(image), "--weights", str(path), "--arch", "unet"),
                 ("weights", "info", str(path), "--arch", "unet")):
        result = cli(*args)
        assert_one_line_error(result, 1)
        assert "refusing to load" in result.stderr
    assert not marker.exists()


def test_truncated_checkpoint_is_an_input_error(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", make_checkpoint("unet", 3, _tiny_unet().state_dict()))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError):
        load_checkpoint(path)


# ------------------------------------------------------------------ class weights


def test_count_pixels_skips_ignore_and_tracks_presence():
    masks = [np.array([[0, 0, 1, 255]]), np.array([[1, 1, 1, 1]])]
    counts = count_pixels(masks, 3, 255)
    assert counts.pixels.tolist() == [2, 5, 0]
    assert counts.present_pixels.tolist() == [3, 7, 0]  # valid pixels of the images holding the class
    assert counts.images == 2 and counts.ignored == 1


def test_count_pixels_refuses_labels_outside_the_classes():
    with pytest.raises(InputError, match=r"label value\(s\) 7"):
        count_pixels([np.array([[0, 7]])], 3, 255)


def test_median_frequency_follows_eigen_and_fergus():
    counts = count_pixels([np.array([[0, 0, 1, 255]]), np.array([[1, 1, 1, 1]])], 3, 255)
    frequency = np.array([2 / 3, 5 / 7])
    expected = np.median(frequency) / frequency
    assert np.allclose(class_weights(counts, "median")[:2], expected)
    assert class_weights(counts, "median")[2] == 0.0


def test_inverse_and_effective_weights():
    counts = np.array([10, 30, 60, 0])
    inverse = class_weights(counts, "inverse")
    assert np.allclose(inverse[:3] * counts[:3], counts.sum() / 4) and inverse[3] == 0
    effective = class_weights(counts, "effective", beta=0.9)
    raw = (1 - 0.9) / (1 - 0.9 ** counts[:3])
    assert np.allclose(effective[:3], raw / raw.sum() * 4)
    with pytest.raises(UsageError):
        class_weights(counts, "bogus")


def test_weights_classes_cli_on_camvid_without_torch(camvid, tmp_path):
    files = sorted((camvid / "valannot").glob("*.png"))[:3]
    code = ("import sys, json; from segtools.cli.app import run; "
            f"rc = run(['weights', 'classes', *{[str(f) for f in files]!r}, '--classes', 'camvid']); "
            "assert rc == 0, rc; assert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["num_classes"] == 11 and report["ignore_index"] == 11 and report["images"] == 3
    assert len(report["weights"]) == 11 and report["class_names"][0] == "Sky"
    assert sum(report["pixels"]) + report["ignored_pixels"] == 3 * 360 * 480


def test_weights_classes_ignore_index_takes_a_label_or_none(tmp_path, cli):
    from segtools.io.masks import write_label_mask

    write_label_mask(np.array([[0, 1, 1, 255]], np.uint8), tmp_path / "m.png")
    default = json.loads(cli("weights", "classes", str(tmp_path / "m.png"), "-n", "2").text)
    assert default["ignore_index"] == 255 and default["pixels"] == [1, 2] and default["ignored_pixels"] == 1
    none = json.loads(cli("weights", "classes", str(tmp_path / "m.png"), "--ignore-index", "none").text)
    assert none["ignore_index"] is None and none["num_classes"] == 256 and none["pixels"][255] == 1
    assert_one_line_error(cli("weights", "classes", str(tmp_path / "m.png"), "--ignore-index", "x"), 2)


def test_help_does_not_import_torch():
    code = ("import sys; from segtools.cli.app import run; run(['predict', '--help']); run(['weights', '--help']);"
            "assert 'torch' not in sys.modules and 'numpy' not in sys.modules")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Example" in proc.stdout


# ------------------------------------------------------------------ registry and CLI


def test_builtin_entries_describe_torchvision_checkpoints():
    tv = [e for e in registry.BUILTIN.values()
          if e.url.startswith("https://download.pytorch.org/") and "miou" in e.metrics]  # semantic models
    assert {e.arch for e in tv} == {"deeplabv3-resnet50", "deeplabv3-resnet101", "deeplabv3-mnv3",
                                    "fcn-resnet50", "fcn-resnet101", "lraspp-mnv3"}
    for entry in tv:
        assert entry.hash_prefix and f"-{entry.hash_prefix}." in entry.url
        assert entry.num_classes == 21 and entry.classes == "voc" and entry.license == "BSD-3-Clause"
        assert 50 < entry.metrics["miou"] < 70 and entry.preprocessing.resize_short == 520
    assert registry.BUILTIN["unet-carvana"].arch_options == {"bilinear": False}
    backbones = [e for e in registry.BUILTIN.values() if e.kind == "backbone"]
    assert {e.arch for e in backbones} == {"resnet50", "resnet101", "mobilenet_v3_large"} and len(backbones) == 6
    for entry in backbones:
        assert f"-{entry.hash_prefix}." in entry.url and entry.num_classes == 1000 and 70 < entry.metrics["top1"] < 82


def test_missing_weights_say_how_to_get_them(home, cli, tmp_path):
    image = tmp_path / "img.npy"
    np.save(image, np.zeros((8, 8, 3), np.uint8))
    result = cli("predict", str(image), "--model", "lraspp-mnv3-voc")
    assert_one_line_error(result, 1)
    assert "segtools weights pull lraspp-mnv3-voc" in result.stderr and "checkpoint file as weights" in result.stderr


def test_pull_offline_is_refused(home, cli, monkeypatch):
    monkeypatch.setenv("SEGTOOLS_OFFLINE", "1")
    result = cli("weights", "pull", "deeplabv3-mnv3-voc")
    assert_one_line_error(result, 1)
    assert "offline" in result.stderr and not (home / "weights" / "deeplabv3_mobilenet_v3_large-fc3c493d.pth").exists()


def test_import_info_list_and_torchscript_export(home, cli, tmp_path):
    model = _tiny_unet(11)
    torch.save(model.state_dict(), tmp_path / "raw.pth")
    result = cli("weights", "import", str(tmp_path / "raw.pth"), "--name", "mine", "--arch", "unet", "--classes", "camvid")
    assert result.code == 0, result.stderr
    listed = json.loads(cli("weights", "list", "--format", "json").text)
    mine = next(row for row in listed if row["name"] == "mine")
    assert mine["local"] and mine["source"] == "imported" and mine["num_classes"] == 11
    described = json.loads(cli("weights", "info", "mine", "--format", "json").text)
    assert described["arch"] == "unet" and described["class_names"][3] == "Road"
    assert described["parameters"] == sum(p.numel() for p in model.parameters())
    assert len(described["sha256"]) == 64 and described["arch_options"]["depth"] == 2
    again = cli("weights", "import", str(tmp_path / "raw.pth"), "--name", "mine", "--arch", "unet")
    assert_one_line_error(again, 2)
    exported = tmp_path / "mine_ts.pt"
    assert cli("weights", "export", "mine", "-o", str(exported)).code == 0
    assert file_kind(exported) == "torchscript"
    image = tmp_path / "img.npy"
    np.save(image, np.random.default_rng(0).integers(0, 255, (20, 28, 3), dtype=np.uint8))
    from_registry = cli("predict", str(image), "--model", "mine")
    from_script = cli("predict", str(image), "--model", str(exported))
    assert from_registry.code == from_script.code == 0, from_script.stderr
    assert from_registry.stdout == from_script.stdout  # same labels, same class metadata


def test_import_refuses_a_checkpoint_of_another_architecture(home, cli, tmp_path):
    torch.save(_tiny_unet().state_dict(), tmp_path / "raw.pth")
    result = cli("weights", "import", str(tmp_path / "raw.pth"), "--name", "x", "--arch", "lraspp-mnv3")
    assert_one_line_error(result, 1)
    assert "not those of a 'lraspp-mnv3'" in result.stderr


def test_onnx_export_without_onnx_is_a_clear_error(home, cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if the extra were not installed
    save_checkpoint(tmp_path / "m.pt", make_checkpoint("unet", 3, _tiny_unet().state_dict(),
                                                       arch_options={"depth": 2, "base_channels": 4}))
    result = cli("weights", "export", str(tmp_path / "m.pt"), "--format", "onnx", "-o", str(tmp_path / "m.onnx"))
    assert_one_line_error(result, 1)
    assert "segtools[onnx]" in result.stderr and not (tmp_path / "m.onnx").exists()


def test_registry_entry_with_a_torchvision_style_state_dict_predicts_with_voc_legend(home, cli, tmp_path):
    torch.manual_seed(0)
    state = build_model("lraspp-mnv3", 21).state_dict()  # the layout of torchvision's published file
    entry = registry.BUILTIN["lraspp-mnv3-voc"]
    target = registry.local_path(entry)
    target.parent.mkdir(parents=True)
    torch.save(state, target)
    image = tmp_path / "img.npy"
    np.save(image, np.random.default_rng(0).integers(0, 255, (30, 44, 3), dtype=np.uint8))
    result = cli("predict", str(image), "--model", "lraspp-mnv3-voc")
    assert result.code == 0, result.stderr
    from segtools.io.masks import read_label_mask

    mask = read_label_mask(result.stdout)
    assert mask.labels.shape == (30, 44) and mask.meta.names[15] == "person"


def test_pull_through_a_local_server_verifies_and_caches(home, cli, tmp_path, monkeypatch):
    import dataclasses
    import functools
    import hashlib
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    served = tmp_path / "served"
    served.mkdir()
    payload = b"weights" * 1000
    (served / "tiny-0123abcd.pth").write_bytes(payload)
    prefix = hashlib.sha256(payload).hexdigest()[:8]
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/tiny-0123abcd.pth"
        good = dataclasses.replace(registry.BUILTIN["lraspp-mnv3-voc"], name="t", url=url, hash_prefix=prefix,
                                   file_name="t.pth")
        bad = dataclasses.replace(good, name="b", hash_prefix="ffffffff", file_name="b.pth")
        monkeypatch.setitem(registry.BUILTIN, "t", good)
        monkeypatch.setitem(registry.BUILTIN, "b", bad)
        result = cli("weights", "pull", "t")
        assert result.code == 0, result.stderr
        assert (home / "weights" / "t.pth").read_bytes() == payload
        assert "already" in cli("weights", "pull", "t").stderr
        failed = cli("weights", "pull", "b")
        assert_one_line_error(failed, 1)
        assert "SHA-256 mismatch" in failed.stderr and not list((home / "weights").glob("b.pth*"))
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_bundled_default_is_listed_only_when_shipped(tmp_path, monkeypatch):
    from segtools.weights import registry

    monkeypatch.setattr(registry, "bundled_dir", lambda: tmp_path)
    assert registry.DEFAULT_MODEL not in registry.all_entries()
    (tmp_path / registry.BUILTIN[registry.DEFAULT_MODEL].path).write_bytes(b"placeholder")
    assert registry.DEFAULT_MODEL in registry.all_entries()


def test_onnx_export_matches_torch_and_carries_metadata(home, cli, tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    model = _tiny_unet().eval()
    save_checkpoint(tmp_path / "m.pt", make_checkpoint("unet", 3, model.state_dict(),
                                                       arch_options={"depth": 2, "base_channels": 4}))
    result = cli("weights", "export", str(tmp_path / "m.pt"), "--format", "onnx", "-o", str(tmp_path / "m.onnx"))
    assert result.code == 0, result.stderr
    graph = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(graph)
    meta = json.loads({p.key: p.value for p in graph.metadata_props}["segtools"])
    assert meta["arch"] == "unet" and meta["num_classes"] == 3
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    (onnx_out,) = ReferenceEvaluator(graph).run(None, {"image": x})
    with torch.inference_mode():
        torch_out = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(onnx_out, torch_out, atol=1e-4)
