"""Boxes between VOC, YOLO and COCO: exact round trips, conventions pinned by hand examples."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segtools.errors import InputError
from segtools.formats import boxes


def test_hand_worked_example():
    # a box over pixel columns 1..4 and rows 1..3 of a 10×8 image
    coco = [[1, 1, 4, 3]]
    np.testing.assert_array_equal(boxes.coco_to_voc(coco), [[2, 2, 5, 4]])
    np.testing.assert_allclose(boxes.coco_to_yolo(coco, 10, 8), [[0.3, 0.3125, 0.4, 0.375]])
    np.testing.assert_array_equal(boxes.coco_to_xyxy(coco), [[1, 1, 5, 4]])


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 4000), st.integers(1, 4000), st.data())
def test_round_trips_are_exact(width, height, data):
    x = data.draw(st.floats(0, width - 1))
    y = data.draw(st.floats(0, height - 1))
    w = data.draw(st.floats(0.5, width - x)) if width - x >= 0.5 else width - x
    h = data.draw(st.floats(0.5, height - y)) if height - y >= 0.5 else height - y
    coco = np.array([[x, y, w, h]])
    voc = boxes.coco_to_voc(coco)
    yolo = boxes.coco_to_yolo(coco, width, height)
    np.testing.assert_allclose(boxes.voc_to_coco(voc), coco, atol=1e-6)
    np.testing.assert_allclose(boxes.yolo_to_coco(yolo, width, height), coco, atol=1e-6)
    np.testing.assert_allclose(boxes.yolo_to_voc(boxes.voc_to_yolo(voc, width, height), width, height), voc, atol=1e-6)
    np.testing.assert_allclose(boxes.xyxy_to_coco(boxes.coco_to_xyxy(coco)), coco, atol=1e-6)


def test_yolo_text_keeps_enough_digits_for_a_1e6_round_trip():
    from segtools.formats import yolo

    coco = np.array([[123.456789, 77.000001, 10.5, 3.25]])
    line = yolo.box_line(3, boxes.coco_to_yolo(coco, 4000, 3000)[0])
    (label, values), = yolo.parse_lines(line)
    assert label == 3
    np.testing.assert_allclose(boxes.yolo_to_coco(values, 4000, 3000), coco, atol=1e-6)


def test_clip_reports_changed_boxes():
    clipped, changed = boxes.clip_coco([[-2, 1, 4, 3], [1, 1, 2, 2]], 10, 8)
    np.testing.assert_array_equal(clipped[0], [0, 1, 2, 3])
    assert changed.tolist() == [True, False]


def test_bad_shapes_and_sizes():
    with pytest.raises(InputError, match="N×4"):
        boxes.coco_to_voc([[1, 2, 3]])
    with pytest.raises(InputError, match="image size"):
        boxes.coco_to_yolo([[1, 2, 3, 4]], 0, 5)
