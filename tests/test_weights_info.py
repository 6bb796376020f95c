"""``segtools weights info`` for every model family: each is loaded by its own loader (a SAM
or Mask R-CNN file is not pushed through the semantic zoo), a registry entry that is not
downloaded is described from the registry, published figures are fractions as in
``weights list``."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

import golden_util  # noqa: E402


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGTOOLS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _info(cli, *args):
    result = cli("weights", "info", *args, "--format", "json")
    assert result.code == 0, result.stderr
    return json.loads(result.text)


def test_sam_file_is_described_by_the_sam_loader(cli, tmp_path):
    from segtools.models.sam.model import SamConfig, build_sam

    model = build_sam(SamConfig(**golden_util.SAM_TINY))
    torch.save(model.state_dict(), tmp_path / "tiny_sam.pth")
    report = _info(cli, str(tmp_path / "tiny_sam.pth"))
    assert report["task"] == "promptable" and report["arch"] == model.config.variant
    assert report["parameters"] == sum(p.numel() for p in model.parameters())
    assert len(report["sha256"]) == 64 and report["local"] is True


def test_detector_file_is_described_by_the_detection_loader(cli, tmp_path):
    import golden_detection
    from segtools.models.detection import build_detector
    from segtools.weights.checkpoint import make_checkpoint, save_checkpoint

    sizes = {"min_size": 256, "max_size": 352}
    with torch.device("meta"):
        model = build_detector("maskrcnn-resnet50-fpn", 5, **sizes)
    golden_detection.fill_detector(model)
    save_checkpoint(tmp_path / "det.pt", make_checkpoint("maskrcnn-resnet50-fpn", 5, model.state_dict(),
                                                         arch_options=sizes))
    report = _info(cli, str(tmp_path / "det.pt"))
    assert report["task"] == "instance" and report["arch"] == "maskrcnn-resnet50-fpn"
    assert report["num_classes"] == 5 and len(report["class_names"]) == 5
    assert report["parameters"] == sum(p.numel() for p in model.parameters())
    assert "256" in report["input_size"]


def test_entry_not_downloaded_is_described_from_the_registry(cli, home):
    report = _info(cli, "maskrcnn-resnet50-fpn-coco")
    assert report["local"] is False and report["task"] == "instance" and report["num_classes"] == 91
    assert report["url"].startswith("https://") and report["sha256"] is None
    assert 0 < report["published"]["mask_map"] < 1  # fractions, as `weights list` shows them
    table = cli("weights", "info", "sam-vit-b")
    assert table.code == 0 and "weights pull sam-vit-b" in table.text


def test_backbone_entry_counts_its_tensors(cli, home):
    from segtools.weights import registry

    entry = registry.get_entry("mnv3-large-imagenet")
    path = registry.local_path(entry)
    path.parent.mkdir(parents=True)
    state = {"features.0.0.weight": torch.zeros(16, 3, 3, 3), "classifier.3.bias": torch.zeros(1000),
             "features.0.1.num_batches_tracked": torch.tensor(0)}
    torch.save(state, path)
    report = _info(cli, "mnv3-large-imagenet")
    assert report["task"] == "backbone" and report["local"] is True
    assert report["parameters"] == 16 * 27 + 1000  # the integer counter is no parameter


def test_sam2_checkpoint_with_video_keys_is_described_by_the_sam2_loader(cli, tmp_path):
    from segtools.models.sam2.model import build_sam2

    model = build_sam2("sam2.1-hiera-tiny")
    state = {key: value.half() for key, value in model.state_dict().items()}
    state["maskmem_tpos_enc"] = torch.zeros(7, 1, 1, 64)  # a video-only key: accepted, not counted
    torch.save({"model": state}, tmp_path / "sam2.1_hiera_tiny.pt")
    report = _info(cli, str(tmp_path / "sam2.1_hiera_tiny.pt"))
    assert report["task"] == "promptable" and report["arch"] == "sam2.1-hiera-tiny"
    assert report["parameters"] == sum(p.numel() for p in model.parameters())
