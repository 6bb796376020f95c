"""Model registry, builders, U-Net geometry, flexible checkpoint loading and TorchScript."""

from __future__ import annotations

import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

import golden_util  # noqa: E402

from segtools.errors import InputError, UsageError  # noqa: E402
from segtools.models import ARCHITECTURES, build_model, parameter_count  # noqa: E402
from segtools.weights.torchscript import load_torchscript  # noqa: E402
from segtools.models.unet import UNet  # noqa: E402
from segtools.weights.state_dict import infer_options, load_state_dict_flexible, unwrap_state_dict  # noqa: E402

INTERFACE_NAMES = {
    "unet", "deeplabv3-resnet50", "deeplabv3-resnet101", "deeplabv3-mnv3", "fcn-resnet50",
    "fcn-resnet101", "lraspp-mnv3", "deeplabv3plus-resnet50", "deeplabv3plus-resnet101", "fast-scnn",
}


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def filled(arch: str, num_classes: int = 4, **options) -> torch.nn.Module:
    """Model with deterministic weights, built without paying for random init."""
    with torch.device("meta"):
        model = build_model(arch, num_classes, **options)
    golden_util.fill_deterministic(model)
    return model.eval()


def test_registry_names_and_preprocessing() -> None:
    assert set(ARCHITECTURES) == INTERFACE_NAMES
    assert ARCHITECTURES["unet"].preprocessing.to_dict() == {"mean": [0.0] * 3, "std": [1.0] * 3, "scale": 1 / 255}
    assert ARCHITECTURES["fcn-resnet50"].preprocessing.mean == (0.485, 0.456, 0.406)
    assert ARCHITECTURES["deeplabv3-mnv3"].supports_aux
    assert not ARCHITECTURES["lraspp-mnv3"].supports_aux


def test_importing_the_registry_does_not_import_torch() -> None:
    code = "import sys, segtools.models as m; assert m.ARCHITECTURES; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("arch", sorted(INTERFACE_NAMES))
def test_every_model_returns_logits_at_odd_input_size(arch: str) -> None:
    model = filled(arch, 5)
    x = torch.rand(2, 3, 37, 51) * 4 - 2
    with torch.inference_mode():
        out = model(x)
    assert isinstance(out, torch.Tensor)
    assert out.shape == (2, 5, 37, 51)
    assert torch.isfinite(out).all()
    with torch.inference_mode():  # batch items are independent in eval mode
        assert torch.allclose(model(x[1:]), out[1:], atol=1e-5)


@pytest.mark.parametrize(
    ("arch", "options", "message"),
    [
        ("deeplab", {}, "did you mean"),
        ("unet", {"aux": True}, "no option aux"),
        ("unet", {"depth": 6}, "depth must be 2 to 5"),
        ("unet", {"base_channels": 7}, "base_channels"),
        ("deeplabv3plus-resnet50", {"output_stride": 32}, "output_stride"),
        ("lraspp-mnv3", {"output_stride": 4}, "output_stride must be 8, 16 or 32"),
        ("lraspp-mnv3", {"low_stride": 2}, "low_stride must be 4 or 8"),
    ],
)
def test_bad_architecture_requests_are_usage_errors(arch: str, options: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        build_model(arch, 3, **options)


@pytest.mark.parametrize("num_classes", [0, -1, 2.5, True])
def test_num_classes_must_be_a_positive_integer(num_classes) -> None:
    with pytest.raises(UsageError, match="num_classes"):
        build_model("unet", num_classes)


@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_lraspp_output_stride_sets_the_high_branch_resolution(output_stride: int, tmp_path) -> None:
    from segtools.weights.checkpoint import make_checkpoint, save_checkpoint
    from segtools.weights.loader import load_model

    model = filled("lraspp-mnv3", 3, output_stride=output_stride)
    x = torch.rand(1, 3, 64, 96)
    with torch.inference_mode():
        features = model.backbone(x)
        assert features["low"].shape[-2:] == (8, 12)  # the low branch stays at 1/8
        assert features["high"].shape[-2:] == (64 // output_stride, 96 // output_stride)
        assert model(x).shape == (1, 3, 64, 96)
    # the same parameters at every stride, so one checkpoint loads into any of them …
    reference = filled("lraspp-mnv3", 3).state_dict()
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in reference.items()}
    # … and a checkpoint's stored stride is what the loader builds (it cannot be read from weights)
    path = save_checkpoint(tmp_path / "m.pt", make_checkpoint(
        "lraspp-mnv3", 3, model.state_dict(), arch_options={"output_stride": output_stride}))
    loaded = load_model(weights=path)
    assert loaded.arch_options["output_stride"] == output_stride
    with torch.inference_mode():
        assert loaded.model.backbone(x)["high"].shape[-2:] == features["high"].shape[-2:]
        assert torch.allclose(loaded.model(x), model(x), atol=1e-5)


def test_lraspp_low_stride_4_reads_the_quarter_resolution_block() -> None:
    model = filled("lraspp-mnv3", 3, low_stride=4)
    x = torch.rand(1, 3, 64, 96)
    with torch.inference_mode():
        features = model.backbone(x)
        assert features["low"].shape[1:] == (24, 16, 24)
        assert features["high"].shape[-2:] == (4, 6)
        assert model(x).shape == (1, 3, 64, 96)
    assert model.classifier.low_classifier.weight.shape == (3, 24, 1, 1)


def test_forward_aux_returns_both_heads_or_none() -> None:
    x = torch.rand(1, 3, 40, 48)
    with torch.inference_mode():
        out, aux = filled("deeplabv3-mnv3", 3, aux=True).forward_aux(x)
        assert out.shape == aux.shape == (1, 3, 40, 48)
        out, aux = filled("deeplabv3-mnv3", 3).forward_aux(x)
        assert aux is None and out.shape == (1, 3, 40, 48)


# --- U-Net -------------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [2, 3, 4, 5])
@pytest.mark.parametrize("bilinear", [False, True])
def test_unet_depths_keep_the_milesial_naming(depth: int, bilinear: bool) -> None:
    model = UNet(3, depth=depth, base_channels=8, bilinear=bilinear)
    top = {key.split(".")[0] for key in model.state_dict()}
    assert top == {"inc", "outc", *(f"down{i}" for i in range(1, depth + 1)), *(f"up{i}" for i in range(1, depth + 1))}
    assert ("up1.up.weight" in model.state_dict()) is (not bilinear)
    with torch.inference_mode():
        assert model.eval()(torch.rand(1, 3, 2**depth + 3, 21)).shape == (1, 3, 2**depth + 3, 21)


def test_unet_pads_by_reflection_and_crops_back() -> None:
    model = filled("unet", 2, depth=3, base_channels=8)
    x = torch.rand(1, 3, 29, 35)  # pads to 32×40: 1+2 rows, 2+3 columns
    padded = torch.nn.functional.pad(x, (2, 3, 1, 2), mode="reflect")
    with torch.inference_mode():
        expected = model(padded)[..., 1:30, 2:37]
        assert torch.allclose(model(x), expected, atol=1e-6)


def test_unet_handles_inputs_smaller_than_its_stride() -> None:
    model = filled("unet", 2, depth=4, base_channels=8)
    with torch.inference_mode():
        assert model(torch.rand(1, 3, 3, 5)).shape == (1, 2, 3, 5)


def test_unet_trains() -> None:
    model = UNet(2, depth=2, base_channels=4, bilinear=True).train()
    x, target = torch.rand(2, 3, 20, 20), torch.randint(0, 2, (2, 20, 20))
    loss = torch.nn.functional.cross_entropy(model(x), target)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_parameter_count_counts_parameters_not_buffers() -> None:
    model = UNet(2, depth=2, base_channels=4)
    assert parameter_count(model) == sum(p.numel() for p in model.parameters())
    assert parameter_count(model) < sum(v.numel() for v in model.state_dict().values())


# --- checkpoints into models (segtools.weights.state_dict) ---------------------------------
@pytest.mark.parametrize(
    ("arch", "options"),
    [
        ("unet", {"depth": 3, "base_channels": 16, "bilinear": True, "conv_bias": True}),
        ("unet", {}),
        ("deeplabv3-resnet50", {"aux": True}),
        ("fcn-resnet50", {"aux": False}),
        ("lraspp-mnv3", {"low_stride": 8}),
        ("lraspp-mnv3", {"low_stride": 4}),
        ("fast-scnn", {}),
        ("deeplabv3plus-resnet50", {"decoder_convs": 1}),
    ],
)
def test_infer_options_reads_them_back_from_weights(arch: str, options: dict) -> None:
    with torch.device("meta"):
        state = build_model(arch, 7, **options).state_dict()
    inferred = infer_options(arch, state)
    assert inferred.pop("num_classes") == 7
    expected = {**ARCHITECTURES[arch].options, **options} if arch == "unet" else options
    assert inferred == {k: v for k, v in expected.items() if k in inferred}
    assert set(inferred) >= set(options)


@pytest.mark.parametrize("arch", sorted(INTERFACE_NAMES))
def test_every_architecture_reads_its_class_count_off_a_plain_state_dict(arch: str) -> None:
    with torch.device("meta"):
        state = build_model(arch, 7).state_dict()
    assert infer_options(arch, state)["num_classes"] == 7


def test_plain_fast_scnn_state_dict_loads_with_its_arch(tmp_path) -> None:
    from segtools.weights.loader import load_model

    model = filled("fast-scnn", 3)
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    loaded = load_model(weights=tmp_path / "plain.pt", arch="fast-scnn")
    assert loaded.num_classes == 3
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(loaded.model(x), model(x), atol=1e-5)


def test_infer_options_rejects_another_architecture() -> None:
    with torch.device("meta"):
        state = build_model("lraspp-mnv3", 2).state_dict()
    with pytest.raises(InputError, match="not those of a 'unet'"):
        infer_options("unet", state)


def test_flexible_loading_unwraps_containers_and_prefixes() -> None:
    source = filled("unet", 2, depth=2, base_channels=4)
    wrapped = {
        "epoch": 3,
        "model": {f"module.{k}": v.clone() for k, v in source.state_dict().items()},
    }
    wrapped["model"]["mask_values"] = [0, 1]  # milesial's training checkpoints carry this
    target = load_state_dict_flexible(UNet(2, depth=2, base_channels=4), wrapped)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value)


def test_torchvision_checkpoint_with_aux_loads_into_model_without_aux() -> None:
    with torch.device("meta"):
        aux_state = build_model("deeplabv3-mnv3", 3, aux=True).state_dict()
    state = {k: torch.zeros(v.shape) for k, v in aux_state.items()}
    model = load_state_dict_flexible(build_model("deeplabv3-mnv3", 3), {"state_dict": state})
    assert not any(k.startswith("aux_classifier") for k in model.state_dict())
    assert float(model.state_dict()["classifier.4.weight"].abs().sum()) == 0.0


def test_mismatched_checkpoints_are_input_errors_naming_the_problem() -> None:
    state = filled("unet", 2, depth=2, base_channels=4).state_dict()
    with pytest.raises(InputError, match=r"shape mismatch.*outc.conv.weight"):
        load_state_dict_flexible(UNet(5, depth=2, base_channels=4), state)
    del state["inc.double_conv.0.weight"]
    with pytest.raises(InputError, match="missing key.*inc.double_conv.0.weight"):
        load_state_dict_flexible(UNet(2, depth=2, base_channels=4), state)
    with pytest.raises(InputError, match="no tensors"):
        unwrap_state_dict({"epoch": 1})


# --- TorchScript -------------------------------------------------------------------------
class _DictModel(torch.nn.Module):
    """torchvision-style: returns {"out": logits at half resolution, "aux": …}."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.conv(x)
        return {"out": logits, "aux": logits * 2}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_dict_output_is_unwrapped_and_resized(tmp_path) -> None:
    path = tmp_path / "model.pt"
    torch.jit.save(torch.jit.script(_DictModel().eval()), str(path))
    model = load_torchscript(path)
    with torch.inference_mode():
        out = model(torch.rand(1, 3, 30, 42))
    assert out.shape == (1, 4, 30, 42)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_traced_native_model_round_trips_through_torchscript(tmp_path) -> None:
    model = filled("lraspp-mnv3", 3)
    path = tmp_path / "lraspp.pt"
    torch.jit.save(torch.jit.trace(model, torch.rand(1, 3, 64, 80)), str(path))
    x = torch.rand(1, 3, 48, 72)  # another size: the trace keeps the output size dynamic
    with torch.inference_mode():
        assert torch.allclose(load_torchscript(path)(x), model(x), atol=1e-5)


def test_torch_export_programs_load_too(tmp_path) -> None:
    path = tmp_path / "model.pt2"
    x = torch.rand(1, 3, 32, 40)
    torch.export.save(torch.export.export(_DictModel().eval(), (x,)), str(path))
    model = load_torchscript(path)
    with torch.inference_mode():
        assert model(x).shape == (1, 4, 32, 40)
    with pytest.raises(InputError, match="exported model refused"):  # exported for 32×40 only
        model(torch.rand(1, 3, 20, 24))


def test_non_torchscript_files_are_refused(tmp_path) -> None:
    state_file = tmp_path / "weights.pth"
    torch.save({"w": torch.zeros(2)}, state_file)
    with pytest.raises(InputError, match="not a TorchScript archive or torch.export.*loads as weights, with its architecture"):
        load_torchscript(state_file)
    with pytest.raises(InputError, match="no such TorchScript file"):
        load_torchscript(tmp_path / "missing.pt")
