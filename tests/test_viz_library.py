"""segtools.viz: exact colours, alpha arithmetic, outlines, error codes, layouts, statistics."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from segtools.errors import InputError, UsageError
from segtools.io.meta import ClassMeta, load_classes
from segtools.viz.colourise import colourise
from segtools.viz.confusion import draw_confusion, load_report_confusion, normalised
from segtools.viz.error_map import CLASS_ERROR_COLOURS, ERROR_COLOURS, draw_error_map, error_codes
from segtools.viz.heatmap import colour_bar, heatmap
from segtools.viz.instances import instance_centroids
from segtools.viz.legend import attach, class_rows, draw_legend
from segtools.viz.overlay import blend, label_boundaries, overlay_labels
from segtools.viz.palette import class_palette, instance_palette
from segtools.viz.panel import compose_panel
from segtools.labels import value_counts
from segtools.viz.stats import ClassStatistics, statistics_csv, statistics_table
from segtools.viz.text import text_size_for, title_bar

CAMVID = load_classes("camvid")


def test_camvid_preset_colours_are_pinned_and_ignore_is_black():
    labels = np.array([[0, 3, 8, 11]], np.uint8)
    assert colourise(labels, CAMVID).tolist() == [[[128, 128, 128], [128, 64, 128], [64, 0, 128], [0, 0, 0]]]


def test_transparent_ignore_gives_rgba_with_zero_alpha_only_at_ignore():
    rgba = colourise(np.array([[3, 11]], np.uint8), CAMVID, transparent_ignore=True)
    assert rgba.shape == (1, 2, 4)
    assert rgba[0, 0].tolist() == [128, 64, 128, 255]
    assert rgba[0, 1, 3] == 0


def test_automatic_palette_is_the_voc_map_written_into_mask_pngs():
    assert class_palette(None, 4).tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    # a partial palette is completed automatically, not wrapped or dropped
    meta = ClassMeta(names=("a",), palette=((1, 2, 3),))
    assert colourise(np.array([[0, 2]], np.uint8), meta).tolist() == [[[1, 2, 3], [0, 128, 0]]]


def test_automatic_colours_are_distinct():
    assert len({tuple(c) for c in class_palette(None, 256).tolist()}) == 256
    colours = instance_palette(1000)
    assert colours[0].tolist() == [0, 0, 0]
    # consecutive instance ids never share a colour
    assert (np.abs(colours[1:-1].astype(int) - colours[2:].astype(int)).sum(axis=1) > 30).all()


def test_blend_arithmetic_is_round_of_weighted_sum():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (8, 9, 3), dtype=np.uint8)
    colours = rng.integers(0, 256, (8, 9, 3), dtype=np.uint8)
    for alpha in (0.0, 0.3, 0.5, 0.7, 1.0):
        expected = np.rint((1 - alpha) * image.astype(np.float64) + alpha * colours)
        got = blend(image, colours, alpha).astype(np.float64)
        assert np.abs(got - expected).max() <= 1, alpha  # float32 vs float64 near .5 ties
        assert (got == expected).mean() > 0.97


def test_overlay_pins_alpha_and_leaves_ignored_pixels_untouched():
    image = np.full((2, 2), 100, np.uint8)  # grey input
    labels = np.array([[1, 255], [0, 1]], np.uint8)
    meta = ClassMeta(names=("a", "b"), palette=((0, 0, 0), (200, 0, 0)))
    out = overlay_labels(image, labels, meta, alpha=0.25)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [125, 75, 75]  # 0.75*100 + 0.25*200, 0.75*100
    assert out[0, 1].tolist() == [100, 100, 100]  # ignored: the image itself
    assert out[1, 0].tolist() == [75, 75, 75]  # class a is black
    assert overlay_labels(image, labels, meta, alpha=1.0)[0, 0].tolist() == [200, 0, 0]


def test_overlay_refuses_a_mask_of_another_size():
    with pytest.raises(InputError, match="3×2 px but the image is 2×2"):
        overlay_labels(np.zeros((2, 2, 3), np.uint8), np.zeros((2, 3), np.uint8))


def test_boundaries_have_the_requested_thickness():
    labels = np.zeros((10, 20), np.uint8)
    labels[:, 10:] = 1
    for thickness in (1, 2, 3, 4):
        edges = label_boundaries(labels, thickness)
        assert edges.sum(axis=1).tolist() == [thickness] * 10
    contoured = overlay_labels(np.full((10, 20, 3), 50, np.uint8), labels, None, contours=True, thickness=2)
    # outlines are opaque class colours; the rest is the image
    assert contoured[0, 9].tolist() == [0, 0, 0] and contoured[0, 10].tolist() == [128, 0, 0]
    assert contoured[0, 0].tolist() == [50, 50, 50]


def test_error_codes_and_colours():
    gt = np.array([[1, 1, 255, 0]])
    pred = np.array([[1, 0, 1, 255]])  # a prediction of 255 at a labelled pixel is wrong
    codes = error_codes(pred, gt)
    assert codes.tolist() == [[0, 1, 2, 1]]
    assert draw_error_map(codes).reshape(-1, 3).tolist() == [
        list(ERROR_COLOURS[0]), list(ERROR_COLOURS[1]), list(ERROR_COLOURS[2]), list(ERROR_COLOURS[1])]
    one = error_codes(np.array([[2, 2, 0, 0, 2]]), np.array([[2, 0, 2, 0, 255]]), class_index=2)
    assert one.tolist() == [[1, 2, 3, 0, 4]]
    drawn = draw_error_map(one, one_class=True)
    assert drawn[0, 3].tolist() == list(CLASS_ERROR_COLOURS[0])
    over = draw_error_map(one, np.full((1, 5, 3), 200, np.uint8), one_class=True, alpha=0.5)
    assert over[0, 3].tolist() == [100, 100, 100]  # true negative: image darkened to half


def test_instance_centroids_are_vectorised_means():
    ids = np.zeros((4, 6), np.uint16)
    ids[0:2, 0:2] = 300
    ids[2:4, 3:6] = 7
    found, xy = instance_centroids(ids)
    assert found.tolist() == [7, 300]
    assert xy.tolist() == [[4.0, 2.5], [0.5, 0.5]]


def test_heatmap_levels_and_colour_bar():
    grey = heatmap(np.array([[0.0, 0.5, 1.0]]), "gray")
    assert grey[0, :, 0].tolist() == [0, 128, 255]
    viridis = heatmap(np.array([[0.0, 1.0]]))
    assert viridis[0, 0].tolist() == [68, 1, 84] and viridis[0, 1].tolist() == [253, 231, 37]
    bar = colour_bar(300, 16)
    assert bar.shape[0] == 300 and bar.shape[2] == 3


def test_text_is_sized_for_legibility_at_512_and_4k():
    assert text_size_for(512, 512) >= 14
    size_4k = text_size_for(2160, 3840)
    assert size_4k >= 60
    strip = title_bar(3840, "Building", size_4k)
    ink_rows = np.flatnonzero((strip < 128).any(axis=(1, 2)))
    assert ink_rows.max() - ink_rows.min() >= 0.6 * size_4k  # capitals really are that tall


def test_legend_lists_present_classes_largest_first_with_iou():
    labels = np.array([[3, 3, 3, 8, 11, 11]], np.uint8)
    iou = np.full(11, np.nan)
    iou[3], iou[8] = 0.5, 0.25
    rows = class_rows(labels, CAMVID, class_palette(CAMVID, 12), iou)
    assert [r.cells for r in rows] == [("Road", "75.0%", "IoU 50.0"), ("Car", "25.0%", "IoU 25.0")]
    assert rows[0].colour == (128, 64, 128)
    panel = draw_legend(rows, 100, 14)
    assert panel.shape[0] == 100
    joined = attach(np.zeros((80, 50, 3), np.uint8), panel)
    assert joined.shape == (100, 50 + panel.shape[1], 3)


def test_panel_layout_is_2x2_for_landscape_tiles():
    tiles = [(t, np.zeros((30, 40, 3), np.uint8)) for t in ("image", "ground truth", "prediction", "errors")]
    panel = compose_panel(tiles, text_size=13)
    title_h = title_bar(40, "x", 13).shape[0]
    gap = 6
    assert panel.shape == (2 * (30 + title_h) + 3 * gap, 2 * 40 + 3 * gap, 3)
    with pytest.raises(InputError, match="must match"):
        compose_panel([("a", np.zeros((3, 4, 3), np.uint8)), ("b", np.zeros((4, 4, 3), np.uint8))])


def test_confusion_normalisation_and_report_loading():
    confusion = np.array([[3, 1], [0, 0]])
    rows = normalised(confusion, "row")
    assert rows[0].tolist() == [0.75, 0.25] and np.isnan(rows[1]).all()
    assert normalised(confusion, "column")[:, 0].tolist() == [1.0, 0.0]
    with pytest.raises(UsageError):
        normalised(confusion, "diagonal")
    report = json.dumps({"confusion": confusion.tolist(), "class_names": ["bg", "fg"], "miou": None})
    matrix, names, _ = load_report_confusion(report)
    assert names == ["bg", "fg"] and matrix.dtype == np.int64
    picture = draw_confusion(matrix, names, cell=40)
    assert picture.shape[0] > 80 and picture.shape[1] > 80
    for bad in ("[1,2]", '{"confusion": [[1, 2]]}', '{"confusion": [[1]], "class_names": ["a", "b"]}', "nope"):
        with pytest.raises(InputError):
            load_report_confusion(bad)


def test_class_statistics_share_of_labelled_pixels_and_presence():
    first = np.array([[0, 0, 2, 255]], np.uint8)
    second = np.array([[2, 2, 2, 2]], np.uint8)
    total = ClassStatistics()
    for mask in (first, second):
        total.add(value_counts(mask))
    meta = ClassMeta(names=("a", "b", "c"))
    stats = statistics_table(total.pixels, meta, total.images_with, total.images)
    assert stats["ignored_pixels"] == 1 and stats["labelled_pixels"] == 7
    assert [(c["name"], c["pixels"], c["images_with"]) for c in stats["classes"]] == [
        ("a", 2, 1), ("b", 0, 0), ("c", 5, 2)]
    assert math.isclose(stats["classes"][2]["share"], 5 / 7)
    csv_text = statistics_csv(stats)
    assert csv_text.splitlines()[0] == "image,index,name,pixels,share,present,images_with"
    assert csv_text.splitlines()[3].startswith("*,2,c,5,")


def test_value_counts_match_bincount_for_8_and_16_bit():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 12, (37, 41), dtype=np.uint8)
    wide = rng.integers(0, 3000, (37, 41), dtype=np.uint16)
    assert value_counts(small).tolist() == np.bincount(small.ravel()).tolist()
    assert value_counts(wide).tolist() == np.bincount(wide.ravel()).tolist()


def test_library_messages_name_parameters_and_fallback_names_are_class_n():
    from segtools.viz.draw_options import DrawOptions
    from segtools.viz.palette import class_names

    with pytest.raises(UsageError, match=r"alpha=1\.5: must be in \[0, 1\]"):
        DrawOptions(alpha=1.5)
    with pytest.raises(UsageError, match="normalise='diagonal'"):
        normalised(np.eye(2), "diagonal")
    assert class_names(ClassMeta(names=("road",)), 3) == ["road", "class_1", "class_2"]
    _, names, _ = load_report_confusion(json.dumps({"confusion": [[1, 0], [0, 1]]}))
    assert names == ["class_0", "class_1"]
