"""``segtools postprocess``: pipes, batches, metadata, errors, and real CamVid masks."""

from __future__ import annotations

import io

import numpy as np
import pytest

from conftest import assert_one_line_error
from segtools.io.masks import encode_label_mask, encode_score_map, read_label_mask
from segtools.io.meta import ClassMeta, load_classes


def _blobs() -> np.ndarray:
    labels = np.zeros((40, 50), np.uint8)
    labels[5:30, 5:30] = 1
    labels[10:20, 35:45] = 2
    labels[2, 45] = 1  # a speck
    labels[15, 15] = 0  # a pinhole
    return labels


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_score_map_through_two_real_pipes(proc):
    rng = np.random.default_rng(0)
    scores = np.zeros((60, 80), np.float32)
    scores[10:40, 10:50] = 0.9
    scores += rng.random(scores.shape).astype(np.float32) * 0.6  # speckle above 0.5 outside the square
    meta = ClassMeta(names=("building",), ignore_index=255)
    first = proc("postprocess", "-t", "0.5", "--open", "3", "--min-area", "20", input=encode_score_map(scores, meta))
    assert first.code == 0, first.stderr
    mask = read_label_mask(first.stdout)
    assert mask.meta.names == ("background", "building")
    assert (mask.labels[10:40, 10:50] == 1).all() and (mask.labels == 1).sum() < 1300
    second = proc("postprocess", "--instances", input=first.stdout)
    assert second.code == 0, second.stderr
    instances = read_label_mask(second.stdout)
    assert instances.meta.kind == "instance" and instances.labels.max() >= 1
    assert instances.meta.extra["instance_class"][1] == 1


def test_label_mask_metadata_is_kept(cli):
    meta = load_classes("camvid")
    labels = _blobs()
    result = cli("postprocess", "-", "--min-area", "5", "--fill-holes", "4", input=encode_label_mask(labels, meta))
    assert result.code == 0, result.stderr
    out = read_label_mask(result.stdout)
    assert out.meta == meta
    assert out.labels[2, 45] == 0 and out.labels[15, 15] == 1


def test_batch_folder_in_parallel_keeps_relative_names(cli, tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    for name in ("a.png", "sub/b.png"):
        (tmp_path / "in" / name).write_bytes(encode_label_mask(_blobs()))
    (tmp_path / "in" / "c.npy").write_bytes(_npy(_blobs().astype(np.int32)))
    result = cli("postprocess", tmp_path / "in", "-o", tmp_path / "out", "--min-area", "5", "--jobs", "2")
    assert result.code == 0, result.stderr
    for name in ("a.png", "sub/b.png", "c.png"):
        assert read_label_mask(str(tmp_path / "out" / name)).labels[2, 45] == 0


def test_class_names_and_per_class_areas(cli):
    meta = ClassMeta(names=("background", "car", "road"), ignore_index=255)
    labels = _blobs()
    labels[35:38, 0:3] = 2  # 9 px of road
    result = cli("postprocess", "--min-area", "car=5,road=10", "--only", "road",
                 input=encode_label_mask(labels, meta))
    assert result.code == 0, result.stderr
    out = read_label_mask(result.stdout).labels
    assert out[2, 45] == 1 and (out[35:38, 0:3] == 0).all()  # only road was operated on


def test_old_spellings_name_the_new_options(cli):
    data = encode_label_mask(_blobs())
    old_meta = cli("postprocess", "--meta", "camvid", input=data)
    assert_one_line_error(old_meta, 2)
    assert "--classes camvid" in old_meta.stderr
    old_classes = cli("postprocess", "--classes", "1,2", "--open", "3", input=data)
    assert_one_line_error(old_classes, 2)
    assert "use --only 1,2" in old_classes.stderr
    preset_as_only = cli("postprocess", "--only", "camvid", input=data)
    assert_one_line_error(preset_as_only, 2)
    assert "--classes camvid" in preset_as_only.stderr


def test_classes_give_names_to_operate_on(cli):
    labels = np.zeros((10, 10), np.uint8)
    labels[0, 0] = 3  # a one-pixel Road (camvid) speck ...
    labels[5, 5] = 8  # ... and a one-pixel Car
    result = cli("postprocess", "--classes", "camvid", "--only", "Car", "--min-area", "2",
                 input=encode_label_mask(labels))
    assert result.code == 0, result.stderr
    out = read_label_mask(result.stdout)
    assert out.labels[0, 0] == 3 and out.labels[5, 5] == 0
    assert out.meta.names == load_classes("camvid").names


def test_library_messages_are_shown_as_flags(cli):
    even = cli("postprocess", "--smooth", "4", input=encode_label_mask(_blobs()))
    assert_one_line_error(even, 2)
    assert "--smooth 4:" in even.stderr and "smooth=" not in even.stderr
    fill = cli("postprocess", "--min-area", "3", "--fill", "background", "--background", "none",
               input=encode_label_mask(_blobs()))
    assert_one_line_error(fill, 2)
    assert "--fill background needs a background label: give --background N" in fill.stderr


def test_ignore_index_none_and_minus_one_agree(cli):
    labels = _blobs()
    labels[0, 0] = 255  # a one-pixel component of label 255
    data = encode_label_mask(labels)
    kept = read_label_mask(cli("postprocess", "--min-area", "2", input=data).stdout).labels
    assert kept[0, 0] == 255  # void by default: never changed
    for spelling in ("none", "-1"):
        result = cli("postprocess", "--min-area", "2", "--ignore-index", spelling, input=data)
        assert result.code == 0, result.stderr
        assert read_label_mask(result.stdout).labels[0, 0] == 0  # a class like any other: removed


def test_a_pattern_is_a_batch_even_with_one_match(cli, tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.png").write_bytes(encode_label_mask(_blobs()))
    pattern = str(tmp_path / "m" / "*.png")
    assert_one_line_error(cli("postprocess", pattern, "--min-area", "5"), 2)
    result = cli("postprocess", pattern, "--min-area", "5", "-o", tmp_path / "out")
    assert result.code == 0, result.stderr
    assert read_label_mask(str(tmp_path / "out" / "a.png")).labels[2, 45] == 0


def test_order_changes_the_result(cli):
    labels = np.zeros((12, 12), np.uint8)
    labels[3, 3], labels[3, 4] = 1, 2  # merged first (default), a 2-pixel object survives min-area 2
    default = read_label_mask(cli("postprocess", "--min-area", "2", "--map", "2:1", "--background", "0",
                                  input=encode_label_mask(labels)).stdout).labels
    reordered = read_label_mask(cli("postprocess", "--min-area", "2", "--map", "2:1", "--order", "min-area,map",
                                    "--background", "0", input=encode_label_mask(labels)).stdout).labels
    assert (default == 1).sum() == 2 and (reordered == 1).sum() == 0
    assert "map, smooth, open" in cli("postprocess", "--help").text  # the help states the default order


@pytest.mark.parametrize("args, stdin, code", [
    (["--open", "3"], "float", 1),  # a float mask (score map) without threshold
    (["--open", "0"], "mask", 2),
    (["--open", "-3"], "mask", 2),
    (["--open", "4"], "mask", 2),
    (["--threshold", "0.5"], "mask", 2),
    (["--only", "tree"], "mask", 2),
    (["--only", "camvid"], "mask", 2),
    (["--classes", "road"], "mask", 2),  # the old meaning of --classes
    (["--meta", "camvid"], "mask", 2),  # the old name of --classes
    (["--ignore-index", "70000"], "mask", 2),
    (["--below", "nowhere"], "float", 2),
    (["--order", "open,shrink", "--open", "3"], "mask", 2),
    (["--min-area", "ten"], "mask", 2),
    (["--kernel", "star", "--open", "3"], "mask", 2),
    ([], "text", 1),
])
def test_bad_input_is_one_line_error(cli, args, stdin, code):
    data = {"float": _npy(np.random.default_rng(0).random((8, 8)).astype(np.float32)),
            "mask": encode_label_mask(_blobs()), "text": b"hello\n"}[stdin]
    assert_one_line_error(cli("postprocess", *args, input=data), code)


def test_failure_leaves_no_output(cli, tmp_path):
    target = tmp_path / "out.png"
    bad = tmp_path / "bad.npy"
    bad.write_bytes(_npy(np.zeros((4, 4), np.float32)))
    assert_one_line_error(cli("postprocess", bad, "-o", target))
    assert not target.exists() and list(tmp_path.iterdir()) == [bad]


def test_several_inputs_need_an_output_folder(cli, tmp_path):
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(encode_label_mask(_blobs()))
    assert_one_line_error(cli("postprocess", tmp_path / "a.png", tmp_path / "b.png"), 2)


# ------------------------------------------------------------ real data


def _components(labels: np.ndarray, ignore: int) -> int:
    import cv2

    return sum(cv2.connectedComponents((labels == k).view(np.uint8), connectivity=8)[0] - 1
               for k in np.unique(labels) if k != ignore)


def _miou(pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore: int) -> float:
    try:
        from segtools.metrics.confusion import confusion_matrix
    except ImportError:  # the metrics package is written in parallel
        keep = gt != ignore
        confusion = np.bincount(gt[keep].astype(np.int64) * num_classes + np.minimum(pred[keep], num_classes),
                                minlength=num_classes * (num_classes + 1))[: num_classes * num_classes]
        confusion = confusion.reshape(num_classes, num_classes)
    else:
        confusion = confusion_matrix(pred, gt, num_classes, ignore)
    tp = np.diag(confusion).astype(float)
    union = confusion.sum(0) + confusion.sum(1) - tp
    return float(np.mean(tp[union > 0] / union[union > 0]))


def test_camvid_speckle_gets_cleaner(camvid, cli, tmp_path):
    names = sorted((camvid / "valannot").glob("*.png"))[:2]
    rng = np.random.default_rng(4)
    for path in names:
        clean = read_label_mask(str(path)).labels[:180, :240]  # a crop keeps the test fast
        noisy = clean.copy()
        speckle = (rng.random(clean.shape) < 0.03) & (clean != 11)
        noisy[speckle] = rng.integers(0, 11, int(speckle.sum()))
        (tmp_path / path.name).write_bytes(encode_label_mask(noisy))
        result = cli("postprocess", tmp_path / path.name, "--classes", "camvid", "--min-area", "6")
        assert result.code == 0, result.stderr
        cleaned = read_label_mask(result.stdout)
        assert cleaned.meta.ignore_index == 11
        assert np.array_equal(cleaned.labels == 11, clean == 11)
        assert _components(cleaned.labels, 11) < 0.5 * _components(noisy, 11)
        before, after = _miou(noisy, clean, 11, 11), _miou(cleaned.labels, clean, 11, 11)
        assert after > max(0.9, before + 0.3), (before, after)  # measured: 0.35 -> 0.96
