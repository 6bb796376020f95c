"""``segtools predict`` with Mask R-CNN: instance-id masks with classes and scores, COCO
results that ``segtools metrics --task instance`` reads from a pipe, batches of odd images
(grey, RGBA, 16-bit, smaller than the anchors), and the bad inputs of the issue.

The checkpoint is torchvision's v1 layout with keyed deterministic weights (see
``golden_detection``; the golden test proves the model equals torchvision's), saved as a
segtools checkpoint with a small resize rule (256/352) so that each run is quick.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_one_line_error

torch = pytest.importorskip("torch")

import golden_detection  # noqa: E402

ARCH = "maskrcnn-resnet50-fpn"
SIZES = {"min_size": 256, "max_size": 352}

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from segtools.models.detection import build_detector
    from segtools.weights.checkpoint import make_checkpoint, save_checkpoint

    with torch.device("meta"):
        model = build_detector(ARCH, 91, **SIZES)
    golden_detection.fill_detector(model)
    path = tmp_path_factory.mktemp("det") / "maskrcnn.pt"
    save_checkpoint(path, make_checkpoint(ARCH, 91, model.state_dict(), arch_options=SIZES))
    return path


@pytest.fixture(scope="module")
def frame():
    from conftest import CAMVID

    path = CAMVID / "val" / golden_detection.DETECTION_FRAMES[0]
    if not path.is_file():
        pytest.skip("../shared/data/camvid is not present beside the project")
    return path


def _png_mask(data: bytes):

    from segtools.io.masks import read_label_mask

    return read_label_mask(data, name="prediction.png")


def test_instance_mask_carries_classes_and_scores(cli, checkpoint, frame) -> None:
    from segtools.inference.instances import InstanceRunner, instance_id_mask, load_detector
    from segtools.io.images import read_image

    result = cli("predict", str(frame), "--weights", str(checkpoint), "--arch", ARCH, "--min-score", "0.6")
    assert result.code == 0, result.stderr
    mask = _png_mask(result.stdout)
    extra = mask.meta.extra
    assert mask.meta.kind == "instance" and mask.labels.dtype == np.uint16
    ids = np.unique(mask.labels)
    scores, classes = extra["instance_score"], extra["instance_class"]
    assert len(scores) == len(classes) == int(ids.max()) + 1 > 5
    assert all(s > 0.6 for s in scores[1:]) and scores[1:] == sorted(scores[1:], reverse=True)
    assert all(0 <= c < len(extra["class_names"]) for c in classes[1:])
    # the same as the library's runner
    loaded = load_detector(weights=str(checkpoint), box_score_thresh=0.6)
    found = InstanceRunner(loaded.model, device="cpu").predict(read_image(str(frame)))
    expected, expected_classes, _ = instance_id_mask(found)
    assert np.array_equal(mask.labels, expected) and classes == expected_classes
    # the most confident instance owns its whole mask
    assert np.array_equal(mask.labels == 1, found.masks[0])


def test_coco_results_pipe_into_instance_metrics(cli, checkpoint, frame, tmp_path) -> None:
    """Results scored against a ground truth made of themselves: AP 1 proves ids,
    categories, boxes and RLE masks all read back as written."""
    from segtools.formats import rle as rlelib

    result = cli("predict", str(frame), "--weights", str(checkpoint), "--arch", ARCH, "--format", "coco",
                 "--min-score", "0.3", "--max-dets", "20")
    assert result.code == 0, result.stderr
    detections = json.loads(result.stdout)
    assert 5 < len(detections) <= 20 and {d["image_id"] for d in detections} == {1}
    height, width = detections[0]["segmentation"]["size"]
    annotations = [{"id": k + 1, "image_id": 1, "category_id": d["category_id"], "iscrowd": 0,
                    "segmentation": d["segmentation"], "bbox": d["bbox"], "area": rlelib.area(d["segmentation"])}
                   for k, d in enumerate(detections)]
    categories = sorted({d["category_id"] for d in detections})
    gt = {"images": [{"id": 1, "file_name": frame.name, "height": height, "width": width}],
          "categories": [{"id": c, "name": f"c{c}"} for c in categories], "annotations": annotations}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    report = cli("metrics", "--task", "instance", "-", str(tmp_path / "gt.json"), "--format", "json",
                 input=result.stdout)
    assert report.code == 0, report.stderr
    assert json.loads(report.stdout)["ap"] == pytest.approx(1.0)


def test_a_batch_of_odd_images(cli, checkpoint, tmp_path) -> None:
    """Grey, RGBA, 16-bit and a 12×9 image (smaller than every anchor) in one batch folder."""
    from PIL import Image

    rng = np.random.default_rng(0)
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(rng.integers(0, 255, (48, 64), dtype=np.uint8)).save(src / "grey.png")
    Image.fromarray(rng.integers(0, 255, (40, 52, 4), dtype=np.uint8)).save(src / "rgba.png")
    Image.fromarray(rng.integers(0, 65535, (36, 30), dtype=np.uint16)).save(src / "deep.png")
    Image.fromarray(rng.integers(0, 255, (9, 12, 3), dtype=np.uint8)).save(src / "tiny.png")
    out = tmp_path / "out"
    result = cli("predict", str(src), "--weights", str(checkpoint), "--arch", ARCH, "-o", str(out),
                 "--batch", "3", "--min-score", "0.05")
    assert result.code == 0, result.stderr
    sizes = {"grey.png": (48, 64), "rgba.png": (40, 52), "deep.png": (36, 30), "tiny.png": (9, 12)}
    for name, size in sizes.items():
        mask = _png_mask((out / name).read_bytes())
        assert mask.labels.shape == size and mask.meta.kind == "instance"
        assert len(mask.meta.extra["instance_score"]) >= int(mask.labels.max()) + 1
    coco = cli("predict", str(src), "--weights", str(checkpoint), "--arch", ARCH, "--format", "coco",
               "--min-score", "0.05", "-o", str(tmp_path / "results.json"))
    assert coco.code == 0, coco.stderr
    ids = {d["image_id"] for d in json.loads((tmp_path / "results.json").read_text())}
    assert ids <= {1, 2, 3, 4} and len(ids) >= 2  # 1..N over the sorted inputs (the stems are not numbers)


@pytest.mark.parametrize("flag,value", [("--min-score", "1.5"), ("--min-score", "-0.1"), ("--mask-threshold", "2")])
def test_scores_outside_the_unit_interval_are_refused(cli, checkpoint, frame, flag: str, value: str) -> None:
    result = cli("predict", str(frame), "--weights", str(checkpoint), "--arch", ARCH, flag, value)
    assert_one_line_error(result, 2)
    assert flag in result.stderr


def test_a_checkpoint_of_another_layout_names_the_key_and_the_arch(cli, checkpoint, frame) -> None:
    result = cli("predict", str(frame), "--weights", str(checkpoint), "--arch", "maskrcnn-resnet50-fpn-v2")
    assert_one_line_error(result, 1)
    assert "missing key 'backbone.fpn.inner_blocks.0.1.weight'" in result.stderr
    assert "arch maskrcnn-resnet50-fpn" in result.stderr.split("those of")[-1]


def test_instance_options_with_a_semantic_model_are_refused(cli, tmp_path) -> None:
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    result = cli("predict", str(tmp_path / "a.png"), "--arch", "unet", "--weights", str(tmp_path / "none.pt"),
                 "--min-score", "0.5")
    assert_one_line_error(result, 2)
    assert "--min-score is for instance models" in result.stderr
