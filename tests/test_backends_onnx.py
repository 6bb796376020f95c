"""ONNX Runtime back-end: graphs from segtools' own export equal to the torch models, the numpy
predictor equal to the torch predictor (tiles, TTA), metadata, fixed sizes, label graphs,
bad graphs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import assert_one_line_error

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")

from segtools.backends.onnx import open_onnx  # noqa: E402
from segtools.backends.runner import RunnerPredictor, Window  # noqa: E402


def _loaded(arch: str, num_classes: int = 4, classes=None, **options):
    from segtools.models import build_model, get_arch
    from segtools.weights.loader import LoadedModel

    torch.manual_seed(0)
    model = build_model(arch, num_classes, **options).eval()
    return LoadedModel(model, arch, num_classes, classes, get_arch(arch).preprocessing, "test", options)


def _export(loaded, path, **kwargs):
    from segtools.weights.export import export_model

    return export_model(loaded, path, "onnx", (64, 64), **kwargs)


@pytest.fixture(scope="module")
def lraspp(tmp_path_factory):
    """A random LR-ASPP with CamVid's 11 classes and its export (exporting takes seconds: once)."""
    from segtools.io.meta import load_classes

    loaded = _loaded("lraspp-mnv3", 11, load_classes("camvid"))
    return loaded, _export(loaded, tmp_path_factory.mktemp("onnx") / "lraspp.onnx")


def _logits(model, x):
    with torch.no_grad():
        out = model(x)
    return (out["out"] if isinstance(out, dict) else out).numpy()


_RESNETS = [pytest.param(arch, {}, marks=pytest.mark.slow) for arch in (
    "fcn-resnet50", "deeplabv3-resnet50", "deeplabv3plus-resnet50", "fcn-resnet101", "deeplabv3-resnet101",
    "deeplabv3plus-resnet101")]


@pytest.mark.parametrize("arch, options", [("deeplabv3-mnv3", {}), ("unet", {}), *_RESNETS])
def test_exported_graph_equals_the_torch_model(arch, options, tmp_path):
    """Every zoo family: logits within 1e-4 of torch's (relative to their range) and the same
    labels, at a size other than the export's (the graph's height and width are dynamic)."""
    from segtools.models import get_arch

    options = {k: v for k, v in options.items() if k in get_arch(arch).options}
    loaded = _loaded(arch, **options)
    path = _export(loaded, tmp_path / "m.onnx")
    x = torch.randn(2, 3, 80, 96)
    reference = _logits(loaded.model, x)
    runner = open_onnx(path, device="cpu")
    logits = runner.forward(x.numpy())
    assert logits.shape == reference.shape
    assert np.abs(logits - reference).max() <= 1e-4 * max(1.0, np.abs(reference).max())
    assert (logits.argmax(1) == reference.argmax(1)).mean() > 0.9999


def test_lraspp_graph_equals_the_torch_model(lraspp):
    loaded, path = lraspp
    x = torch.randn(2, 3, 80, 96)
    reference = _logits(loaded.model, x)
    logits = open_onnx(path, device="cpu").forward(x.numpy())
    assert np.abs(logits - reference).max() <= 1e-4 * max(1.0, np.abs(reference).max())
    assert (logits.argmax(1) == reference.argmax(1)).mean() > 0.9999


def test_predictor_equals_the_torch_predictor_whole_tiled_and_with_tta(lraspp):
    from segtools.inference.predictor import Predictor, Tiling
    from segtools.inference.tta import parse_tta

    loaded, path = lraspp
    runner = open_onnx(path, device="cpu", threads=1)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (60, 80, 3), np.uint8) for _ in range(2)] + [rng.integers(0, 255, (50, 64), np.uint8)]
    for tiling, tta in ((None, None), (None, "flip=v,scales=0.75,1"), ((40, 48), "flip")):
        torch_path = Predictor(loaded.model, loaded.preprocessing, device="cpu", batch=2,
                               tiling=Tiling(tiling, 0.25, "gaussian") if tiling else None, tta=parse_tta(tta))
        numpy_path = RunnerPredictor(runner, batch=2, tiling=Window(tiling, 0.25, "gaussian") if tiling else None,
                                     tta=parse_tta(tta))
        for expected, got in zip(torch_path.predict_batch(images), numpy_path.predict_batch(images)):
            assert got.shape == expected.shape and got.dtype == np.float32
            assert np.abs(got - expected).max() < 1e-4, (tiling, tta)
        labels = numpy_path.predict_labels(images[0])
        assert labels.dtype == np.uint8
        assert (labels == torch_path.predict_labels(images[0])).mean() > 0.999


def test_export_writes_plain_metadata_and_the_runner_reads_it(lraspp, tmp_path):
    loaded, path = lraspp
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(props["names"])[3] == "Road" and len(json.loads(props["palette"])) == 11
    assert json.loads(props["mean"]) == list(loaded.preprocessing.mean) and "NCHW" in props["input_layout"]
    assert json.loads(props["segtools"])["arch"] == "lraspp-mnv3"
    runner = open_onnx(path, device="cpu")
    assert runner.classes.names[3] == "Road" and runner.num_classes == 11
    assert runner.preprocessing.std == loaded.preprocessing.std

    graph = onnx.load(str(path))  # another exporter's file: only the plain keys
    kept = [p for p in graph.metadata_props if p.key != "segtools"]
    del graph.metadata_props[:]
    graph.metadata_props.extend(kept)
    for p in graph.metadata_props:
        if p.key == "mean":
            p.value = "[0.5, 0.5, 0.5]"
    onnx.save(graph, str(tmp_path / "plain.onnx"))
    plain = open_onnx(tmp_path / "plain.onnx", device="cpu")
    assert plain.classes.names == runner.classes.names and plain.preprocessing.mean == (0.5, 0.5, 0.5)
    override = open_onnx(tmp_path / "plain.onnx", device="cpu", preprocessing={"mean": [0, 0, 0], "scale": 1.0})
    assert override.preprocessing.mean == (0, 0, 0) and override.preprocessing.scale == 1.0


def test_cli_mean_std_scale_and_classes_override_the_graph(lraspp, cli, tmp_path):
    from PIL import Image

    loaded, path = lraspp
    image = np.random.default_rng(1).integers(0, 255, (40, 52, 3), np.uint8)
    Image.fromarray(image).save(tmp_path / "a.png")
    (tmp_path / "names.txt").write_text("".join(f"c{k}\n" for k in range(11)))
    result = cli("predict", str(tmp_path / "a.png"), "--model", str(path), "--mean", "0.5", "--std", "0.25,0.25,0.25",
                 "--scale", "1/255", "--classes", str(tmp_path / "names.txt"), "--probs", "-o", str(tmp_path / "p.npz"))
    assert result.code == 0, result.stderr
    from segtools.io.masks import read_score_map

    read = read_score_map(str(tmp_path / "p.npz"))
    scores, meta = read.scores, read.meta
    x = ((image.astype(np.float32) / 255 - 0.5) / 0.25).transpose(2, 0, 1)[None]
    expected = torch.softmax(torch.from_numpy(_logits(loaded.model, torch.from_numpy(x))), 1)[0].numpy()
    assert np.abs(np.asarray(scores, np.float32) - expected).max() < 2e-3  # float16 score map
    assert meta.names == tuple(f"c{k}" for k in range(11))


def _fixed(path, out, height, width):
    graph = onnx.load(str(path))
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    for dim, value in zip(dims[2:], (height, width)):
        dim.ClearField("dim_param")
        dim.dim_value = value
    onnx.save(graph, str(out))
    return out


def test_fixed_size_graph_is_resized_by_default_or_tiled_at_its_size(lraspp, tmp_path):
    fixed = _fixed(lraspp[1], tmp_path / "fixed.onnx", 32, 48)
    runner = open_onnx(fixed, device="cpu")
    assert runner.input_size == (32, 48) and runner.resize == (32, 48)
    image = np.random.default_rng(2).integers(0, 255, (50, 70, 3), np.uint8)
    assert RunnerPredictor(runner).predict_scores(image).shape == (11, 50, 70)
    tiled = RunnerPredictor(runner, tiling=Window((32, 48)))
    assert tiled.predict_scores(image).shape == (11, 50, 70)
    assert tiled.predict_labels(image[:20, :30]).shape == (20, 30)  # smaller than the tile: padded
    from segtools.errors import UsageError

    with pytest.raises(UsageError, match="32x48"):
        RunnerPredictor(runner, tiling=Window((64, 64)))


def test_labels_graph(lraspp, tmp_path):
    from onnx import helper

    path = lraspp[1]
    graph = onnx.load(str(path))
    graph.graph.node.append(helper.make_node("ArgMax", ["logits"], ["labels"], axis=1, keepdims=0))
    del graph.graph.output[:]
    graph.graph.output.append(helper.make_tensor_value_info("labels", onnx.TensorProto.INT64, ["batch", "height", "width"]))
    onnx.save(graph, str(tmp_path / "labels.onnx"))
    image = np.random.default_rng(3).integers(0, 255, (48, 64, 3), np.uint8)
    expected = RunnerPredictor(open_onnx(path, device="cpu")).predict_labels(image)
    got = RunnerPredictor(open_onnx(tmp_path / "labels.onnx", device="cpu")).predict_labels(image)
    assert (got == expected).all()


def test_compact_weights_keep_the_logits(lraspp, tmp_path):
    import os

    from segtools.weights.export import compact_weights

    full = lraspp[1]
    half, mixed = tmp_path / "half.onnx", tmp_path / "int8.onnx"
    for path, storage in ((half, "float16"), (mixed, "int8")):
        graph = onnx.load(str(full))
        compact_weights(graph, storage, int8_min=20_000)
        onnx.save(graph, str(path))
    assert os.path.getsize(half) < 0.55 * os.path.getsize(full)
    assert os.path.getsize(mixed) < 0.8 * os.path.getsize(half)
    x = np.random.default_rng(4).standard_normal((1, 3, 64, 80)).astype(np.float32)
    reference = open_onnx(full, device="cpu").forward(x)
    for path in (half, mixed):
        logits = open_onnx(path, device="cpu").forward(x)
        assert np.abs(logits - reference).max() < 0.05 * np.abs(reference).max()


def _tiny_graph(path, in_channels=1, inputs=1):
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((2, in_channels, 1, 1), np.float32), "w")
    names = [f"x{i}" for i in range(inputs)]
    nodes = [helper.make_node("Conv", [names[0], "w"], ["y"])]
    if inputs > 1:
        nodes = [helper.make_node("Add", names, ["s"]), helper.make_node("Conv", ["s", "w"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, in_channels, 8, 8])
                                           for n in names],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 8])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.fixture
def street(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "street.png")
    return str(tmp_path / "street.png")


def test_graph_whose_input_is_not_n3hw_is_refused_saying_what_it_is(cli, tmp_path, street):
    result = cli("predict", street, "--model", str(_tiny_graph(tmp_path / "grey.onnx")), "-o", str(tmp_path / "o.png"))
    assert_one_line_error(result, 1)
    assert "1×1×8×8" in result.stderr and "N×3×H×W" in result.stderr
    result = cli("predict", street, "--model", str(_tiny_graph(tmp_path / "two.onnx", 3, 2)), "-o", str(tmp_path / "o.png"))
    assert_one_line_error(result, 1)
    assert "2 inputs" in result.stderr and "x0 1×3×8×8" in result.stderr
    assert not (tmp_path / "o.png").exists()


def test_not_an_onnx_file_and_a_missing_file(cli, tmp_path, street):
    (tmp_path / "junk.onnx").write_bytes(b"not a graph")
    for model in (tmp_path / "junk.onnx", tmp_path / "absent.onnx"):
        result = cli("predict", street, "--model", str(model), "-o", str(tmp_path / "o.png"))
        assert_one_line_error(result, 1)
        assert str(model) in result.stderr


def test_options_the_back_end_does_not_take_are_refused(lraspp, cli, tmp_path, street):
    path = str(lraspp[1])
    for args in (["--amp"], ["--backend", "nope"], ["--resize", "0x3"], ["--mean", "1,2"], ["--std", "0"],
                 ["--tile", "4", "--blend", "wavy"], ["--device", "tpu"], ["--overlap", "3"]):
        result = cli("predict", street, "--model", path, *args, "-o", str(tmp_path / "o.png"))
        assert_one_line_error(result, 2)
    result = cli("predict", street, "--backend", "torch", "--threads", "2", "-o", str(tmp_path / "o.png"))
    assert_one_line_error(result, 2)
    assert "--threads" in result.stderr


def test_a_task_the_graph_does_not_predict_is_refused(lraspp, cli, tmp_path, street):
    path = str(lraspp[1])
    for task in ("instance", "panoptic"):
        out = tmp_path / ("o.json" if task == "panoptic" else "o.png")
        result = cli("predict", street, "--model", path, "--task", task, "-o", str(out))
        assert_one_line_error(result, 2)
        assert f"--task {task}" in result.stderr and "semantic labels" in result.stderr
        assert not out.exists()
    result = cli("predict", street, "--model", path, "--task", "semantic", "-o", str(tmp_path / "o.png"))
    assert result.code == 0, result.stderr


def test_missing_onnxruntime_names_the_extra(lraspp, tmp_path, street):
    import subprocess
    import sys

    path = str(lraspp[1])
    code = ("import sys; sys.modules['onnxruntime'] = None; from segtools.cli.app import run; "
            f"sys.exit(run(['predict', {street!r}, '--model', {path!r}, '-o', {str(tmp_path / 'o.png')!r}]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1 and "pip install 'segtools[onnx]'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_threads_and_device_choose_the_session(lraspp):
    from segtools.backends.onnx import providers
    from segtools.errors import UsageError

    runner = open_onnx(lraspp[1], device="cpu", threads=1)
    assert runner.session.get_providers() == ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(UsageError, match="CUDA"):
            providers("cuda")
    assert providers("auto", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def test_cuda_execution_provider_is_chosen_from_the_provider_list(lraspp, monkeypatch):
    """The CUDA path as far as a CPU-only machine can go: the provider list onnxruntime
    reports decides, and the session is asked for CUDA first (CPU as its fallback)."""
    from segtools.backends import onnx as backend
    from segtools.errors import UsageError

    both = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert backend.providers("auto", both) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert backend.providers("cuda:2", both) == [("CUDAExecutionProvider", {"device_id": 2}), "CPUExecutionProvider"]
    assert backend.providers("cpu", both) == ["CPUExecutionProvider"]
    for device in ("cuda", "cuda:0"):
        with pytest.raises(UsageError, match="no CUDA execution provider.*onnxruntime-gpu"):
            backend.providers(device, ["CPUExecutionProvider"])
    with pytest.raises(UsageError, match="auto, cpu, cuda or cuda:N"):
        backend.providers("mps", both)

    asked = []
    real = ort.InferenceSession

    def session(path, options=None, providers=None):
        asked.append(providers)
        return real(path, options, providers=["CPUExecutionProvider"])  # no GPU here: run it on the CPU

    monkeypatch.setattr(ort, "get_available_providers", lambda: both)
    monkeypatch.setattr(ort, "InferenceSession", session)
    runner = open_onnx(lraspp[1], device="auto")
    assert asked == [["CUDAExecutionProvider", "CPUExecutionProvider"]] and runner.forward is not None
    open_onnx(lraspp[1], device="cuda:1")
    assert asked[-1] == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
