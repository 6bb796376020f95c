"""``--shard I/N``: a stable split of the sorted items; shard reports merge into one run's numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_one_line_error
from segtools.cli.options import parse_shard, shard_items
from segtools.errors import UsageError
from segtools.io.batch import Item


def _write_png(path: Path, labels: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), labels)


@pytest.fixture
def dataset(camvid, tmp_path: Path):
    """Seven CamVid ground truths (cropped) and perturbed predictions, in nested folders."""
    import cv2

    rng = np.random.default_rng(5)
    for number, file in enumerate(sorted((camvid / "valannot").glob("*.png"))[:7]):
        gt = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)[:120, :160]
        pred = np.roll(gt, 1 + number, axis=1).copy()
        flip = rng.random(gt.shape) < 0.05
        pred[flip] = rng.integers(0, 11, int(flip.sum()))
        sub = f"seq{number % 2}"
        _write_png(tmp_path / "gt" / sub / file.name, gt)
        _write_png(tmp_path / "pred" / sub / file.name, pred)
    return tmp_path


def test_parse_shard_counts_from_zero_and_refuses_bad_forms():
    assert parse_shard("3/4") == (3, 4) and parse_shard(" 0 / 1 ") == (0, 1)
    for bad in ("4/4", "1/0", "-1/3", "a/b", "2", "1/2/3"):
        with pytest.raises(UsageError, match="--shard"):
            parse_shard(bad)


def test_shards_cover_every_item_once_whatever_order_the_items_come_in():
    items = [Item(f"/x/{name}", name) for name in ("b/2.png", "a/1.png", "c.png", "a/3.png", "b/1.png")]
    shards = [shard_items(items, (i, 3)) for i in range(3)]
    assert sorted(item.rel for shard in shards for item in shard) == sorted(item.rel for item in items)
    assert [[item.rel for item in shard] for shard in shards] == [["a/1.png", "b/2.png"], ["a/3.png", "c.png"], ["b/1.png"]]
    assert [shard_items(list(reversed(items)), (i, 3)) for i in range(3)] == shards  # stable
    with pytest.raises(UsageError, match="no items"):
        shard_items(items[:2], (2, 3))


def test_metrics_shards_merge_into_exactly_one_runs_numbers(cli, dataset):
    root = dataset
    args = ("metrics", root / "pred", root / "gt", "--classes", "camvid", "-f", "json", "--boundary")
    whole = cli(*args)
    assert whole.code == 0, whole.stderr
    states = []
    for index in range(3):
        state = root / f"shard{index}.json"
        result = cli(*args, "--shard", f"{index}/3", "--save-state", state)
        assert result.code == 0, result.stderr
        assert json.loads(result.stdout)["images"] in (2, 3)
        states.append(state)
    merged = cli("metrics", "merge", *states, "-f", "json")
    assert merged.code == 0, merged.stderr
    one, parts = json.loads(whole.stdout), json.loads(merged.stdout)
    assert parts["images"] == one["images"] == 7
    assert parts["confusion"] == one["confusion"]
    for key in ("miou", "pixel_accuracy", "mean_dice", "kappa", "per_class", "boundary"):
        assert parts.get(key) == one.get(key), key


def test_postprocess_shards_write_the_whole_runs_files(cli, dataset):
    root = dataset
    whole = cli("postprocess", root / "gt", "-o", root / "whole", "--smooth", "3")
    assert whole.code == 0, whole.stderr
    for index in range(2):
        result = cli("postprocess", root / "gt", "-o", root / "shards", "--smooth", "3", "--shard", f"{index}/2")
        assert result.code == 0, result.stderr
    expected = sorted(p.relative_to(root / "whole") for p in (root / "whole").rglob("*.png"))
    assert sorted(p.relative_to(root / "shards") for p in (root / "shards").rglob("*.png")) == expected
    for rel in expected:
        assert (root / "shards" / rel).read_bytes() == (root / "whole" / rel).read_bytes()


def test_visualize_shard_draws_only_its_items(cli, dataset):
    root = dataset
    result = cli("visualize", root / "gt", "-o", root / "drawn", "--classes", "camvid", "--shard", "1/2")
    assert result.code == 0, result.stderr
    names = sorted(p.relative_to(root / "drawn").as_posix() for p in (root / "drawn").rglob("*.png"))
    every = sorted(p.relative_to(root / "gt").as_posix() for p in (root / "gt").rglob("*.png"))
    assert names == every[1::2]


@pytest.mark.parametrize("shard", ["3/3", "x", "1/0"])
def test_bad_shard_is_one_line_and_writes_nothing(cli, dataset, shard):
    root = dataset
    result = cli("postprocess", root / "gt", "-o", root / "out", "--shard", shard)
    assert_one_line_error(result, 2)
    assert "--shard" in result.stderr
    assert not (root / "out").exists() or not any((root / "out").iterdir())


def test_more_shards_than_items_is_refused_by_name(cli, dataset):
    root = dataset
    result = cli("metrics", root / "pred", root / "gt", "--classes", "camvid", "--shard", "9/10")
    assert_one_line_error(result, 2)
    assert "--shard 9/10" in result.stderr


def test_predict_shards_of_the_default_model_write_the_whole_runs_files(cli, camvid, tmp_path):
    pytest.importorskip("onnxruntime", reason="the default model runs in ONNX Runtime (segtools[onnx])")
    import cv2

    from segtools.cli.predict_backends import default_onnx

    if default_onnx(None) is None:
        pytest.skip("the bundled default model has no ONNX file here")
    for file in sorted((camvid / "val").glob("*.png"))[:5]:
        (tmp_path / "images").mkdir(exist_ok=True)
        assert cv2.imwrite(str(tmp_path / "images" / file.name), cv2.imread(str(file))[:96, :128])
    whole = cli("predict", tmp_path / "images", "-o", tmp_path / "whole")
    assert whole.code == 0, whole.stderr
    for index in range(2):
        part = cli("predict", tmp_path / "images", "-o", tmp_path / "parts", "--shard", f"{index}/2")
        assert part.code == 0, part.stderr
    files = lambda folder: {p.name: p.read_bytes() for p in folder.iterdir()}  # noqa: E731
    assert files(tmp_path / "parts") == files(tmp_path / "whole") and len(files(tmp_path / "whole")) == 5


# ---------------------------------------------------------------- instance and panoptic tasks


def _merged_equals_whole(cli, whole_args, shards, keys, tmp_path):
    whole = json.loads(cli(*whole_args, "-f", "json").stdout)
    states = []
    for index in range(shards):
        state = tmp_path / f"state-{index}.json"
        result = cli(*whole_args, "--shard", f"{index}/{shards}", "--save-state", str(state), "-f", "json")
        assert result.code == 0, result.stderr
        states.append(str(state))
    merged = json.loads(cli("metrics", "merge", *states, "-f", "json").stdout)
    for key in keys:
        assert merged[key] == pytest.approx(whole[key], abs=1e-12), key
    return whole


def test_instance_shards_of_a_coco_ground_truth_merge_into_one_run(cli, tmp_path):
    rng = np.random.default_rng(3)
    images, annotations, results = [], [], []
    for image_id in range(1, 8):
        images.append({"id": image_id, "file_name": f"f{image_id}.jpg", "height": 40, "width": 50})
        for k in range(3):
            x, y = (int(v) for v in rng.integers(0, 30, 2))
            w, h = (int(v) for v in rng.integers(5, 15, 2))
            box = [[x, y, x + w, y, x + w, y + h, x, y + h]]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1 + k % 2,
                                "segmentation": box, "area": w * h, "bbox": [x, y, w, h], "iscrowd": 0})
            dx = int(rng.integers(-3, 4))
            moved = [[v + dx if i % 2 == 0 else v for i, v in enumerate(box[0])]]
            results.append({"image_id": image_id, "category_id": 1 + k % 2, "segmentation": moved,
                            "bbox": [x + dx, y, w, h], "score": float(rng.random())})
    gt = {"images": images, "annotations": annotations,
          "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "res.json").write_text(json.dumps(results))
    whole = _merged_equals_whole(cli, ("metrics", "--task", "instance", tmp_path / "res.json", tmp_path / "gt.json"),
                                 3, ("ap", "ap50", "ap75", "ar1", "ar10", "ar100"), tmp_path)
    assert 0 < whole["ap50"] < 1
    result = cli("metrics", "--task", "instance", tmp_path / "res.json", tmp_path / "gt.json", "--shard", "7/8")
    assert_one_line_error(result, 2)
    assert "--shard 7/8: no items" in result.stderr


def test_panoptic_shards_merge_into_one_run(cli, tmp_path):
    from segtools.formats import coco_panoptic
    from segtools.io.images import encode_image

    rng = np.random.default_rng(4)
    categories = [{"id": 1, "name": "road", "isthing": 0}, {"id": 2, "name": "car", "isthing": 1}]
    docs = {side: {"images": [], "annotations": [], "categories": categories} for side in ("gt", "pred")}
    for number in range(5):
        semantic = np.zeros((24, 32), np.uint8)
        semantic[14:] = 0
        instances = np.zeros_like(semantic)
        semantic[:14] = 255
        for k in range(2):
            y, x = (int(v) for v in rng.integers(0, 8, 2))
            semantic[y:y + 6, x + 12 * k:x + 12 * k + 8] = 1
            instances[y:y + 6, x + 12 * k:x + 12 * k + 8] = k + 1
        for side, shift in (("gt", 0), ("pred", int(rng.integers(0, 3)))):
            ids, segments = coco_panoptic.from_masks(np.roll(semantic, shift, 1), np.roll(instances, shift, 1),
                                                     [1, 2], {2})
            (tmp_path / side).mkdir(exist_ok=True)
            (tmp_path / side / f"{number}.png").write_bytes(encode_image(coco_panoptic.ids_to_rgb(ids)))
            docs[side]["images"].append({"id": number, "file_name": f"{number}.jpg", "height": 24, "width": 32})
            docs[side]["annotations"].append({"image_id": number, "file_name": f"{number}.png",
                                              "segments_info": segments})
    for side in ("gt", "pred"):
        (tmp_path / f"{side}.json").write_text(json.dumps(docs[side]))
    whole = _merged_equals_whole(cli, ("metrics", "--task", "panoptic", tmp_path / "pred.json", tmp_path / "gt.json"),
                                 2, ("pq", "sq", "rq", "pq_things", "pq_stuff"), tmp_path)
    assert 0 < whole["pq"] <= 1
