"""Round trips and bad inputs for label masks, score maps, images and class metadata."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from segtools.errors import InputError, OutputError, UsageError
from segtools.io.masks import (encode_label_mask, encode_score_map, read_label_mask, read_mask_or_scores,
                               read_score_map, write_label_mask)
from segtools.io.meta import ClassMeta, load_classes
from segtools.io.images import encode_image, read_image
from segtools.io.sniff import PNG_GREY, PNG_PALETTE, sniff

names = st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=8)
metas = st.builds(
    lambda ns, ignore, kind: ClassMeta(tuple(ns), tuple((i * 40 % 256, i * 90 % 256, i * 7 % 256) for i in range(len(ns))),
                                       ignore, kind),
    names, st.one_of(st.none(), st.integers(0, 255)), st.sampled_from(["semantic", "instance", "panoptic"]))


@settings(max_examples=60, deadline=None)
@given(height=st.integers(1, 40), width=st.integers(1, 40), high=st.sampled_from([1, 2, 11, 255, 256, 4000, 65535]),
       meta=st.one_of(st.none(), metas), seed=st.integers(0, 2**16))
def test_label_mask_png_round_trip(height, width, high, meta, seed):
    labels = np.random.default_rng(seed).integers(0, high + 1, (height, width))
    labels.flat[0] = high  # the maximum decides the encoding
    data = encode_label_mask(labels, meta)
    kind = sniff(data[:64])
    assert kind.format == "png" and (kind.width, kind.height) == (width, height)
    if high <= 255:
        assert kind.colour_type == PNG_PALETTE and kind.bit_depth == 8
    else:
        assert kind.colour_type == PNG_GREY and kind.bit_depth == 16
    back = read_label_mask(data)
    np.testing.assert_array_equal(back.labels, labels)
    assert back.meta == meta


@settings(max_examples=30, deadline=None)
@given(shape=st.sampled_from([(5, 7), (2, 3, 4), (1, 1), (4, 1, 9)]), dtype=st.sampled_from(["float16", "float32"]),
       meta=st.one_of(st.none(), metas))
def test_score_map_npz_round_trip(shape, dtype, meta):
    scores = np.random.default_rng(0).random(shape).astype(dtype)
    back = read_score_map(encode_score_map(scores, meta))
    assert back.scores.dtype == scores.dtype
    np.testing.assert_array_equal(back.scores, scores)
    assert back.meta == meta


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int32", "int64", "bool"])
def test_integer_npy_is_a_label_mask(dtype):
    labels = (np.arange(12).reshape(3, 4) % 2).astype(dtype)
    buffer = io.BytesIO()
    np.save(buffer, labels)
    back = read_label_mask(buffer.getvalue())
    np.testing.assert_array_equal(back.labels, labels.astype(np.int64))


def test_grey_8bit_png_is_read_as_labels(camvid):
    path = next((camvid / "valannot").glob("*.png"))
    mask = read_label_mask(path)
    reference = np.asarray(Image.open(path))
    np.testing.assert_array_equal(mask.labels, reference)
    assert mask.labels.shape == (360, 480) and mask.labels.max() <= 11


def test_palette_png_from_pillow_reads_indices():
    labels = np.array([[0, 1], [15, 255]], np.uint8)
    image = Image.fromarray(labels)
    image.putpalette([v for i in range(256) for v in (i, 255 - i, 0)])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    np.testing.assert_array_equal(read_label_mask(buffer.getvalue()).labels, labels)


def test_rgb_colour_mask_needs_a_map_and_maps_exactly():
    camvid_meta = load_classes("camvid")
    labels = np.array([[0, 3, 8], [10, 3, 0]])
    rgb = np.asarray(camvid_meta.palette, np.uint8)[labels]
    data = encode_image(rgb)
    with pytest.raises(InputError, match="--palette"):
        read_label_mask(data)
    np.testing.assert_array_equal(read_label_mask(data, "camvid").labels, labels)
    rgb[0, 0] = (1, 2, 3)
    with pytest.raises(InputError, match=r"\(1,2,3\)"):
        read_label_mask(encode_image(rgb), camvid_meta)


def test_read_mask_or_scores_dispatches_on_content():
    assert type(read_mask_or_scores(encode_score_map(np.zeros((2, 3, 3), np.float32)))).__name__ == "ScoreMap"
    assert type(read_mask_or_scores(encode_label_mask(np.zeros((3, 3), np.uint8)))).__name__ == "LabelMask"
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((4, 4), np.float32))
    assert type(read_mask_or_scores(buffer.getvalue())).__name__ == "ScoreMap"


@pytest.mark.parametrize("payload, message", [
    (b"", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x00", "corrupt or truncated"),
    (b"\xff\xd8\xff\xe0 jpeg", "JPEG"),
    (b'{"images": []}', "JSON"),
    (b"GIF89a....", "not a label mask"),
])
def test_bad_mask_inputs(payload, message):
    with pytest.raises(InputError, match=message):
        read_label_mask(payload)


def test_float_and_3d_arrays_are_not_label_masks():
    for array, message in [(np.zeros((3, 3), np.float32), "score map"), (np.zeros((2, 3, 3), np.uint8), "2-D")]:
        buffer = io.BytesIO()
        np.save(buffer, array)
        with pytest.raises(InputError, match=message):
            read_label_mask(buffer.getvalue())


def test_truncated_png_body_is_an_input_error():
    data = encode_label_mask(np.random.default_rng(1).integers(0, 5, (64, 64)))
    with pytest.raises(InputError, match="corrupt or truncated"):
        read_label_mask(data[: len(data) // 2])


def test_pickled_npy_is_refused():
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="Python objects"):
        read_label_mask(buffer.getvalue())


def test_unwritable_labels():
    with pytest.raises(OutputError, match=".npy"):
        encode_label_mask(np.array([[70000]]))
    with pytest.raises(OutputError, match="2-D"):
        encode_label_mask(np.zeros((2, 2, 2), np.uint8))


def test_decompression_bomb_guard():
    from segtools.io.limits import set_max_pixels

    data = encode_label_mask(np.zeros((100, 100), np.uint8))
    set_max_pixels(5000)
    try:
        with pytest.raises(InputError, match="--max-pixels"):
            read_label_mask(data)
        set_max_pixels(0)
        assert read_label_mask(data).labels.shape == (100, 100)
    finally:
        set_max_pixels(None)


@pytest.mark.parametrize("mode, channels", [("L", None), ("RGB", 3), ("RGBA", 4), ("P", 3)])
def test_read_image_modes(mode, channels):
    image = Image.new(mode, (7, 5), 1 if mode in ("L", "P") else (10, 20, 30, 40)[: len(mode)])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    array = read_image(buffer.getvalue())
    assert array.shape == ((5, 7) if channels is None else (5, 7, channels))
    assert array.dtype == np.uint8


def test_read_image_16bit_rgb_keeps_precision_and_order():
    rgb = np.zeros((4, 6, 3), np.uint16)
    rgb[..., 0], rgb[..., 2] = 65535, 257
    back = read_image(encode_image(rgb))
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, rgb)


def test_read_image_applies_exif_orientation():
    image = Image.new("RGB", (8, 4), (200, 0, 0))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    assert read_image(buffer.getvalue()).shape == (8, 4, 3)


def test_write_never_overwrites_an_input(tmp_path):
    path = tmp_path / "m.png"
    path.write_bytes(encode_label_mask(np.zeros((2, 2), np.uint8)))
    mask = read_label_mask(path)
    with pytest.raises(OutputError, match="overwrite an input"):
        write_label_mask(mask.labels + 1, path)
    write_label_mask(mask.labels + 1, path, allow_overwrite=True)
    assert read_label_mask(path).labels.max() == 1


def test_atomic_write_leaves_nothing_on_failure(tmp_path, monkeypatch):
    import os

    from segtools.io import streams

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OutputError, match="No space"):
        streams.write_bytes(tmp_path / "out.png", b"data")
    assert list(tmp_path.iterdir()) == []


def test_output_into_a_file_as_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError):
        write_label_mask(np.zeros((2, 2), np.uint8), tmp_path / "file" / "m.png")


def test_class_metadata_sources(tmp_path):
    meta = load_classes("cityscapes")
    assert meta.num_classes == 19 and meta.class_index("car") == 13 and meta.class_index("3") == 3
    with pytest.raises(InputError, match="unknown class"):
        meta.class_index("dragon")
    (tmp_path / "c.txt").write_text("bg\nfg\n")
    assert load_classes(str(tmp_path / "c.txt")).names == ("bg", "fg")
    (tmp_path / "c.json").write_text('{"names": ["a", "b"], "palette": [[1,2,3],[4,5,6]], "ignore_index": 9}')
    assert load_classes(str(tmp_path / "c.json")).ignore_index == 9
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(InputError, match="not valid JSON"):
        load_classes(str(tmp_path / "bad.json"))
    with pytest.raises(UsageError, match="preset"):
        load_classes("no-such-thing")


def test_read_mask_meta_reads_the_chunk_without_decoding(tmp_path):
    from segtools.io.meta import read_mask_meta

    meta = ClassMeta(names=("road", "car"), ignore_index=7)
    (tmp_path / "m.png").write_bytes(encode_label_mask(np.zeros((3, 4), np.uint8), meta))
    (tmp_path / "plain.png").write_bytes(encode_label_mask(np.zeros((3, 4), np.uint8)))
    (tmp_path / "m.npy").write_bytes(b"\x93NUMPY")
    got = read_mask_meta(tmp_path / "m.png")
    assert got.names == ("road", "car") and got.ignore_index == 7
    assert read_mask_meta(tmp_path / "plain.png") is None
    assert read_mask_meta(tmp_path / "m.npy") is None and read_mask_meta(tmp_path / "absent.png") is None
    assert read_mask_meta("-") is None
    with pytest.raises(UsageError, match="'x': neither a preset"):  # a mistyped preset is a usage error (exit 2)
        load_classes("x")
