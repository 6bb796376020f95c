"""Fast-SCNN in the zoo: the paper's layout and size, training, the backbone split that
freezing and the backbone learning rate use, and an ONNX export of any input size."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from segtools.models import build_model, parameter_count  # noqa: E402
from segtools.models.fastscnn import adaptive_mean  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_size_and_resolutions_are_the_papers():
    model = build_model("fast-scnn", 19).eval()
    # Poudel et al. 2019: 1.11 million parameters for Cityscapes' 19 classes
    assert parameter_count(model) == pytest.approx(1.11e6, rel=0.03)
    x = torch.rand(1, 3, 256, 512)
    with torch.inference_mode():
        features = model.backbone(x)
        logits = model(x)
    assert features["high"].shape == (1, 64, 32, 64)  # learning to downsample: 1/8
    assert features["low"].shape == (1, 128, 8, 16)  # global feature extractor: 1/32
    assert logits.shape == (1, 19, 256, 512)


@pytest.mark.parametrize("size", [(12, 15), (7, 11), (2, 2), (1, 3)])
def test_pyramid_pooling_windows_are_adaptive_average_pooling(size):
    x = torch.rand(2, 8, *size)
    for bins in (1, 2, 3, 6):
        torch.testing.assert_close(adaptive_mean(x, bins), torch.nn.functional.adaptive_avg_pool2d(x, bins))


def test_it_learns_and_its_backbone_freezes():
    from segtools.train.init import param_groups, set_backbone_frozen

    torch.manual_seed(0)
    model = build_model("fast-scnn", 3, dropout=0.0).train()
    target = torch.zeros(4, 64, 96, dtype=torch.long)  # three regions, each its own colour
    target[:, :, 48:] = 1
    target[:, 32:, 48:] = 2
    x = torch.eye(3)[target].permute(0, 3, 1, 2) + 0.3 * torch.rand(4, 3, 64, 96)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(model(x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
    set_backbone_frozen(model, True)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.classifier.parameters())
    groups = param_groups(model, 0.1)
    assert [g["lr_scale"] for g in groups] == [0.1, 1.0]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_dropout_out_of_range_is_a_usage_error():
    from segtools.errors import UsageError

    with pytest.raises(UsageError, match="dropout"):
        build_model("fast-scnn", 3, dropout=1.5)


def test_onnx_export_runs_every_input_size(tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from segtools.models import get_arch
    from segtools.weights.export import export_model
    from segtools.weights.loader import LoadedModel

    torch.manual_seed(0)
    model = build_model("fast-scnn", 5).eval()
    loaded = LoadedModel(model, "fast-scnn", 5, None, get_arch("fast-scnn").preprocessing, "test", {})
    path = export_model(loaded, tmp_path / "fast.onnx", "onnx", (96, 128))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for size in ((96, 128), (90, 121), (360, 480)):  # 121 and 90: bins 2, 3, 6 do not divide the 1/32 map
        x = torch.rand(1, 3, *size)
        with torch.inference_mode():
            expected = model(x).numpy()
        got = session.run(None, {name: x.numpy()})[0]
        assert got.shape == expected.shape
        assert abs(got - expected).max() < 1e-3
