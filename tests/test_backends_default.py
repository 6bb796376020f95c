"""The bundled default model's ONNX twin: small, carries its metadata, labels equal to the
torch checkpoint's on CamVid val, and `segtools predict` runs it without importing torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from segtools.weights import registry

ort = pytest.importorskip("onnxruntime")

CHECKPOINT = registry.bundled_dir() / "camvid.pt"
ONNX = registry.bundled_dir() / "camvid.onnx"
pytestmark = pytest.mark.skipif(not (CHECKPOINT.is_file() and ONNX.is_file()),
                                reason="this installation ships no default model in both forms")


def test_both_files_fit_the_budget_and_the_graph_carries_the_metadata():
    from segtools.backends.onnx import open_onnx

    assert CHECKPOINT.stat().st_size + ONNX.stat().st_size <= 10 * 2**20
    runner = open_onnx(ONNX, device="cpu")
    assert runner.num_classes == 11 and runner.classes.names[3] == "Road" and runner.classes.ignore_index == 11
    assert runner.input_size is None and runner.resize is None  # dynamic height and width: images run whole


def _agreement(frames) -> float:
    torch = pytest.importorskip("torch")
    from segtools.backends.onnx import open_onnx
    from segtools.backends.runner import RunnerPredictor
    from segtools.inference.predictor import Predictor
    from segtools.io.images import read_image
    from segtools.weights.loader import load_model

    torch.set_num_threads(2)
    loaded = load_model(model="camvid")
    assert open_onnx(ONNX, device="cpu").preprocessing == loaded.preprocessing
    torch_path = Predictor(loaded.model, loaded.preprocessing, device="cpu", batch=2)
    onnx_path = RunnerPredictor(open_onnx(ONNX, device="cpu"), batch=2)
    images = [read_image(frame) for frame in frames]
    same = sum(int((a == b).sum()) for a, b in zip(torch_path.predict_many(images, labels=True),
                                                     onnx_path.predict_many(images, labels=True)))
    return same / sum(image.shape[0] * image.shape[1] for image in images)


def test_labels_equal_the_torch_checkpoint_on_camvid_val_frames(camvid):
    """Every 20th val frame (the whole split is the slow test below; the shipping script checks it too)."""
    assert _agreement(sorted((camvid / "val").glob("*.png"))[::20]) >= 0.999


@pytest.mark.slow
def test_labels_equal_the_torch_checkpoint_on_all_of_camvid_val(camvid):
    assert _agreement(sorted((camvid / "val").glob("*.png"))) >= 0.999


_IMPORTS = ("import sys; from segtools.cli.app import run; rc = run(sys.argv[1:]); "
            "print(rc, 'torch' in sys.modules, 'onnxruntime' in sys.modules, 'transformers' in sys.modules, "
            "file=sys.stderr)")


def _run(*args) -> list[str]:
    out = subprocess.run([sys.executable, "-c", _IMPORTS, *args], capture_output=True, text=True, timeout=300)
    return out.stderr.strip().splitlines()[-1].split()


def test_predict_runs_the_default_model_without_torch_and_backend_torch_keeps_the_torch_path(tmp_path):
    from PIL import Image

    from segtools.io.masks import read_label_mask

    image = np.random.default_rng(0).integers(0, 255, (72, 96, 3), np.uint8)
    Image.fromarray(image).save(tmp_path / "street.png")
    assert _run("predict", str(tmp_path / "street.png"), "-o", str(tmp_path / "onnx.png")) == ["0", "False", "True", "False"]
    pytest.importorskip("torch")
    assert _run("predict", str(tmp_path / "street.png"), "--backend", "torch", "-o", str(tmp_path / "torch.png"))[:2] == \
        ["0", "True"]
    onnx_labels = read_label_mask(str(tmp_path / "onnx.png"))
    torch_labels = read_label_mask(str(tmp_path / "torch.png"))
    assert onnx_labels.meta.names == torch_labels.meta.names
    assert (onnx_labels.labels == torch_labels.labels).mean() > 0.99


def test_help_and_mask_commands_import_no_back_end(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "m.png")
    for args in (["--help"], ["predict", "--help"], ["info", str(tmp_path / "m.png")]):
        assert _run(*args)[1:] == ["False", "False", "False"], args


def test_shipping_script_picks_the_weight_storage_that_fits_the_budget(tmp_path):
    """tools/ship_default_model.py exports with segtools' own export: float16 when both files
    fit, else int8 for the largest tensors (here on a small random LR-ASPP checkpoint)."""
    import importlib.util

    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from segtools.models import build_model
    from segtools.weights.checkpoint import make_checkpoint, save_checkpoint

    spec = importlib.util.spec_from_file_location(
        "ship_default_model", Path(__file__).resolve().parents[1] / "tools" / "ship_default_model.py")
    ship = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ship)
    torch.manual_seed(0)
    state = {k: v.half() if v.is_floating_point() else v for k, v in build_model("lraspp-mnv3", 3).state_dict().items()}
    checkpoint = save_checkpoint(tmp_path / "small.pt", make_checkpoint("lraspp-mnv3", 3, state, classes=None))
    pt_mib = checkpoint.stat().st_size / 2**20
    assert ship.ship_onnx(checkpoint, tmp_path / "a.onnx", pt_mib * 2.1, (64, 64))[0] == "float16"
    storage, threshold = ship.ship_onnx(checkpoint, tmp_path / "b.onnx", pt_mib * 1.7, (64, 64))
    assert storage == "int8" and (tmp_path / "b.onnx").stat().st_size <= 0.7 * pt_mib * 2**20
