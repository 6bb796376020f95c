"""`segtools visualize instances`: a colour per instance, outlines, labels, --min-score, the
TP/FP/FN error view beside the ground truth, from instance masks and COCO JSON; one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_one_line_error

from segtools.formats import rle as rlelib
from segtools.formats.instances import encode_instance_png, instance_meta
from segtools.io.images import encode_image, read_image
from segtools.viz.instance_draw import (FN_COLOUR, FP_COLOUR, TP_COLOUR, InstanceSet, draw_instance_errors,
                                        instance_colours, match_instances)
from segtools.viz.text import title_bar

H, W = 40, 60
GREY = 100


def _box(top, bottom, left, right) -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    mask[top:bottom, left:right] = 1
    return mask


def _rle(mask) -> dict:
    return rlelib.encode(mask)


def _mix(base, colour, alpha=0.5):
    return [int(v) for v in np.rint(np.float64(base) * (1 - alpha) + np.float64(colour) * alpha)]


@pytest.fixture
def scene(tmp_path):
    """A grey photo; GT person (id 1) and car (id 2) as COCO JSON and as an instance mask;
    detections: the person (0.9), a wrong car (0.8), a faint person (0.1)."""
    (tmp_path / "img.png").write_bytes(encode_image(np.full((H, W, 3), GREY, np.uint8)))
    person, car = _box(5, 20, 5, 20), _box(22, 38, 30, 55)
    gt = {"images": [{"id": 7, "file_name": "img.png", "height": H, "width": W}],
          "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "car"}],
          "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "segmentation": _rle(person), "iscrowd": 0,
                           "bbox": rlelib.to_bbox(_rle(person)), "area": 225},
                          {"id": 2, "image_id": 7, "category_id": 2, "segmentation": _rle(car), "iscrowd": 0,
                           "bbox": rlelib.to_bbox(_rle(car)), "area": 400}]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    ids = person.astype(np.uint16) + 2 * car.astype(np.uint16)
    (tmp_path / "gt.png").write_bytes(encode_instance_png(ids, instance_meta([-1, 0, 1], ["person", "car"])))
    results = [{"image_id": 7, "category_id": 1, "segmentation": _rle(person), "score": 0.9},
               {"image_id": 7, "category_id": 2, "segmentation": _rle(_box(5, 25, 35, 55)), "score": 0.8},
               {"image_id": 7, "category_id": 1, "segmentation": _rle(_box(32, 40, 2, 12)), "score": 0.1}]
    (tmp_path / "results.json").write_text(json.dumps(results))
    return tmp_path


def _draw(cli, scene, *args):
    out = scene / "out.png"
    result = cli("visualize", "instances", *map(str, args), "-o", str(out), "--overwrite")
    assert result.code == 0, result.stderr
    return read_image(out)


def test_results_json_over_the_photo_colour_outline_label_and_min_score(cli, scene):
    picture = _draw(cli, scene, scene / "results.json", "--over", scene / "img.png", "--gt", scene / "gt.json",
                    "--thickness", "1", "--text-size", "8")
    colours = instance_colours(3)
    assert picture[17, 12].tolist() == _mix(GREY, colours[1])  # inside the person: fill blended 50 %
    assert picture[17, 5].tolist() == colours[1].tolist()  # its left edge: the outline, opaque
    assert picture[22, 52].tolist() == _mix(GREY, colours[2])  # the wrong car (below its label)
    assert picture[35, 7].tolist() == _mix(GREY, colours[3])  # the faint person
    assert picture[2, 2].tolist() == [GREY] * 3  # no instance: the photo
    label = picture[5:12, 6:20]  # "person 0.90" at the top left of its box, on its own colour
    assert (label == colours[1]).all(axis=2).sum() > 10 and not (label == _mix(GREY, colours[1])).all(axis=2).all()
    faint_gone = _draw(cli, scene, scene / "results.json", "--over", scene / "img.png", "--min-score", "0.5",
                       "--text-size", "8")
    assert faint_gone[35, 7].tolist() == [GREY] * 3
    assert faint_gone[25, 12].tolist() == [GREY] * 3  # nor its label
    assert faint_gone[18, 12].tolist() == _mix(GREY, instance_colours(2)[1])


def test_the_most_confident_instance_owns_an_overlap(cli, scene):
    results = [{"image_id": 1, "category_id": 1, "segmentation": _rle(_box(0, 40, 0, 40)), "score": 0.3},
               {"image_id": 1, "category_id": 1, "segmentation": _rle(_box(0, 40, 20, 60)), "score": 0.6}]
    (scene / "overlap.json").write_text(json.dumps(results))
    picture = _draw(cli, scene, scene / "overlap.json", "--over", scene / "img.png", "--alpha", "1")
    colours = instance_colours(2)
    assert picture[30, 30].tolist() == colours[2].tolist()  # shared: the 0.6 one
    assert picture[30, 10].tolist() == colours[1].tolist()


def test_instance_mask_with_scores_draws_class_and_score(cli, scene):
    ids = _box(5, 20, 5, 20).astype(np.uint16)
    meta = instance_meta([-1, 1], ["person", "car"])
    meta.extra["instance_score"] = [0.0, 0.25]
    (scene / "pred.png").write_bytes(encode_instance_png(ids, meta))
    picture = _draw(cli, scene, scene / "pred.png", "--over", scene / "img.png", "--thickness", "1", "--text-size", "8")
    assert picture[18, 12].tolist() == _mix(GREY, instance_colours(1)[1])
    assert _draw(cli, scene, scene / "pred.png", "--over", scene / "img.png", "--min-score", "0.3", "--text-size", "8")[18, 12].tolist() \
        == [GREY] * 3
    from segtools.viz.instance_inputs import from_instance_mask

    assert from_instance_mask(ids, meta).label(0) == "car 0.25"


@pytest.mark.parametrize("gt_name", ["gt.json", "gt.png"])
def test_error_view_beside_the_ground_truth(cli, scene, gt_name):
    picture = _draw(cli, scene, scene / "results.json", "--over", scene / "img.png", "--gt", scene / gt_name,
                    "--errors", "--min-score", "0.5", "--text-size", "13", "--alpha", "1", "--image-id", "7")
    gap, top = 6, title_bar(W, "x", 13).shape[0]  # compose_panel: gap max(4, 13 // 2), a title bar above each tile
    assert picture.shape[:2] == (2 * gap + top + H, 3 * gap + 2 * W)
    errors = picture[gap + top:gap + top + H, 2 * gap + W:2 * gap + 2 * W]
    assert errors[12, 12].tolist() == list(TP_COLOUR)  # the person found
    assert errors[10, 45].tolist() == list(FP_COLOUR)  # the car where there is none
    assert errors[30, 40].tolist() == list(FN_COLOUR)  # the car missed
    assert errors[35, 7].tolist() == [GREY] * 3  # the faint person is below --min-score


def test_matching_is_greedy_by_score_within_a_category_and_crowd_is_neither():
    a, b = _box(0, 20, 0, 30), _box(20, 40, 30, 60)
    gt = InstanceSet(H, W, [_rle(a), _rle(b)], [1, 2], crowd=[False, True])
    pred = InstanceSet(H, W, [_rle(a), _rle(a), _rle(a), _rle(b)], [1, 1, 2, 2], [0.4, 0.7, 0.9, 0.5])
    status, found = match_instances(pred, gt)
    assert status.tolist() == [0, 1, 0, -1]  # the 0.7 takes the person first; wrong category; crowd
    assert found.tolist() == [True, True]
    picture = draw_instance_errors(None, pred, gt, alpha=1.0)
    assert picture[30, 45].tolist() == [0, 0, 0]  # only a crowd match there: not drawn


def test_bad_inputs_are_one_line_naming_file_and_item(cli, scene):
    out = str(scene / "out.png")
    bad_rle = [{"image_id": 7, "category_id": 1, "segmentation": {"size": [H, W], "counts": "!!"}, "score": 0.5}]
    (scene / "bad_rle.json").write_text(json.dumps(bad_rle))
    result = cli("visualize", "instances", str(scene / "bad_rle.json"), "--over", str(scene / "img.png"), "-o", out)
    assert_one_line_error(result, 1)
    assert "bad_rle.json" in result.stderr and "[0]" in result.stderr
    bad_score = [{"image_id": 7, "category_id": 1, "segmentation": _rle(_box(0, 5, 0, 5)), "score": "high"}]
    (scene / "bad_score.json").write_text(json.dumps(bad_score))
    result = cli("visualize", "instances", str(scene / "bad_score.json"), "--over", str(scene / "img.png"), "-o", out)
    assert_one_line_error(result, 1)
    assert "bad_score.json" in result.stderr and "score" in result.stderr
    unknown = [{"image_id": 7, "category_id": 9, "segmentation": _rle(_box(0, 5, 0, 5)), "score": 0.5}]
    (scene / "unknown.json").write_text(json.dumps(unknown))
    result = cli("visualize", "instances", str(scene / "unknown.json"), "--gt", str(scene / "gt.json"), "-o", out)
    assert_one_line_error(result, 1)
    assert "category id 9" in result.stderr
    (scene / "small.png").write_bytes(encode_image(np.zeros((10, 10, 3), np.uint8)))
    result = cli("visualize", "instances", str(scene / "gt.png"), "--over", str(scene / "small.png"), "-o", out)
    assert_one_line_error(result, 1)
    assert "10×10" in result.stderr
    result = cli("visualize", "instances", str(scene / "results.json"), "--errors", "-o", out)
    assert_one_line_error(result)
    assert "give --gt FILE" in result.stderr
