"""`segtools tile split|merge` on the command line: round trips, scores, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from conftest import assert_one_line_error

from segtools.io.images import encode_image, read_image
from segtools.io.masks import encode_score_map, read_label_mask

RNG = np.random.default_rng(3)


def _scene(tmp_path, shape=(70, 90, 3)):
    image = RNG.integers(0, 256, shape, dtype=np.uint8)
    (tmp_path / "scene.png").write_bytes(encode_image(image))
    return image


def test_split_merge_round_trip_png(cli, tmp_path):
    image = _scene(tmp_path)
    result = cli("tile", "split", tmp_path / "scene.png", "--size", "32x40", "--overlap", "25%",
                 "-o", tmp_path / "tiles")
    assert result.code == 0, result.stderr
    manifest = json.loads((tmp_path / "tiles" / "manifest.json").read_text())
    assert (manifest["source"]["height"], manifest["source"]["width"], manifest["source"]["kind"]) == (70, 90, "image")
    assert manifest["grid"]["size"] == [32, 40] and manifest["grid"]["overlap"] == [8, 10]
    names = sorted(t["file"] for t in manifest["tiles"])
    assert names[0] == "scene_y00000_x00000.png" and (tmp_path / "tiles" / names[-1]).is_file()
    result = cli("tile", "merge", tmp_path / "tiles", "-o", tmp_path / "out.png")
    assert result.code == 0, result.stderr
    np.testing.assert_array_equal(read_image(tmp_path / "out.png"), image)


def test_merge_model_scores_with_manifest_and_argmax(cli, tmp_path):
    _scene(tmp_path, (50, 60, 3))
    assert cli("tile", "split", tmp_path / "scene.png", "--size", "24", "--overlap", "8",
               "-o", tmp_path / "tiles").code == 0
    manifest = json.loads((tmp_path / "tiles" / "manifest.json").read_text())
    # a "model": class 1 wins left of x=30, class 0 right of it
    y, x = np.mgrid[0:50, 0:60]
    field = np.stack([(x >= 30), (x < 30)]).astype(np.float32)
    (tmp_path / "scores").mkdir()
    for t in manifest["tiles"]:
        crop = field[:, t["y"]:t["y"] + t["h"], t["x"]:t["x"] + t["w"]]
        (tmp_path / "scores" / t["file"].replace(".png", ".npz")).write_bytes(encode_score_map(crop))
    result = cli("tile", "merge", tmp_path / "scores", "--manifest", tmp_path / "tiles" / "manifest.json",
                 "--blend", "gaussian", "-o", tmp_path / "stitched.npy")
    assert result.code == 0, result.stderr
    np.testing.assert_allclose(np.load(tmp_path / "stitched.npy"), field, atol=1e-6)
    result = cli("tile", "merge", tmp_path / "scores", "--manifest", tmp_path / "tiles",
                 "-o", tmp_path / "labels.png")
    assert result.code == 0, result.stderr
    np.testing.assert_array_equal(read_label_mask(tmp_path / "labels.png").labels, (x < 30).astype(np.uint8))


def test_split_with_mask_and_min_foreground(cli, tmp_path):
    _scene(tmp_path, (64, 64, 3))
    mask = np.zeros((64, 64), np.uint8)
    mask[:32, :32] = 5
    np.save(tmp_path / "mask.npy", mask)
    result = cli("tile", "split", tmp_path / "scene.png", "--mask", tmp_path / "mask.npy",
                 "--min-foreground", "0.05", "--size", "32", "-o", tmp_path / "tiles")
    assert result.code == 0, result.stderr
    assert "3 skipped" in result.stderr
    tiles = json.loads((tmp_path / "tiles" / "manifest.json").read_text())["tiles"]
    assert [t["file"] is not None for t in tiles] == [True, False, False, False]
    assert (tmp_path / "tiles" / tiles[0]["mask"]).is_file()


def test_errors_are_one_line(cli, tmp_path):
    _scene(tmp_path)
    assert_one_line_error(cli("tile", "split", tmp_path / "scene.png", "--size", "abc", "-o", tmp_path / "t"), 2)
    assert_one_line_error(cli("tile", "split", tmp_path / "scene.png", "--overlap", "64", "--size", "64",
                              "-o", tmp_path / "t"), 2)
    assert_one_line_error(cli("tile", "split", tmp_path / "scene.png", "--min-foreground", "0.1",
                              "-o", tmp_path / "t"), 2)
    assert_one_line_error(cli("tile", "split", tmp_path / "scene.png"), 2)
    assert_one_line_error(cli("tile", "split", tmp_path / "nope.png", "-o", tmp_path / "t"), 1)
    assert_one_line_error(cli("tile", "merge", tmp_path, "-o", tmp_path / "o.png"), 1)   # no manifest
    assert not (tmp_path / "t").exists() and not (tmp_path / "o.png").exists()


def test_merge_refuses_escaping_manifest_and_missing_tiles(cli, tmp_path):
    _scene(tmp_path)
    assert cli("tile", "split", tmp_path / "scene.png", "--size", "32", "-o", tmp_path / "tiles").code == 0
    path = tmp_path / "tiles" / "manifest.json"
    body = json.loads(path.read_text())
    first = body["tiles"][0]["file"]
    body["tiles"][0]["file"] = "../scene.png"
    path.write_text(json.dumps(body))
    result = cli("tile", "merge", tmp_path / "tiles", "-o", tmp_path / "out.png")
    assert_one_line_error(result, 1)
    assert "outside" in result.stderr and not (tmp_path / "out.png").exists()
    body["tiles"][0]["file"] = first
    path.write_text(json.dumps(body))
    (tmp_path / "tiles" / first).unlink()
    result = cli("tile", "merge", tmp_path / "tiles", "-o", tmp_path / "out.png")
    assert_one_line_error(result, 1)
    assert "--allow-missing" in result.stderr
    result = cli("tile", "merge", tmp_path / "tiles", "--allow-missing", "-o", tmp_path / "out.png")
    assert result.code == 0 and (tmp_path / "out.png").is_file()


def test_help_has_examples_and_does_not_import_numpy():
    code = ("import sys; from segtools.cli.app import run; run(['tile', 'split', '--help']); "
            "print('numpy' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "Example: segtools tile split" in out.stdout
    assert out.stdout.strip().endswith("False False")


def test_option_errors_name_the_flags(cli, tmp_path):
    _scene(tmp_path, (40, 50, 3))
    split = ("tile", "split", tmp_path / "scene.png", "-o", tmp_path / "tiles")
    for extra, words in ((("--pad", "wrap"), "--pad wrap: choose"),
                         (("--tile-format", "gif"), "--tile-format gif: choose"),
                         (("--size", "0x16"), "--size '0x16'"),
                         (("--size", "16", "--overlap", "20"), "--overlap 20: must be >= 0 pixels"),
                         (("--size", "16", "--stride", "20"), "--stride"),
                         (("--overlap", "-3"), "--overlap '-3'")):
        result = cli(*split, *extra)
        assert_one_line_error(result, 2)
        assert words in result.stderr, (extra, result.stderr)
    assert cli(*split, "--size", "16x20", "--stride", "8x10").code == 0
    manifest = json.loads((tmp_path / "tiles" / "manifest.json").read_text())
    assert manifest["grid"]["size"] == [16, 20] and manifest["grid"]["stride"] == [8, 10]
    bad_rule = cli("tile", "merge", tmp_path / "tiles", "--rule", "median", "-o", tmp_path / "out.png")
    assert_one_line_error(bad_rule, 2)
    assert "--rule median: choose" in bad_rule.stderr
