"""Universal Hugging Face models beyond semantic labels: ``predict --task panoptic`` writes
COCO panoptic (JSON + PNG folder) equal to the processor's ``post_process_panoptic_segmentation``
and readable by ``metrics --task panoptic``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import assert_one_line_error

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from tests.test_backends_hf import _images, _reference  # noqa: E402


@pytest.fixture(scope="module")
def mask2former(tmp_path_factory):
    """A tiny random Mask2Former whose class head is sharpened (weights ×30, "no object"
    suppressed), so that its queries pass the processor's score and mask-area tests and
    panoptic segments exist (a plain random head leaves every pixel void)."""
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, SwinConfig
    from transformers.models.mask2former.image_processing_pil_mask2former import Mask2FormerImageProcessorPil

    folder = tmp_path_factory.mktemp("mask2former_panoptic")
    torch.manual_seed(0)
    backbone = SwinConfig(image_size=64, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
                          window_size=4, out_features=["stage1", "stage2", "stage3", "stage4"])
    config = Mask2FormerConfig(backbone_config=backbone, feature_size=32, mask_feature_size=32, hidden_dim=32,
                               encoder_feedforward_dim=64, dim_feedforward=64, encoder_layers=1, decoder_layers=2,
                               num_attention_heads=2, num_queries=8, num_labels=3,
                               id2label={0: "sky", 1: "car", 2: "road"}, label2id={"sky": 0, "car": 1, "road": 2})
    model = Mask2FormerForUniversalSegmentation(config).eval()
    with torch.no_grad():
        model.class_predictor.weight.mul_(30.0)
        model.class_predictor.bias[-1] = -20.0
    model.save_pretrained(folder)
    Mask2FormerImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 96}, size_divisor=32).save_pretrained(folder)
    return folder


def test_panoptic_cli_writes_coco_panoptic_equal_to_the_processor(mask2former, cli, tmp_path):
    from PIL import Image

    from segtools.formats.coco_panoptic import rgb_to_ids

    images = _images()[:2]
    for k, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"img{k}.png")
    out = tmp_path / "out" / "pred.json"
    result = cli("predict", str(tmp_path / "img0.png"), str(tmp_path / "img1.png"), "--model", f"hf:{mask2former}",
                 "--task", "panoptic", "--min-score", "0", "-o", str(out))
    assert result.code == 0, result.stderr
    data = json.loads(out.read_text())
    assert [c["name"] for c in data["categories"]] == ["sky", "car", "road"]
    assert [a["image_id"] for a in data["annotations"]] == [1, 2]
    for image, annotation in zip(images, data["annotations"]):
        expected, _ = _reference(mask2former, image, "panoptic", threshold=0.0)
        png = np.asarray(Image.open(out.parent / "pred" / annotation["file_name"]).convert("RGB"))
        ids = rgb_to_ids(png)
        reference = np.maximum(expected["segmentation"].numpy(), 0)
        assert (ids == reference).all() and ids.shape == image.shape[:2]
        kept = [s for s in expected["segments_info"] if (reference == s["id"]).any()]
        assert kept, "the tiny model should find segments at threshold 0"
        segments = annotation["segments_info"]
        assert [s["id"] for s in segments] == [s["id"] for s in kept]
        assert [s["category_id"] for s in segments] == [s["label_id"] + 1 for s in kept]
        assert np.allclose([s["score"] for s in segments], [s["score"] for s in kept], atol=1e-6)
        assert [s["area"] for s in segments] == [int((reference == s["id"]).sum()) for s in kept]
        first = segments[0]
        ys, xs = np.nonzero(ids == first["id"])
        assert first["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]

    result = cli("metrics", str(out), str(out), "--task", "panoptic", "--format", "json")
    assert result.code == 0, result.stderr
    report = json.loads(result.text)
    assert abs(report["pq"] - 1.0) < 1e-9, report


def test_panoptic_bad_requests_are_one_line_errors(mask2former, segformer_free_image, cli, tmp_path):
    model = f"hf:{mask2former}"
    for output in (None, str(tmp_path / "p.png")):
        args = ["predict", str(segformer_free_image), "--model", model, "--task", "panoptic"]
        result = cli(*args, *(["-o", output] if output else []))
        assert_one_line_error(result, 2)
        assert "-o NAME.json" in result.stderr
    result = cli("predict", str(segformer_free_image), "--model", model, "--task", "panoptic", "--tile", "32",
                 "-o", str(tmp_path / "p.json"))
    assert_one_line_error(result, 2)
    assert not (tmp_path / "p.json").exists() and not (tmp_path / "p").exists()


@pytest.fixture
def segformer_free_image(tmp_path):
    from PIL import Image

    Image.fromarray(_images()[0]).save(tmp_path / "a.png")
    return tmp_path / "a.png"
