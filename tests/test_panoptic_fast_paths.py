"""The fast per-image paths of panoptic evaluation equal the plain ones they replace."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segtools.errors import InputError
from segtools.formats.coco_panoptic import rgb_to_ids
from segtools.io.images import read_image
from segtools.metrics.panoptic import _pair_table, image_counts
from segtools.metrics.panoptic_io import read_panoptic_png


def _plain_ids(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb[..., :3].astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


@pytest.mark.parametrize("channels", [3, 4, 5])
def test_rgb_to_ids_packed_equals_arithmetic(channels):
    rng = np.random.default_rng(channels)
    rgb = rng.integers(0, 256, (23, 17, channels)).astype(np.uint8)
    for view in (rgb, rgb[:, ::3], np.asfortranarray(rgb), rgb[:0]):
        ids = rgb_to_ids(view)
        assert ids.dtype == np.uint32 and ids.shape == view.shape[:2]
        np.testing.assert_array_equal(ids, _plain_ids(view))
        bgr = np.concatenate([view[..., 2::-1], view[..., 3:]], axis=-1)
        np.testing.assert_array_equal(rgb_to_ids(bgr, bgr=True), _plain_ids(view))
    np.testing.assert_array_equal(rgb_to_ids(rgb.astype(np.uint16) * 3), _plain_ids(rgb.astype(np.uint16) * 3))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "LA"])
def test_read_panoptic_png_equals_read_image(tmp_path, mode):
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, (31, 45, 3)).astype(np.uint8)
    rgb[5:20, 3:30] = (12, 200, 7)
    image = Image.fromarray(rgb)
    if mode == "RGBA":
        image = Image.fromarray(np.dstack([rgb, rng.integers(0, 256, (31, 45), dtype=np.uint8)]))
    elif mode == "P":
        image = image.quantize(64)
    elif mode == "LA":
        image = image.convert("LA")
    path = tmp_path / f"{mode}.png"
    image.save(path)
    np.testing.assert_array_equal(read_panoptic_png(str(path)), rgb_to_ids(read_image(str(path))))


def test_read_panoptic_png_refuses_grey_and_16_bit(tmp_path):
    Image.fromarray(np.zeros((4, 5), np.uint8)).save(tmp_path / "grey.png")
    with pytest.raises(InputError, match="grey.png: a COCO panoptic PNG is 8-bit RGB"):
        read_panoptic_png(str(tmp_path / "grey.png"))
    from segtools.io.images import write_image

    write_image(np.zeros((4, 5, 3), np.uint16), tmp_path / "deep.png")
    with pytest.raises(InputError, match="deep.png: a COCO panoptic PNG is 8-bit RGB, this one is uint16"):
        read_panoptic_png(str(tmp_path / "deep.png"))


def test_read_panoptic_png_refuses_a_corrupt_file(tmp_path):
    data = bytearray((lambda p: (Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(p), p.read_bytes())[1])(
        tmp_path / "ok.png"))
    data[40] ^= 0xFF  # inside IDAT: the CRC no longer matches
    (tmp_path / "bad.png").write_bytes(bytes(data))
    with pytest.raises(InputError, match="bad.png: corrupt PNG"):
        read_panoptic_png(str(tmp_path / "bad.png"))


def _pixel_table(gt, g_ids, pred, p_ids):
    def dense(ids, listed):
        lut = {0: 1, **{int(v): k + 2 for k, v in enumerate(listed)}}
        return np.vectorize(lambda v: lut.get(int(v), 0), otypes=[np.int64])(ids)

    ng, npred = g_ids.size + 2, p_ids.size + 2
    key = dense(gt, g_ids) * npred + dense(pred, p_ids)
    return np.bincount(key.ravel(), minlength=ng * npred).reshape(ng, npred)


@pytest.mark.parametrize("seed", range(6))
def test_run_table_equals_pixel_count(seed):
    rng = np.random.default_rng(seed)
    shape = [(1, 1), (1, 40), (37, 1), (29, 31), (64, 48), (0, 5)][seed]
    g_ids = np.sort(rng.choice(np.arange(1, 2**24), 9, replace=False))
    p_ids = np.sort(rng.choice(np.arange(1, 2**24), 7, replace=False))
    # blocky images (long runs) with per-pixel noise and ids not listed (stray)
    gt = np.repeat(rng.choice(np.concatenate([[0], g_ids]), (shape[0], max(1, shape[1] // 4 + 1))), 4, 1)[:, :shape[1]]
    pred = np.where(rng.random(shape) < 0.2, rng.choice(np.concatenate([[0, 5], p_ids]), shape), 0)
    gt = np.where(rng.random(shape) < 0.05, 123, gt).astype(np.uint32 if seed % 2 else np.int64)
    np.testing.assert_array_equal(_pair_table(gt, g_ids, pred, p_ids), _pixel_table(gt, g_ids, pred, p_ids))
    transposed = _pair_table(np.asfortranarray(gt), g_ids, pred.T.copy().T, p_ids)
    np.testing.assert_array_equal(transposed, _pixel_table(gt, g_ids, pred, p_ids))


def test_counts_of_a_stray_id_are_refused_after_run_counting():
    gt = np.array([[1, 1, 9, 9]])
    pred = np.array([[5, 5, 5, 5]])
    with pytest.raises(InputError, match="ground truth segment id 9 is in the PNG but not in segments_info"):
        image_counts(gt, [{"id": 1, "category_id": 7}], pred, [{"id": 5, "category_id": 7}], np.array([7]))


def test_chunked_workers_equal_one_process(tmp_path):
    import json

    from segtools.formats.coco_panoptic import ids_to_rgb
    from segtools.io.images import write_image
    from segtools.metrics.panoptic_io import evaluate_panoptic_files

    rng = np.random.default_rng(3)
    docs = {}
    for side in ("gt", "pred"):
        (tmp_path / side).mkdir()
        annotations = []
        for k in range(37):  # several images per worker task, the last task shorter
            ids = np.repeat(rng.integers(0, 4, (6, 3)), 3, 1)
            write_image(ids_to_rgb(ids * 1000), tmp_path / side / f"{k}.png")
            present = sorted(set(np.unique(ids).tolist()) - {0})
            annotations.append({"image_id": k, "file_name": f"{k}.png",
                                "segments_info": [{"id": v * 1000, "category_id": 1 + v % 2} for v in present]})
        docs[side] = tmp_path / f"{side}.json"
        docs[side].write_text(json.dumps({"annotations": annotations, "categories": [
            {"id": 1, "name": "road", "isthing": 0}, {"id": 2, "name": "car", "isthing": 1}]}))
    done: list[int] = []
    one = evaluate_panoptic_files(str(docs["pred"]), str(docs["gt"]), jobs=1)
    two = evaluate_panoptic_files(str(docs["pred"]), str(docs["gt"]), jobs=2, on_done=done.append)
    assert two.state() == one.state() and one.images == 37
    assert done == list(range(37))


@pytest.mark.parametrize("segments", [
    [{"id": 1, "category_id": 2}, {"id": 2**24 - 1, "category_id": -5, "iscrowd": 1}],
    [{"id": 3.0, "category_id": 2}],  # integral floats: accepted by the getters, not by the quick check
    [{"id": True, "category_id": 2}], [{"id": 0, "category_id": 2}], [{"id": 2**24, "category_id": 2}],
    [{"id": 1, "category_id": 2, "iscrowd": 2}], [{"id": 1, "category_id": 2, "iscrowd": None}],
    [{"id": 1, "category_id": "2"}], [{"id": 1}], ["x"], [{"id": 1, "category_id": 2**70}],
    [{"id": 1, "category_id": 1}, {"id": 1.5, "category_id": 1}],
])
def test_quick_segment_check_agrees_with_the_getters(segments):
    from segtools.formats import schema
    from segtools.io.jsondata import get_int

    def plain():
        for j, segment in enumerate(segments):
            where = f"f.json: annotations[0]: segments_info[{j}]"
            get_int(segment, "id", where, 1, 2**24 - 1)
            get_int(segment, "category_id", where, -schema.MAX_ID, schema.MAX_ID)
            if "iscrowd" in segment:
                get_int(segment, "iscrowd", where, 0, 1)

    try:
        plain()
        expected = None
    except InputError as exc:
        expected = str(exc)
    if expected is None:
        assert schema.panoptic_segments(segments, "f.json: annotations[0]") is segments
    else:
        with pytest.raises(InputError) as caught:
            schema.panoptic_segments(segments, "f.json: annotations[0]")
        assert str(caught.value) == expected and "\n" not in expected


@pytest.mark.parametrize("jobs", [1, 2])
@pytest.mark.parametrize("side", ["gt", "pred"])
def test_segment_and_path_errors_come_from_the_worker_naming_the_item(tmp_path, jobs, side):
    import json

    from segtools.formats.coco_panoptic import ids_to_rgb
    from segtools.io.images import write_image
    from segtools.metrics.panoptic_io import evaluate_panoptic_files

    specs = {}
    for name in ("gt", "pred"):
        (tmp_path / name).mkdir()
        annotations = []
        for k in range(5):
            write_image(ids_to_rgb(np.full((4, 4), 7)), tmp_path / name / f"{k}.png")
            annotations.append({"image_id": k, "file_name": f"{k}.png", "segments_info": [{"id": 7, "category_id": 1}]})
        specs[name] = tmp_path / f"{name}.json"
        specs[name].write_text(json.dumps({"annotations": annotations,
                                           "categories": [{"id": 1, "name": "road", "isthing": 0}]}))
    doc = json.loads(specs[side].read_text())
    doc["annotations"][3]["segments_info"][0]["id"] = "x"
    specs[side].write_text(json.dumps(doc))
    with pytest.raises(InputError) as caught:
        evaluate_panoptic_files(str(specs["pred"]), str(specs["gt"]), jobs=jobs)
    assert str(caught.value) == f"{specs[side]}: annotations[3]: segments_info[0]: 'id' must be a number, got a string"
    doc["annotations"][3]["segments_info"][0]["id"] = 7
    (tmp_path / "outside").mkdir()
    write_image(ids_to_rgb(np.full((4, 4), 7)), tmp_path / "outside" / "x.png")
    (tmp_path / side / "link").symlink_to(tmp_path / "outside")
    doc["annotations"][2]["file_name"] = "link/x.png"
    specs[side].write_text(json.dumps(doc))
    item = "annotations[2]" if side == "gt" else "image_id 2"
    with pytest.raises(InputError) as caught:
        evaluate_panoptic_files(str(specs["pred"]), str(specs["gt"]), jobs=jobs)
    assert str(caught.value) == (f"{specs[side]}: {item}: 'file_name' 'link/x.png' leads out of "
                                 f"{tmp_path / side} (through a symbolic link)")
