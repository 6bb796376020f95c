"""`segtools visualize`: every drawing option on grey/RGB/RGBA/16-bit inputs, pipes, batches,
reports, confusion plots, statistics, and one-line errors."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from conftest import assert_one_line_error

from segtools.io.images import encode_image, read_image
from segtools.io.masks import encode_label_mask, encode_score_map
from segtools.io.meta import ClassMeta, load_classes

H, W = 24, 32
META = ClassMeta(names=("bg", "road", "car"), palette=((0, 0, 0), (128, 64, 128), (0, 0, 142)), ignore_index=255)


def _labels(shift: int = 0) -> np.ndarray:
    labels = np.zeros((H, W), np.uint8)
    labels[12:, :] = 1
    labels[4:10, 6 + shift:18 + shift] = 2
    labels[0, :4] = 255
    return labels


IMAGES = {
    "grey": lambda: np.full((H, W), 90, np.uint8),
    "rgb": lambda: np.dstack([np.full((H, W), v, np.uint8) for v in (30, 90, 150)]),
    "rgba": lambda: np.dstack([np.full((H, W), v, np.uint8) for v in (30, 90, 150, 255)]),
    "16bit": lambda: np.full((H, W, 3), 90 * 257, np.uint16),
}


@pytest.fixture
def scene(tmp_path):
    (tmp_path / "pred.png").write_bytes(encode_label_mask(_labels(2), META))
    (tmp_path / "gt.png").write_bytes(encode_label_mask(_labels(0), META))
    scores = np.stack([(_labels(2) == c).astype(np.float32) for c in range(3)])
    (tmp_path / "scores.npz").write_bytes(encode_score_map(scores, META))
    for kind, make in IMAGES.items():
        (tmp_path / f"{kind}.png").write_bytes(encode_image(make(), "png"))
    return tmp_path


def _png(result) -> np.ndarray:
    assert result.code == 0, result.stderr
    assert result.stdout[:8] == b"\x89PNG\r\n\x1a\n"
    return read_image(result.stdout)


DRAWINGS = {
    "overlay": [],
    "contours": ["--contours", "--thickness", "2"],
    "legend": ["--legend", "--gt", "{gt}"],
    "errors": ["--errors", "--gt", "{gt}"],
    "errors-one-class": ["--errors", "--gt", "{gt}", "--class", "car"],
    "panel": ["--panel", "--gt", "{gt}"],
    "heatmap": ["--class", "car", "--mask", "{scores}"],
    "instances": ["--instances"],
}


ROAD, CAR, BG = (128, 64, 128), (0, 0, 142), (0, 0, 0)
GREEN, RED, BLUE = (0, 170, 80), (230, 30, 30), (30, 110, 255)  # error map: correct/TP, wrong/FP, FN
VIRIDIS_0, VIRIDIS_1 = (68, 1, 84), (253, 231, 37)
# pred: road rows 12+, car rows 4:10 × cols 8:20, ignore row 0 cols 0:4; gt: car at cols 6:18
ROAD_PX, CAR_PX, BG_PX, IGNORE_PX = (20, 0), (6, 12), (2, 28), (0, 0)
MISSED_PX, EXTRA_PX = (6, 7), (6, 19)  # gt car only (FN) / pred car only (FP)


def _mix(base, colour, alpha):
    return [(1 - alpha) * b + alpha * c for b, c in zip(base, colour)]


def _expected_layer(drawing: str, base: tuple) -> dict:
    """What the H×W picture (left of any legend) shows at known pixels, over a flat image ``base``."""
    from segtools.viz.palette import instance_palette

    dim = [b // 2 for b in base]
    if drawing in ("overlay", "legend"):
        return {ROAD_PX: _mix(base, ROAD, 0.5), CAR_PX: _mix(base, CAR, 0.5), BG_PX: _mix(base, BG, 0.5),
                IGNORE_PX: base}
    if drawing == "contours":  # opaque 2 px outlines, one pixel on each side of an edge; the photo elsewhere
        return {(11, 28): BG, (12, 28): ROAD, (3, 14): BG, (4, 14): CAR, (20, 16): base, BG_PX: base,
                (7, 14): base}
    if drawing == "errors":
        return {MISSED_PX: _mix(base, RED, 0.5), EXTRA_PX: _mix(base, RED, 0.5), CAR_PX: _mix(base, GREEN, 0.25),
                ROAD_PX: _mix(base, GREEN, 0.25), IGNORE_PX: dim}
    if drawing == "errors-one-class":
        return {CAR_PX: _mix(base, GREEN, 0.5), EXTRA_PX: _mix(base, RED, 0.5), MISSED_PX: _mix(base, BLUE, 0.5),
                ROAD_PX: dim, IGNORE_PX: dim}
    if drawing == "heatmap":
        return {CAR_PX: _mix(base, VIRIDIS_1, 0.5), ROAD_PX: _mix(base, VIRIDIS_0, 0.5),
                BG_PX: _mix(base, VIRIDIS_0, 0.5)}
    if drawing == "instances":  # ids 1 (road) and 2 (car) in instance colours; id 0 and ignore show the photo
        colours = instance_palette(3).tolist()
        return {(23, 0): _mix(base, colours[1], 0.5), (4, 8): _mix(base, colours[2], 0.5), BG_PX: base,
                IGNORE_PX: base}
    raise AssertionError(drawing)


def _assert_pixels(picture: np.ndarray, expected: dict, offset=(0, 0)) -> None:
    for (y, x), colour in expected.items():
        got = picture[y + offset[0], x + offset[1]].astype(int)
        assert np.abs(got - np.rint(colour)).max() <= 1, ((y, x), got.tolist(), colour)


def _has_colour(region: np.ndarray, colour) -> bool:
    return bool((region.reshape(-1, region.shape[-1])[:, :3] == colour).all(axis=1).any())


@pytest.mark.parametrize("image_kind", sorted(IMAGES))
@pytest.mark.parametrize("drawing", sorted(DRAWINGS))
def test_every_drawing_runs_on_every_image_kind(cli, scene, image_kind, drawing):
    args = [a.format(gt=scene / "gt.png", scores=scene / "scores.npz") for a in DRAWINGS[drawing]]
    mask = str(scene / "pred.png")
    if "--mask" in args:
        mask = args[args.index("--mask") + 1]
        del args[args.index("--mask"):args.index("--mask") + 2]
    picture = _png(cli("visualize", mask, "--over", scene / f"{image_kind}.png", *args))
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3
    base = (90, 90, 90) if image_kind in ("grey", "16bit") else (30, 90, 150)
    if drawing in ("overlay", "contours", "instances"):
        assert picture.shape[:2] == (H, W)  # same size as the image: a layer
    else:
        assert picture.shape[0] >= H and picture.shape[1] > W  # legend, colour bar or panel beside
    if drawing == "panel":
        _assert_panel(picture, base)
        return
    _assert_pixels(picture, _expected_layer(drawing, base))
    beside = picture[:, W:]
    if drawing == "legend":  # swatches of the classes present, on white
        assert _has_colour(beside, ROAD) and _has_colour(beside, CAR) and _has_colour(beside, (255, 255, 255))
    elif drawing == "errors":
        assert _has_colour(beside, GREEN) and _has_colour(beside, RED)
    elif drawing == "errors-one-class":
        assert _has_colour(beside, GREEN) and _has_colour(beside, RED) and _has_colour(beside, BLUE)
    elif drawing == "heatmap":  # the colour bar runs from the top colour to the bottom one
        assert _has_colour(beside, VIRIDIS_0) and _has_colour(beside, VIRIDIS_1)
    elif drawing == "instances":  # the id is written at the centroid of the road: not one flat colour there
        from segtools.viz.palette import instance_palette

        road = np.rint(_mix(base, instance_palette(3).tolist()[1], 0.5))
        assert (np.abs(picture[12:, :].astype(int) - road).max(axis=2) > 1).any()


def _assert_panel(picture: np.ndarray, base: tuple) -> None:
    """image | ground truth / prediction | errors, 2×2 for landscape tiles, each under its title."""
    from segtools.viz.text import text_size_for, title_bar

    size = text_size_for(H, W)
    gap, title_h = max(4, size // 2), title_bar(W, "x", size).shape[0]

    def tile(i: int) -> tuple[int, int]:
        return gap + (i // 2) * (title_h + H + gap) + title_h, gap + (i % 2) * (W + gap)

    _assert_pixels(picture, {ROAD_PX: base, CAR_PX: base}, tile(0))  # the photo itself
    _assert_pixels(picture, {MISSED_PX: CAR, ROAD_PX: ROAD, IGNORE_PX: BG}, tile(1))  # ground truth
    _assert_pixels(picture, {MISSED_PX: BG, CAR_PX: CAR, ROAD_PX: ROAD}, tile(2))  # prediction
    _assert_pixels(picture, {MISSED_PX: _mix(base, RED, 0.5), ROAD_PX: _mix(base, GREEN, 0.25)}, tile(3))
    legend = picture[:, 2 * W + 3 * gap:]
    assert _has_colour(legend, ROAD) and _has_colour(legend, CAR)


def test_overlay_pixels_are_exact(cli, scene):
    picture = _png(cli("visualize", scene / "pred.png", "--over", scene / "rgb.png", "--alpha", "0.25"))
    assert picture[20, 0].tolist() == [round(0.75 * 30 + 0.25 * 128), round(0.75 * 90 + 0.25 * 64),
                                       round(0.75 * 150 + 0.25 * 128)]
    assert picture[0, 0].tolist() == [30, 90, 150]  # ignored: the photo shows through
    assert picture[6, 10].tolist() == [round(0.75 * 30), round(0.75 * 90), round(0.75 * 150 + 0.25 * 142)]


def test_colourised_mask_from_stdin_and_transparent_ignore(cli, scene):
    mask_bytes = (scene / "pred.png").read_bytes()
    colours = _png(cli("visualize", input=mask_bytes))
    assert colours.shape == (H, W, 3)
    assert colours[20, 0].tolist() == [128, 64, 128] and colours[0, 0].tolist() == [0, 0, 0]
    rgba = _png(cli("visualize", "-", "--transparent", input=mask_bytes))
    assert rgba.shape == (H, W, 4) and rgba[0, 0, 3] == 0 and rgba[20, 0, 3] == 255


def test_classes_preset_overrides_the_mask_palette(cli, scene):
    colours = _png(cli("visualize", scene / "pred.png", "--classes", "camvid"))
    assert colours[20, 0].tolist() == list(load_classes("camvid").palette[1])


def test_jpeg_by_extension_and_sixteen_bit_instance_masks(cli, tmp_path):
    ids = np.zeros((40, 40), np.uint16)
    ids[5:20, 5:20] = 1000
    ids[25:35, 20:38] = 2
    (tmp_path / "ids.png").write_bytes(encode_label_mask(ids))
    result = cli("visualize", tmp_path / "ids.png", "-o", tmp_path / "ids.jpg")
    assert result.code == 0, result.stderr
    assert (tmp_path / "ids.jpg").read_bytes()[:2] == b"\xff\xd8"
    picture = _png(cli("visualize", tmp_path / "ids.png", "--no-ids"))
    assert picture[0, 0].tolist() == [0, 0, 0]  # background
    assert picture[10, 10].tolist() != picture[30, 30].tolist() != [0, 0, 0]
    with_ids = _png(cli("visualize", tmp_path / "ids.png"))
    assert (with_ids != picture).any()  # the ids are written on top


def test_score_map_without_class_draws_the_argmax(cli, scene):
    picture = _png(cli("visualize", scene / "scores.npz"))
    assert picture[6, 10].tolist() == [0, 0, 142]


def test_panel_size_for_landscape_tiles(cli, scene):
    no_legend = _png(cli("visualize", scene / "pred.png", "--gt", scene / "gt.png", "--over", scene / "rgb.png",
                         "--panel", "--no-legend", "--text-size", "13"))
    from segtools.viz.text import title_bar

    title_h = title_bar(W, "x", 13).shape[0]
    assert no_legend.shape == (2 * (H + title_h) + 3 * 6, 2 * W + 3 * 6, 3)


def test_batch_to_a_folder_keeps_names_with_jobs(cli, scene, tmp_path):
    for folder in ("preds", "gts", "images"):
        (tmp_path / folder).mkdir()
    for i in range(3):
        shutil.copy(scene / "pred.png", tmp_path / "preds" / f"f{i}.png")
        shutil.copy(scene / "gt.png", tmp_path / "gts" / f"f{i}.png")
        shutil.copy(scene / "rgb.png", tmp_path / "images" / f"f{i}.png")
    out = tmp_path / "out"
    result = cli("visualize", tmp_path / "preds", "--over", tmp_path / "images", "--errors", "--gt",
                 tmp_path / "gts", "-o", out, "--jobs", "2", "--ext", "jpg")
    assert result.code == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["f0.jpg", "f1.jpg", "f2.jpg"]
    assert_one_line_error(cli("visualize", tmp_path / "preds"), 2)  # a batch needs -o DIR


def test_a_pattern_is_a_batch_even_with_one_match(cli, scene, tmp_path):
    (tmp_path / "preds").mkdir()
    shutil.copy(scene / "pred.png", tmp_path / "preds" / "only.png")
    pattern = str(tmp_path / "preds" / "*.png")
    assert_one_line_error(cli("visualize", pattern), 2)  # not written to stdout: the pattern is a batch
    result = cli("visualize", pattern, "-o", tmp_path / "out")
    assert result.code == 0, result.stderr
    assert read_image(str(tmp_path / "out" / "only.png"))[20, 0].tolist() == [128, 64, 128]
    single = _png(cli("visualize", tmp_path / "preds" / "only.png"))  # one file: one picture, to stdout
    assert single[20, 0].tolist() == [128, 64, 128]


def test_ignore_index_none_and_minus_one_agree(cli, scene):
    for spelling in ("none", "-1"):
        colours = _png(cli("visualize", scene / "pred.png", "--ignore-index", spelling))
        assert colours[0, 0].tolist() != [0, 0, 0]  # 255 is a class now, in an automatic colour
        stats = json.loads(cli("visualize", "stats", scene / "pred.png", "--ignore-index", spelling,
                               "--format", "json").stdout)
        assert stats["ignore_index"] is None and stats["ignored_pixels"] == 0
    assert_one_line_error(cli("visualize", scene / "pred.png", "--ignore-index", "70000"), 2)


def test_html_report_is_self_contained_and_worst_first(cli, tmp_path):
    for folder in ("preds", "gts"):
        (tmp_path / folder).mkdir()
    gt = _labels(0)
    for name, shift in (("good", 0), ("bad", 8), ("middle", 3)):
        (tmp_path / "gts" / f"{name}.png").write_bytes(encode_label_mask(gt, META))
        (tmp_path / "preds" / f"{name}.png").write_bytes(encode_label_mask(_labels(shift), META))
    report = tmp_path / "report.html"
    result = cli("visualize", tmp_path / "preds", "--gt", tmp_path / "gts", "--report", "-o", report, "--jobs", "2")
    assert result.code == 0, result.stderr
    page = report.read_text()
    assert page.count("data:image/jpeg;base64,") == 9  # prediction, GT and errors per image
    assert not re.search(r"(src|href)=['\"](?!data:)", page)  # nothing fetched from elsewhere
    order = [page.index(f"<td>{n}.png</td>") for n in ("bad", "middle", "good")]
    assert order == sorted(order)
    assert "mIoU" in page and "background:rgb(0, 0, 142)'></span>car</td>" in page  # per-class table
    assert_one_line_error(cli("visualize", tmp_path / "preds", "--report", "-o", report), 2)


def test_confusion_from_a_metrics_report(cli, tmp_path):
    from segtools.metrics.confusion import confusion_matrix
    from segtools.metrics.scores import scores

    report = scores(confusion_matrix(_labels(2), _labels(0), 3), ["bg", "road", "car"])
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    row = _png(cli("visualize", "confusion", path))
    counts = _png(cli("visualize", "confusion", path, "--normalise", "none", "--cell", "40"))
    assert row.shape[2] == 3 and counts.shape[0] > 3 * 40
    assert _png(cli("visualize", "confusion", input=path.read_bytes())).shape == row.shape
    bad = tmp_path / "bad.json"
    bad.write_text('{"miou": 0.5}')
    assert_one_line_error(cli("visualize", "confusion", bad), 1)
    assert_one_line_error(cli("visualize", "confusion", path, "--normalise", "diag"), 2)


def test_stats_table_json_and_csv(cli, scene):
    result = cli("visualize", "stats", scene / "pred.png", scene / "gt.png", "--format", "json", "--per-image")
    assert result.code == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["images"] == 2 and stats["ignored_pixels"] == 8
    car = stats["classes"][2]
    assert (car["name"], car["pixels"], car["images_with"]) == ("car", 144, 2)
    assert [s["image"] for s in stats["per_image"]] == ["pred.png", "gt.png"]
    table = cli("visualize", "stats", scene / "gt.png")
    assert table.code == 0 and "road" in table.text and "yes" in table.text
    csv_text = cli("visualize", "stats", scene / "gt.png", "--format", "csv").text
    assert csv_text.splitlines()[1].startswith("*,0,bg,")


@pytest.mark.parametrize("args, code", [
    (["{rgb}"], 1),  # a photo is not a mask
    (["{pred}", "--errors"], 2),  # errors need --gt
    (["{pred}", "--panel", "--errors", "--gt", "{gt}"], 2),
    (["{pred}", "--alpha", "1.5"], 2),
    (["{pred}", "--over", "{small}"], 1),  # size mismatch
    (["{scores}", "--class", "truck"], 1),
    (["nosuch.png"], 1),
    (["{pred}", "--colormap", "rainbow-ish"], 2),
])
def test_bad_input_is_one_line_and_writes_nothing(cli, scene, args, code):
    (scene / "small.png").write_bytes(encode_image(np.zeros((5, 5, 3), np.uint8)))
    paths = {k: scene / f"{k}.png" for k in ("rgb", "pred", "gt", "small")}
    paths["scores"] = scene / "scores.npz"
    out = scene / "out.png"
    result = cli("visualize", *[a.format(**paths) for a in args], "-o", out)
    assert_one_line_error(result, code)
    assert not out.exists()


def test_help_names_the_subcommands_and_the_default(cli):
    result = cli("visualize", "--help")
    assert result.code == 0
    for word in ("draw", "confusion", "stats", "short for"):
        assert word in result.text


def test_camvid_overlay_and_panel_look_right(cli, camvid, tmp_path):
    name = "0016E5_07959.png"
    image, gt = camvid / "val" / name, camvid / "valannot" / name
    overlay = _png(cli("visualize", gt, "--over", image, "--classes", "camvid"))
    photo = read_image(image)
    assert overlay.shape == photo.shape
    labels = read_image(gt)
    road = labels == 3
    expected = np.rint(0.5 * photo[road].astype(float) + 0.5 * np.array([128, 64, 128]))
    assert np.abs(overlay[road] - expected).max() <= 1
    unlabelled = labels == 11  # CamVid's ignore value shows the photo unchanged
    assert (overlay[unlabelled] == photo[unlabelled]).all()
    panel = _png(cli("visualize", gt, "--gt", gt, "--over", image, "--classes", "camvid", "--panel"))
    assert panel.shape[0] > 2 * photo.shape[0] and panel.shape[1] > 2 * photo.shape[1]
