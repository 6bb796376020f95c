"""Our native models equal their references (torchvision, milesial U-Net, VainF DeepLabV3+).

The fixtures under ``tests/fixtures/golden`` were recorded by ``tools/make_golden.py`` from
the reference implementations (torchvision 0.29.1 / torch 2.14.1) with every parameter and
buffer filled by key (``golden_util``). Here we rebuild our model, check its state-dict keys
and shapes equal the reference's exactly (so published checkpoints load with
``strict=True``), fill it the same way, and compare the outputs of every head.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import golden_util  # noqa: E402
from golden_util import GOLDEN_CASES, GOLDEN_DIR, GoldenCase  # noqa: E402

from segtools.models import build_model  # noqa: E402

ABS_TOL = 1e-4  # the bound
REL_TOL = 2e-5  # of the largest |logit|: the filled models' logits are ~0.1-1


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _manifest(case: GoldenCase) -> dict:
    return json.loads((GOLDEN_DIR / f"{case.name}.json").read_text())


def _our_model(case: GoldenCase) -> torch.nn.Module:
    """Our model with its keyed deterministic weights (built on ``meta``: no random init)."""
    with torch.device("meta"):
        model = build_model(case.arch, case.num_classes, **case.options)
    golden_util.fill_deterministic(model)
    return model.eval()


def _run(model: torch.nn.Module, case: GoldenCase) -> dict[str, np.ndarray]:
    x = torch.from_numpy(golden_util.golden_input()).float()
    with torch.inference_mode():
        if "aux" in case.heads:
            out, aux = model.forward_aux(x)
            return {"out": out.numpy(), "aux": aux.numpy()}
        return {"out": model(x).numpy()}


def _max_excess(case: GoldenCase, outputs: dict[str, np.ndarray]) -> float:
    """Largest ratio of a difference to its tolerance (≤ 1 passes)."""
    golden = np.load(GOLDEN_DIR / f"{case.name}.npz")
    worst = 0.0
    for head in case.heads:
        ours = golden_util.summarise(outputs[head].astype(np.float64))
        reference = golden[f"{head}_sample"]
        tolerance = min(ABS_TOL, REL_TOL * float(np.abs(reference).max()))
        assert ours["sample"].shape == reference.shape, head
        worst = max(worst, float(np.abs(ours["sample"] - reference).max()) / tolerance)
        for summary in ("channel_mean", "channel_abs_mean"):
            diff = np.abs(ours[summary] - golden[f"{head}_{summary}"]).max()
            worst = max(worst, float(diff) / tolerance)
    return worst


@pytest.mark.parametrize("case", GOLDEN_CASES, ids=lambda case: case.name)
def test_state_dict_keys_and_shapes_equal_reference(case: GoldenCase) -> None:
    manifest = _manifest(case)
    reference = {key: tuple(shape) for key, shape, _ in manifest["state_dict"]}
    with torch.device("meta"):
        model = build_model(case.arch, case.num_classes, **case.options)
    ours = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert sorted(set(ours) - set(reference)) == []
    assert sorted(set(reference) - set(ours)) == []
    assert {k: v for k, v in ours.items() if reference[k] != v} == {}


@pytest.mark.parametrize("case", GOLDEN_CASES, ids=lambda case: case.name)
def test_outputs_equal_reference(case: GoldenCase) -> None:
    model = _our_model(case)
    outputs = _run(model, case)
    assert outputs["out"].shape == (1, case.num_classes, *golden_util.INPUT_SHAPE[-2:])
    assert _max_excess(case, outputs) <= 1.0


def test_comparison_catches_a_subtle_difference() -> None:
    """BatchNorm eps 1e-5 instead of MobileNetV3's 1e-3 must fail the golden comparison."""
    case = next(c for c in GOLDEN_CASES if c.name == "deeplabv3-mnv3")
    model = _our_model(case)
    for module in model.backbone.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eps = 1e-5
    assert _max_excess(case, _run(model, case)) > 2.0


def test_channels_last_gives_the_same_logits() -> None:
    case = next(c for c in GOLDEN_CASES if c.name == "lraspp-mnv3")
    model = _our_model(case)
    x = torch.from_numpy(golden_util.golden_input()).float()
    with torch.inference_mode():
        reference = model(x)
        model = model.to(memory_format=torch.channels_last)
        ours = model(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(ours, reference, atol=1e-5)
    assert _max_excess(case, {"out": ours.numpy()}) <= 1.0
