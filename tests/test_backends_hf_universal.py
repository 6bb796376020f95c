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


@pytest.fixture(scope="module")
def oneformer(tmp_path_factory):
    """A tiny random OneFormer (Swin backbone, 1-layer text encoder, CLIP tokenizer of special
    tokens only: the task text is tokenised as transformers does it), its class metadata in
    the folder, the class head sharpened as for Mask2Former above."""
    from transformers import CLIPTokenizer, OneFormerConfig, OneFormerForUniversalSegmentation, OneFormerProcessor, SwinConfig
    from transformers.models.oneformer.image_processing_pil_oneformer import OneFormerImageProcessorPil

    folder = tmp_path_factory.mktemp("oneformer")
    (folder / "class_info.json").write_text(json.dumps({"0": {"name": "sky", "isthing": 0}, "1": {"name": "car", "isthing": 1},
                                                        "2": {"name": "road", "isthing": 0}}))
    torch.manual_seed(0)
    backbone = SwinConfig(image_size=64, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
                          window_size=4, out_features=["stage1", "stage2", "stage3", "stage4"])
    config = OneFormerConfig(backbone_config=backbone, num_queries=8, conv_dim=32, mask_dim=32, hidden_dim=32,
                             encoder_feedforward_dim=64, dim_feedforward=64, encoder_layers=1, decoder_layers=2,
                             num_attention_heads=2, text_encoder_width=32, text_encoder_num_layers=1,
                             text_encoder_context_length=8, task_seq_len=8, text_encoder_n_ctx=2,
                             text_encoder_vocab_size=16, num_labels=3, id2label={0: "sky", 1: "car", 2: "road"},
                             label2id={"sky": 0, "car": 1, "road": 2})
    model = OneFormerForUniversalSegmentation(config).eval()
    head = model.model.transformer_module.decoder.class_embed
    with torch.no_grad():
        head.weight.mul_(30.0)
        head.bias[-1] = -20.0
    model.save_pretrained(folder)
    images = OneFormerImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 96}, class_info_file="class_info.json",
                                        repo_path=str(folder), num_text=2, num_labels=3)
    OneFormerProcessor(image_processor=images, tokenizer=CLIPTokenizer(), max_seq_length=8,
                       task_seq_length=8).save_pretrained(folder)
    return folder


def _oneformer_reference(folder, image, task: str):
    processor = transformers.AutoProcessor.from_pretrained(folder)
    model = transformers.AutoModelForUniversalSegmentation.from_pretrained(folder).eval()
    with torch.no_grad():
        outputs = model(**processor(images=[image], task_inputs=[task], return_tensors="pt"))
    size = [image.shape[:2]]
    if task == "semantic":
        return processor.post_process_semantic_segmentation(outputs, target_sizes=size)[0].numpy()
    if task == "instance":
        return processor.post_process_instance_segmentation(outputs, task_type="instance", threshold=0.0,
                                                            target_sizes=size)[0]
    return processor.post_process_panoptic_segmentation(outputs, threshold=0.0, target_sizes=size)[0]


def test_oneformer_semantic_instance_panoptic_equal_transformers(oneformer, monkeypatch):
    """Instances and panoptic segments run without torchvision too (segtools' own
    post-processing, golden-tested in tests/test_universal_post.py); the reference here is
    transformers' processor, its resize stood in by torch's where torchvision is absent."""
    from tests.test_universal_post import shim_torchvision_resize

    shim_torchvision_resize(monkeypatch)
    from segtools.backends.hf import open_hf

    image = _images()[0]
    runner = open_hf(str(oneformer), device="cpu", task="semantic")
    assert runner.needs_task_input and runner.classes.names == ("sky", "car", "road")
    labels = next(runner.predict_many([image], labels=True))
    assert (labels == _oneformer_reference(oneformer, image, "semantic")).all()

    probs = next(runner.predict_many([image]))
    assert probs.shape == (3, 50, 70) and np.allclose(probs.sum(0), 1, atol=1e-5) and (probs.argmax(0) == labels).all()
    # a random tiny OneFormer's masks are too alike for any query to keep a segment (each loses
    # most of its pixels to the others), so the instance and panoptic runners get the raw
    # outputs of the golden cases in place of the model's: the wiring from the processor's
    # rules to Instances and segment ids is what is checked against transformers here
    from types import SimpleNamespace

    from tests import golden_oneformer as golden

    processor = transformers.AutoProcessor.from_pretrained(oneformer)
    for task, case in (("instance", "instance-up"), ("panoptic", "panoptic-fused")):
        class_logits, mask_logits = (torch.from_numpy(a)[None] for a in golden.outputs(case))
        outputs = SimpleNamespace(class_queries_logits=class_logits, masks_queries_logits=mask_logits)
        runner = open_hf(str(oneformer), device="cpu", task=task)
        runner.model = lambda **inputs: outputs
        size = [image.shape[:2]]
        if task == "instance":
            instances = runner.predict(image, conf=0.0, max_det=100)
            expected = processor.post_process_instance_segmentation(outputs, task_type="instance", threshold=0.0,
                                                                    target_sizes=size)[0]
            info = expected["segments_info"]
            assert len(instances) == len(info) > 3
            order = np.argsort([-s["score"] for s in info], kind="stable")
            assert np.allclose(instances.scores, [info[k]["score"] for k in order])
            assert list(instances.labels - 1) == [info[k]["label_id"] for k in order]
            segmentation = expected["segmentation"].numpy()
            assert all((instances.masks[j] == (segmentation == info[k]["id"])).all() for j, k in enumerate(order))
            assert instances.masks.any(axis=(1, 2)).all()
        else:
            ids, segments = runner.panoptic(image, conf=0.5, label_ids_to_fuse={0, 2})
            expected = processor.post_process_panoptic_segmentation(outputs, threshold=0.5, target_sizes=size,
                                                                    label_ids_to_fuse={0, 2})[0]
            assert (ids == np.maximum(expected["segmentation"].numpy(), 0)).all() and len(segments) > 3
            assert [(s["id"], s["label"], s["score"]) for s in segments] == \
                [(s["id"], s["label_id"], s["score"]) for s in expected["segments_info"]]


def test_oneformer_class_metadata_is_read_locally_or_refused(tmp_path):
    from segtools.backends.hf import _oneformer_metadata
    from segtools.errors import InputError

    config = {"image_processor": {"class_info_file": "ade20k_panoptic.json", "repo_path": "shi-labs/oneformer_demo"}}
    (tmp_path / "processor_config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="ade20k_panoptic.json.*downloads nothing"):
        _oneformer_metadata(tmp_path, "hf:x")
    (tmp_path / "ade20k_panoptic.json").write_text("{}")
    assert _oneformer_metadata(tmp_path, "hf:x") == {"repo_path": str(tmp_path)}
