"""`segtools metrics` beyond semantic masks: the task recognised from the inputs, instance and
panoptic states merged by `metrics merge` exactly as one run, gates on the new keys, formats."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_one_line_error

from segtools.metrics import gates as gatelib
from segtools.metrics.tasks import detect_task

CATEGORIES = {1: ("road", False), 2: ("car", True), 3: ("person", True)}


def _image(seed: int):
    """A 20×30 panoptic pair: stuff road below, two cars and a person; the prediction shifted."""
    rng = np.random.default_rng(seed)
    gt = np.zeros((20, 30), np.int64)
    gt[12:, :] = 1
    gt[2:8, 2:10] = 2
    gt[2:8, 15:24] = 3
    gt[9:12, 25:29] = 4
    shift = int(rng.integers(0, 3))
    pred = np.zeros_like(gt)
    pred[12 + shift:, :] = 5
    pred[2:8, 2 + shift:10 + shift] = 6
    pred[2 + shift:8, 15:24] = 7
    gt_segments = [{"id": 1, "category_id": 1, "iscrowd": 0}, {"id": 2, "category_id": 2, "iscrowd": 0},
                   {"id": 3, "category_id": 2, "iscrowd": 0}, {"id": 4, "category_id": 3, "iscrowd": 0}]
    pred_segments = [{"id": 5, "category_id": 1}, {"id": 6, "category_id": 2}, {"id": 7, "category_id": 3}]
    return gt, gt_segments, pred, pred_segments


def _states(tmp_path, shards: int):
    from segtools.metrics.panoptic import PanopticEvaluation

    whole, paths = PanopticEvaluation(CATEGORIES), []
    parts = [PanopticEvaluation(CATEGORIES) for _ in range(shards)]
    for seed in range(6):
        whole.add_image(*_image(seed))
        parts[seed % shards].add_image(*_image(seed))
    for k, part in enumerate(parts):
        path = tmp_path / f"shard-{k}.json"
        path.write_text(json.dumps(part.state()))
        paths.append(str(path))
    return whole, paths


def test_merge_of_panoptic_shards_equals_one_run_in_every_format(cli, tmp_path):
    whole, paths = _states(tmp_path, 3)
    result = cli("metrics", "merge", *paths, "--format", "json")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    expected = whole.summary()
    assert report["task"] == "panoptic"
    for key in ("pq", "sq", "rq", "pq_things", "sq_things", "rq_things", "pq_stuff", "sq_stuff", "rq_stuff"):
        assert report[key] == pytest.approx(expected[key], abs=1e-12), key
    assert set(report["per_class"]) == {"road", "car", "person"}
    (tmp_path / "merged.json").write_text(result.stdout.decode())
    again = json.loads(cli("metrics", "merge", str(tmp_path / "merged.json"), "--format", "json").stdout)
    assert again["pq"] == report["pq"]  # a report carries its state: merging it again is a no-op
    rows = cli("metrics", "merge", *paths, "--format", "csv").stdout.decode().splitlines()
    assert rows[0] == "metric,class,value" and rows[1] == f"pq,,{expected['pq']!r}"
    table = cli("metrics", "merge", *paths).stdout.decode()
    assert "pq_things" in table and "person" in table and f"{expected['pq']:.4f}" in table
    state = tmp_path / "state.json"
    assert cli("metrics", "merge", *paths, "--save-state", str(state), "--format", "json").code == 0
    assert json.loads(state.read_text())["task"] == "panoptic"


def test_gates_on_panoptic_keys_exit_one_naming_the_gate(cli, tmp_path):
    whole, paths = _states(tmp_path, 2)
    pq = whole.summary()["pq"]
    assert cli("metrics", "merge", *paths, "--fail-under", f"pq={pq - 0.01}", "--format", "json").code == 0
    result = cli("metrics", "merge", *paths, "--fail-under", f"pq={pq + 0.01}", "--format", "json")
    assert_one_line_error(result, 1)
    assert "pq " in result.stderr and "1 of 1 quality gate(s) failed" in result.stderr
    car = whole.summary()["per_class"]["car"]["pq"]
    result = cli("metrics", "merge", *paths, "--fail-under", f"pq:car={car + 0.01}", "--format", "json")
    assert_one_line_error(result, 1)
    assert "pq:car" in result.stderr
    result = cli("metrics", "merge", *paths, "--fail-under", "pq:bus=0.1", "--format", "json")
    assert_one_line_error(result, 2)
    assert "bus" in result.stderr


def test_new_keys_parse_as_gates():
    assert gatelib.parse_gate("ap=0.35").key == "ap"
    assert gatelib.parse_gate("ap50:car=0.5").metric == "ap50:car"
    report = {"ap": 0.3, "per_class": {"car": {"ap": 0.5}}}
    results = gatelib.evaluate_gates(report, [gatelib.parse_gate("ap=0.35"), gatelib.parse_gate("ap:car=0.4")])
    assert [r["passed"] for r in results] == [False, True]


def test_semantic_options_with_task_states_are_refused(cli, tmp_path):
    _, paths = _states(tmp_path, 1)
    result = cli("metrics", "merge", paths[0], "--num-classes", "3")
    assert_one_line_error(result, 2)
    assert "--num-classes" in result.stderr


def test_task_recognised_from_the_inputs(tmp_path):
    from segtools.formats.instances import encode_instance_png, instance_meta
    from segtools.io.masks import encode_label_mask

    (tmp_path / "panoptic.json").write_text(json.dumps({"annotations": [{"file_name": "a.png", "segments_info": []}],
                                                        "categories": []}))
    (tmp_path / "instances.json").write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    (tmp_path / "results.json").write_text("[]")
    (tmp_path / "inst.png").write_bytes(encode_instance_png(np.ones((4, 4), np.uint16), instance_meta([-1, 0], ["a"])))
    (tmp_path / "sem.png").write_bytes(encode_label_mask(np.ones((4, 4), np.uint8)))
    pairs = tmp_path / "pairs"
    (pairs / "instances").mkdir(parents=True)
    (pairs / "a.png").write_bytes(encode_label_mask(np.ones((4, 4), np.uint8)))
    path = str
    assert detect_task(path(tmp_path / "panoptic.json"), path(tmp_path / "panoptic.json")) == "panoptic"
    assert detect_task(path(tmp_path / "results.json"), path(tmp_path / "instances.json")) == "instance"
    assert detect_task(path(tmp_path / "inst.png"), path(tmp_path / "inst.png")) == "instance"
    assert detect_task(path(tmp_path / "sem.png"), path(pairs)) == "panoptic"
    assert detect_task(path(tmp_path / "sem.png"), path(tmp_path / "sem.png")) == "semantic"


def test_instance_options_on_semantic_masks_are_usage_errors(cli, tmp_path):
    from segtools.io.masks import encode_label_mask

    (tmp_path / "sem.png").write_bytes(encode_label_mask(np.ones((4, 4), np.uint8)))
    result = cli("metrics", str(tmp_path / "sem.png"), str(tmp_path / "sem.png"), "--num-classes", "2",
                 "--max-dets", "1,10,100")
    assert_one_line_error(result, 2)
    assert "--max-dets" in result.stderr


def _write_panoptic(root, stem, pairs, categories=True):
    """COCO panoptic JSON + its PNG folder named by the JSON's stem, as panopticapi reads them."""
    from segtools.formats.coco_panoptic import ids_to_rgb
    from segtools.io.images import write_image

    (root / stem).mkdir()
    annotations = []
    for k, (ids, segments) in enumerate(pairs):
        write_image(ids_to_rgb(ids), root / stem / f"f{k}.png")
        annotations.append({"image_id": k + 1, "file_name": f"f{k}.png", "segments_info": segments})
    doc = {"annotations": annotations}
    if categories:
        doc["categories"] = [{"id": c, "name": n, "isthing": int(t)} for c, (n, t) in CATEGORIES.items()]
    (root / f"{stem}.json").write_text(json.dumps(doc))
    return root / f"{stem}.json"


def test_panoptic_files_through_the_cli_equal_the_library_and_shard(cli, tmp_path):
    """`metrics PRED.json GT.json` recognises panoptic, scores what PanopticEvaluation scores,
    and --save-state of two halves merged gives the same numbers."""
    from segtools.metrics.panoptic import PanopticEvaluation

    images = [_image(seed) for seed in range(6)]
    gt = _write_panoptic(tmp_path, "gt", [(g, gs) for g, gs, _, _ in images])
    pred = _write_panoptic(tmp_path, "pred", [(p, ps) for _, _, p, ps in images], categories=False)
    expected = PanopticEvaluation(CATEGORIES)
    for g, gs, p, ps in images:
        expected.add_image(g, gs, p, ps)
    want = expected.summary()
    result = cli("metrics", pred, gt, "-f", "json", "--fail-under", "pq=0.1")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["task"] == "panoptic"
    for key in ("pq", "sq", "rq", "pq_things", "pq_stuff"):
        assert report[key] == pytest.approx(want[key], abs=1e-12)
    assert 0 < report["pq"] < 1  # the shifted predictions are imperfect
    result = cli("metrics", pred, gt, "-f", "json", "--fail-under", f"pq={want['pq'] + 0.01}")
    assert result.code == 1 and "pq" in result.stderr
    for half, chosen in (("a", images[:3]), ("b", images[3:])):
        root = tmp_path / half
        root.mkdir()
        g = _write_panoptic(root, "gt", [(x, xs) for x, xs, _, _ in chosen])
        p = _write_panoptic(root, "pred", [(y, ys) for _, _, y, ys in chosen], categories=False)
        assert cli("metrics", p, g, "--save-state", root / "state.json", "-f", "json").code == 0
    merged = cli("metrics", "merge", tmp_path / "a" / "state.json", tmp_path / "b" / "state.json", "-f", "json")
    assert merged.code == 0, merged.stderr
    assert json.loads(merged.stdout)["pq"] == pytest.approx(want["pq"], abs=1e-12)


def test_panoptic_prediction_for_an_unknown_image_is_one_line(cli, tmp_path):
    images = [_image(seed) for seed in range(2)]
    gt = _write_panoptic(tmp_path, "gt", [(g, gs) for g, gs, _, _ in images])
    pred = _write_panoptic(tmp_path, "pred", [(p, ps) for _, _, p, ps in images], categories=False)
    doc = json.loads(pred.read_text())
    doc["annotations"][0]["image_id"] = 42
    pred.write_text(json.dumps(doc))
    result = cli("metrics", pred, gt, "--task", "panoptic")
    assert_one_line_error(result, 1)
    assert "42" in result.stderr


def _semantic_report(cli, tmp_path):
    from segtools.io.masks import encode_label_mask

    (tmp_path / "m.png").write_bytes(encode_label_mask(np.array([[0, 1], [1, 1]], np.uint8)))
    result = cli("metrics", tmp_path / "m.png", tmp_path / "m.png", "--num-classes", "2", "-f", "json")
    assert result.code == 0, result.stderr
    (tmp_path / "semantic.json").write_bytes(result.stdout)
    return str(tmp_path / "semantic.json")


def test_merge_of_states_of_different_tasks_is_one_usage_error(cli, tmp_path):
    from segtools.metrics.instance import InstanceEvaluation, Protocol

    _, (panoptic,) = _states(tmp_path, 1)
    instance = tmp_path / "instance.json"
    instance.write_text(json.dumps(InstanceEvaluation(Protocol(), {1: "car"}).state()))
    semantic = _semantic_report(cli, tmp_path)
    kinds = {semantic: "a semantic report", panoptic: "a panoptic state", str(instance): "an instance state"}
    for first in kinds:
        for second in kinds:
            result = cli("metrics", "merge", first, first, second, "--format", "json")
            if first == second:
                assert result.code == 0, result.stderr
                continue
            assert_one_line_error(result, 2)
            assert f"{second} is {kinds[second]} and {first} {kinds[first]}" in result.stderr


_TRICKY = ['plain', 'a "quoted" word', 'back\\slash', '\\', '\\"', 'brackets ]}[{', 'ünïcode ✓', '']


@pytest.mark.parametrize("chunk", [1, 5, 64, 1 << 16])
def test_first_annotation_keys_equal_a_full_parse(monkeypatch, chunk):
    """The streaming scan finds the keys json.loads finds, whatever strings precede them and
    wherever the chunks split them (escapes, quotes and brackets inside strings)."""
    import io

    from segtools.metrics import tasks

    monkeypatch.setattr(tasks, "_SCAN_CHUNK", chunk)
    rng = np.random.default_rng(chunk)
    for _ in range(12):
        words = [str(w) for w in rng.choice(_TRICKY, 6)]
        doc = {"info": {"annotations": [{"not": "this"}], words[0]: words[1]},
               "images": [{"file_name": w, "id": k, "tags": [[w], {w: w}]} for k, w in enumerate(words)],
               "annotations": [{w + str(k): {"nested": [w]} for k, w in enumerate(words[int(rng.integers(0, 6)):])},
                               {"second": 1}],
               "categories": [{"id": 1, "name": words[2]}]}
        keys = list(doc)
        rng.shuffle(keys)
        text = json.dumps({k: doc[k] for k in keys}, ensure_ascii=bool(rng.integers(0, 2)))
        found = tasks.first_annotation_keys(io.BytesIO(text.encode()))
        assert found == set(doc["annotations"][0]), text
    assert tasks.first_annotation_keys(io.BytesIO(b'{"images": [], "annotations": []}')) == set()
    assert tasks.first_annotation_keys(io.BytesIO(b'{"images": [{"annotations": [{"a": 1}]}]}')) is None
    assert tasks.first_annotation_keys(io.BytesIO(b'{"annotations": {"a": 1}}')) is None
    assert tasks.first_annotation_keys(io.BytesIO(b'[{"annotations": [{"a": 1}]}]')) is None


class _CountingReader:
    def __init__(self, path):
        self.handle, self.bytes_read = open(path, "rb"), 0

    def read(self, size=-1):
        data = self.handle.read(size)
        self.bytes_read += len(data)
        return data


def test_task_of_a_large_json_is_recognised_from_its_head(cli, tmp_path):
    """detect_task reads a COCO JSON only up to its first annotation: a file whose tail is not
    JSON at all is still recognised, and the evaluation then reports the broken file in one line."""
    from segtools.metrics import tasks

    images = [{"id": k, "file_name": f"dir[{k}]/\"x\\{k}\".png", "width": 480, "height": 360} for k in range(5000)]
    tail = b", " + b"{not json at all} " * 150_000  # ~2.7 MB after the first annotation
    cases = {"instance": {"images": images, "annotations": [{"id": 1, "image_id": 0, "category_id": 1,
                                                              "segmentation": [[0, 0, 4, 0, 4, 4]]}]},
             "panoptic": {"images": images, "annotations": [{"image_id": 0, "file_name": "a.png",
                                                             "segments_info": [{"id": 1, "category_id": 1}]}]}}
    for task, doc in cases.items():
        head = json.dumps(doc).encode()
        path = tmp_path / f"{task}.json"
        path.write_bytes(head[:-2] + tail)  # the annotations list and the document never close
        assert len(head) < 1 << 20 < path.stat().st_size
        assert tasks.detect_task(str(path), str(path)) == task
        reader = _CountingReader(path)
        assert tasks.first_annotation_keys(reader) == set(doc["annotations"][0])
        assert reader.bytes_read <= len(head) + 2 * tasks._SCAN_CHUNK
        result = cli("metrics", path, path)
        assert_one_line_error(result, 1)
        assert "not valid JSON" in result.stderr and f"{task}.json" in result.stderr


def test_panoptic_on_a_store_reads_its_pngs_there_and_refuses_names_that_leave_the_prefix(cli, tmp_path):
    """COCO panoptic JSON + PNG prefix under ``memory://``: the numbers of the local files; a
    ``file_name`` climbing out of its prefix is one line naming the item, as on disk."""
    import fsspec

    images = [_image(seed) for seed in range(4)]
    _write_panoptic(tmp_path, "gt", [(g, gs) for g, gs, _, _ in images])
    pred = _write_panoptic(tmp_path, "pred", [(p, ps) for _, _, p, ps in images], categories=False)
    memory = fsspec.filesystem("memory")
    memory.put(str(tmp_path) + "/", "/pan-store/", recursive=True)
    here = cli("metrics", pred, tmp_path / "gt.json", "-f", "json")
    there = cli("metrics", "memory://pan-store/pred.json", "memory://pan-store/gt.json", "-f", "json")
    assert here.code == 0 and there.code == 0, there.stderr
    assert there.stdout == here.stdout
    doc = json.loads(pred.read_text())
    doc["annotations"][1]["file_name"] = "../gt/f1.png"
    memory.pipe("/pan-store/pred.json", json.dumps(doc).encode())
    bad = cli("metrics", "memory://pan-store/pred.json", "memory://pan-store/gt.json")
    assert_one_line_error(bad, 1)
    assert "image_id 2: 'file_name' '../gt/f1.png' leaves its folder memory://pan-store/pred" in bad.stderr
