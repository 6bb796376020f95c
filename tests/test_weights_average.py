"""``segtools weights average``: weighted checkpoint averages (WiSE-FT, model soups)."""

from __future__ import annotations

import pytest

from tests.conftest import assert_one_line_error

torch = pytest.importorskip("torch")


def _checkpoint(path, seed: int, arch: str = "lraspp-mnv3", classes: int = 3):
    from segtools.models import build_model
    from segtools.weights.checkpoint import make_checkpoint, save_checkpoint

    torch.manual_seed(seed)
    model = build_model(arch, classes)
    state = model.state_dict()
    state = {k: (v + seed) if v.is_floating_point() else v + seed for k, v in state.items()}  # distinct buffers too
    save_checkpoint(path, make_checkpoint(arch, classes, state, preprocessing={"mean": [0.5] * 3, "std": [0.2] * 3,
                                                                                   "scale": 1 / 255}))
    return state


def test_weighted_average_of_every_tensor_and_a_model_that_loads(cli, tmp_path):
    from segtools.weights.checkpoint import load_checkpoint
    from segtools.weights.loader import load_model

    a, b = _checkpoint(tmp_path / "a.pt", 1), _checkpoint(tmp_path / "b.pt", 2)
    result = cli("weights", "average", str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--weights", "1,3",
                 "-o", str(tmp_path / "soup.pt"))
    assert result.code == 0, result.stderr
    soup = load_checkpoint(tmp_path / "soup.pt")
    assert soup["arch"] == "lraspp-mnv3" and soup["preprocessing"]["mean"] == [0.5] * 3
    assert [e["weight"] for e in soup["averaged_from"]] == [0.25, 0.75]
    for key, value in soup["state_dict"].items():
        if value.is_floating_point():
            assert torch.allclose(value, 0.25 * a[key] + 0.75 * b[key], atol=1e-5), key
        else:  # integer buffers (BatchNorm's num_batches_tracked) from the heavier checkpoint
            assert torch.equal(value, b[key]), key
    assert load_model(weights=str(tmp_path / "soup.pt")).model is not None
    result = cli("weights", "average", str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "-o", str(tmp_path / "eq.pt"))
    assert result.code == 0
    eq = load_checkpoint(tmp_path / "eq.pt")["state_dict"]
    key = next(k for k, v in a.items() if v.is_floating_point())
    assert torch.allclose(eq[key], (a[key] + b[key]) / 2, atol=1e-6)


def test_mismatches_and_bad_requests_are_one_line_errors(cli, tmp_path):
    _checkpoint(tmp_path / "a.pt", 1)
    _checkpoint(tmp_path / "c4.pt", 2, classes=4)
    _checkpoint(tmp_path / "u.pt", 3, arch="unet")
    cases = [
        ((str(tmp_path / "a.pt"), str(tmp_path / "c4.pt")), 1, "num_classes 4"),
        ((str(tmp_path / "a.pt"), str(tmp_path / "u.pt")), 1, "arch 'unet'"),
        ((str(tmp_path / "a.pt"),), 2, "two or more"),
        ((str(tmp_path / "a.pt"), str(tmp_path / "a.pt"), "--weights", "1"), 2, "--weights"),
        ((str(tmp_path / "a.pt"), str(tmp_path / "a.pt"), "--weights", "-1,2"), 2, "non-negative"),
        ((str(tmp_path / "a.pt"), str(tmp_path / "missing.pt")), 1, "missing.pt"),
    ]
    for args, code, text in cases:
        result = cli("weights", "average", *args, "-o", str(tmp_path / "out.pt"))
        assert_one_line_error(result, code)
        assert text in result.stderr, result.stderr
        assert not (tmp_path / "out.pt").exists()
    before = (tmp_path / "a.pt").read_bytes()
    result = cli("weights", "average", str(tmp_path / "a.pt"), str(tmp_path / "a.pt"), "-o", str(tmp_path / "a.pt"))
    assert_one_line_error(result, 1)
    assert (tmp_path / "a.pt").read_bytes() == before
