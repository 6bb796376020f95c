"""``segtools predict`` with SAM: prompts, outputs, segment-everything, boxes → masks for a
dataset (resumable), the embedding cache and bad inputs. A small random-initialised SAM
(tests/golden_util.SAM_TINY) saved as a plain state dict stands in for the checkpoints;
its outputs are checked against the library runner (itself checked against segment-anything
in test_sam_golden.py)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import golden_util  # noqa: E402
from conftest import assert_one_line_error  # noqa: E402
from segtools.inference.sam import SamRunner, best_masks  # noqa: E402
from segtools.models.sam.model import SamConfig, build_sam  # noqa: E402


@pytest.fixture(scope="module")
def sam_files(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("sam")
    model = build_sam(SamConfig(**golden_util.SAM_TINY))
    golden_util.fill_deterministic(model)
    torch.save(model.state_dict(), root / "tiny_sam.pth")
    image = golden_util.sam_golden_image()
    Image.fromarray(image).save(root / "photo.png")
    images = root / "images"
    images.mkdir()
    Image.fromarray(image).save(images / "1.png")
    Image.fromarray(image[::-1].copy()).save(images / "2.png")
    return root, SamRunner(model), image


def _read_png(data: bytes):
    from segtools.io.masks import read_label_mask

    return read_label_mask(io.BytesIO(data) if isinstance(data, bytes) else data)


def test_one_point_writes_the_best_of_three_masks(cli, sam_files):
    root, runner, image = sam_files
    result = cli("predict", str(root / "photo.png"), "--weights", str(root / "tiny_sam.pth"), "--point", "60,45",
                 "-o", str(root / "one.png"))
    assert result.code == 0, result.stderr
    expected, _, _ = best_masks(runner.predict(runner.encode(image), [[[60, 45]]], [[1]], multimask=True))
    mask = _read_png(str(root / "one.png"))
    assert mask.labels.shape == image.shape[:2]
    assert (mask.labels == expected[0]).mean() > 0.999
    assert mask.meta.names == ("background", "object")


def test_boxes_write_an_instance_mask_with_scores(cli, sam_files):
    root, runner, image = sam_files
    out = root / "boxes.png"
    result = cli("predict", str(root / "photo.png"), "--weights", str(root / "tiny_sam.pth"),
                 "--box", "28,18,92,72", "--box", "118,88,192,142", "-o", str(out))
    assert result.code == 0, result.stderr
    mask = _read_png(str(out))
    assert mask.meta.kind == "instance"
    pred = runner.predict(runner.encode(image), boxes=[[28, 18, 92, 72], [118, 88, 192, 142]], multimask=False)
    scores = mask.meta.extra["instance_score"]
    assert scores[1:] == pytest.approx(pred.iou[:, 0].tolist(), abs=1e-5)
    assert mask.meta.extra["instance_class"] == [-1, 0, 0]
    assert set(np.unique(mask.labels)) <= {0, 1, 2}


def test_coco_results_and_probs(cli, sam_files):
    root, runner, image = sam_files
    out = root / "res.json"
    result = cli("predict", str(root / "photo.png"), "--weights", str(root / "tiny_sam.pth"),
                 "--box", "28,18,92,72", "--point", "60,45", "--format", "coco", "-o", str(out))
    assert result.code == 0, result.stderr
    entries = json.loads(out.read_text())
    assert len(entries) == 1 and entries[0]["segmentation"]["size"] == [150, 200]
    from segtools.formats import rle

    pred = runner.predict(runner.encode(image), [[[60, 45]]], [[1]], [[28, 18, 92, 72]], multimask=False)
    assert (rle.decode(entries[0]["segmentation"]) == pred.masks[0, 0]).mean() > 0.999
    assert entries[0]["score"] == pytest.approx(float(pred.iou[0, 0]), abs=1e-5)
    probs = cli("predict", str(root / "photo.png"), "--weights", str(root / "tiny_sam.pth"), "--point", "60,45",
                "--probs", "-o", str(root / "p.npz"))
    assert probs.code == 0, probs.stderr
    from segtools.io.masks import read_score_map

    scores = read_score_map(str(root / "p.npz")).scores
    assert scores.shape[-2:] == (150, 200) and 0 <= scores.min() and scores.max() <= 1


def test_everything_paints_large_masks_first(cli, sam_files):
    root, runner, image = sam_files
    out = root / "all.png"
    result = cli("predict", str(root / "photo.png"), "--weights", str(root / "tiny_sam.pth"), "--everything",
                 "--points-per-side", "4", "--pred-iou-thresh", "0", "--stability-thresh", "0", "--box-nms", "1",
                 "-o", str(out))
    assert result.code == 0, result.stderr
    mask = _read_png(str(out))
    assert mask.meta.kind == "instance" and len(mask.meta.extra["instance_score"]) > 1
    from segtools.inference.sam_auto import EverythingOptions, generate_masks

    found = generate_masks(runner, image, EverythingOptions(points_per_side=4, pred_iou_thresh=0, stability_thresh=0,
                                                            box_nms=1))
    area = found.masks.reshape(len(found), -1).sum(1)
    smallest = int(np.argmin(area))
    # the smallest mask is painted last: it owns all of its pixels
    assert (mask.labels[found.masks[smallest]] == smallest + 1).all()


def test_boxes_to_masks_for_a_coco_dataset_resumes(cli, sam_files):
    root, runner, image = sam_files
    dataset = {"info": {"description": "kept"}, "categories": [{"id": 3, "name": "thing"}],
               "images": [{"id": 1, "file_name": "1.png", "height": 150, "width": 200},
                          {"id": 2, "file_name": "2.png", "height": 150, "width": 200},
                          {"id": 7, "file_name": "gone.png", "height": 150, "width": 200}],
               "annotations": [{"id": 10, "image_id": 1, "category_id": 3, "bbox": [28, 18, 64, 54], "area": 1,
                                "iscrowd": 0},
                               {"id": 11, "image_id": 2, "category_id": 3, "bbox": [118, 8, 74, 54], "area": 1,
                                "iscrowd": 0},
                               {"id": 12, "image_id": 7, "category_id": 3, "bbox": [1, 1, 5, 5], "area": 1,
                                "iscrowd": 0}]}
    (root / "det.json").write_text(json.dumps(dataset))
    out = root / "with_masks.json"
    result = cli("predict", str(root / "images"), "--weights", str(root / "tiny_sam.pth"),
                 "--prompts", str(root / "det.json"), "--format", "coco", "-o", str(out))
    assert_one_line_error(result, 1)
    assert "gone.png" in result.stderr and "1 images" in result.stderr
    labelled = json.loads(out.read_text())
    assert labelled["info"] == {"description": "kept"} and labelled["categories"] == dataset["categories"]
    assert [a["id"] for a in labelled["annotations"]] == [10, 11, 12]
    first = labelled["annotations"][0]
    from segtools.formats import rle

    pred = runner.predict(runner.encode(image), boxes=[[28, 18, 92, 72]], multimask=False)
    assert (rle.decode(first["segmentation"]) == pred.masks[0, 0]).mean() > 0.999
    assert first["bbox"] == [28, 18, 64, 54] and first["category_id"] == 3
    assert "segmentation" not in labelled["annotations"][2]
    # resume: a finished image is kept as it is (marked here to prove it was not redone)
    labelled["annotations"][0]["predicted_iou"] = -1.0
    out.write_text(json.dumps(labelled))
    again = cli("predict", str(root / "images"), "--weights", str(root / "tiny_sam.pth"),
                "--prompts", str(root / "det.json"), "--format", "coco", "-o", str(out))
    assert again.code == 1
    assert json.loads(out.read_text())["annotations"][0]["predicted_iou"] == -1.0


def test_boxes_to_masks_with_jobs_equal_one_worker_and_resume(cli, sam_files, tmp_path):
    root, _, _ = sam_files
    dataset = {"categories": [{"id": 1, "name": "thing"}],
               "images": [{"id": i, "file_name": f"{i}.png", "height": 150, "width": 200} for i in (1, 2)],
               "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [28, 18, 64, 54]},
                               {"id": 2, "image_id": 1, "category_id": 1, "bbox": [118, 88, 70, 50]},
                               {"id": 3, "image_id": 2, "category_id": 1, "bbox": [118, 8, 74, 54]}]}
    det = tmp_path / "det.json"
    det.write_text(json.dumps(dataset))
    runs = {}
    for jobs in ("1", "2"):
        out = tmp_path / f"jobs{jobs}.json"
        result = cli("predict", str(root / "images"), "--weights", str(root / "tiny_sam.pth"), "--prompts", str(det),
                     "--format", "coco", "-o", str(out), "--jobs", jobs)
        assert result.code == 0, result.stderr
        runs[jobs] = json.loads(out.read_text())
    assert runs["2"] == runs["1"]
    assert all(a["segmentation"]["counts"] for a in runs["2"]["annotations"])
    # resume with workers: image 1 kept as it is (marked), image 2 redone, equal to the first run
    partial = json.loads(json.dumps(runs["2"]))
    partial["annotations"][0]["predicted_iou"] = -1.0
    del partial["annotations"][2]["segmentation"]
    out = tmp_path / "jobs2.json"
    out.write_text(json.dumps(partial))
    again = cli("predict", str(root / "images"), "--weights", str(root / "tiny_sam.pth"), "--prompts", str(det),
                "--format", "coco", "-o", str(out), "--jobs", "2")
    assert again.code == 0, again.stderr
    resumed = json.loads(out.read_text())
    assert resumed["annotations"][0]["predicted_iou"] == -1.0
    assert resumed["annotations"][2] == runs["1"]["annotations"][2]


def test_embedding_cache_is_reused(cli, sam_files, tmp_path):
    root, runner, image = sam_files
    args = ("predict", str(root / "photo.png"), "--weights", str(root / "tiny_sam.pth"), "--point", "60,45",
            "--embeddings", str(tmp_path / "emb"))
    first = cli(*args, "-o", str(tmp_path / "a.png"))
    assert first.code == 0, first.stderr
    cached = list((tmp_path / "emb").rglob("*.npz"))
    assert len(cached) == 1
    with np.load(cached[0]) as data:
        assert data["features"].dtype == np.float16
    stamp = cached[0].stat().st_mtime_ns
    second = cli(*args, "-o", str(tmp_path / "b.png"))
    assert second.code == 0 and cached[0].stat().st_mtime_ns == stamp
    a, b = _read_png(str(tmp_path / "a.png")).labels, _read_png(str(tmp_path / "b.png")).labels
    assert (a == b).mean() > 0.995  # float16 embedding: only pixels at the threshold may flip


@pytest.mark.parametrize("args,code,needle", [
    (("--point", "500,10"), 1, "--point 500,10: outside the 200x150 image (--clip: move it"),
    (("--box", "0,0,300,20"), 1, "outside the 200x150 image"),
    (("--point", "12;40"), 2, "expected X,Y"),
    (("--point", "12,40:7"), 2, "label is 1"),
    (("--box", "5,5,1,1"), 2, "X0 <= X1"),
    (("--everything", "--point", "1,1"), 2, "--everything prompts with a grid"),
    (("--points-per-side", "8", "--point", "1,1"), 2, "is an --everything option"),
    ((), 2, "needs prompts"),
    (("--point", "60,45", "--jobs", "2"), 2, "--jobs is for SAM boxes → masks"),
])
def test_bad_prompts_are_one_line_errors(cli, sam_files, tmp_path, args, code, needle):
    root, _, _ = sam_files
    out = tmp_path / "x.png"
    # with no prompt option, --arch says the model is SAM
    model_args = ("--weights", str(root / "tiny_sam.pth")) + (("--arch", "sam-vit") if not args else ())
    result = cli("predict", str(root / "photo.png"), *model_args, *args, "-o", str(out))
    assert_one_line_error(result, code)
    assert needle in result.stderr
    assert not out.exists()


def test_clip_moves_prompts_inside(cli, sam_files, tmp_path):
    root, _, _ = sam_files
    result = cli("predict", str(root / "photo.png"), "--weights", str(root / "tiny_sam.pth"), "--point", "500,10",
                 "--clip", "-o", str(tmp_path / "c.png"))
    assert result.code == 0, result.stderr


def test_checkpoint_of_another_variant_is_named(cli, sam_files, tmp_path):
    root, _, _ = sam_files
    result = cli("predict", str(root / "photo.png"), "--weights", str(root / "tiny_sam.pth"), "--arch", "sam-vit-h",
                 "--point", "1,1", "-o", str(tmp_path / "v.png"))
    assert_one_line_error(result, 1)
    assert "is a sam-vit checkpoint, not sam-vit-h" in result.stderr


def test_voc_boxes_and_a_prompts_json(cli, sam_files, tmp_path):
    root, runner, image = sam_files
    xml = ("<annotation><filename>1.png</filename><size><width>200</width><height>150</height><depth>3</depth></size>"
           "<object><name>car</name><bndbox><xmin>29</xmin><ymin>19</ymin><xmax>92</xmax><ymax>72</ymax></bndbox>"
           "</object></annotation>")
    (tmp_path / "1.xml").write_text(xml)
    out = tmp_path / "voc.json"
    result = cli("predict", str(root / "images"), "--weights", str(root / "tiny_sam.pth"),
                 "--prompts", str(tmp_path / "1.xml"), "--format", "coco", "-o", str(out))
    assert result.code == 0, result.stderr
    doc = json.loads(out.read_text())
    assert [c["name"] for c in doc["categories"]] == ["car"]
    (ann,) = doc["annotations"]
    assert ann["segmentation"]["size"] == [150, 200] and ann["area"] > 0
    prompts = tmp_path / "clicks.json"
    prompts.write_text(json.dumps({"points": [[60, 45, 1]], "boxes": [[28, 18, 92, 72]]}))
    result = cli("predict", str(root / "photo.png"), "--weights", str(root / "tiny_sam.pth"),
                 "--prompts", str(prompts), "--format", "coco", "-o", str(tmp_path / "c.json"))
    assert result.code == 0, result.stderr
    (entry,) = json.loads((tmp_path / "c.json").read_text())
    pred = runner.predict(runner.encode(image), [[[60, 45]]], [[1]], [[28, 18, 92, 72]], multimask=False)
    assert entry["score"] == pytest.approx(float(pred.iou[0, 0]), abs=1e-5)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"points": [[1, 2, 5]]}))
    result = cli("predict", str(root / "photo.png"), "--weights", str(root / "tiny_sam.pth"),
                 "--prompts", str(bad), "-o", str(tmp_path / "b.png"))
    assert_one_line_error(result, 1)
    assert not (tmp_path / "b.png").exists()
