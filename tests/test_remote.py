"""Object storage: a real S3-compatible server (moto's server mode) on 127.0.0.1, read and
written through s3fs; ``memory://`` through fsspec alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_one_line_error

s3fs = pytest.importorskip("s3fs", reason="the s3 extra (s3fs) is not installed")
moto_server = pytest.importorskip("moto.server", reason="moto[server] (a test extra) is not installed")

KEY, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMIexampleSECRET"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    patch = pytest.MonkeyPatch()
    for name, value in (("AWS_ACCESS_KEY_ID", KEY), ("AWS_SECRET_ACCESS_KEY", SECRET), ("AWS_DEFAULT_REGION", "us-east-1"),
                        ("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")):
        patch.setenv(name, value)
    fs = s3fs.S3FileSystem(anon=False)
    fs.mkdir("bucket")
    try:
        yield fs
    finally:
        patch.undo()
        server.stop()


def _write_png(path: Path, labels: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), labels)


@pytest.fixture(scope="module")
def local(camvid_module, tmp_path_factory):
    import cv2

    root = tmp_path_factory.mktemp("remote")
    for number, file in enumerate(sorted((camvid_module / "valannot").glob("*.png"))[:4]):
        gt = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)[:90, :120]
        _write_png(root / "gt" / f"d{number % 2}" / file.name, gt)
        _write_png(root / "pred" / f"d{number % 2}" / file.name, np.roll(gt, 3, axis=0))
    return root


@pytest.fixture(scope="module")
def camvid_module():
    from conftest import CAMVID

    if not (CAMVID / "valannot").is_dir():
        pytest.skip("../shared/data/camvid is not present beside the project")
    return CAMVID


@pytest.fixture(scope="module")
def uploaded(s3, local):
    s3.put(str(local / "gt") + "/", "bucket/data/gt/", recursive=True)
    s3.put(str(local / "pred") + "/", "bucket/data/pred/", recursive=True)
    return "s3://bucket/data"


def test_metrics_reads_prefixes_like_folders(cli, local, uploaded):
    args = ("--classes", "camvid", "-f", "json")
    here = cli("metrics", local / "pred", local / "gt", *args)
    there = cli("metrics", f"{uploaded}/pred/", f"{uploaded}/gt", *args)
    assert here.code == 0 and there.code == 0, there.stderr
    assert json.loads(there.stdout)["confusion"] == json.loads(here.stdout)["confusion"]
    assert json.loads(there.stdout)["images"] == 4


def test_metrics_recognises_the_task_of_storage_inputs_once(cli, local, uploaded, monkeypatch):
    from segtools.metrics import tasks

    calls = []
    recognise = tasks.detect_task
    monkeypatch.setattr(tasks, "detect_task", lambda *specs: calls.append(specs) or recognise(*specs))
    result = cli("metrics", f"{uploaded}/pred", f"{uploaded}/gt", "--classes", "camvid", "-f", "json")
    assert result.code == 0, result.stderr
    assert calls == [(f"{uploaded}/pred", f"{uploaded}/gt")]


def test_metrics_report_goes_up_as_one_object(cli, s3, local, uploaded):
    result = cli("metrics", f"{uploaded}/pred", f"{uploaded}/gt", "--classes", "camvid", "-f", "json",
                 "-o", "s3://bucket/reports/run.json")
    assert result.code == 0, result.stderr
    expected = cli("metrics", local / "pred", local / "gt", "--classes", "camvid", "-f", "json")
    assert s3.cat("bucket/reports/run.json") == expected.stdout


def test_postprocess_from_and_to_s3_writes_the_local_bytes(cli, s3, local, uploaded, tmp_path):
    here = cli("postprocess", local / "gt", "-o", tmp_path / "here", "--smooth", "3")
    there = cli("postprocess", f"{uploaded}/gt/", "-o", "s3://bucket/clean/", "--smooth", "3")
    assert here.code == 0 and there.code == 0, there.stderr
    written = {p.relative_to(tmp_path / "here").as_posix(): p.read_bytes() for p in (tmp_path / "here").rglob("*.png")}
    keys = sorted(key for key in s3.find("bucket/clean/"))
    assert [key.split("bucket/clean/")[1] for key in keys] == sorted(written)
    for key in keys:
        assert s3.cat(key) == written[key.split("bucket/clean/")[1]]


def test_a_failed_command_uploads_nothing(cli, s3, local, uploaded):
    result = cli("postprocess", f"{uploaded}/gt/", "-o", "s3://bucket/never/", "--smooth", "4")
    assert_one_line_error(result)
    assert not s3.exists("bucket/never/") or not s3.find("bucket/never/")


def test_a_missing_prefix_is_one_line_without_credentials(cli, uploaded):
    result = cli("metrics", "s3://bucket/nothing-here/", f"{uploaded}/gt", "--classes", "camvid")
    assert_one_line_error(result, 1)
    assert "s3://bucket/nothing-here/" in result.stderr and "internal error" not in result.stderr
    result = cli("metrics", f"s3://{KEY}:{SECRET}@bucket/nothing-here/", f"{uploaded}/gt", "--classes", "camvid")
    assert_one_line_error(result, 1)
    assert "s3://bucket/nothing-here/" in result.stderr and "internal error" not in result.stderr
    assert SECRET not in result.stderr and KEY not in result.stderr


def test_memory_store_round_trip(cli, local, tmp_path):
    import fsspec

    memory = fsspec.filesystem("memory")
    memory.put(str(local / "gt") + "/", "/masks/", recursive=True)
    result = cli("postprocess", "memory://masks/", "-o", "memory://out/", "--min-area", "20")
    assert result.code == 0, result.stderr
    here = cli("postprocess", local / "gt", "-o", tmp_path / "here", "--min-area", "20")
    assert here.code == 0
    for file in (tmp_path / "here").rglob("*.png"):
        assert memory.cat("/out/" + file.relative_to(tmp_path / "here").as_posix()) == file.read_bytes()
    assert not [key for key in memory.find("/out/") if key.endswith(".partial")]


def test_visualize_tile_convert_and_save_state_take_urls(cli, local, tmp_path):
    """Inputs and outputs of visualize, tile split, convert and metrics --save-state as URLs:
    the bytes of the same commands on local paths."""
    import fsspec

    memory = fsspec.filesystem("memory")
    memory.put(str(local) + "/", "/urls/", recursive=True)
    mask = sorted((local / "gt").rglob("*.png"))[0]
    key = mask.relative_to(local).as_posix()
    runs = {
        "visualize": (("visualize", "memory://urls/pred/", "--gt", "memory://urls/gt/", "--classes", "camvid"),
                      ("visualize", local / "pred", "--gt", local / "gt", "--classes", "camvid"), "vis/"),
        "tile": (("tile", "split", f"memory://urls/{key}", "--size", "64", "--overlap", "16"),
                 ("tile", "split", mask, "--size", "64", "--overlap", "16"), "tiles/"),
        "convert": (("convert", "memory://urls/gt/", "--to", "coco", "--classes", "camvid"),
                    ("convert", local / "gt", "--to", "coco", "--classes", "camvid"), "coco.json"),
    }
    for name, (remote_args, local_args, out) in runs.items():
        remote = cli(*remote_args, "-o", f"memory://urls/out/{name}/{out}")
        here = cli(*local_args, "-o", tmp_path / name / out)
        assert remote.code == 0 and here.code == 0, (name, remote.stderr, here.stderr)
        files = sorted(p for p in (tmp_path / name).rglob("*") if p.is_file())
        assert files, name
        for file in files:
            assert memory.cat(f"/urls/out/{name}/" + file.relative_to(tmp_path / name).as_posix()) == file.read_bytes(), file
    remote = cli("metrics", "memory://urls/pred/", "memory://urls/gt/", "--classes", "camvid",
                 "--save-state", "memory://urls/out/state.json", "-f", "json")
    here = cli("metrics", local / "pred", local / "gt", "--classes", "camvid", "--save-state", tmp_path / "state.json",
               "-f", "json")
    assert remote.code == 0 and here.code == 0, remote.stderr
    assert remote.stdout == here.stdout
    assert json.loads(memory.cat("/urls/out/state.json")) == json.loads((tmp_path / "state.json").read_text())


# ---- streamed: the per-item tools read and write each object themselves (no staging)

@pytest.fixture
def no_staging(monkeypatch):
    """Staging an input or output URL fails the test: what is streamed must never be fetched
    whole into a local folder or written there first."""
    from segtools.io import remote

    def refuse(*args, **kwargs):
        raise AssertionError(f"staged: {args}")

    monkeypatch.setattr(remote, "staged_inputs", refuse)
    monkeypatch.setattr(remote, "staged_output", refuse)


@pytest.fixture(scope="module")
def photos(s3, local, camvid_module, tmp_path_factory):
    """Two CamVid frames cropped like the masks, under the masks' names, locally and on S3."""
    import cv2

    root = tmp_path_factory.mktemp("photos")
    for mask in sorted((local / "gt").rglob("*.png"))[:2]:
        rel = mask.relative_to(local / "gt")
        image = cv2.imread(str(camvid_module / "val" / rel.name), cv2.IMREAD_COLOR)[:90, :120]
        _write_png(root / rel, image)
    s3.put(str(root) + "/", "bucket/data/img/", recursive=True)
    return root


def _objects(s3, prefix: str) -> dict:
    return {key[len(prefix):]: s3.cat(key) for key in sorted(s3.find(prefix))}


def _files(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_per_item_tools_stream_objects_and_write_the_local_bytes(cli, s3, local, uploaded, photos, no_staging,
                                                                   tmp_path):
    """metrics, postprocess, visualize (masks, --over, --gt) and predict on S3 prefixes, with
    staging forbidden: the same report and the same bytes, object for file, as local runs."""
    args = ("--classes", "camvid", "-f", "json")
    there = cli("metrics", f"{uploaded}/pred/", f"{uploaded}/gt", *args, "-o", "s3://bucket/streamed/report.json")
    here = cli("metrics", local / "pred", local / "gt", *args)
    assert there.code == 0 and here.code == 0, there.stderr
    assert s3.cat("bucket/streamed/report.json") == here.stdout
    runs = {
        "clean": (("postprocess", f"{uploaded}/gt/", "--min-area", "30", "--fill-holes", "20"),
                  ("postprocess", local / "gt", "--min-area", "30", "--fill-holes", "20")),
        "vis": (("visualize", f"{uploaded}/pred/", "--over", f"{uploaded}/img/", "--gt", f"{uploaded}/gt/",
                 "--classes", "camvid", "--allow-missing"),
                ("visualize", local / "pred", "--over", photos, "--gt", local / "gt", "--classes", "camvid",
                 "--allow-missing")),
        "pred": (("predict", f"{uploaded}/img/"), ("predict", photos)),
    }
    for name, (remote_args, local_args) in runs.items():
        there = cli(*remote_args, "-o", f"s3://bucket/streamed/{name}/")
        here = cli(*local_args, "-o", tmp_path / name)
        assert there.code == 0 and here.code == 0, (name, there.stderr, here.stderr)
        expected = _files(tmp_path / name)
        assert expected and _objects(s3, f"bucket/streamed/{name}/") == expected, name


def test_an_object_glob_lists_like_a_pattern(cli, local, uploaded, no_staging):
    there = cli("metrics", f"{uploaded}/pred/d1/*.png", f"{uploaded}/gt/d1/", "--classes", "camvid", "-f", "json")
    here = cli("metrics", str(local / "pred" / "d1" / "*.png"), local / "gt" / "d1", "--classes", "camvid", "-f", "json")
    assert there.code == 0 and here.code == 0, there.stderr
    assert there.stdout == here.stdout and json.loads(there.stdout)["images"] == 2


def test_a_bad_object_is_named_by_its_url_and_the_good_ones_are_whole(cli, s3, local, no_staging):
    good = sorted((local / "gt").rglob("*.png"))
    for mask in good:
        s3.put_file(str(mask), f"bucket/bad/in/{mask.name}")
    s3.pipe_file("bucket/bad/in/zz_truncated.png", good[0].read_bytes()[:200])
    result = cli("postprocess", "s3://bucket/bad/in/", "-o", "s3://bucket/bad/out/", "--min-area", "10")
    assert_one_line_error(result, 1)
    assert "s3://bucket/bad/in/zz_truncated.png" in result.stderr
    written = _objects(s3, "bucket/bad/out/")
    assert sorted(written) == sorted(mask.name for mask in good)  # each finished item: one whole object
    assert not s3.exists("bucket/bad/out/zz_truncated.png")


def test_one_file_into_a_prefix_is_one_line_naming_it(cli, local, no_staging):
    mask = sorted((local / "gt").rglob("*.png"))[0]
    result = cli("postprocess", mask, "-o", "memory://single/", "--min-area", "5")
    assert_one_line_error(result, 1)
    assert "memory://single/: is a prefix; give an object name" in result.stderr


def test_a_video_on_a_store_is_still_staged():
    from segtools.cli.video_opts import names_no_video

    assert names_no_video({"inputs": ["s3://b/masks/"], "output": "s3://b/out/"})
    assert not names_no_video({"inputs": ["s3://b/drive.mp4"], "output": "s3://b/out/"})
    assert not names_no_video({"inputs": ["s3://b/frames/"], "output": "s3://b/out.mkv"})
    assert not names_no_video({"inputs": ["s3://b/frames/"], "every": 5})
    assert not names_no_video({"masks": ["s3://b/m/"], "over": "rtsp://camera/live"})


def test_dask_workers_read_and_write_the_store_themselves(cli, s3, local, uploaded, no_staging, tmp_path):
    """``--dask local:2``: the workers list nothing, stage nothing; each reads its masks from
    S3 and puts its outputs there (the submitting process stages nothing either)."""
    pytest.importorskip("distributed", reason="the dask extra (dask[distributed]) is not installed")
    there = cli("postprocess", f"{uploaded}/gt/", "-o", "s3://bucket/dask/clean/", "--smooth", "3", "--dask", "local:2")
    here = cli("postprocess", local / "gt", "-o", tmp_path / "clean", "--smooth", "3")
    assert there.code == 0 and here.code == 0, there.stderr
    assert _objects(s3, "bucket/dask/clean/") == _files(tmp_path / "clean")
    args = ("--classes", "camvid", "-f", "json")
    there = cli("metrics", f"{uploaded}/pred/", f"{uploaded}/gt/", *args, "--dask", "local:2")
    here = cli("metrics", local / "pred", local / "gt", *args)
    assert there.code == 0 and here.code == 0, there.stderr
    assert there.stdout == here.stdout


def test_local_worker_processes_stream_too(cli, s3, local, uploaded, no_staging, tmp_path):
    """``--jobs 2``: forked workers open the store afresh (fsspec's instances are per process)."""
    there = cli("postprocess", f"{uploaded}/gt/", "-o", "s3://bucket/jobs/clean/", "--open", "3", "--jobs", "2")
    here = cli("postprocess", local / "gt", "-o", tmp_path / "clean", "--open", "3")
    assert there.code == 0 and here.code == 0, there.stderr
    assert _objects(s3, "bucket/jobs/clean/") == _files(tmp_path / "clean")


def test_a_model_on_the_store_is_copied_once_per_machine_and_refreshed_when_it_changes(cli, s3, photos, tmp_path,
                                                                                        monkeypatch):
    """``-m s3://…/camvid.pt`` and ``-m s3://…/camvid.onnx``: the same labels as the local
    files; the copy under $SEGTOOLS_HOME/objects is reused while the object is unchanged
    (no second download) and fetched again once it changes."""
    from segtools.io import remote
    from segtools.weights import registry

    monkeypatch.setenv("SEGTOOLS_HOME", str(tmp_path / "home"))
    bundled = registry.bundled_dir()
    for name in ("camvid.pt", "camvid.onnx"):
        s3.put_file(str(bundled / name), f"bucket/models/{name}")
    image = sorted(photos.rglob("*.png"))[0]
    for name in ("camvid.pt", "camvid.onnx"):
        here = cli("predict", image, "-m", bundled / name, "-o", tmp_path / f"here-{name}.png")
        there = cli("predict", image, "-m", f"s3://bucket/models/{name}", "-o", tmp_path / f"there-{name}.png")
        assert here.code == 0 and there.code == 0, there.stderr
        assert (tmp_path / f"there-{name}.png").read_bytes() == (tmp_path / f"here-{name}.png").read_bytes()
    copies = sorted(p.name for p in (tmp_path / "home" / "objects").iterdir())
    assert len(copies) == 4 and not [name for name in copies if name.endswith(".part")]  # two files, two notes

    first = remote.local_file("s3://bucket/models/camvid.pt")
    seen = (first.stat().st_ino, first.stat().st_mtime_ns)
    again = remote.local_file("s3://bucket/models/camvid.pt")  # unchanged: the same file, not written again
    assert again == first and (again.stat().st_ino, again.stat().st_mtime_ns) == seen
    assert first.read_bytes() == (bundled / "camvid.pt").read_bytes()
    s3.pipe_file("bucket/models/camvid.pt", b"not a checkpoint any more")
    changed = remote.local_file("s3://bucket/models/camvid.pt")
    assert changed == first and changed.stat().st_ino != seen[0]  # a new copy, renamed into place
    assert changed.read_bytes() == b"not a checkpoint any more"
    result = cli("predict", image, "-m", "s3://bucket/models/camvid.pt", "-o", tmp_path / "bad.png")
    assert_one_line_error(result, 1)
    assert not (tmp_path / "bad.png").exists()
    result = cli("predict", image, "-m", "s3://bucket/models/none.pt", "-o", tmp_path / "none.png")
    assert_one_line_error(result, 1)
    assert "s3://bucket/models/none.pt: no such object" in result.stderr


def test_read_ahead_keeps_the_order_bounds_the_fetches_and_raises_in_turn(monkeypatch):
    """Objects come back in input order, at most ``depth`` fetched ahead; local paths pass
    through untouched; a missing object is raised at its own turn, after the ones before."""
    import threading
    import time

    import fsspec

    from segtools.errors import InputError
    from segtools.io import remote

    memory = fsspec.filesystem("memory")
    for k in range(12):
        memory.pipe_file(f"/ahead/{k:02d}.bin", bytes([k]) * (k + 1))
    active, most = [0], [0]
    lock = threading.Lock()
    real = remote.read_object

    def slow(url, size=None):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        stem = url.rsplit("/", 1)[-1].split(".")[0]
        time.sleep(0.01 * (12 - int(stem)) if stem.isdigit() else 0)  # later objects arrive sooner
        try:
            return real(url, size)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(remote, "read_object", slow)
    paths = [f"memory://ahead/{k:02d}.bin" for k in range(12)]
    paths.insert(5, "local/file.png")
    got = list(remote.read_ahead(paths, depth=4))
    assert [path for path, _ in got] == paths
    assert got[5] == ("local/file.png", "local/file.png")
    assert [source for path, source in got if path != "local/file.png"] == [bytes([k]) * (k + 1) for k in range(12)]
    assert 1 < most[0] <= 4
    seen = []
    with pytest.raises(InputError, match="memory://ahead/missing.bin: no such object"):
        for path, _ in remote.read_ahead(paths[:3] + ["memory://ahead/missing.bin"] + paths[3:], depth=4):
            seen.append(path)
    assert seen == paths[:3]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_metrics_fetch_ahead_and_name_a_bad_object(cli, s3, local, uploaded, no_staging, jobs):
    """``--jobs 1`` fetches the objects ahead of the decoding, ``--jobs 2`` workers a task's
    objects together: the same report as a local run, and a truncated object is still
    named by its URL."""
    args = ("--classes", "camvid", "-f", "json", "--jobs", jobs)
    there = cli("metrics", f"{uploaded}/pred/", f"{uploaded}/gt/", *args)
    here = cli("metrics", local / "pred", local / "gt", *args)
    assert there.code == 0 and here.code == 0, there.stderr
    assert there.stdout == here.stdout
    masks = sorted((local / "gt").rglob("*.png"))
    for mask in masks:
        s3.put_file(str(mask), f"bucket/ahead/gt/{mask.name}")
        s3.put_file(str(mask), f"bucket/ahead/pred/{mask.name}")
    s3.pipe_file(f"bucket/ahead/pred/{masks[2].name}", masks[2].read_bytes()[:100])
    result = cli("metrics", "s3://bucket/ahead/pred/", "s3://bucket/ahead/gt/", *args)
    assert_one_line_error(result, 1)
    assert f"s3://bucket/ahead/pred/{masks[2].name}" in result.stderr


# ---- instance and panoptic sets on the store: their masks and PNGs read where items run

@pytest.fixture(scope="module")
def task_sets(s3, camvid_module, tmp_path_factory):
    """Panoptic and instance sets made from four CamVid val masks (every 3rd pixel; the
    prediction shifted and speckled), in the layouts metrics reads (mask pairs, COCO panoptic
    JSON + PNG folder, instance-id masks, COCO instances JSON + results JSON), written
    locally by the CLI's converters and uploaded to S3."""
    from panoptic_reference import CAMVID_THINGS, camvid_panoptic

    from conftest import run_cli, write_instance_masks
    from segtools.formats.instances import instance_meta
    from segtools.io.masks import read_label_mask, write_label_mask
    from segtools.io.meta import ClassMeta
    from segtools.io.presets import get_preset

    names = list(get_preset("camvid").names)
    root = tmp_path_factory.mktemp("tasks")
    rng = np.random.default_rng(7)
    for side in ("gt", "pred"):
        for file in sorted((camvid_module / "valannot").glob("*.png"))[:4]:
            labels = read_label_mask(str(file)).labels[::3, ::3]
            if side == "pred":
                labels = np.roll(labels, (int(rng.integers(-3, 4)), int(rng.integers(-3, 4))), axis=(0, 1))
                labels = np.where(rng.random(labels.shape) < 0.01, rng.integers(0, 11, labels.shape), labels)
            semantic, instances = camvid_panoptic(labels)
            write_label_mask(semantic.astype(np.uint8), root / "pairs" / side / file.name,
                             ClassMeta(names=tuple(names), ignore_index=11))
            classes = np.full(int(instances.max(initial=0)) + 1, -1, np.int64)
            classes[instances[instances > 0]] = semantic[instances > 0]
            write_label_mask(instances.astype(np.uint16), root / "pairs" / side / "instances" / file.name,
                             instance_meta(classes.tolist(), names))
        write_instance_masks(root / "pairs" / side, root / "inst" / side, scores=side == "pred", pattern="*.png")
        converted = run_cli("convert", root / "pairs" / side, "--to", "panoptic", "--things", ",".join(CAMVID_THINGS),
                            "-o", root / "coco" / f"{side}.json")
        assert converted.code == 0, converted.stderr
    for source, target, out in (("gt", "coco", "gt.json"), ("pred", "coco-results", "results.json")):
        converted = run_cli("convert", root / "inst" / source, "--to", target, "-o", root / "inst" / out)
        assert converted.code == 0, converted.stderr
    s3.put(str(root) + "/", "bucket/tasks/", recursive=True)
    return root, "s3://bucket/tasks"


TASK_RUNS = {
    "panoptic mask pairs": ("pairs/pred", "pairs/gt"),
    "panoptic COCO JSON and PNG folders": ("coco/pred.json", "coco/gt.json"),
    "instance-id masks": ("inst/pred", "inst/gt"),
    "COCO results against COCO instances": ("inst/results.json", "inst/gt.json"),
    "instance-id masks against COCO instances": ("inst/pred", "inst/gt.json"),
}


@pytest.mark.parametrize("run", sorted(TASK_RUNS))
def test_instance_and_panoptic_sets_on_the_store_are_read_where_items_run(cli, task_sets, no_staging, run):
    """Every layout of instance and panoptic metrics, with staging forbidden: the report of
    the same command on the local files, task recognised from the objects."""
    root, url = task_sets
    pred, gt = TASK_RUNS[run]
    here = cli("metrics", root / pred, root / gt, "-f", "json")
    there = cli("metrics", f"{url}/{pred}", f"{url}/{gt}", "-f", "json")
    assert here.code == 0 and there.code == 0, (here.stderr, there.stderr)
    assert there.stdout == here.stdout
    report = json.loads(here.stdout)
    assert report["task"] == ("panoptic" if "panoptic" in run else "instance")
    assert 0 < report["pq" if "panoptic" in run else "ap"] < 1


def test_panoptic_png_folders_given_on_the_store_and_a_bad_png_named_by_its_url(cli, s3, task_sets, no_staging):
    root, url = task_sets
    s3.copy("bucket/tasks/coco/gt/", "bucket/tasks/elsewhere/gt-pngs/", recursive=True)
    here = cli("metrics", root / "coco" / "pred.json", root / "coco" / "gt.json", "-f", "json")
    there = cli("metrics", f"{url}/coco/pred.json", f"{url}/coco/gt.json", "-f", "json",
                "--gt-folder", f"{url}/elsewhere/gt-pngs/", "--jobs", "2")
    assert there.code == 0, there.stderr
    assert there.stdout == here.stdout
    victim = sorted(key for key in s3.find("bucket/tasks/elsewhere/gt-pngs/"))[1]
    s3.pipe_file(victim, s3.cat(victim)[:150])
    bad = cli("metrics", f"{url}/coco/pred.json", f"{url}/coco/gt.json", "--gt-folder", f"{url}/elsewhere/gt-pngs/")
    assert_one_line_error(bad, 1)
    assert f"s3://{victim}" in bad.stderr
    missing = cli("metrics", f"{url}/coco/pred.json", f"{url}/coco/gt.json", "--gt-folder", f"{url}/nowhere")
    assert_one_line_error(missing, 1)
    assert f"{url}/nowhere" in missing.stderr


def test_dask_workers_read_panoptic_pngs_and_instance_masks_from_the_store(cli, task_sets, no_staging):
    """``--dask local:2``: each worker reads its images' PNGs and masks from S3 itself, so a
    cluster needs no shared file system for instance and panoptic evaluation."""
    pytest.importorskip("distributed", reason="the dask extra (dask[distributed]) is not installed")
    root, url = task_sets
    for pred, gt in (TASK_RUNS["panoptic COCO JSON and PNG folders"], TASK_RUNS["instance-id masks"]):
        here = cli("metrics", root / pred, root / gt, "-f", "json")
        there = cli("metrics", f"{url}/{pred}", f"{url}/{gt}", "-f", "json", "--dask", "local:2")
        assert here.code == 0 and there.code == 0, there.stderr
        assert there.stdout == here.stdout


# ---- tile split: the source read from the store, each band's tiles written there by whoever cuts it

@pytest.fixture(scope="module")
def scene(s3, camvid_module, tmp_path_factory):
    """A CamVid frame and its mask (PNG), and the frame as .npy, locally and on S3."""
    import shutil

    root = tmp_path_factory.mktemp("scene")
    shutil.copy(camvid_module / "val" / "0016E5_07959.png", root / "scene.png")
    shutil.copy(camvid_module / "valannot" / "0016E5_07959.png", root / "scene_mask.png")
    import cv2

    np.save(root / "frame.npy", cv2.imread(str(root / "scene.png"), cv2.IMREAD_COLOR)[..., ::-1].copy())
    s3.put(str(root) + "/", "bucket/scene/", recursive=True)
    return root, "s3://bucket/scene"


@pytest.mark.parametrize("dask", [False, True], ids=["here", "dask"])
def test_tile_split_reads_the_store_and_writes_each_tile_as_an_object(cli, s3, scene, no_staging, tmp_path, dask):
    root, url = scene
    if dask:
        pytest.importorskip("distributed", reason="the dask extra (dask[distributed]) is not installed")
    runs = {
        "png": (("scene.png", "--mask", "scene_mask.png", "--min-foreground", "0.2"), 20),
        "npy": (("frame.npy", "--size", "200", "--overlap", "40"), 6),
    }
    for name, ((source, *options), least) in runs.items():
        there_options = [f"{url}/{o}" if o.endswith(".png") else o for o in options]
        here_options = [str(root / o) if o.endswith(".png") else o for o in options]
        common = ("--size", "128", "--overlap", "32") if name == "png" else ()
        there = cli("tile", "split", f"{url}/{source}", *there_options, *common, "-o", f"s3://bucket/tiles-{dask}/{name}/",
                    *(("--dask", "local:2") if dask else ()))
        here = cli("tile", "split", root / source, *here_options, *common, "-o", tmp_path / name)
        assert there.code == 0 and here.code == 0, (name, there.stderr, here.stderr)
        expected = _files(tmp_path / name)
        assert len(expected) >= least and "manifest.json" in expected, name
        assert _objects(s3, f"bucket/tiles-{dask}/{name}/") == expected, name


def test_a_failed_tile_split_on_the_store_leaves_no_tiles(cli, s3, scene, no_staging):
    """The last band cannot be written (its first tile would replace the input itself): the
    tiles of the bands before it are removed again, and the error is one line."""
    root, _ = scene
    s3.put_file(str(root / "scene.png"), "bucket/cut/a_y00232_x00000.png")
    result = cli("tile", "split", "s3://bucket/cut/a_y00232_x00000.png", "--name", "a", "--size", "128",
                 "--overlap", "0", "-o", "s3://bucket/cut/")
    assert_one_line_error(result, 1)
    assert "refusing to overwrite an input" in result.stderr
    assert sorted(s3.find("bucket/cut/")) == ["bucket/cut/a_y00232_x00000.png"]


# ---- convert: a folder of masks on the store is read mask by mask

@pytest.mark.parametrize("target", ["coco", "coco-rle", "panoptic"])
def test_convert_reads_a_prefix_of_masks_object_by_object(cli, task_sets, local, uploaded, no_staging, tmp_path,
                                                           target):
    root, url = task_sets
    source, local_source = ((f"{url}/pairs/gt/", root / "pairs" / "gt") if target == "panoptic"
                            else (f"{uploaded}/gt/", local / "gt"))
    name = "out.json"
    there = cli("convert", source, "--to", target, "--classes", "camvid", "-o", tmp_path / "there" / name)
    here = cli("convert", local_source, "--to", target, "--classes", "camvid", "-o", tmp_path / "here" / name)
    assert there.code == 0 and here.code == 0, (there.stderr, here.stderr)
    expected = _files(tmp_path / "here")
    assert len(expected) >= (5 if target == "panoptic" else 1)  # panoptic: the JSON and a PNG per mask
    assert _files(tmp_path / "there") == expected


def test_convert_on_dask_workers_reads_masks_from_the_store(cli, local, uploaded, no_staging, tmp_path):
    pytest.importorskip("distributed", reason="the dask extra (dask[distributed]) is not installed")
    there = cli("convert", f"{uploaded}/gt/", "--to", "coco", "--classes", "camvid", "--dask", "local:2")
    here = cli("convert", local / "gt", "--to", "coco", "--classes", "camvid")
    assert there.code == 0 and here.code == 0, there.stderr
    assert there.stdout == here.stdout and json.loads(here.stdout)["annotations"]


def test_convert_stages_other_layouts_on_the_store_and_writes_whole_objects(cli, s3, local, tmp_path):
    """A YOLO dataset on the store is not a folder of masks: staged, as before, and its COCO
    output goes up as one object; the library says so by name rather than guessing."""
    from segtools.formats import registry

    made = cli("convert", local / "gt", "--to", "yolo-seg", "--classes", "camvid", "-o", tmp_path / "yolo")
    assert made.code == 0, made.stderr
    s3.put(str(tmp_path / "yolo") + "/", "bucket/yolo/", recursive=True)
    assert not registry.store_holds_masks("s3://bucket/yolo/")
    with pytest.raises(Exception, match="not a plain folder of masks"):
        registry.detect(["s3://bucket/yolo/"])
    size = ("--image-size", "90x120")  # no photos in this dataset
    there = cli("convert", "s3://bucket/yolo/", "--to", "coco", *size, "-o", "s3://bucket/yolo-coco.json")
    here = cli("convert", tmp_path / "yolo", "--to", "coco", *size, "-o", tmp_path / "yolo-coco.json")
    assert there.code == 0 and here.code == 0, there.stderr
    assert s3.cat("bucket/yolo-coco.json") == (tmp_path / "yolo-coco.json").read_bytes()


@pytest.mark.parametrize("run", ["panoptic mask pairs", "panoptic COCO JSON and PNG folders", "instance-id masks",
                                 "instance-id masks against COCO instances"])
def test_instance_and_panoptic_in_one_process_fetch_their_objects_ahead(cli, task_sets, no_staging, monkeypatch, run):
    """``--jobs 1``: the PNGs (or masks) of the next images are fetched by threads while the
    current one is measured — several GETs in flight — with the local report."""
    import threading
    import time

    from segtools.io import remote

    root, url = task_sets
    pred, gt = TASK_RUNS[run]
    lock, state = threading.Lock(), {"now": 0, "most": 0}
    fetch = remote.read_object

    def slow(path, size=None):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        try:
            time.sleep(0.02)
            return fetch(path, size)
        finally:
            with lock:
                state["now"] -= 1

    monkeypatch.setattr(remote, "read_object", slow)
    there = cli("metrics", f"{url}/{pred}", f"{url}/{gt}", "-f", "json", "--jobs", "1")
    here = cli("metrics", root / pred, root / gt, "-f", "json")
    assert there.code == 0 and here.code == 0, there.stderr
    assert there.stdout == here.stdout
    assert state["most"] >= 2
