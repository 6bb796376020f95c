"""The bundled default model (`segtools predict` with no --model): size, speed budget inputs,
and its CamVid val mIoU re-measured through the real CLI pipe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from segtools.weights import registry  # noqa: E402

SHIPPED = registry.local_path(registry.BUILTIN[registry.DEFAULT_MODEL])
pytestmark = pytest.mark.skipif(not SHIPPED.is_file(), reason="this installation ships no default model")


def test_default_model_is_small_and_carries_its_metadata():
    from segtools.weights.checkpoint import load_checkpoint

    assert SHIPPED.stat().st_size <= 8 * 2**20
    checkpoint = load_checkpoint(SHIPPED)
    assert checkpoint["arch"] == "lraspp-mnv3" and checkpoint["num_classes"] == 11
    assert checkpoint["classes"]["names"][3] == "Road" and checkpoint["classes"]["ignore_index"] == 11
    assert checkpoint["metrics"]["val_miou"] >= 0.60
    assert "optimizer" not in checkpoint


def test_default_model_val_miou_through_the_cli(camvid, cli, tmp_path):
    """predict the whole CamVid val split with no --model, then score it with `metrics`."""
    from segtools.weights.checkpoint import load_checkpoint

    recorded = load_checkpoint(SHIPPED)["metrics"]["val_miou"]
    out = tmp_path / "pred"
    result = cli("predict", str(camvid / "val"), "-o", str(out), "--batch", "4")
    assert result.code == 0, result.stderr
    report = cli("metrics", str(out), str(camvid / "valannot"), "--classes", "camvid", "-f", "json")
    assert report.code == 0, report.stderr
    miou = json.loads(report.text)["miou"]
    assert miou >= 0.60
    assert abs(miou - recorded) < 0.005  # the recorded figure is what the shipped file scores


def test_default_model_pipe_predict_postprocess_visualize(camvid, proc, tmp_path):
    frame = sorted((camvid / "val").glob("*.png"))[0]
    predicted = proc("predict", str(frame))
    assert predicted.code == 0, predicted.stderr
    cleaned = proc("postprocess", "--min-area", "32", input=predicted.stdout)
    assert cleaned.code == 0, cleaned.stderr
    drawn = proc("visualize", "--over", str(frame), "--legend", "-o", str(tmp_path / "o.png"), input=cleaned.stdout)
    assert drawn.code == 0, drawn.stderr
    from segtools.io.images import read_image
    from segtools.io.masks import read_label_mask

    labels = read_label_mask(cleaned.stdout).labels
    assert labels.shape == (360, 480) and set(np.unique(labels)) <= set(range(11))
    assert read_image(tmp_path / "o.png").shape[0] == 360
