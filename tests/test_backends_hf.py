"""Hugging Face back-end: tiny random-initialised transformers models saved with
save_pretrained (nothing downloaded), compared with transformers' own forward and the image
processor's post-processing; bad folders."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import assert_one_line_error

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def segformer(tmp_path_factory):
    from transformers import SegformerConfig, SegformerForSemanticSegmentation
    from transformers.models.segformer.image_processing_pil_segformer import SegformerImageProcessorPil

    folder = tmp_path_factory.mktemp("segformer")
    torch.manual_seed(0)
    config = SegformerConfig(num_channels=3, num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16],
                             patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 2], mlp_ratios=[2, 2],
                             decoder_hidden_size=16, num_labels=4,
                             id2label={0: "sky", 1: "road", 2: "car", 3: "tree"},
                             label2id={"sky": 0, "road": 1, "car": 2, "tree": 3})
    SegformerForSemanticSegmentation(config).eval().save_pretrained(folder)
    SegformerImageProcessorPil(size={"height": 64, "width": 64}).save_pretrained(folder)
    return folder


#: a tiny Swin backbone for the universal heads' tests
TINY_SWIN = dict(image_size=64, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
                 window_size=4, out_features=["stage1", "stage2", "stage3", "stage4"])
LABELS = dict(num_labels=3, id2label={0: "sky", 1: "car", 2: "road"}, label2id={"sky": 0, "car": 1, "road": 2})


@pytest.fixture(scope="module")
def mask2former(tmp_path_factory):
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, SwinConfig
    from transformers.models.mask2former.image_processing_pil_mask2former import Mask2FormerImageProcessorPil

    folder = tmp_path_factory.mktemp("mask2former")
    torch.manual_seed(0)
    backbone = SwinConfig(**TINY_SWIN)
    config = Mask2FormerConfig(backbone_config=backbone, feature_size=32, mask_feature_size=32, hidden_dim=32,
                               encoder_feedforward_dim=64, dim_feedforward=64, encoder_layers=1, decoder_layers=2,
                               num_attention_heads=2, num_queries=6, **LABELS)
    Mask2FormerForUniversalSegmentation(config).eval().save_pretrained(folder)
    Mask2FormerImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 96}, size_divisor=32).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def maskformer(tmp_path_factory):
    """The first universal head (MaskFormer: a DETR decoder over a pixel decoder's FPN), tiny and random."""
    from transformers import DetrConfig, MaskFormerConfig, MaskFormerForInstanceSegmentation, SwinConfig
    from transformers.models.maskformer.image_processing_pil_maskformer import MaskFormerImageProcessorPil

    folder = tmp_path_factory.mktemp("maskformer")
    torch.manual_seed(0)
    backbone = SwinConfig(**TINY_SWIN)
    decoder = DetrConfig(d_model=32, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2,
                         decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_queries=6)
    config = MaskFormerConfig(backbone_config=backbone, decoder_config=decoder, fpn_feature_size=32,
                              mask_feature_size=32, **LABELS)
    MaskFormerForInstanceSegmentation(config).eval().save_pretrained(folder)
    MaskFormerImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 96}, size_divisor=32).save_pretrained(folder)
    return folder


def _images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (50, 70, 3), np.uint8), rng.integers(0, 255, (50, 70, 3), np.uint8),
            rng.integers(0, 255, (41, 33, 3), np.uint8)]


def _reference(folder, image, kind="semantic", **kwargs):
    """transformers' own path: the saved processor, the model's forward, its post-processing."""
    processor = transformers.AutoImageProcessor.from_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    universal = config["architectures"][0] in ("Mask2FormerForUniversalSegmentation", "MaskFormerForInstanceSegmentation")
    auto = transformers.AutoModelForUniversalSegmentation if universal else transformers.AutoModelForSemanticSegmentation
    model = auto.from_pretrained(folder).eval()
    with torch.no_grad():
        outputs = model(**processor(images=[image], return_tensors="pt"))
    size = [image.shape[:2]]
    if kind == "semantic":
        return processor.post_process_semantic_segmentation(outputs, target_sizes=size, **kwargs)[0], outputs
    if kind == "instance":
        return processor.post_process_instance_segmentation(outputs, target_sizes=size, return_binary_maps=True,
                                                            **kwargs)[0], outputs
    return processor.post_process_panoptic_segmentation(outputs, target_sizes=size, **kwargs)[0], outputs


def test_semantic_runner_equals_processor_forward_and_post_processing(segformer):
    from segtools.backends.hf import open_hf
    from segtools.backends.runner import RunnerPredictor

    runner = open_hf(str(segformer), device="cpu")
    assert runner.classes.names == ("sky", "road", "car", "tree") and runner.resize == (64, 64)
    predictor = RunnerPredictor(runner, batch=2)
    images = _images()
    for image, labels, probs in zip(images, predictor.predict_many(images, labels=True), predictor.predict_batch(images)):
        expected, outputs = _reference(segformer, image)
        assert (labels == expected.numpy()).all()
        upsampled = torch.nn.functional.interpolate(outputs.logits, size=image.shape[:2], mode="bilinear",
                                                    align_corners=False)
        assert np.abs(probs - torch.softmax(upsampled, 1)[0].numpy()).max() < 1e-5


def test_semantic_runner_through_the_cli_with_tiles_and_tta(segformer, cli, tmp_path):
    from PIL import Image

    from segtools.io.masks import read_label_mask

    image = _images()[0]
    Image.fromarray(image).save(tmp_path / "a.png")
    result = cli("predict", str(tmp_path / "a.png"), "--model", f"hf:{segformer}", "-o", str(tmp_path / "a_labels.png"))
    assert result.code == 0 and result.stderr == "", result.stderr
    mask = read_label_mask(str(tmp_path / "a_labels.png"))
    assert (mask.labels == _reference(segformer, image)[0].numpy()).all()
    assert mask.meta.names == ("sky", "road", "car", "tree")
    result = cli("predict", str(tmp_path / "a.png"), "--model", f"hf:{segformer}", "--tile", "32", "--tta", "flip",
                 "--resize", "none", "-o", str(tmp_path / "t.png"))
    assert result.code == 0, result.stderr
    assert read_label_mask(str(tmp_path / "t.png")).labels.shape == (50, 70)


@pytest.mark.parametrize("family", ["mask2former", "maskformer"])
def test_universal_semantic_and_instances_equal_the_processor(family, request):
    from segtools.backends.hf import open_hf

    mask2former = request.getfixturevalue(family)

    image = _images()[0]
    runner = open_hf(str(mask2former), device="cpu", task="semantic")
    labels = next(runner.predict_many([image], labels=True))
    assert (labels == _reference(mask2former, image)[0].numpy()).all()
    probs = next(runner.predict_many([image]))
    assert probs.shape == (3, 50, 70) and np.allclose(probs.sum(0), 1, atol=1e-5)
    assert (probs.argmax(0) == labels).all()

    instances = open_hf(str(mask2former), device="cpu", task="instance").predict(image, conf=0.0, max_det=100)
    expected, _ = _reference(mask2former, image, "instance", threshold=0.0)
    info = expected["segments_info"]
    assert len(instances) == len(info) > 0
    order = np.argsort([-s["score"] for s in info], kind="stable")
    assert np.allclose(instances.scores, [info[k]["score"] for k in order])
    assert list(instances.labels - 1) == [info[k]["label_id"] for k in order]
    assert (instances.masks == (expected["segmentation"].numpy()[order] > 0.5)).all()

    ids, segments = open_hf(str(mask2former), device="cpu", task="panoptic").panoptic(image, conf=0.0)
    expected, _ = _reference(mask2former, image, "panoptic", threshold=0.0)
    assert (ids == np.maximum(expected["segmentation"].numpy(), 0)).all()
    assert [s["label"] for s in segments] == [s["label_id"] for s in expected["segments_info"]]


def test_universal_instances_through_the_cli_as_coco(mask2former, cli, tmp_path):
    from PIL import Image

    Image.fromarray(_images()[0]).save(tmp_path / "1.png")
    result = cli("predict", str(tmp_path / "1.png"), "--model", f"hf:{mask2former}", "--task", "instance",
                 "--format", "coco", "--min-score", "0", "-o", str(tmp_path / "r.json"))
    assert result.code == 0, result.stderr
    results = json.loads((tmp_path / "r.json").read_text())
    assert results and {r["image_id"] for r in results} == {1}
    assert all(r["segmentation"]["size"] == [50, 70] and 1 <= r["category_id"] <= 3 for r in results)


def test_bad_folders_are_refused_in_one_line(segformer, cli, tmp_path):
    import shutil

    from PIL import Image

    Image.fromarray(_images()[0]).save(tmp_path / "a.png")
    bare = tmp_path / "bare"
    shutil.copytree(segformer, bare)
    (bare / "model.safetensors").unlink()
    result = cli("predict", str(tmp_path / "a.png"), "--model", f"hf:{bare}", "-o", str(tmp_path / "o.png"))
    assert_one_line_error(result, 1)
    assert "no weights" in result.stderr

    from transformers import ViTConfig, ViTForImageClassification

    classifier = tmp_path / "vit"
    ViTForImageClassification(ViTConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8,
                                        image_size=16, patch_size=8)).save_pretrained(classifier)
    result = cli("predict", str(tmp_path / "a.png"), "--model", f"hf:{classifier}", "-o", str(tmp_path / "o.png"))
    assert_one_line_error(result, 1)
    assert "ViTForImageClassification" in result.stderr and "SegformerForSemanticSegmentation" in result.stderr

    result = cli("predict", str(tmp_path / "a.png"), "--model", "hf:nobody/nothing-here", "-o", str(tmp_path / "o.png"))
    assert_one_line_error(result, 1)
    assert "local Hugging Face cache" in result.stderr
    result = cli("predict", str(tmp_path / "a.png"), "--model", f"hf:{segformer}", "--task", "instance",
                 "-o", str(tmp_path / "o.png"))
    assert_one_line_error(result, 2)
    assert not (tmp_path / "o.png").exists()


def test_missing_transformers_names_the_extra(segformer, tmp_path):
    import subprocess
    import sys

    from PIL import Image

    Image.fromarray(_images()[0]).save(tmp_path / "a.png")
    code = ("import sys; sys.modules['transformers'] = None; from segtools.cli.app import run; "
            f"sys.exit(run(['predict', {str(tmp_path / 'a.png')!r}, '--model', 'hf:{segformer}', '-o', "
            f"{str(tmp_path / 'o.png')!r}]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1 and "pip install 'segtools[hf]'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
