"""`segtools train`: a tiny real run on CamVid crops, exact resume, NaN stop, bad inputs, round trip."""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import CAMVID, assert_one_line_error
from segtools.io.masks import encode_label_mask
from segtools.io.meta import load_classes
from segtools.train import loop
from segtools.train.config import TrainConfig

FRAMES = "0001TP_0069*.png"  # four CamVid training frames


@pytest.fixture(scope="module")
def camvid_dir() -> Path:
    if not (CAMVID / "trainannot").is_dir():
        pytest.skip("../shared/data/camvid is not present beside the project")
    return CAMVID


def tiny_config(camvid: Path, output: Path, **changes) -> TrainConfig:
    settings = dict(
        images=[str(camvid / "train" / FRAMES)], masks=[str(camvid / "trainannot" / FRAMES)],
        output=str(output), classes=load_classes("camvid").to_dict(), ignore_index=11,
        arch="unet", arch_options={"depth": 2, "base_channels": 8}, epochs=4, batch=4, steps_per_epoch=3,
        crop=(64, 64), val_split=0.0, optimizer="adam", lr=0.01, schedule="constant",
        augment={"hflip": 0.5}, workers=0,
    )
    settings.update(changes)
    return TrainConfig(**settings)


@pytest.fixture(scope="module")
def tiny_run(camvid_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("tiny")
    config = tiny_config(camvid_dir, output, val_every=4, val_images=[str(camvid_dir / "val" / "0016E5_0796[13].png")],
                         val_masks=[str(camvid_dir / "valannot" / "0016E5_0796[13].png")])
    return loop.train(config)


def test_tiny_camvid_run_lowers_the_loss(tiny_run):
    losses = [entry["train_loss"] for entry in tiny_run.history]
    assert len(losses) == 4 and tiny_run.steps == 12
    assert losses[-1] < losses[0] - 0.2, losses
    log_lines = (tiny_run.output / "log.jsonl").read_text().splitlines()
    entries = [json.loads(line) for line in log_lines]
    assert [e["epoch"] for e in entries] == [1, 2, 3, 4]
    assert len(entries[-1]["val_iou"]) == 11 and 0.0 <= entries[-1]["val_miou"] <= 1.0
    assert tiny_run.best.is_file() and tiny_run.last.is_file()


def test_checkpoint_holds_what_predict_needs_and_round_trips(tiny_run, camvid_dir, tmp_path):
    import typer
    from typer.testing import CliRunner

    from segtools.io.masks import read_label_mask
    from segtools.models import build_model
    from segtools.weights.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(tiny_run.best)
    assert checkpoint["format"] == "segtools-checkpoint" and checkpoint["arch"] == "unet"
    assert checkpoint["classes"]["names"][0] == "Sky" and len(checkpoint["classes"]["palette"]) == 11
    assert checkpoint["classes"]["ignore_index"] == 11
    assert checkpoint["preprocessing"]["std"] == [1.0, 1.0, 1.0]
    assert {"optimizer", "scheduler", "rng", "train_args", "epoch", "metrics"} <= set(checkpoint)
    build_model("unet", 11, **checkpoint["arch_options"]).load_state_dict(checkpoint["state_dict"], strict=True)

    app = typer.Typer()
    app.callback()(lambda: None)
    for name in ("weights", "predict"):
        importlib.import_module(f"segtools.cli.{name}").register(app)
    runner = CliRunner()
    shown = runner.invoke(app, ["weights", "info", str(tiny_run.best)])
    assert shown.exit_code == 0 and "unet" in shown.output and "Bicyclist" in shown.output
    out = tmp_path / "pred.png"
    frame = camvid_dir / "val" / "0016E5_07961.png"
    done = runner.invoke(app, ["predict", str(frame), "--model", str(tiny_run.best), "-o", str(out)])
    assert done.exit_code == 0, done.output
    mask = read_label_mask(out)
    assert mask.labels.shape == (360, 480) and mask.meta.names[3] == "Road" and int(mask.labels.max()) < 11


def _weights(path: Path) -> dict:
    return torch.load(path, weights_only=True)["state_dict"]


def test_resume_equals_uninterrupted(camvid_dir, tmp_path):
    augment = {"hflip": 0.5, "scale": [0.7, 1.4], "rotate": 10.0, "brightness": 0.2, "elastic": 0.5}
    common = dict(epochs=2, batch=2, steps_per_epoch=2, augment=augment, schedule="poly", lr=0.005)
    loop.train(tiny_config(camvid_dir, tmp_path / "straight", **common))

    def interrupt_after_first_epoch(kind, event):
        if kind == "epoch" and event["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        loop.train(tiny_config(camvid_dir, tmp_path / "split", **common), interrupt_after_first_epoch)
    after_one = _weights(tmp_path / "split" / "last.pt")
    resumed = loop.resume(tmp_path / "split" / "last.pt")
    assert resumed.epochs == 2 and resumed.steps == 4
    straight, split = _weights(tmp_path / "straight" / "last.pt"), _weights(tmp_path / "split" / "last.pt")
    assert straight.keys() == split.keys()
    worst = max(float((straight[k].double() - split[k].double()).abs().max()) for k in straight)
    assert worst <= 1e-6
    assert any(not torch.equal(after_one[k], split[k]) for k in split)  # the second epoch did change weights
    assert len((tmp_path / "split" / "log.jsonl").read_text().splitlines()) == 2


def test_nan_loss_stops_and_leaves_the_last_checkpoint_intact(camvid_dir, tmp_path, monkeypatch, cli):
    run = tmp_path / "run"
    loop.train(tiny_config(camvid_dir, run, epochs=1, steps_per_epoch=1))
    before = hashlib.sha256((run / "last.pt").read_bytes()).hexdigest()

    from segtools.train import setup

    def nan_loss(parts, images, masks):
        logits = setup.forward(parts.model, images)
        return logits.sum() * float("nan"), {}

    monkeypatch.setattr(setup, "compute_loss", nan_loss)
    with pytest.raises(loop.TrainingDiverged, match="last good checkpoint"):
        loop.resume(run / "last.pt", epochs=3)
    result = cli("train", "--resume", run / "last.pt", "--epochs", "3")
    assert_one_line_error(result, 1)
    assert "loss became nan" in result.stderr and "lower the learning rate" in result.stderr
    assert hashlib.sha256((run / "last.pt").read_bytes()).hexdigest() == before


# ---- bad inputs through the CLI (synthetic data: no CamVid needed)

def make_dataset(root: Path, count: int = 3, size=(24, 32), bad_value: int | None = None,
                 mismatch: bool = False, varied: bool = False) -> tuple[Path, Path]:
    import cv2

    images, masks = root / "img", root / "lbl"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        shape = (size[0] + 8, size[1]) if varied and i == 0 else size
        labels = rng.integers(0, 3, shape).astype(np.uint8)
        if bad_value is not None and i == count - 1:
            labels[0, 0] = bad_value
        image_size = (shape[0] + 2, shape[1]) if mismatch and i == 0 else shape
        cv2.imwrite(str(images / f"x{i}.png"), rng.integers(0, 255, (*image_size, 3)).astype(np.uint8))
        (masks / f"x{i}.png").write_bytes(encode_label_mask(labels))
    return images, masks


def base_args(images: Path, masks: Path, out: Path) -> list:
    return ["train", "--images", images, "--masks", masks, "--num-classes", "3", "--arch", "unet",
            "--arch-option", "depth=2", "--arch-option", "base_channels=4", "--epochs", "1", "--batch", "2",
            "--val-split", "0", "-o", out]


def test_cli_trains_synthetic_data_and_prints_a_summary(tmp_path, cli):
    images, masks = make_dataset(tmp_path)
    result = cli(*base_args(images, masks, tmp_path / "run"), "--loss", "ce+dice", "--loss-weights", "0.5,0.5",
                 "--class-weights", "median", "--crop", "16x16")
    assert result.code == 0, result.stderr
    for loss in ("ohem", "ce+lovasz"):
        other = cli(*base_args(images, masks, tmp_path / loss), "--loss", loss, "--ohem-min-kept", "0.2")
        assert other.code == 0, other.stderr
        assert json.loads(other.stdout)["epochs"] == 1
    summary = json.loads(result.stdout)
    assert summary["epochs"] == 1 and Path(summary["last"]).is_file()
    again = cli(*base_args(images, masks, tmp_path / "run"))
    assert_one_line_error(again, 2)
    assert "resume it from" in again.stderr


def test_ignore_index_none_trains_and_is_recorded(tmp_path, cli):
    from segtools.weights.checkpoint import load_checkpoint

    images, masks = make_dataset(tmp_path)
    result = cli(*base_args(images, masks, tmp_path / "run"), "--ignore-index", "none")
    assert result.code == 0, result.stderr
    checkpoint = load_checkpoint(tmp_path / "run" / "last.pt")
    assert checkpoint["train_args"]["ignore_index"] is None
    assert checkpoint["classes"]["ignore_index"] == 255  # crops are still padded with a value the loss skips


def test_mask_value_outside_the_classes_is_one_line_error(tmp_path, cli):
    images, masks = make_dataset(tmp_path, bad_value=9)
    result = cli(*base_args(images, masks, tmp_path / "run"))
    assert_one_line_error(result, 1)
    assert "x2.png" in result.stderr and "9" in result.stderr
    assert not (tmp_path / "run" / "last.pt").exists()


def test_image_mask_size_mismatch_is_one_line_error(tmp_path, cli):
    images, masks = make_dataset(tmp_path, mismatch=True)
    result = cli(*base_args(images, masks, tmp_path / "run"))
    assert_one_line_error(result, 1)
    assert "x0.png" in result.stderr and "must match" in result.stderr


def test_images_of_different_sizes_without_crop_is_one_line_error(tmp_path, cli):
    images, masks = make_dataset(tmp_path, varied=True)
    result = cli(*base_args(images, masks, tmp_path / "run"))
    assert_one_line_error(result, 1)
    assert "crop size" in result.stderr


def test_empty_dataset_is_one_line_error(tmp_path, cli):
    (tmp_path / "img").mkdir()
    (tmp_path / "lbl").mkdir()
    assert_one_line_error(cli(*base_args(tmp_path / "img", tmp_path / "lbl", tmp_path / "run")), 1)


@pytest.mark.parametrize("extra, needle", [
    (["--loss", "ce+hinge"], "unknown loss"),
    (["--loss", "ohem", "--ohem-thresh", "1.5"], "--ohem-thresh"),
    (["--min-foreground", "0.1"], "patch size"),
    (["--crop", "axb"], "--crop"),
    (["--optimizer", "lbfgs"], "optimizer 'lbfgs'"),
    (["--scale", "0,2"], "scale"),
    (["--ignore-index", "x"], "--ignore-index"),
    (["--ignore-index", "1"], "ignore"),
])
def test_bad_options_are_usage_errors(tmp_path, cli, extra, needle):
    images, masks = make_dataset(tmp_path)
    result = cli(*base_args(images, masks, tmp_path / "run"), *extra)
    assert_one_line_error(result, 2)
    assert needle in result.stderr


def test_resume_refuses_settings_it_cannot_change(tmp_path, cli):
    result = cli("train", "--resume", tmp_path / "last.pt", "--lr", "0.1")
    assert_one_line_error(result, 2)
    assert "--lr" in result.stderr
    missing = cli("train", "--resume", tmp_path / "last.pt")
    assert_one_line_error(missing, 1)
