"""MobileSAM: the TinyViT encoder equals MobileSAM's (as the ``ultralytics`` package ships it,
the module that loads ``mobile_sam.pt``) key for key and output for output, and the whole
predictor equals segment-anything's ``SamPredictor`` around it (fixtures by
``tools/make_sam_golden.py --only mobile``: TinyViT-5M at 256 pixels, every tensor filled by
key); the published layout at 1024 pixels and variant detection."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import golden_util  # noqa: E402
from segtools.inference.sam import SamRunner  # noqa: E402
from segtools.models.sam.model import VARIANTS, SamConfig, build_sam, load_sam, sam_config  # noqa: E402

# shapes of mobile_sam.pt's image encoder as documented by its layout (TinyViT-5M at 1024 px)
KNOWN = {
    "image_encoder.patch_embed.seq.0.c.weight": (32, 3, 3, 3),
    "image_encoder.patch_embed.seq.2.bn.running_var": (64,),
    "image_encoder.layers.0.blocks.0.conv1.c.weight": (256, 64, 1, 1),
    "image_encoder.layers.0.blocks.1.conv2.c.weight": (256, 1, 3, 3),
    "image_encoder.layers.0.downsample.conv2.c.weight": (128, 1, 3, 3),
    "image_encoder.layers.1.blocks.0.attn.attention_biases": (4, 49),
    "image_encoder.layers.1.blocks.0.attn.qkv.weight": (384, 128),
    "image_encoder.layers.2.blocks.5.attn.attention_biases": (5, 196),
    "image_encoder.layers.2.blocks.0.local_conv.c.weight": (160, 1, 3, 3),
    "image_encoder.layers.2.downsample.conv1.c.weight": (320, 160, 1, 1),
    "image_encoder.layers.3.blocks.1.mlp.fc1.weight": (1280, 320),
    "image_encoder.norm_head.weight": (320,),
    "image_encoder.head.weight": (1000, 320),
    "image_encoder.neck.0.weight": (256, 320, 1, 1),
    "image_encoder.neck.3.bias": (256,),
}


def test_mobile_sam_key_layout_and_detection():
    with torch.device("meta"):
        model = build_sam("mobile-sam")
    state = model.state_dict()
    for key, shape in KNOWN.items():
        assert tuple(state[key].shape) == shape, key
    assert not any(key.startswith("image_encoder.layers.3.downsample") for key in state)
    assert sam_config(state) == VARIANTS["mobile-sam"]
    assert sam_config(state).variant == "mobile-sam"
    encoder_params = sum(p.numel() for k, p in model.image_encoder.named_parameters() if not k.startswith(("head", "norm_head")))
    assert 5.5e6 < encoder_params < 6.0e6  # TinyViT-5M with SAM's neck


def test_mobile_sam_runs_prompts_end_to_end():
    small = SamConfig(encoder="tiny_vit", img_size=256, tiny=VARIANTS["mobile-sam"].tiny)
    model = build_sam(small)
    golden_util.fill_deterministic(model)
    runner = SamRunner(model)
    embedding = runner.encode(golden_util.sam_golden_image())
    assert tuple(embedding.features.shape) == (1, 256, 16, 16)
    result = runner.predict(embedding, [[[60.0, 45.0]]], [[1]], multimask=True)
    assert result.masks.shape == (1, 3, 150, 200) and np.isfinite(result.iou).all()
    again = load_sam(model.state_dict(), expect="mobile-sam")
    assert again.config.encoder == "tiny_vit"


TOL = 1e-4


@pytest.fixture(scope="module")
def mobile_golden():
    meta = json.loads((golden_util.SAM_GOLDEN_DIR / "mobile.json").read_text())
    model = build_sam(SamConfig(encoder="tiny_vit", img_size=meta["img_size"], tiny=VARIANTS["mobile-sam"].tiny))
    golden_util.fill_deterministic(model)
    runner = SamRunner(model)
    return meta, dict(np.load(golden_util.SAM_GOLDEN_DIR / "mobile.npz")), runner, \
        runner.encode(golden_util.sam_golden_image())


def test_mobile_sam_keys_equal_the_reference_encoder(mobile_golden):
    meta, _, runner, _ = mobile_golden
    ours = [[key, list(value.shape)] for key, value in runner.model.state_dict().items()]
    assert sorted(ours) == sorted(meta["keys"])


def test_mobile_sam_embedding_and_prompts_equal_the_reference(mobile_golden):
    meta, golden, runner, embedding = mobile_golden
    np.testing.assert_allclose(embedding.features.numpy(), golden["features"], atol=TOL, rtol=0)
    for case in meta["cases"]:
        spec = golden_util.SAM_PROMPT_CASES[case]
        result = runner.predict(embedding, spec.get("points"), spec.get("labels"), spec.get("boxes"),
                                multimask=spec["multimask"], return_logits=True)
        np.testing.assert_allclose(result.iou, golden[f"{case}_iou"], atol=TOL, rtol=0, err_msg=case)
        np.testing.assert_allclose(result.low_res, golden[f"{case}_low_res"], atol=TOL, rtol=0, err_msg=case)
        np.testing.assert_allclose(result.logits[..., ::4, ::4], golden[f"{case}_logits_sample"], atol=TOL, rtol=0,
                                   err_msg=case)
        expected = np.unpackbits(golden[f"{case}_masks"], axis=-1, count=embedding.original_size[1]).astype(bool)
        differ = result.masks != expected
        assert not differ[np.abs(result.logits) > TOL].any(), case  # only logits within 1e-4 of 0 may flip
