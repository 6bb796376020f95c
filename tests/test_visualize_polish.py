"""Issue 22 polish of `segtools visualize`, `info` and `convert` messages: the heatmap
subcommand, the class-share chart, contours with a halo, the capped HTML report, `info -f csv`,
no polygon message for mask → mask, and one unit convention per medium."""

from __future__ import annotations

import csv
import io
import re

import numpy as np
import pytest
from conftest import assert_one_line_error

from segtools.io.images import encode_image, read_image
from segtools.io.masks import encode_label_mask, encode_score_map
from segtools.io.meta import ClassMeta

H, W = 24, 32
META = ClassMeta(names=("bg", "road", "car"), palette=((0, 0, 0), (128, 64, 128), (0, 0, 142)), ignore_index=255)
ROAD, CAR = (128, 64, 128), (0, 0, 142)


def _labels(shift: int = 0) -> np.ndarray:
    labels = np.zeros((H, W), np.uint8)
    labels[12:, :] = 1
    labels[4:10, 6 + shift:18 + shift] = 2
    return labels


@pytest.fixture
def scene(tmp_path):
    (tmp_path / "pred.png").write_bytes(encode_label_mask(_labels(2), META))
    scores = np.stack([(_labels(2) == c).astype(np.float32) for c in range(3)])
    (tmp_path / "scores.npz").write_bytes(encode_score_map(scores, META))
    (tmp_path / "dark.png").write_bytes(encode_image(np.full((H, W, 3), 20, np.uint8), "png"))
    return tmp_path


def _png(result) -> np.ndarray:
    assert result.code == 0, result.stderr
    return read_image(result.stdout)


def test_heatmap_subcommand_draws_a_score_map(cli, scene):
    picture = _png(cli("visualize", "heatmap", scene / "scores.npz", "--class", "car"))
    assert np.array_equal(picture, _png(cli("visualize", scene / "scores.npz", "--class", "car")))
    assert_one_line_error(cli("visualize", "heatmap", scene / "scores.npz"), 2)  # which class?
    assert_one_line_error(cli("visualize", "heatmap", scene / "pred.png", "--class", "car"), 1)  # not scores


def test_stats_chart_has_bars_to_scale_in_class_colours(cli, scene):
    from segtools.viz.stats import CHART_BAR_PX

    chart = scene / "chart.png"
    result = cli("visualize", "stats", scene / "pred.png", "-o", chart, "--format", "json")
    assert result.code == 0, result.stderr
    assert b'"share"' in result.stdout  # the statistics still go to stdout
    picture = read_image(chart.read_bytes())
    road = np.all(picture == ROAD, axis=-1)
    car = np.all(picture == CAR, axis=-1)
    road_px, car_px = int(road.any(axis=0).sum()), int(car.any(axis=0).sum())
    assert road_px == CHART_BAR_PX  # road has the largest share: the full bar
    assert car_px == round(CHART_BAR_PX * (6 * 12) / (12 * W))  # car's bar to scale
    assert road.any(axis=1).sum() == car.any(axis=1).sum()  # bars of one height
    assert_one_line_error(cli("visualize", "stats", scene / "pred.png", "-o", scene / "pred.png"), 1)  # an input


def test_contours_stay_visible_on_a_dark_photo(cli, scene):
    picture = _png(cli("visualize", scene / "pred.png", "--over", scene / "dark.png", "--contours",
                       "--thickness", "3"))
    changed = np.any(picture != 20, axis=-1)
    luminance = picture.astype(float) @ np.array([0.2126, 0.7152, 0.0722])
    assert luminance[changed].max() > 200  # a light halo beside the dark car/road outline
    assert np.all(picture == CAR, axis=-1).any()  # the outline itself keeps the class colour
    assert changed.mean() < 0.5  # outlines, not a fill


def test_report_embeds_pictures_of_the_worst_images_only(cli, tmp_path):
    for folder in ("preds", "gts"):
        (tmp_path / folder).mkdir()
    shifts = {"a": 0, "b": 9, "c": 1, "d": 6, "e": 3}
    for name, shift in shifts.items():
        (tmp_path / "gts" / f"{name}.png").write_bytes(encode_label_mask(_labels(0), META))
        (tmp_path / "preds" / f"{name}.png").write_bytes(encode_label_mask(_labels(shift), META))
    full, capped = tmp_path / "full.html", tmp_path / "capped.html"
    args = ("visualize", tmp_path / "preds", "--gt", tmp_path / "gts", "--report")
    assert cli(*args, "-o", full).code == 0
    result = cli(*args, "-o", capped, "--max-images", "2")
    assert result.code == 0, result.stderr
    page = capped.read_text()
    assert full.read_text().count("data:image/jpeg") == 15 and page.count("data:image/jpeg") == 6
    assert len(page) < 0.6 * len(full.read_text())  # 2 of 5 images pictured, the rest is text
    for name in ("a", "b", "c", "d", "e"):
        assert f"<td>{name}.png</td>" in page  # every image is listed and scored
    pictured = re.findall(r"alt='prediction of (\w)\.png'", page)
    assert pictured == ["b", "d"]  # the worst two
    assert_one_line_error(cli(*args, "-o", tmp_path / "x.html", "--max-images", "-1"), 2)


def test_info_csv_has_one_row_per_input(cli, scene):
    result = cli("info", scene / "pred.png", scene / "scores.npz", scene / "dark.png", "-f", "csv")
    assert result.code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.text)))
    assert [r["kind"] for r in rows] == ["label mask", "score map", "image"]
    mask, scores, image = rows
    assert (mask["height"], mask["width"], mask["dtype"], mask["classes"]) == ("24", "32", "uint8", "3")
    assert mask["values"].split() == ["0:312", "1:384", "2:72"]
    assert (scores["height"], scores["width"], scores["min"], scores["max"]) == ("24", "32", "0.0", "1.0")
    assert image["channels"] == "3" and image["values"] == ""
    assert "csv" in cli("info", "--help").text


def test_mask_to_mask_says_nothing_about_polygons(cli, tmp_path):
    labels = np.zeros((20, 20), np.uint8)
    labels[2:18, 2:18] = 1
    labels[6:12, 6:12] = 0  # a hole
    source = tmp_path / "m.png"
    source.write_bytes(encode_label_mask(labels, META))
    to_mask = cli("convert", source, "--to", "mask", "-o", tmp_path / "out.png")
    assert to_mask.code == 0, to_mask.stderr
    assert "keyhole" not in to_mask.stderr
    to_coco = cli("convert", source, "--to", "coco", "-o", tmp_path / "out.json")
    assert "keyhole" in to_coco.stderr  # polygons were written: how holes were kept is said


def test_units_fractions_in_cli_tables_percent_in_pictures(cli, scene):
    table = cli("visualize", "stats", scene / "pred.png")
    assert table.code == 0 and "share (0–1)" in table.text and "0.5000" in table.text  # road: 384 of 768
    assert "%" not in table.text
    described = cli("info", scene / "pred.png").text
    assert "(share 0–1)" in described and "%" not in described
