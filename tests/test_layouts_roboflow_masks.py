"""Roboflow's "Semantic Segmentation Masks" export: ``x.jpg`` and ``x_mask.png`` in one split
folder, class names in ``_classes.csv`` (``Pixel Value, Class``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error

from segtools.errors import InputError
from segtools.io.batch import Item, pair_items, without_photos
from segtools.io.images import encode_image
from segtools.io.meta import load_classes


def roboflow_mask_export(root: Path) -> tuple[Path, dict[str, np.ndarray]]:
    from PIL import Image

    split = root / "train"
    split.mkdir(parents=True)
    masks = {}
    for number in range(3):
        stem = f"street{number}_jpg.rf.{number:04x}"
        Image.fromarray(np.full((24, 32, 3), 90, np.uint8)).save(split / f"{stem}.jpg", "JPEG")
        mask = np.zeros((24, 32), np.uint8)
        mask[4:12, 3 + number:20] = 1
        mask[14:, 20:] = 2
        (split / f"{stem}_mask.png").write_bytes(encode_image(mask))
        masks[stem] = mask
    (split / "_classes.csv").write_text("Pixel Value, Class\n0, background\n1, car\n2, road\n")
    (root / "README.roboflow.txt").write_text("Exported via roboflow.com\n")
    return split, masks


def test_classes_csv_is_read_as_class_names(tmp_path):
    split, _ = roboflow_mask_export(tmp_path / "export")
    meta = load_classes(str(split / "_classes.csv"))
    assert meta.names == ("background", "car", "road") and meta.ignore_index == 255


@pytest.mark.parametrize("text, message", [
    ("Pixel Value, Class\n0, background\n0, car\n", "listed twice"),
    ("Pixel Value, Class\nzero, background\n", "not a 'pixel value, class' row"),
    ("Pixel Value, Class\n1,\n", "without a name"),
    ("Pixel Value, Class\n", "no classes"),
    ("Pixel Value, Class\n70000, huge\n", "at most"),
])
def test_a_broken_classes_csv_names_the_line(tmp_path, text, message):
    path = tmp_path / "_classes.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        load_classes(str(path))


def test_photos_beside_their_masks_are_not_ground_truth():
    gt = [Item("t/a.jpg", "a.jpg"), Item("t/a_mask.png", "a_mask.png"), Item("t/b.jpg", "b.jpg"),
          Item("t/c_leftImg8bit.jpg", "c_leftImg8bit.jpg"), Item("t/c_mask.png", "c_mask.png")]
    assert [it.rel for it in without_photos(gt)] == ["a_mask.png", "b.jpg", "c_leftImg8bit.jpg", "c_mask.png"]
    pairing = pair_items([Item("p/a.png", "a.png"), Item("p/z.png", "z.png")], gt[:2], allow_missing=True)
    assert [(p.rel, g.rel) for p, g in pairing.pairs] == [("a.png", "a_mask.png")]
    assert pairing.only_right == []
    with pytest.raises(InputError, match="pair as"):  # two masks for one image stay an error
        pair_items([Item("p/a.png", "a.png"), Item("p/b.png", "b.png")],
                   [Item("t/a_mask.png", "a_mask.png"), Item("t/a_gt.png", "a_gt.png")])


def test_metrics_against_the_export_folder(cli, tmp_path):
    split, masks = roboflow_mask_export(tmp_path / "export")
    pred = tmp_path / "pred"
    pred.mkdir()
    for stem, mask in masks.items():
        guess = mask.copy()
        guess[0:2, :] = 2  # 64 background pixels called road in each image
        (pred / f"{stem}.png").write_bytes(encode_image(guess))
    result = cli("metrics", pred, split, "--classes", split / "_classes.csv", "--format", "json")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["images"] == 3
    assert report["pixel_accuracy"] == pytest.approx(1 - 3 * 64 / (3 * 24 * 32))
    assert [c["name"] for c in report["per_class"]] == ["background", "car", "road"]


def test_metrics_without_classes_still_says_what_is_missing(cli, tmp_path):
    split, masks = roboflow_mask_export(tmp_path / "export")
    pred = tmp_path / "pred"
    pred.mkdir()
    for stem, mask in masks.items():
        (pred / f"{stem}.png").write_bytes(encode_image(mask))
    assert_one_line_error(cli("metrics", pred, split))


def test_convert_names_each_mask_by_its_photo(cli, tmp_path):
    split, _ = roboflow_mask_export(tmp_path / "export")
    result = cli("convert", split, "--to", "coco", "--classes", split / "_classes.csv", "--images", split,
                 "-o", tmp_path / "ann.json")
    assert result.code == 0, result.stderr
    data = json.loads((tmp_path / "ann.json").read_text())
    assert [im["file_name"] for im in data["images"]] == [f"street{n}_jpg.rf.{n:04x}.jpg" for n in range(3)]
    assert [c["name"] for c in data["categories"]] == ["background", "car", "road"]


def test_training_pairs_photos_and_masks_from_the_one_folder(tmp_path):
    from segtools.train.data import find_pairs

    split, masks = roboflow_mask_export(tmp_path / "export")
    samples = find_pairs([str(split)], [str(split)])
    assert [(Path(s.image).name, Path(s.mask).name) for s in samples] == [
        (f"{stem}.jpg", f"{stem}_mask.png") for stem in sorted(masks)]


def test_visualize_the_export_folder_over_itself(cli, tmp_path):
    split, masks = roboflow_mask_export(tmp_path / "export")
    result = cli("visualize", split, "--over", split, "--classes", split / "_classes.csv", "-o", tmp_path / "viz")
    assert result.code == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "viz").iterdir()) == [f"{stem}_mask.png" for stem in sorted(masks)]


def test_predict_on_the_export_folder_reads_the_photos_only(cli, tmp_path):
    pytest.importorskip("torch")
    split, masks = roboflow_mask_export(tmp_path / "export")
    result = cli("predict", split, "-o", tmp_path / "pred")
    assert result.code == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "pred").iterdir()) == [f"{stem}.png" for stem in sorted(masks)]
