"""``segtools predict`` as a new user meets it: which model a name means, the output format an
extension asks for, the precision --amp really gets on this CPU, the tile overlap default."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_one_line_error

torch = pytest.importorskip("torch")

from segtools.weights import registry  # noqa: E402
from segtools.weights.loader import model_source  # noqa: E402

SHIPPED = registry.local_path(registry.BUILTIN[registry.DEFAULT_MODEL])
needs_default = pytest.mark.skipif(not SHIPPED.is_file(), reason="this installation ships no default model")


def _png(h=20, w=24) -> bytes:
    from segtools.io.images import encode_image

    return encode_image(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8), "png")


# ------------------------------------------------------------------ which model a name means


def test_a_bare_registry_name_is_the_registry_entry_even_beside_a_file_of_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert model_source("lraspp-mnv3-voc") == ("registry", None)
    (tmp_path / "lraspp-mnv3-voc").write_bytes(b"x")
    source, note = model_source("lraspp-mnv3-voc")
    assert source == "registry" and "file here" in note and "./lraspp-mnv3-voc" in note
    assert model_source("./lraspp-mnv3-voc") == ("file", None)
    assert model_source("other.pt") == ("file", None)


@needs_default
def test_default_model_is_never_a_path_in_a_folder_holding_a_camvid_dataset(cli, tmp_path, monkeypatch):
    (tmp_path / "camvid" / "val").mkdir(parents=True)
    (tmp_path / "img.png").write_bytes(_png())
    monkeypatch.chdir(tmp_path)
    result = cli("predict", "img.png", "-o", "out.png")
    assert result.code == 0, result.stderr
    assert "registry" not in result.stderr  # nothing was ambiguous: the default is a name
    assert (tmp_path / "out.png").is_file()


@needs_default
def test_explicit_model_that_is_also_a_folder_says_which_it_took(cli, tmp_path, monkeypatch):
    (tmp_path / "camvid").mkdir()
    (tmp_path / "img.png").write_bytes(_png())
    monkeypatch.chdir(tmp_path)
    result = cli("predict", "img.png", "--model", "camvid", "-o", "out.png")
    assert result.code == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "registry" in line]
    assert len(notes) == 1 and notes[0].startswith("segtools: --model camvid: ") and "folder" in notes[0]
    assert_one_line_error(cli("predict", "img.png", "--model", "./camvid"), 1)  # ./NAME is the path


# ------------------------------------------------------------------ --amp on a CPU


AVX2 = {"architecture": "x86_64", "cpu_name": "AMD EPYC", "avx2": True, "avx512_bf16": False, "amx_bf16": False}
SAPPHIRE_RAPIDS = {**AVX2, "cpu_name": "Xeon", "avx512_bf16": True, "amx_bf16": True, "amx_fp16": True}
GRAVITON3 = {"architecture": "arm64", "neon": True, "bf16": True, "fp16_arith": True}


def test_cpu_half_precision_is_native_only_with_the_instructions_for_it():
    from segtools.inference.device import cpu_amp_fallback, cpu_runs_natively

    assert not cpu_runs_natively("bf16", AVX2) and not cpu_runs_natively("fp16", AVX2)
    assert cpu_runs_natively("bf16", SAPPHIRE_RAPIDS) and cpu_runs_natively("fp16", SAPPHIRE_RAPIDS)
    assert cpu_runs_natively("bf16", GRAVITON3) and not cpu_runs_natively("bf16", {})
    reason = cpu_amp_fallback("bf16", AVX2)
    assert "AMD EPYC" in reason and "fp32" in reason and "\n" not in reason
    assert cpu_amp_fallback("bf16", SAPPHIRE_RAPIDS) is None


@pytest.mark.parametrize("capabilities, expected", [(AVX2, None), (SAPPHIRE_RAPIDS, "bfloat16")])
def test_amp_on_a_cpu_without_native_bf16_runs_fp32_with_one_warning(capabilities, expected, monkeypatch, caplog):
    from segtools.inference import device, predictor

    monkeypatch.setattr(device, "cpu_capabilities", lambda: dict(capabilities))
    with caplog.at_level("WARNING", logger="segtools"):
        made = predictor.Predictor(torch.nn.Conv2d(3, 2, 1), device="cpu", amp=True)
    assert made.amp_dtype == (None if expected is None else getattr(torch, expected))
    warnings = [r for r in caplog.records if r.name == "segtools"]
    assert len(warnings) == (1 if expected is None else 0)


# ------------------------------------------------------------------ the output format an extension asks for


@pytest.fixture
def checkpoint(tmp_path):
    from segtools.models import build_model
    from segtools.weights.checkpoint import make_checkpoint, save_checkpoint

    torch.manual_seed(0)
    model = build_model("unet", 5, depth=2, base_channels=4)
    return save_checkpoint(tmp_path / "tiny.pt", make_checkpoint(
        "unet", 5, model.state_dict(), classes={"names": [f"c{i}" for i in range(5)]},
        preprocessing={"mean": [0.0] * 3, "std": [1.0] * 3, "scale": 1 / 255}, arch_options={"depth": 2, "base_channels": 4}))


def test_predict_to_a_tif_writes_a_tiff_with_the_labels_of_the_png(cli, checkpoint, tmp_path):
    import tifffile

    from segtools.io.masks import read_label_mask

    (tmp_path / "a.png").write_bytes(_png(21, 30))
    for name in ("out.png", "out.tif", "out.tiff"):
        result = cli("predict", str(tmp_path / "a.png"), "--weights", str(checkpoint), "-o", str(tmp_path / name))
        assert result.code == 0, result.stderr
    expected = read_label_mask(tmp_path / "out.png").labels
    for name in ("out.tif", "out.tiff"):
        assert (tmp_path / name).read_bytes()[:4] in (b"II*\x00", b"MM\x00*")
        assert np.array_equal(tifffile.imread(tmp_path / name), expected)
    probs = cli("predict", str(tmp_path / "a.png"), "--weights", str(checkpoint), "--probs", "-o", str(tmp_path / "p.tif"))
    assert probs.code == 0, probs.stderr
    assert tifffile.imread(tmp_path / "p.tif").shape == (5, 21, 30)


def test_label_tiff_without_tifffile_is_written_by_pillow(monkeypatch):
    import importlib.util

    from PIL import Image

    from segtools.inference.files import encode_tiff

    labels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tifffile" else real(name, *a))
    data = encode_tiff(labels, "labels")
    import io

    assert data[:4] in (b"II*\x00", b"MM\x00*") and np.array_equal(np.asarray(Image.open(io.BytesIO(data))), labels)


def test_predict_refuses_an_output_extension_it_cannot_honour(cli, checkpoint, tmp_path):
    (tmp_path / "a.png").write_bytes(_png())
    for name in ("out.bmp", "out.jpg"):
        result = cli("predict", str(tmp_path / "a.png"), "--weights", str(checkpoint), "-o", str(tmp_path / name))
        assert_one_line_error(result, 2)
        assert not (tmp_path / name).exists()


# ------------------------------------------------------------------ the tile overlap default


def test_tile_overlap_defaults_to_a_quarter_of_the_tile_and_help_says_so(cli, checkpoint, tmp_path, monkeypatch):
    from segtools.inference import predictor

    assert predictor.Tiling(16).overlap == 0.25
    seen = []
    real = predictor.Predictor

    def spy(*args, **kwargs):
        seen.append(kwargs["tiling"])
        return real(*args, **kwargs)

    monkeypatch.setattr(predictor, "Predictor", spy)
    (tmp_path / "a.png").write_bytes(_png(40, 40))
    for extra, overlap in (((), 0.25), (("--overlap", "0"), 0), (("--overlap", "4"), 4)):
        result = cli("predict", str(tmp_path / "a.png"), "--weights", str(checkpoint), "--tile", "16", *extra,
                     "-o", str(tmp_path / "out.png"))
        assert result.code == 0, result.stderr
        assert seen[-1].overlap == overlap
    assert_one_line_error(cli("predict", str(tmp_path / "a.png"), "--weights", str(checkpoint), "--overlap", "4"), 2)
    help_text = " ".join(cli("predict", "--help").stdout.decode().replace("│", " ").split())
    assert "default: 0.25, a quarter of the tile" in help_text


# ------------------------------------------------------------------ exit codes


def test_a_mistyped_classes_preset_is_a_usage_error(cli, checkpoint, tmp_path):
    (tmp_path / "a.png").write_bytes(_png())
    result = cli("predict", str(tmp_path / "a.png"), "--weights", str(checkpoint), "--classes", "camvd")
    assert_one_line_error(result, 2)
    assert "camvd" in result.stderr and "preset" in result.stderr
