"""MobileSAM's TinyViT encoder: the published key layout (no reference run was available;
its outputs are unverified against MobileSAM's code), variant detection, and a prompt run
end to end on a 256-pixel build."""

from __future__ import annotations

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
