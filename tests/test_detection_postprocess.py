"""``segtools postprocess`` on predicted instances: COCO results (score, area, class-agnostic
mask NMS, overlap resolution) and instance-id masks (score, area, renumbering)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_one_line_error

from segtools.formats import rle as rlelib
from segtools.morphology.instances import InstanceCleanup, clean_id_mask, clean_results, greedy_suppression


def _square(top: int, left: int, size: int, shape=(40, 50)) -> dict:
    mask = np.zeros(shape, np.uint8)
    mask[top:top + size, left:left + size] = 1
    return rlelib.encode(mask)


def _results() -> list[dict]:
    squares = [(0, 0, 10, 0.9, 1), (1, 1, 10, 0.8, 2), (20, 20, 12, 0.7, 1), (25, 25, 4, 0.2, 3), (0, 40, 3, 0.95, 1)]
    return [{"image_id": 7, "category_id": c, "score": s, "bbox": [l, t, z, z], "segmentation": _square(t, l, z)}
            for t, l, z, s, c in squares]


def _greedy_loop(iou: np.ndarray, threshold: float) -> list[bool]:
    keep: list[bool] = []
    for i in range(len(iou)):
        keep.append(not any(keep[j] and iou[j, i] > threshold for j in range(i)))
    return keep


def test_greedy_suppression_equals_the_loop() -> None:
    rng = np.random.default_rng(1)
    iou = rng.random((60, 60))
    iou = np.maximum(iou, iou.T)
    for threshold in (0.5, 0.8, 0.95):
        assert greedy_suppression(iou, threshold).tolist() == _greedy_loop(iou, threshold)


def test_score_area_and_nms_across_classes() -> None:
    out = clean_results(_results(), InstanceCleanup(min_score=0.5, min_area=16, nms=0.5))
    # 0.2 goes (score), the 3×3 goes (area 9), the 0.8 square (IoU 81/119 with the 0.9 one, another class) goes
    assert [d["score"] for d in out] == [0.9, 0.7]
    assert [d["score"] for d in clean_results(_results(), InstanceCleanup(nms=0.7))] == [0.95, 0.9, 0.8, 0.7, 0.2]


def test_resolved_overlaps_give_each_pixel_to_the_best_instance() -> None:
    out = clean_results(_results(), InstanceCleanup(resolve_overlaps=True))
    masks = np.stack([rlelib.decode(d["segmentation"]) for d in out]).astype(int)
    assert masks.sum(axis=0).max() == 1
    second = next(d for d in out if d["score"] == 0.8)
    assert second["area"] == 100 - 81 and second["bbox"] == [1.0, 1.0, 10.0, 10.0]


def test_id_mask_is_renumbered_after_score_and_area() -> None:
    ids = np.zeros((10, 10), np.uint16)
    ids[:5, :5], ids[5:, 5:], ids[0, 9] = 1, 2, 3
    out, classes, scores = clean_id_mask(ids, [-1, 0, 1, 2], [0.0, 0.9, 0.4, 0.8], InstanceCleanup(min_score=0.5, min_area=2))
    assert sorted(np.unique(out).tolist()) == [0, 1] and classes == [-1, 0] and scores == [0.0, 0.9]
    with pytest.raises(Exception, match="never overlap"):
        clean_id_mask(ids, [-1, 0, 1, 2], None, InstanceCleanup(nms=0.5))


def test_cli_cleans_results_from_a_pipe_and_masks_from_files(cli, tmp_path) -> None:
    from segtools.formats.instances import encode_instance_png, instance_meta
    from segtools.io.masks import read_label_mask

    result = cli("postprocess", "--min-score", "0.5", "--nms", "0.5", input=json.dumps(_results()).encode())
    assert result.code == 0, result.stderr
    assert [d["score"] for d in json.loads(result.stdout)] == [0.95, 0.9, 0.7]
    ids = np.zeros((6, 6), np.uint16)
    ids[:3], ids[3:] = 1, 2
    meta = instance_meta([-1, 4, 5], ["a", "b", "c", "d", "e", "f"])
    meta.extra["instance_score"] = [0.0, 0.3, 0.9]
    (tmp_path / "inst.png").write_bytes(encode_instance_png(ids, meta))
    result = cli("postprocess", str(tmp_path / "inst.png"), "--min-score", "0.5", "-o", str(tmp_path / "out.png"))
    assert result.code == 0, result.stderr
    cleaned = read_label_mask(str(tmp_path / "out.png"))
    assert cleaned.labels.tolist() == [[0] * 6] * 3 + [[1] * 6] * 3
    assert cleaned.meta.extra["instance_class"] == [-1, 5] and cleaned.meta.extra["instance_score"] == [0.0, 0.9]


@pytest.mark.parametrize("args", [("--min-score", "2"), ("--nms", "-1")])
def test_cli_refuses_values_outside_the_unit_interval(cli, args) -> None:
    result = cli("postprocess", *args, input=json.dumps(_results()).encode())
    assert_one_line_error(result, 2)
    assert args[0] in result.stderr
