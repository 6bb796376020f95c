"""`train --init / --init-backbone / --freeze-backbone / --backbone-lr / --ema`: fine-tuning as
smp and mmseg users expect it, with torchvision-layout ImageNet files served from 127.0.0.1."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import assert_one_line_error
from golden_util import keyed_values
from segtools.errors import InputError
from segtools.models import build_model
from segtools.train import loop
from segtools.train.init import init_backbone, init_from_checkpoint, param_groups
from segtools.weights.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from test_train import base_args, make_dataset

MANIFESTS = Path(__file__).resolve().parent / "fixtures" / "backbones"


def torchvision_layout_file(name: str, path: Path) -> dict[str, torch.Tensor]:
    """A checkpoint with exactly the keys and shapes of torchvision's ImageNet ``name``
    (recorded from torchvision in tests/fixtures/backbones), seeded values."""
    layout = json.loads((MANIFESTS / f"{name}.json").read_text())["state_dict"]
    state = {}
    for key, shape in layout.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
            continue
        window, offset, scale = keyed_values(key, tuple(shape))
        state[key] = torch.from_numpy(window * np.float32(scale) + np.float32(offset))
    torch.save(state, path)
    return state


@pytest.mark.parametrize("arch, backbone", [("lraspp-mnv3", "mobilenet_v3_large"),
                                            ("deeplabv3-mnv3", "mobilenet_v3_large"),
                                            ("deeplabv3-resnet50", "resnet50"),
                                            ("deeplabv3plus-resnet50", "resnet50")])
def test_init_backbone_fills_every_backbone_tensor_from_torchvision_layout(tmp_path, arch, backbone):
    source = torchvision_layout_file(backbone, tmp_path / f"{backbone}.pth")
    model = build_model(arch, 5)
    head_before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("backbone.")}
    report = init_backbone(model, str(tmp_path / f"{backbone}.pth"))
    mine = model.backbone.state_dict()
    assert report["loaded"] == sum(not k.endswith("num_batches_tracked") for k in mine)
    prefix = "features." if backbone.startswith("mobilenet") else ""
    for key, value in mine.items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(value, source[prefix + key]), key
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in head_before.items())  # heads untouched
    assert report["unused"] > 0  # the classifier (and fc) are not used


def test_init_backbone_of_another_network_names_the_missing_tensor(tmp_path):
    torchvision_layout_file("resnet50", tmp_path / "resnet50.pth")
    with pytest.raises(InputError, match=r"no tensor for backbone\.0\.0\.weight .*not a backbone"):
        init_backbone(build_model("lraspp-mnv3", 5), str(tmp_path / "resnet50.pth"))


def _checkpoint(tmp_path: Path, arch: str, classes: int, **options) -> tuple[Path, dict]:
    model = build_model(arch, classes, **options)
    for tensor in model.state_dict().values():
        if tensor.is_floating_point():
            tensor.normal_()
    path = save_checkpoint(tmp_path / f"{arch}-{classes}.pt", make_checkpoint(arch, classes, model.state_dict(),
                                                                              arch_options=options))
    return path, model.state_dict()


def test_init_whole_checkpoint_with_other_class_count_keeps_a_new_head(tmp_path):
    path, source = _checkpoint(tmp_path, "lraspp-mnv3", 11)
    model = build_model("lraspp-mnv3", 3)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    report = init_from_checkpoint(model, str(path), "lraspp-mnv3")
    assert sorted(report["new_head"]) == ["classifier.high_classifier.bias", "classifier.high_classifier.weight",
                                          "classifier.low_classifier.bias", "classifier.low_classifier.weight"]
    for key, value in model.state_dict().items():
        expected = fresh[key] if key in report["new_head"] else source[key]
        assert torch.equal(value, expected), key
    same = build_model("lraspp-mnv3", 11)
    assert init_from_checkpoint(same, str(path), "lraspp-mnv3")["new_head"] == []
    assert all(torch.equal(v, source[k]) for k, v in same.state_dict().items())


def test_init_from_another_architecture_is_refused_naming_the_key(tmp_path):
    path, _ = _checkpoint(tmp_path, "unet", 3, depth=2, base_channels=8)
    with pytest.raises(InputError, match=r"no backbone\..*not a checkpoint of lraspp-mnv3"):
        init_from_checkpoint(build_model("lraspp-mnv3", 3), str(path), "lraspp-mnv3")


def test_backbone_lr_factor_makes_two_groups():
    model = build_model("lraspp-mnv3", 3)
    groups = param_groups(model, 0.1)
    assert [g["lr_scale"] for g in groups] == [0.1, 1.0]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert len(param_groups(model, 1.0)) == 1


@pytest.fixture()
def served_backbone(tmp_path, monkeypatch):
    """The registry's mnv3-large-imagenet entry pointed at a torchvision-layout file on 127.0.0.1."""
    from segtools.weights import registry

    monkeypatch.setenv("SEGTOOLS_HOME", str(tmp_path / "home"))
    served = tmp_path / "served"
    served.mkdir()
    state = torchvision_layout_file("mobilenet_v3_large", served / "file.pth")
    digest = hashlib.sha256((served / "file.pth").read_bytes()).hexdigest()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    entry = registry.BUILTIN["mnv3-large-imagenet"]
    monkeypatch.setitem(registry.BUILTIN, entry.name, dataclasses.replace(
        entry, url=f"http://127.0.0.1:{httpd.server_address[1]}/file.pth", hash_prefix=digest[:8], sha256=digest))
    yield state
    httpd.shutdown()
    httpd.server_close()


def _lraspp_args(images, masks, out):
    return ["train", "--images", str(images), "--masks", str(masks), "--num-classes", "3", "--arch", "lraspp-mnv3",
            "--epochs", "1", "--batch", "2", "--val-split", "0", "-o", str(out)]


def test_cli_init_backbone_from_a_pulled_entry_with_frozen_first_epoch(tmp_path, cli, served_backbone):
    images, masks = make_dataset(tmp_path, size=(32, 32))
    refused = cli(*_lraspp_args(images, masks, tmp_path / "run0"), "--init-backbone", "mnv3-large-imagenet")
    assert_one_line_error(refused, 1)
    assert "segtools weights pull mnv3-large-imagenet" in refused.stderr
    assert cli("weights", "pull", "mnv3-large-imagenet").code == 0
    args = [*_lraspp_args(images, masks, tmp_path / "run"), "--init-backbone",
            "mnv3-large-imagenet", "--freeze-backbone", "1", "--backbone-lr", "0.1", "--lr", "0.01"]
    result = cli(*args)
    assert result.code == 0, result.stderr
    saved = load_checkpoint(tmp_path / "run" / "last.pt")["state_dict"]
    backbone = {k[len("backbone."):]: v for k, v in saved.items() if k.startswith("backbone.")}
    for key, value in backbone.items():  # frozen for its only epoch: weights and BN statistics kept
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(value, served_backbone["features." + key]), key
    head = build_model("lraspp-mnv3", 3).state_dict()
    assert any(not torch.equal(saved[k], head[k]) for k in head if k.startswith("classifier."))
    predict = cli("predict", "--model", "mnv3-large-imagenet", str(images / "x0.png"))
    assert_one_line_error(predict, 1)
    assert "backbone, not a segmentation model" in predict.stderr and "train --init-backbone" in predict.stderr


def test_cli_init_option_errors_speak_in_flags(tmp_path, cli):
    images, masks = make_dataset(tmp_path)
    both = cli(*base_args(images, masks, tmp_path / "a"), "--init", "x.pt", "--init-backbone", "y")
    assert_one_line_error(both, 2)
    assert "--init x.pt and --init-backbone y" in both.stderr
    frozen = cli(*base_args(images, masks, tmp_path / "b"), "--freeze-backbone", "2")
    assert_one_line_error(frozen, 2)
    assert "--freeze-backbone 2 needs pretrained weights" in frozen.stderr
    decay = cli(*base_args(images, masks, tmp_path / "c"), "--ema", "1.5")
    assert_one_line_error(decay, 2)
    assert "--ema 1.5" in decay.stderr
    missing = cli(*base_args(images, masks, tmp_path / "d"), "--init", str(tmp_path / "nope.pt"))
    assert_one_line_error(missing, 1)


def test_ema_checkpoint_holds_the_average_and_resume_equals_uninterrupted(tmp_path):
    from test_train import tiny_config

    images, masks = make_dataset(tmp_path, count=4, size=(32, 32))
    common = dict(images=[str(images)], masks=[str(masks)], classes=None, num_classes=3, ignore_index=255,
                  epochs=2, batch=2, steps_per_epoch=2, schedule="poly", lr=0.01, ema=0.9, crop=(32, 32))
    loop.train(tiny_config(Path("."), tmp_path / "straight", **common))

    def stop_after_first(kind, event):
        if kind == "epoch" and event["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        loop.train(tiny_config(Path("."), tmp_path / "split", **common), stop_after_first)
    loop.resume(tmp_path / "split" / "last.pt")
    straight, split = (load_checkpoint(tmp_path / name / "last.pt") for name in ("straight", "split"))
    for key in ("state_dict", "train_state_dict"):
        worst = max(float((straight[key][k].double() - split[key][k].double()).abs().max()) for k in straight[key])
        assert worst <= 1e-6, key
    averaged, raw = straight["state_dict"], straight["train_state_dict"]
    assert any(not torch.equal(averaged[k], raw[k]) for k in raw if raw[k].is_floating_point())


def test_init_keeps_the_options_the_checkpoint_was_built_with(tmp_path):
    """An output stride changes no weight: a fine-tune must train at the start checkpoint's
    stride unless told otherwise (and a 1/4 low branch, another layout, must not fail)."""
    from segtools.train.init import init_arch_options
    from test_train import tiny_config

    path, _ = _checkpoint(tmp_path, "lraspp-mnv3", 3, output_stride=32, low_stride=4)
    assert init_arch_options(str(path), "lraspp-mnv3", {}) == {"output_stride": 32, "low_stride": 4}
    assert init_arch_options(str(path), "lraspp-mnv3", {"output_stride": 16}) == {"output_stride": 16,
                                                                                  "low_stride": 4}
    plain = tmp_path / "plain.pt"
    torch.save(build_model("lraspp-mnv3", 3).state_dict(), plain)
    assert init_arch_options(str(plain), "lraspp-mnv3", {"output_stride": 8}) == {"output_stride": 8}

    images, masks = make_dataset(tmp_path, count=2, size=(32, 32))
    common = dict(images=[str(images)], masks=[str(masks)], classes=None, num_classes=3, ignore_index=255,
                  arch="lraspp-mnv3", arch_options={}, epochs=1, batch=2, steps_per_epoch=1, crop=(32, 32))
    loop.train(tiny_config(Path("."), tmp_path / "ft", init=str(path), **common))
    tuned = load_checkpoint(tmp_path / "ft" / "last.pt")
    assert tuned["arch_options"] == {"output_stride": 32, "low_stride": 4}
    assert tuned["train_args"]["arch_options"] == {"output_stride": 32, "low_stride": 4}
