"""``segtools metrics``: reports, formats, gates and exit codes, merge, --jobs, errors."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error

from segtools.metrics.confusion import confusion_matrix
from segtools.metrics.scores import scores


def _write_png(path: Path, labels: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), labels)


@pytest.fixture
def dataset(camvid, tmp_path: Path):
    """Six CamVid ground truths (cropped) and perturbed predictions under tmp_path/{gt,pred}."""
    import cv2

    rng = np.random.default_rng(3)
    files = sorted((camvid / "valannot").glob("*.png"))[:6]
    pairs = []
    for number, file in enumerate(files):
        gt = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)[:180, :240]
        pred = np.roll(gt, 2 + number, axis=0).copy()
        flip = rng.random(gt.shape) < 0.03
        pred[flip] = rng.integers(0, 11, int(flip.sum()))
        pred[pred == 11] = 0
        _write_png(tmp_path / "gt" / file.name, gt)
        _write_png(tmp_path / "pred" / file.name, pred)
        pairs.append((pred, gt))
    return tmp_path, pairs


def _json(result) -> dict:
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)


def test_json_report_matches_the_library_and_has_stable_keys(cli, dataset):
    root, pairs = dataset
    report = _json(cli("metrics", root / "pred", root / "gt", "--classes", "camvid", "--format", "json"))
    for key in ("num_classes", "class_names", "ignore_index", "images", "miou", "pixel_accuracy",
                "mean_class_accuracy", "mean_dice", "fw_iou", "kappa", "per_class", "confusion", "gates"):
        assert key in report
    assert report["ignore_index"] == [11] and report["images"] == 6 and report["class_names"][8] == "Car"
    expected = sum(confusion_matrix(p, g, 11, 11) for p, g in pairs)
    assert report["confusion"] == expected.tolist()
    assert report["miou"] == pytest.approx(scores(expected)["miou"])
    assert set(report["per_class"][0]) >= {"index", "name", "iou", "dice", "precision", "recall",
                                          "accuracy", "gt_pixels", "pred_pixels"}


def test_num_classes_and_ignore_index_options(cli, dataset):
    root, _ = dataset
    report = _json(cli("metrics", root / "pred", root / "gt", "-n", "11", "--ignore-index", "11", "-f", "json"))
    assert report["class_names"][0] == "class_0" and report["ignore_index"] == [11]
    result = cli("metrics", root / "pred", root / "gt", "-n", "11")  # 11 is neither class nor ignored
    assert_one_line_error(result, 1)
    assert "label value 11" in result.stderr and "gt/" in result.stderr


def test_jobs_give_identical_output(cli, dataset):
    root, _ = dataset
    args = ("metrics", root / "pred", root / "gt", "--classes", "camvid", "-f", "json", "--boundary")
    one = cli(*args, "--jobs", "1")
    two = cli(*args, "--jobs", "2")
    assert one.code == two.code == 0
    assert one.stdout == two.stdout


def test_merge_equals_a_single_run(cli, dataset, tmp_path):
    root, _ = dataset
    names = sorted(p.name for p in (root / "gt").iterdir())
    options = ("--classes", "camvid", "-f", "json", "--average", "image", "--boundary", "--distances")
    for shard, chosen in (("a", names[:2]), ("b", names[2:])):
        (tmp_path / f"{shard}.txt").write_text("".join(f"pred/{n}\n" for n in chosen))
        (tmp_path / f"{shard}-gt.txt").write_text("".join(f"gt/{n}\n" for n in chosen))
        result = cli("metrics", f"@{tmp_path / f'{shard}.txt'}", f"@{tmp_path / f'{shard}-gt.txt'}", *options,
                     "-o", tmp_path / f"part-{shard}.json")
        assert result.code == 0, result.stderr
    merged = _json(cli("metrics", "merge", tmp_path / "part-a.json", tmp_path / "part-b.json", "-f", "json"))
    single = _json(cli("metrics", root / "pred", root / "gt", *options))
    assert merged["confusion"] == single["confusion"] and merged["images"] == 6
    for key in ("miou", "kappa", "boundary_f1", "boundary_iou", "hd95", "nsd"):
        assert merged[key] == pytest.approx(single[key], rel=1e-12)
    assert merged["image_average"] == pytest.approx(single["image_average"])


def test_merge_refuses_different_class_sets(cli, dataset, tmp_path):
    root, _ = dataset
    cli("metrics", root / "pred", root / "gt", "--classes", "camvid", "-f", "json", "-o", tmp_path / "a.json")
    cli("metrics", root / "pred", root / "gt", "-n", "11", "--ignore-index", "11", "-f", "json", "-o", tmp_path / "b.json")
    result = cli("metrics", "merge", tmp_path / "a.json", tmp_path / "b.json")
    assert_one_line_error(result, 1)
    assert "class_names" in result.stderr


def test_gates_exit_codes_and_json(cli, dataset):
    root, _ = dataset
    base = ("metrics", root / "pred", root / "gt", "--classes", "camvid", "-f", "json")
    miou = _json(cli(*base))["miou"]
    passed = cli(*base, "--fail-under", f"miou={miou - 0.01:.4f}", "--fail-under", "iou:car=0.0")
    assert passed.code == 0 and all(g["passed"] for g in json.loads(passed.stdout)["gates"])
    failed = cli(*base, "--fail-under", f"miou={miou + 0.01:.4f}", "--fail-under", "iou:8=0.0")
    assert_one_line_error(failed, 1)
    assert "miou" in failed.stderr and "by 0.01" in failed.stderr
    gates = json.loads(failed.stdout)["gates"]
    assert [g["passed"] for g in gates] == [False, True] and gates[1]["metric"] == "iou:8"
    assert_one_line_error(cli(*base, "--fail-under", "miou"), 2)
    assert_one_line_error(cli(*base, "--fail-under", "iou:truck=0.5"), 2)


def test_baseline_regression_gate(cli, dataset, tmp_path):
    root, _ = dataset
    base = ("metrics", root / "pred", root / "gt", "--classes", "camvid", "-f", "json")
    stored = _json(cli(*base))
    stored["miou"] += 0.05
    (tmp_path / "baseline.json").write_text(json.dumps(stored))
    assert cli(*base, "--baseline", tmp_path / "baseline.json", "--max-drop", "0.06").code == 0
    failed = cli(*base, "--baseline", tmp_path / "baseline.json", "--max-drop", "0.01")
    assert_one_line_error(failed, 1)
    assert "baseline" in failed.stderr and "miou" in failed.stderr


def test_per_image_rows_and_saved_confusion(cli, dataset, tmp_path):
    root, pairs = dataset
    result = cli("metrics", root / "pred", root / "gt", "--classes", "camvid", "-f", "json",
                 "--per-image", tmp_path / "rows.csv", "--save-confusion", tmp_path / "conf.csv")
    report = _json(result)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "rows.csv").read_text())))
    assert len(rows) == 6 and set(rows[0]) == {"pred", "gt", "miou", "pixel_accuracy", "worst_class", "worst_iou"}
    first = scores(confusion_matrix(*pairs[0], 11, 11), report["class_names"])
    assert float(rows[0]["miou"]) == pytest.approx(first["miou"])
    worst = min((r for r in first["per_class"] if r["iou"] == r["iou"]), key=lambda r: r["iou"])
    assert rows[0]["worst_class"] == worst["name"]
    lines = (tmp_path / "conf.csv").read_text().splitlines()
    assert lines[0].startswith("gt\\pred,Sky") and lines[1].split(",")[1:] == [str(v) for v in report["confusion"][0]]
    cli("metrics", root / "pred", root / "gt", "--classes", "camvid", "--per-image", tmp_path / "rows.jsonl")
    assert len((tmp_path / "rows.jsonl").read_text().splitlines()) == 6


def test_table_csv_and_markdown_formats(cli, dataset):
    root, _ = dataset
    table = cli("metrics", root / "pred", root / "gt", "--classes", "camvid")
    assert table.code == 0 and "Pedestrian" in table.text and "miou" in table.text
    long_rows = list(csv.reader(io.StringIO(cli("metrics", root / "pred", root / "gt", "--classes", "camvid", "-f", "csv").text)))
    assert long_rows[0] == ["metric", "class", "value"] and ["iou", "Car"] == long_rows[[r[:2] for r in long_rows].index(["iou", "Car"])][:2]
    markdown = cli("metrics", root / "pred", root / "gt", "--classes", "camvid", "-f", "markdown").text
    assert markdown.startswith("| class |") and "| miou |" in markdown


def test_prediction_from_stdin(cli, dataset):
    root, _ = dataset
    name = sorted((root / "gt").iterdir())[0].name
    piped = _json(cli("metrics", "-", root / "gt" / name, "--classes", "camvid", "-f", "json",
                      input=(root / "pred" / name).read_bytes()))
    direct = _json(cli("metrics", root / "pred" / name, root / "gt" / name, "--classes", "camvid", "-f", "json"))
    assert piped["confusion"] == direct["confusion"]


def test_missing_pairs_error_unless_allowed(cli, dataset):
    root, _ = dataset
    sorted((root / "pred").iterdir())[0].unlink()
    result = cli("metrics", root / "pred", root / "gt", "--classes", "camvid")
    assert_one_line_error(result, 1)
    assert "without prediction" in result.stderr
    allowed = cli("metrics", root / "pred", root / "gt", "--classes", "camvid", "-f", "json", "--allow-missing")
    assert allowed.code == 0 and json.loads(allowed.stdout)["images"] == 5 and "warning" in allowed.stderr


def test_size_mismatch_and_missing_class_count_are_one_line_errors(cli, tmp_path):
    _write_png(tmp_path / "p.png", np.zeros((4, 5), np.uint8))
    _write_png(tmp_path / "g.png", np.zeros((5, 4), np.uint8))
    mismatch = cli("metrics", tmp_path / "p.png", tmp_path / "g.png", "-n", "2", "--output", tmp_path / "r.json")
    assert_one_line_error(mismatch, 1)
    assert "same size" in mismatch.stderr and not (tmp_path / "r.json").exists()
    assert_one_line_error(cli("metrics", tmp_path / "p.png", tmp_path / "p.png"), 2)
    assert_one_line_error(cli("metrics", tmp_path / "p.png"), 2)


def test_label_map_remaps_ground_truth(cli, tmp_path):
    _write_png(tmp_path / "p.png", np.array([[0, 1], [1, 0]], np.uint8))
    _write_png(tmp_path / "g.png", np.array([[7, 8], [8, 3]], np.uint8))
    report = _json(cli("metrics", tmp_path / "p.png", tmp_path / "g.png", "-n", "2", "-f", "json",
                       "--label-map", "7:0,8:1,3:255"))
    assert report["confusion"] == [[1, 0], [0, 2]]


def test_metrics_never_imports_torch(dataset, tmp_path):
    import subprocess

    root, _ = dataset
    code = ("import sys; from segtools.cli.app import run; "
            f"rc = run(['metrics', {str(root / 'pred')!r}, {str(root / 'gt')!r}, '--classes', 'camvid', '-f', 'json', "
            f"'--boundary', '--distances', '-j', '1', '-o', {str(tmp_path / 'r.json')!r}]); "
            "assert rc == 0, rc; assert 'torch' not in sys.modules, 'torch was imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("option", ["--output", "--per-image", "--save-confusion"])
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_no_output_replaces_an_input_even_one_read_by_a_worker(cli, tmp_path: Path, option, jobs):
    """Inputs found in folders are protected before they are read, in this process or in
    --jobs workers: the run stops before measuring, and the file keeps its bytes."""
    import shutil

    examples = Path(__file__).resolve().parents[1] / "examples" / "data"
    shutil.copytree(examples / "masks", tmp_path / "gt")
    shutil.copytree(examples / "preds", tmp_path / "pred")
    victim = sorted((tmp_path / "pred").glob("*.png"))[-1]
    before = victim.read_bytes()
    result = cli("metrics", tmp_path / "pred", tmp_path / "gt", "--classes", "camvid", "--jobs", jobs,
                 option, victim)
    assert_one_line_error(result, 1)
    assert "refusing to overwrite an input" in result.stderr
    assert victim.read_bytes() == before
    assert sorted(p.name for p in victim.parent.iterdir()) == sorted(p.name for p in (examples / "preds").iterdir())
    allowed = cli("metrics", tmp_path / "pred", tmp_path / "gt", "--classes", "camvid", "--jobs", jobs,
                  "-f", "json", option, victim, "--overwrite")
    assert allowed.code == 0, allowed.stderr
    assert victim.read_bytes() != before


def test_confusion_csv_keeps_a_class_name_with_quotes_and_commas_in_one_cell(cli, tmp_path):
    _write_png(tmp_path / "p.png", np.array([[0, 1], [1, 1]], np.uint8))
    _write_png(tmp_path / "g.png", np.array([[0, 1], [0, 1]], np.uint8))
    (tmp_path / "classes.txt").write_text('road\nthe "big", red car\n')
    result = cli("metrics", tmp_path / "p.png", tmp_path / "g.png", "--classes", tmp_path / "classes.txt",
                 "-f", "json", "--save-confusion", tmp_path / "conf.csv")
    assert result.code == 0, result.stderr
    rows = list(csv.reader(io.StringIO((tmp_path / "conf.csv").read_text())))
    assert rows == [["gt\\pred", "road", 'the "big", red car'], ["road", "1", "1"], ['the "big", red car', "0", "2"]]


def test_ignore_index_values_are_read_like_every_other_command(cli, tmp_path):
    _write_png(tmp_path / "p.png", np.array([[0, 1, 1, 0]], np.uint8))
    _write_png(tmp_path / "g.png", np.array([[0, 1, 7, 9]], np.uint8))
    args = ("metrics", tmp_path / "p.png", tmp_path / "g.png", "-n", "2", "-f", "json")
    assert _json(cli(*args, "--ignore-index", "7", "--ignore-index", "9"))["ignore_index"] == [7, 9]
    assert _json(cli(*args, "--ignore-index", "9,7"))["ignore_index"] == [7, 9]
    assert_one_line_error(cli(*args, "--ignore-index", "-1"), 1)  # -1 is 'none': 7 is then no class
    assert_one_line_error(cli(*args, "--ignore-index", "none", "--ignore-index", "7"), 2)
    bad = cli(*args, "--ignore-index", "70000")
    assert_one_line_error(bad, 2)
    assert "--ignore-index" in bad.stderr and "none" in bad.stderr
    wrong_map = cli(*args, "--label-map", "1:2:3")
    assert_one_line_error(wrong_map, 1)
    assert "--label-map '1:2:3'" in wrong_map.stderr


def test_ade20k_annotations_with_the_ade20k_label_map(cli, tmp_path):
    """ADEChallengeData2016 annotations hold 0 ("other") and 1..150; the preset's classes are
    0..149: --label-map ade20k reduces them (0 → ignored), and the error without it says so."""
    from segtools.io.images import encode_image

    gt, pred = np.zeros((10, 10), np.uint8), np.zeros((10, 10), np.uint8)
    gt[:5], gt[5:], gt[0, :3] = 1, 150, 0
    pred[5:], pred[0, :3] = 149, 7  # right everywhere; the "other" pixels are not scored
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    (tmp_path / "gt" / "ADE_val_00000001.png").write_bytes(encode_image(gt))
    (tmp_path / "pred" / "ADE_val_00000001.png").write_bytes(encode_image(pred))
    bare = cli("metrics", tmp_path / "pred", tmp_path / "gt", "--classes", "ade20k")
    assert_one_line_error(bare)
    assert "label value 150" in bare.stderr and "ade20k" in bare.stderr
    result = cli("metrics", tmp_path / "pred", tmp_path / "gt", "--classes", "ade20k", "--label-map", "ade20k",
                 "--format", "json")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["pixel_accuracy"] == 1.0
    per_class = {c["name"]: c for c in report["per_class"]}
    assert per_class["wall"]["gt_pixels"] == 47 and per_class["flag"]["gt_pixels"] == 50
