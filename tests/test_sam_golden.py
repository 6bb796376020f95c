"""segtools' SAM equals the official segment-anything (fixtures by tools/make_sam_golden.py).

A small ViT with SAM's full prompt encoder and mask decoder, every tensor filled by key
(tests/golden_util.py) in both implementations: the image embedding, low-res logits, IoU
predictions, full-size logits and masks must agree to 1e-4 for every prompt case; the
automatic mask generator must return the same masks (IoU ≥ 0.999 each) in the same order.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import golden_util  # noqa: E402
from segtools.inference.sam import SamRunner, best_masks  # noqa: E402
from segtools.models.sam.model import SamConfig, VARIANTS, build_sam, load_sam, sam_config  # noqa: E402

FIXTURES = golden_util.SAM_GOLDEN_DIR
TOL = 1e-4


@pytest.fixture(scope="module")
def tiny_runner():
    torch.manual_seed(0)
    model = build_sam(SamConfig(**golden_util.SAM_TINY))
    golden_util.fill_deterministic(model)
    runner = SamRunner(model)
    return runner, runner.encode(golden_util.sam_golden_image())


@pytest.fixture(scope="module")
def golden():
    return dict(np.load(FIXTURES / "prompts.npz"))


@pytest.mark.parametrize("variant", ["sam-vit-b", "sam-vit-l", "sam-vit-h"])
def test_keys_and_shapes_equal_the_official_architectures(variant):
    expected = json.loads((FIXTURES / f"keys-{variant}.json").read_text())
    with torch.device("meta"):
        model = build_sam(variant)
    ours = [[key, list(value.shape)] for key, value in model.state_dict().items()]
    assert sorted(ours) == sorted(expected)
    # the variant is read back off the keys and shapes alone
    state = {key: torch.empty(shape, device="meta") for key, shape in expected}
    assert sam_config(state) == VARIANTS[variant]
    assert sam_config(state).variant == variant


def test_image_embedding_equals_reference(tiny_runner, golden):
    _, embedding = tiny_runner
    assert embedding.input_size == (192, 256) and embedding.original_size == (150, 200)
    np.testing.assert_allclose(embedding.features.numpy(), golden["features"], atol=TOL, rtol=0)


@pytest.mark.parametrize("case", list(golden_util.SAM_PROMPT_CASES))
def test_prompt_outputs_equal_reference(tiny_runner, golden, case):
    runner, embedding = tiny_runner
    spec = golden_util.SAM_PROMPT_CASES[case]
    mask_input = None
    if "mask_from" in spec:
        source = spec["mask_from"]
        mask_input = golden[f"{source}_low_res"][0, int(np.argmax(golden[f"{source}_iou"][0]))][None]
    result = runner.predict(embedding, spec.get("points"), spec.get("labels"), spec.get("boxes"), mask_input,
                            multimask=spec["multimask"], return_logits=True)
    np.testing.assert_allclose(result.iou, golden[f"{case}_iou"], atol=TOL, rtol=0)
    np.testing.assert_allclose(result.low_res, golden[f"{case}_low_res"], atol=TOL, rtol=0)
    np.testing.assert_allclose(result.logits[..., ::4, ::4], golden[f"{case}_logits_sample"], atol=TOL, rtol=0)
    expected = np.unpackbits(golden[f"{case}_masks"], axis=-1, count=embedding.original_size[1]).astype(bool)
    differ = result.masks != expected
    assert not differ[np.abs(result.logits) > TOL].any()  # only logits within 1e-4 of 0 may flip
    assert differ.sum() <= 2


def test_best_mask_is_the_highest_predicted_iou(tiny_runner):
    runner, embedding = tiny_runner
    result = runner.predict(embedding, [[[60.0, 45.0]]], [[1]], multimask=True)
    masks, iou, index = best_masks(result)
    assert masks.shape == (1, 150, 200) and index[0] == int(np.argmax(result.iou[0]))
    assert iou[0] == result.iou.max()


def test_loads_its_own_state_dict_and_refuses_another_variant(tiny_runner):
    runner, _ = tiny_runner
    state = runner.model.state_dict()
    again = load_sam(state)
    assert again.config == runner.model.config
    from segtools.errors import InputError

    with pytest.raises(InputError, match="is a sam-vit checkpoint, not sam-vit-b"):
        load_sam(state, expect="sam-vit-b")
    broken = dict(state)
    broken.pop("mask_decoder.iou_token.weight")
    with pytest.raises(InputError, match="not a Segment Anything checkpoint"):
        load_sam(broken)
    with pytest.raises(InputError, match="SAM 2"):
        load_sam({"image_encoder.trunk.patch_embed.proj.weight": torch.zeros(1), **state})


@pytest.mark.parametrize("kept, size", [((768, 1024), (360, 480)), ((1024, 683), (1500, 1000)),
                                        ((1024, 1024), (64, 64)), ((577, 1024), (361, 640))])
def test_upscaling_matrices_equal_two_bilinear_interpolations(kept, size):
    """The mask upscaling as one matrix per axis equals SAM's interpolate → crop → interpolate
    (and SAM 2.1's single interpolate) to float32 rounding, for up- and downscaling."""
    import torch.nn.functional as F

    from segtools.inference.sam import resize_logits, upscale_matrix

    low = torch.randn(2, 3, 256, 256, generator=torch.Generator().manual_seed(1)) * 20
    up = F.interpolate(low, (1024, 1024), mode="bilinear", align_corners=False)[..., :kept[0], :kept[1]]
    expected = F.interpolate(up, size, mode="bilinear", align_corners=False)
    found = resize_logits(low, upscale_matrix(256, 1024, kept[0], size[0]), upscale_matrix(256, 1024, kept[1], size[1]))
    assert found.shape == expected.shape and (found - expected).abs().max() < 2e-5
    once = F.interpolate(low, size, mode="bilinear", align_corners=False)
    found = resize_logits(low, upscale_matrix(256, *(size[0],) * 3), upscale_matrix(256, *(size[1],) * 3))
    assert (found - once).abs().max() < 2e-5
