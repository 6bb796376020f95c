"""Hostile inputs to the mask, score-map and image readers, class metadata, tiling,
postprocess, visualize, metrics and info: each refused in one line, memory bounded, and the
legal neighbours of each still read. Every hostile file is built here, none is committed."""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib

import numpy as np
import pytest
from conftest import assert_clean_refusal, run_bounded

from segtools.io.limits import MAX_CONFUSION_CLASSES


# ---------------------------------------------------------------- builders

def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npy_header(descr: str, shape: tuple, fortran: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": fortran, "shape": shape})
    return buffer.getvalue()


def chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


SIGNATURE = b"\x89PNG\r\n\x1a\n"


def grey_png(labels: np.ndarray, extra: bytes = b"", before_ihdr: bytes = b"", after_ihdr: bytes = b"") -> bytes:
    """An 8-bit grey PNG built chunk by chunk, with optional extra chunks."""
    height, width = labels.shape
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    raw = b"".join(b"\x00" + row.astype(np.uint8).tobytes() for row in labels)
    return (SIGNATURE + before_ihdr + ihdr + after_ihdr + extra + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def palette_png(labels: np.ndarray, meta_json: str | None = None) -> bytes:
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    image = Image.fromarray(labels.astype(np.uint8))
    image.putpalette(bytes(range(256)) * 3)
    info = PngInfo()
    if meta_json is not None:
        info.add_itxt("segtools", meta_json)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def itxt(key: str, compressed_text: bytes) -> bytes:
    return chunk(b"iTXt", key.encode() + b"\x00\x01\x00\x00\x00" + compressed_text)


HALF = np.array([[0, 1], [1, 1]], np.uint8)
PREDICTION = np.array([[0, 1], [1, 0]], np.uint8)  # 3 of 4 right: mIoU 0.583 with 2 classes


# ---------------------------------------------------------------- item 5: tables sized by a label

@pytest.mark.parametrize("command", ["info", "visualize", "postprocess", "visualize stats"])
def test_huge_label_value_is_refused_before_a_table_is_sized(tmp_path, command):
    mask = tmp_path / "huge.npy"
    mask.write_bytes(npy_bytes(np.array([[0, np.iinfo(np.uint64).max]], np.uint64)))
    args = command.split() + [str(mask)]
    if command in ("visualize", "postprocess"):
        args += ["-o", str(tmp_path / "out.png")]
    result = run_bounded(*args)
    assert_clean_refusal(result)
    assert "18,446,744,073,709,551,615 is out of range" in result.stderr
    assert not (tmp_path / "out.png").exists()


def test_labels_up_to_65535_still_work(cli, tmp_path):
    mask = tmp_path / "ids.npy"
    mask.write_bytes(npy_bytes(np.array([[0, 65535]], np.int64)))
    result = cli("info", mask, "--format", "json")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["values"] == {"0": 1, "65535": 1}
    mask.write_bytes(npy_bytes(np.array([[0, 65536]], np.int64)))
    assert_clean_refusal(cli("info", mask))


def test_postprocess_no_longer_wraps_wide_labels_to_zero(cli, tmp_path):
    mask = tmp_path / "wide.npy"
    mask.write_bytes(npy_bytes(np.array([[0, 2**40]], np.int64)))
    result = cli("postprocess", mask, "-o", tmp_path / "out.png")
    assert_clean_refusal(result)
    assert not (tmp_path / "out.png").exists()


def test_metrics_class_list_is_capped_before_a_confusion_matrix_is_made(cli, tmp_path):
    classes = tmp_path / "classes.json"
    classes.write_text(json.dumps({"names": ["c"] * 65536}))  # 65,536² counts would be 32 GiB
    mask = tmp_path / "m.png"
    mask.write_bytes(palette_png(HALF))
    result = run_bounded("metrics", mask, mask, "--classes", classes)
    assert_clean_refusal(result)
    assert "65,536 classes is out of range" in result.stderr


def test_metrics_report_of_many_classes_is_written_one_row_per_line(cli, tmp_path):
    # indenting 4 M confusion counts one per line took ~10 s: each row is one line instead
    mask = tmp_path / "m.png"
    mask.write_bytes(palette_png(HALF))
    result = cli("metrics", mask, mask, "-n", "2000", "--format", "json")
    assert result.code == 0, result.stderr
    assert len(json.loads(result.stdout)["confusion"]) == 2000
    assert result.text.count("\n") < 2000 * 20  # a line per row and per-class entry, not per count (4 M)


def test_metrics_num_classes_is_capped(cli, tmp_path):
    mask = tmp_path / "m.png"
    mask.write_bytes(palette_png(HALF))
    result = run_bounded("metrics", mask, mask, "-n", str(10**9))
    assert_clean_refusal(result, code=2)
    assert f"{MAX_CONFUSION_CLASSES:,}" in result.stderr


# ---------------------------------------------------------------- item 6: bombs and declared sizes

def test_npz_bomb_is_refused_before_inflating(tmp_path):
    # 625 MB of zeros in a 3 MB .npz: inflating it would not fit beside the interpreter
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("scores.npy", "w", force_zip64=True) as member:
            member.write(npy_header("<f4", (1, 12500, 12500)))
            zeros = bytes(1 << 24)
            for _ in range(625_000_000 // len(zeros) + 1):
                member.write(zeros)
    bomb = tmp_path / "bomb.npz"
    bomb.write_bytes(buffer.getvalue())
    result = run_bounded("--max-pixels", "100000000", "info", bomb)
    assert_clean_refusal(result)
    assert "exceeds the limit" in result.stderr


def test_npz_member_size_must_match_its_header(cli, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("scores.npy", npy_bytes(np.zeros((2, 4, 4), np.float32)) + b"trailing")
    assert_clean_refusal(cli("info", input=buffer.getvalue()))


def test_npz_member_that_is_not_npy_is_refused(cli):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("scores.npy", b"hello, not an array")
    result = cli("info", input=buffer.getvalue())
    assert_clean_refusal(result)
    assert "not a .npy array" in result.stderr


def test_compressed_npz_with_metadata_still_reads(cli):
    buffer = io.BytesIO()
    np.savez_compressed(buffer, scores=np.full((2, 3, 4), 0.5, np.float16),
                        meta=np.array(json.dumps({"names": ["a", "b"], "ignore_index": None})))
    result = cli("info", "--format", "json", input=buffer.getvalue())
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["shape"] == [2, 3, 4] and report["meta"]["names"] == ["a", "b"]


def test_ztxt_bomb_is_not_inflated(tmp_path):
    inflater = zlib.compressobj(1)
    zeros = bytes(1 << 24)
    bomb = b"".join(inflater.compress(zeros) for _ in range(48)) + inflater.flush()  # 768 MiB of text
    png = grey_png(HALF, extra=itxt("segtools", bomb))
    result = run_bounded("info", "-", input=png)
    assert_clean_refusal(result)
    assert "inflates to more than" in result.stderr


def test_lying_chunk_length_is_refused_before_decoding(tmp_path):
    png = grey_png(HALF)
    ihdr_end = 8 + 25
    lying = png[:ihdr_end] + struct.pack(">I", 0x7FFFFFFF) + b"IDAT" + b"\x00" * 60
    assert len(lying) < 120
    result = run_bounded("info", "-", input=lying)
    assert_clean_refusal(result)
    assert "declares 2,147,483,647 bytes" in result.stderr


def test_manifest_size_goes_through_the_pixel_guard(tmp_path):
    folder = _split(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["source"]["height"] = manifest["source"]["width"] = 30000
    (folder / "manifest.json").write_text(json.dumps(manifest))
    result = run_bounded("tile", "merge", folder, "-o", tmp_path / "out.png")
    assert_clean_refusal(result)
    assert "exceeds the limit" in result.stderr
    assert not (tmp_path / "out.png").exists()


def test_npy_hw1_is_guarded_on_its_real_plane(tmp_path):
    header = npy_header("|u1", (100000, 100000, 1))
    result = run_bounded("info", "-", input=header)
    assert_clean_refusal(result)
    assert "100000x100000" in result.stderr


def test_hw1_and_1hw_label_arrays_still_read(cli, tmp_path):
    for shape in ((2, 3, 1), (1, 2, 3)):
        path = tmp_path / "m.npy"
        path.write_bytes(npy_bytes(np.zeros(shape, np.uint8)))
        result = cli("info", path, "--format", "json")
        assert result.code == 0, result.stderr
        assert (json.loads(result.stdout)["height"], json.loads(result.stdout)["width"]) == (2, 3)


# ---------------------------------------------------------------- item 7: Pillow's own bomb check

def test_pillow_limit_follows_the_segtools_budget(monkeypatch):
    from PIL import Image

    from segtools.io.images import read_image
    from segtools.io.limits import set_max_pixels

    png = palette_png(np.zeros((40, 50), np.uint8))
    try:
        set_max_pixels(250_000_000)
        read_image(png)
        assert Image.MAX_IMAGE_PIXELS == 250_000_000  # above Pillow's own 1.79e8
        set_max_pixels(0)
        read_image(png)
        assert Image.MAX_IMAGE_PIXELS is None
    finally:
        set_max_pixels(None)


def test_pillow_bomb_error_is_one_clean_line(cli, tmp_path):
    # A format the sniffer cannot size (GIF): Pillow's check is the first to see it.
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("P", (300, 300)).save(buffer, "GIF")
    path = tmp_path / "big.gif"
    path.write_bytes(buffer.getvalue())
    result = cli("--max-pixels", "20000", "info", path)
    assert_clean_refusal(result)
    assert "--max-pixels" in result.stderr


def test_palette_mask_between_limits_reads_with_the_budget_raised(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("SEGTOOLS_MAX_PIXELS", "1000")
    path = tmp_path / "m.png"
    path.write_bytes(palette_png(np.ones((40, 40), np.uint8)))
    assert_clean_refusal(cli("info", path))  # 1600 > 1000
    result = cli("--max-pixels", "2000", "info", path, "--format", "json")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["values"] == {"1": 1600}


# ---------------------------------------------------------------- item 8: metadata not coerced

@pytest.mark.parametrize("meta, fragment", [
    ({"ignore_index": True}, "'ignore_index' must be a number, got a boolean"),
    ({"ignore_index": 1.5}, "must be an integer, got 1.5"),
    ({"ignore_index": 65536}, "out of range"),
    ({"ignore_index": 2**40}, "out of range"),
    ({"ignore_index": -2**40}, "out of range"),
    ({"ignore_index": 1e308}, "out of range"),
    ({"names": "<script>"}, "'names' must be an array, got a string"),
    ({"names": ["a", 3]}, "names[1] must be a string"),
    ({"palette": [[300, -1, 2.5]]}, "palette[0][0] = 300 is out of range"),
    ({"palette": [[1, 2]]}, "must be an [r, g, b] triple"),
    ({"kind": "x"}, "'kind' must be one of"),
])
def test_png_metadata_is_validated_not_coerced(cli, meta, fragment):
    result = cli("info", input=palette_png(HALF, json.dumps(meta)))
    assert_clean_refusal(result)
    assert fragment in result.stderr


def test_fractional_ignore_index_no_longer_changes_miou(cli, tmp_path):
    gt, pred = tmp_path / "gt.png", tmp_path / "pred.png"
    gt.write_bytes(palette_png(HALF, json.dumps({"names": ["a", "b"], "ignore_index": 1.5})))
    pred.write_bytes(palette_png(PREDICTION))
    assert_clean_refusal(cli("metrics", pred, gt))


@pytest.mark.parametrize("text", ['{"names": "abc"}', '{"ignore_index": true}', '[1, 2]', '{"palette": [[1, 2, 3, 4]]}'])
def test_classes_file_is_validated(cli, tmp_path, text):
    classes = tmp_path / "classes.json"
    classes.write_text(text)
    mask = tmp_path / "m.png"
    mask.write_bytes(palette_png(HALF))
    assert_clean_refusal(cli("metrics", mask, mask, "--classes", classes))


def test_valid_metadata_and_classes_files_still_work(cli, tmp_path):
    meta = {"names": ["bg", "fg"], "palette": [[0, 0, 0], [255, 0, 0]], "ignore_index": None, "kind": "semantic"}
    result = cli("info", "--format", "json", input=palette_png(HALF, json.dumps(meta)))
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["meta"]["ignore_index"] is None
    classes = tmp_path / "classes.txt"
    classes.write_text("bg\nfg\n")
    mask = tmp_path / "m.png"
    mask.write_bytes(palette_png(HALF))
    result = cli("metrics", mask, mask, "--classes", classes, "--format", "json")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["miou"] == 1.0


# ---------------------------------------------------------------- item 9: tile manifests

def _split(tmp_path):
    image = tmp_path / "img.npy"
    image.write_bytes(npy_bytes((np.arange(60 * 80) % 7).astype(np.uint8).reshape(60, 80)))
    from conftest import run_cli

    result = run_cli("tile", "split", image, "--size", "32", "-o", tmp_path / "tiles")
    assert result.code == 0, result.stderr
    return tmp_path / "tiles"


@pytest.mark.parametrize("change", [
    {"y": -5}, {"x": -1}, {"y": 50}, {"x": 79}, {"h": 0}, {"y": True}, {"x": 1.5}, {"w": "32"},
])
def test_manifest_tile_boxes_are_validated(cli, tmp_path, change):
    folder = _split(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["tiles"][1].update(change)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    result = cli("tile", "merge", folder, "-o", tmp_path / "out.npy")
    assert_clean_refusal(result)
    assert not (tmp_path / "out.npy").exists()
    assert not list(tmp_path.glob(".out.npy.*.part"))


def test_merge_still_round_trips(cli, tmp_path):
    folder = _split(tmp_path)
    result = cli("tile", "merge", folder, "-o", tmp_path / "out.npy")
    assert result.code == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), np.load(tmp_path / "img.npy"))


def test_stale_part_of_a_killed_merge_is_swept_and_a_held_one_is_not(cli, tmp_path):
    import fcntl

    folder = _split(tmp_path)
    stale = tmp_path / ".out.npy.abcd1234.part"
    stale.write_bytes(b"left by a killed merge")
    held = tmp_path / ".out.npy.zzzz9999.part"
    other = tmp_path / ".other.npy.abcd1234.part"
    for path in (held, other):
        path.write_bytes(b"x")
    with open(held, "rb") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        result = cli("tile", "merge", folder, "-o", tmp_path / "out.npy")
    assert result.code == 0, result.stderr
    assert not stale.exists() and held.exists() and other.exists()


def test_tile_split_into_an_unmakeable_folder_is_one_line(cli, tmp_path):
    image = tmp_path / "img.npy"
    image.write_bytes(npy_bytes(np.zeros((8, 8), np.uint8)))
    assert_clean_refusal(cli("tile", "split", image, "-o", image / "sub"))


# ---------------------------------------------------------------- item 10: non-finite scores

@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("command", ["postprocess", "visualize"])
def test_non_finite_scores_are_refused(cli, tmp_path, value, command):
    scores = np.full((2, 4, 4), 0.5, np.float32)
    scores[1, 2, 3] = value
    result = cli(command, "-o", tmp_path / "out.png", input=npy_bytes(scores))
    assert_clean_refusal(result)
    assert ("NaN" if np.isnan(value) else "infinite") in result.stderr
    assert not (tmp_path / "out.png").exists()


def test_info_reports_non_finite_scores_without_warnings(cli):
    scores = np.full((2, 4, 4), np.nan, np.float32)
    result = run_bounded("info", "--format", "json", input=npy_bytes(scores))
    assert result.code == 0 and result.stderr == "", result.stderr
    report = json.loads(result.stdout)
    assert report["min"] is None and report["non_finite"] == 32


# ---------------------------------------------------------------- item 12: malformed arrays

HOSTILE_NPY = {
    "header {{{{": b"\x93NUMPY\x01\x00\x10\x00{{{{           \n",
    "object": npy_header("|O", (2, 2)) + b"\x00" * 32,
    "structured": npy_bytes(np.zeros((2, 2), [("a", "u1"), ("b", "u1")])),
    "complex": npy_bytes(np.zeros((2, 2), np.complex64)),
    "string": npy_bytes(np.array([["a", "b"]])),
    "trailing data": npy_bytes(np.ones((2, 3), np.uint8)) + b"extra",
    "missing data": npy_bytes(np.ones((2, 3), np.uint8))[:-2],
    "shape (0, 5)": npy_bytes(np.zeros((0, 5), np.uint8)),
    "shape (5, 0)": npy_bytes(np.zeros((5, 0), np.uint8)),
    "shape (0,)": npy_bytes(np.zeros((0,), np.uint8)),
    "negative size": npy_header("|u1", (-1, 4)),
    "version 9": b"\x93NUMPY\x09\x00" + npy_header("|u1", (2, 2))[8:],
}


@pytest.mark.parametrize("case", sorted(HOSTILE_NPY))
@pytest.mark.parametrize("command", ["info", "visualize", "postprocess", "metrics", "tile"])
def test_malformed_npy_is_one_clean_line(cli, tmp_path, case, command):
    path = tmp_path / "bad.npy"
    path.write_bytes(HOSTILE_NPY[case])
    args = {"info": ["info", path], "visualize": ["visualize", path, "-o", tmp_path / "o.png"],
            "postprocess": ["postprocess", path, "-o", tmp_path / "o.png"],
            "metrics": ["metrics", path, path, "-n", "2"],
            "tile": ["tile", "split", path, "--size", "2", "-o", tmp_path / "tiles"]}[command]
    result = cli(*args)
    assert_clean_refusal(result)
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "tiles" / "manifest.json").exists()


@pytest.mark.parametrize("labels", [
    np.asfortranarray(np.array([[0, 1, 1], [1, 0, 1]], np.uint8)),
    np.array([[0, 1, 1], [1, 0, 1]], ">u2"),
    np.array([[0, 1, 1], [1, 0, 1]], ">i8"),
    np.array([[False, True, True], [True, False, True]]),
], ids=["fortran", "big-endian u2", "big-endian i8", "bool"])
def test_valid_npy_layouts_read_as_the_same_labels(cli, tmp_path, labels):
    path = tmp_path / "m.npy"
    path.write_bytes(npy_bytes(labels))
    result = cli("postprocess", path, "-o", tmp_path / "o.npy")
    assert result.code == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), [[0, 1, 1], [1, 0, 1]])


def test_float16_label_mask_is_refused_as_a_score_map(cli, tmp_path):
    path = tmp_path / "m.npy"
    path.write_bytes(npy_bytes(np.ones((2, 3), np.float16)))
    result = cli("metrics", path, path, "-n", "2")
    assert_clean_refusal(result)
    assert "score map" in result.stderr


# ---------------------------------------------------------------- item 14: sniffer and decoder agree

def test_chunk_before_ihdr_is_refused(cli):
    png = grey_png(HALF, before_ihdr=chunk(b"tEXt", b"k\x00v"))
    result = cli("info", input=png)
    assert_clean_refusal(result)
    assert "first chunk must be a 13-byte IHDR" in result.stderr


def test_duplicate_ihdr_is_refused(tmp_path):
    big = chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0))
    result = run_bounded("info", "-", input=grey_png(HALF, after_ihdr=big))
    assert_clean_refusal(result)
    assert "more than one IHDR" in result.stderr


def test_bad_crc_is_refused(cli):
    png = bytearray(grey_png(HALF, extra=chunk(b"tEXt", b"k\x00v")))
    png[png.index(b"tEXt") + 6] ^= 0xFF
    result = cli("info", input=bytes(png))
    assert_clean_refusal(result)
    assert "bad CRC" in result.stderr


def test_truncated_png_is_refused(cli):
    assert_clean_refusal(cli("info", input=grey_png(HALF)[:-20]))


# ---------------------------------------------------------------- item 13: one line on stderr

@pytest.mark.parametrize("kind", ["bad iCCP", "too much image data", "extra compressed data"])
def test_libpng_says_nothing_on_stderr(kind):
    raw = b"".join(b"\x00" + row.tobytes() for row in HALF)
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0))
    idat = {"bad iCCP": zlib.compress(raw), "too much image data": zlib.compress(raw + bytes(40)),
            "extra compressed data": zlib.compress(raw) + b"garbage"}[kind]
    extra = chunk(b"iCCP", b"sRGB\x00\x00" + zlib.compress(b"not a profile")) if kind == "bad iCCP" else b""
    png = SIGNATURE + ihdr + extra + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    result = run_bounded("info", "-", "--format", "json", input=png)
    assert result.code == 0, result.stderr
    assert result.stderr == ""
    assert json.loads(result.stdout)["values"] == {"0": 1, "1": 3}


def test_libpng_error_is_our_one_line():
    raw = b"".join(b"\x00" + row.tobytes() for row in HALF)
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0))
    png = SIGNATURE + ihdr + chunk(b"IDAT", zlib.compress(raw[:2])) + chunk(b"IEND", b"")
    assert_clean_refusal(run_bounded("info", "-", input=png))


def test_empty_classes_raise_no_numpy_warnings(tmp_path):
    gt, pred = tmp_path / "gt.png", tmp_path / "pred.png"
    gt.write_bytes(palette_png(np.full((4, 4), 255, np.uint8)))  # every pixel ignored
    pred.write_bytes(palette_png(np.zeros((4, 4), np.uint8)))
    result = run_bounded("metrics", pred, gt, "-n", "3", "--boundary", "--distances", "--format", "json")
    assert result.code == 0, result.stderr
    assert result.stderr == ""
    result = run_bounded("visualize", pred, "--gt", gt, "--panel", "-o", tmp_path / "panel.png")
    assert result.code == 0 and result.stderr == "", result.stderr
