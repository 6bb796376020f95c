"""A Cityscapes ``gtFine`` folder as shipped (and after ``createTrainIdLabelImgs``): four or
five files a frame, of which semantic metrics and training read one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from segtools.io.images import encode_image
from segtools.train.data import find_pairs

FRAMES = ("frankfurt_000000_000294", "frankfurt_000000_000576")


def gtfine(root: Path, train_ids: bool = True) -> dict[str, np.ndarray]:
    """gtFine/val/frankfurt with labelIds, color, instanceIds, polygons (and labelTrainIds);
    the label ids are road (7) over car (26), i.e. train ids 0 over 13."""
    folder = root / "gtFine" / "val" / "frankfurt"
    folder.mkdir(parents=True)
    truth = {}
    for k, frame in enumerate(FRAMES):
        label_ids = np.full((16, 32), 7, np.uint8)
        label_ids[8 + k:] = 26
        (folder / f"{frame}_gtFine_labelIds.png").write_bytes(encode_image(label_ids))
        (folder / f"{frame}_gtFine_color.png").write_bytes(encode_image(np.zeros((16, 32, 3), np.uint8)))
        (folder / f"{frame}_gtFine_instanceIds.png").write_bytes(encode_image(label_ids.astype(np.uint16) * 1000))
        (folder / f"{frame}_gtFine_polygons.json").write_text(json.dumps({"imgHeight": 16, "imgWidth": 32,
                                                                          "objects": []}))
        trainids = np.where(label_ids == 7, 0, 13).astype(np.uint8)
        if train_ids:
            (folder / f"{frame}_gtFine_labelTrainIds.png").write_bytes(encode_image(trainids))
        truth[frame] = trainids
    return truth


def _predictions(root: Path, truth: dict[str, np.ndarray]) -> Path:
    folder = root / "pred" / "frankfurt"
    folder.mkdir(parents=True)
    for frame, trainids in truth.items():
        guess = trainids.copy()
        guess[0, :4] = 13  # 4 road pixels called car in each frame
        (folder / f"{frame}_leftImg8bit.png").write_bytes(encode_image(guess))
    return root / "pred"


@pytest.mark.parametrize("train_ids", [True, False])
def test_metrics_on_a_gtfine_folder_reads_one_file_a_frame(cli, tmp_path, train_ids):
    truth = gtfine(tmp_path, train_ids)
    pred = _predictions(tmp_path, truth)
    expected = 1 - 2 * 4 / (2 * 16 * 32)
    if train_ids:  # the train ids, as they are
        result = cli("metrics", pred, tmp_path / "gtFine", "--classes", "cityscapes", "--format", "json")
        assert result.code == 0, result.stderr
        assert json.loads(result.stdout)["pixel_accuracy"] == pytest.approx(expected)
    # --label-map cityscapes remaps label ids: the labelIds files, even beside labelTrainIds
    result = cli("metrics", pred, tmp_path / "gtFine", "--classes", "cityscapes", "--label-map", "cityscapes",
                 "--format", "json")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["images"] == 2 and report["pixel_accuracy"] == pytest.approx(expected)


def test_training_pairs_leftimg8bit_with_the_train_ids(tmp_path):
    gtfine(tmp_path)
    photos = tmp_path / "leftImg8bit" / "val" / "frankfurt"
    photos.mkdir(parents=True)
    for frame in FRAMES:
        (photos / f"{frame}_leftImg8bit.png").write_bytes(encode_image(np.zeros((16, 32, 3), np.uint8)))
    samples = find_pairs([str(tmp_path / "leftImg8bit")], [str(tmp_path / "gtFine")])
    assert [Path(s.mask).name for s in samples] == [f"{f}_gtFine_labelTrainIds.png" for f in FRAMES]


def test_visualize_against_a_gtfine_folder(cli, tmp_path):
    truth = gtfine(tmp_path)
    pred = _predictions(tmp_path, truth)
    result = cli("visualize", pred, "--gt", tmp_path / "gtFine", "--classes", "cityscapes", "-o", tmp_path / "viz")
    assert result.code == 0, result.stderr
    assert len(list((tmp_path / "viz").rglob("*.png"))) == 2
