"""``segtools predict`` with SAM 2.1: a checkpoint of the published Hiera-tiny layout
(random weights, filled by key, saved as ``{"model": ...}`` with video-only tensors beside
the image path, as the official files are) run by registry name and by file; outputs
checked against the library runner (itself checked against ``sam2`` in
test_sam2_golden.py); the embedding cache; a checkpoint of another variant refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import golden_util  # noqa: E402
from conftest import assert_one_line_error  # noqa: E402
from segtools.inference.sam import best_masks  # noqa: E402
from segtools.inference.sam2 import Sam2Runner  # noqa: E402
from segtools.models.sam2.model import build_sam2  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def sam2_files(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("sam2")
    model = build_sam2("sam2.1-hiera-tiny")
    golden_util.fill_deterministic(model)
    state = {key: value.half() for key, value in model.state_dict().items()}  # half the file; loaded as float32
    state.update({"maskmem_tpos_enc": torch.zeros(7, 1, 1, 64), "no_obj_ptr": torch.zeros(1, 256),
                  "memory_encoder.out_proj.weight": torch.zeros(64, 256, 1, 1)})
    weights = root / "home" / "weights"
    weights.mkdir(parents=True)
    torch.save({"model": state}, weights / "sam2.1_hiera_tiny.pt")
    model.load_state_dict({k: v.float() for k, v in state.items() if k in model.state_dict()})
    image = golden_util.sam_golden_image()
    Image.fromarray(image).save(root / "photo.png")
    return root, Sam2Runner(model), image


def _labels(path):
    from segtools.io.masks import read_label_mask

    return read_label_mask(str(path))


def test_registry_name_and_file_predict_with_prompts_through_the_cache(cli, sam2_files, monkeypatch):
    from segtools.inference.sam2 import Sam2EmbeddingCache
    from segtools.inference.sam_io import model_key

    root, runner, image = sam2_files
    monkeypatch.setenv("SEGTOOLS_HOME", str(root / "home"))
    cache = root / "embeddings"
    result = cli("predict", str(root / "photo.png"), "--model", "sam2.1-hiera-tiny", "--point", "60,45",
                 "--embeddings", str(cache), "-o", str(root / "one.png"))
    assert result.code == 0, result.stderr
    stored = list(cache.rglob("*.npz"))
    assert len(stored) == 1 and stored[0].parent.name == model_key(runner.model)
    with np.load(stored[0]) as data:  # the embedding and both high-resolution maps, float16
        assert data["features"].dtype == np.float16 and data["high_res_0"].shape == (1, 32, 256, 256)
    hit = Sam2EmbeddingCache(cache, model_key(runner.model)).get(image)
    assert hit is not None and hit.original_size == (150, 200)
    # the library on the cached embedding (float16 of what the command decoded on) gives that mask
    expected, _, _ = best_masks(runner.predict(hit, [[[60, 45]]], [[1]], multimask=True))
    mask = _labels(root / "one.png")
    assert mask.labels.shape == (150, 200) and mask.meta.names == ("background", "object")
    assert (mask.labels == expected[0]).mean() > 0.99
    # by file, two boxes: an instance mask, scored by predicted IoU, from the cached embedding
    boxes = [[28.0, 18.0, 92.0, 72.0], [118.0, 88.0, 192.0, 142.0]]
    result = cli("predict", str(root / "photo.png"), "--model", str(root / "home/weights/sam2.1_hiera_tiny.pt"),
                 "--box", "28,18,92,72", "--box", "118,88,192,142", "--embeddings", str(cache),
                 "-o", str(root / "boxes.png"))
    assert result.code == 0, result.stderr
    masks, iou, _ = best_masks(runner.predict(hit, boxes=boxes, multimask=False))
    ids = _labels(root / "boxes.png")
    assert ids.meta.kind == "instance"
    np.testing.assert_allclose(ids.meta.extra["instance_score"][1:], iou, atol=1e-5)
    painted = np.zeros((150, 200), np.uint16)
    for k in np.argsort(iou, kind="stable"):
        painted[masks[k]] = k + 1
    assert (ids.labels == painted).mean() > 0.999
    assert len(list(cache.rglob("*.npz"))) == 1  # a hit: nothing new encoded


def test_a_checkpoint_of_another_variant_is_refused_by_name(cli, sam2_files):
    root, _, _ = sam2_files
    result = cli("predict", str(root / "photo.png"), "--weights", str(root / "home/weights/sam2.1_hiera_tiny.pt"),
                 "--arch", "sam2.1-hiera-large", "--point", "60,45", "-o", str(root / "never.png"))
    assert_one_line_error(result, 1)
    assert "is a sam2.1-hiera-tiny checkpoint, not sam2.1-hiera-large" in result.stderr
    assert not (root / "never.png").exists()


def test_boxes_to_masks_for_a_dataset_with_sam2(cli, sam2_files, tmp_path):
    from segtools.formats import rle

    root, runner, image = sam2_files
    images = tmp_path / "images"
    images.mkdir()
    (images / "1.png").write_bytes((root / "photo.png").read_bytes())
    dataset = {"categories": [{"id": 3, "name": "thing"}],
               "images": [{"id": 1, "file_name": "1.png", "height": 150, "width": 200}],
               "annotations": [{"id": 10, "image_id": 1, "category_id": 3, "bbox": [28, 18, 64, 54], "area": 1,
                                "iscrowd": 0}]}
    (tmp_path / "det.json").write_text(json.dumps(dataset))
    out = tmp_path / "with_masks.json"
    result = cli("predict", str(images), "--weights", str(root / "home/weights/sam2.1_hiera_tiny.pt"),
                 "--prompts", str(tmp_path / "det.json"), "--format", "coco", "-o", str(out))
    assert result.code == 0, result.stderr
    first = json.loads(out.read_text())["annotations"][0]
    expected = runner.predict(runner.encode(image), boxes=[[28, 18, 92, 72]], multimask=False)
    assert (rle.decode(first["segmentation"]) == expected.masks[0, 0]).mean() > 0.999
    assert first["bbox"] == [28, 18, 64, 54] and first["category_id"] == 3
