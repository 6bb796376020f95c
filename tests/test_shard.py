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
