"""``--dask``: batches on a real LocalCluster of 2 worker processes on 127.0.0.1.

Same bytes as a local run, bad items named, an unreachable scheduler refused before anything
is written, a worker killed with SIGKILL mid-batch survived. One cluster for the module.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_one_line_error, write_instance_masks

distributed = pytest.importorskip("distributed", reason="the dask extra (dask[distributed]) is not installed")


@pytest.fixture(scope="module")
def scheduler():
    import logging

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None, silence_logs=logging.ERROR)
    try:
        yield cluster
    finally:
        cluster.close()


def _write_png(path: Path, labels: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), labels)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    import cv2

    from conftest import CAMVID

    if not (CAMVID / "valannot").is_dir():
        pytest.skip("../shared/data/camvid is not present beside the project")
    camvid = CAMVID
    root = tmp_path_factory.mktemp("dask")
    rng = np.random.default_rng(7)
    for number, file in enumerate(sorted((camvid / "valannot").glob("*.png"))[:6]):
        gt = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)[:120, :160]
        pred = np.roll(gt, 1 + number, axis=0).copy()
        flip = rng.random(gt.shape) < 0.04
        pred[flip] = rng.integers(0, 11, int(flip.sum()))
        _write_png(root / "gt" / f"s{number % 3}" / file.name, gt)
        _write_png(root / "pred" / f"s{number % 3}" / file.name, pred)
    return root


def _files(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_metrics_on_the_cluster_is_byte_identical_to_a_local_run(cli, dataset, scheduler):
    args = ("metrics", dataset / "pred", dataset / "gt", "--classes", "camvid", "-f", "json", "--boundary")
    local = cli(*args, "--jobs", "1")
    remote = cli(*args, "--dask", scheduler.scheduler_address)
    assert local.code == 0 and remote.code == 0, remote.stderr
    assert remote.stdout == local.stdout


def test_scheduler_address_from_the_environment(cli, dataset, scheduler, monkeypatch, tmp_path):
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", scheduler.scheduler_address)
    rows = tmp_path / "rows.csv"
    result = cli("metrics", dataset / "pred", dataset / "gt", "--classes", "camvid", "--per-image", rows)
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS")
    local_rows = tmp_path / "local.csv"
    local = cli("metrics", dataset / "pred", dataset / "gt", "--classes", "camvid", "--per-image", local_rows)
    assert result.code == 0 and local.code == 0, result.stderr
    assert rows.read_bytes() == local_rows.read_bytes() and result.stdout == local.stdout


def test_postprocess_and_visualize_on_the_cluster_write_the_local_bytes(cli, dataset, scheduler, tmp_path):
    for command, extra in (("postprocess", ("--smooth", "3", "--min-area", "50")), ("visualize", ("--classes", "camvid"))):
        local = cli(command, dataset / "pred", "-o", tmp_path / f"{command}-local", *extra)
        remote = cli(command, dataset / "pred", "-o", tmp_path / f"{command}-dask", *extra,
                     "--dask", scheduler.scheduler_address)
        assert local.code == 0 and remote.code == 0, remote.stderr
        assert _files(tmp_path / f"{command}-dask") == _files(tmp_path / f"{command}-local")
        assert len(_files(tmp_path / f"{command}-local")) == 6


def test_instance_metrics_on_the_cluster_are_byte_identical(cli, dataset, scheduler, tmp_path):
    write_instance_masks(dataset / "pred", tmp_path / "pred", scores=True)
    write_instance_masks(dataset / "gt", tmp_path / "gt", scores=False)
    args = ("metrics", tmp_path / "pred", tmp_path / "gt", "--task", "instance", "-f", "json")
    local = cli(*args, "--jobs", "1")
    remote = cli(*args, "--dask", scheduler.scheduler_address)
    assert local.code == 0, local.stderr
    assert remote.code == 0, remote.stderr
    assert remote.stdout == local.stdout


def test_a_bad_item_is_named_and_the_others_finish(cli, dataset, scheduler, tmp_path):
    source = tmp_path / "in"
    for file in sorted(dataset.joinpath("gt").rglob("*.png")):
        (source / file.name).parent.mkdir(parents=True, exist_ok=True)
        (source / file.name).write_bytes(file.read_bytes())
    bad = sorted(source.glob("*.png"))[1]
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    result = cli("postprocess", source, "-o", tmp_path / "out", "--smooth", "3", "--dask", scheduler.scheduler_address)
    assert_one_line_error(result, 1)
    assert bad.name in result.stderr
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(p.name for p in source.glob("*.png") if p != bad)


def test_an_unreachable_scheduler_is_one_line_naming_it_and_nothing_is_written(cli, dataset, tmp_path):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    from segtools.io import cluster

    old, cluster.CONNECT_TIMEOUT = cluster.CONNECT_TIMEOUT, 2
    try:
        result = cli("postprocess", dataset / "gt", "-o", tmp_path / "out", "--smooth", "3",
                     "--dask", f"tcp://alice:s3cret@127.0.0.1:{port}")
    finally:
        cluster.CONNECT_TIMEOUT = old
    assert_one_line_error(result, 1)
    assert f"127.0.0.1:{port}" in result.stderr and "s3cret" not in result.stderr and "alice" not in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_local_n_starts_and_stops_its_own_cluster(cli, dataset):  # local:1, the cheapest to start
    args = ("metrics", dataset / "pred", dataset / "gt", "--classes", "camvid", "-f", "json")
    local = cli(*args, "--jobs", "1")
    remote = cli(*args, "--dask", "local:1")
    assert remote.code == 0, remote.stderr
    assert remote.stdout == local.stdout
    from segtools.io.cluster import active_client

    assert active_client() is None


def test_a_worker_killed_mid_batch_has_its_items_rerun_elsewhere(dataset, scheduler, tmp_path):
    from segtools.io.batch import expand_inputs
    from segtools.io.cluster import use_dask
    from segtools.morphology.postprocess import PostprocessOptions, postprocess_files

    items = expand_inputs([str(dataset / "gt")])
    sources = [item.path for item in items] * 5  # 30 items, written under distinct names
    options = PostprocessOptions(smooth=9, min_area=40)
    local_targets = [str(tmp_path / "local" / f"{i:02d}.png") for i in range(len(sources))]
    (tmp_path / "local").mkdir()
    postprocess_files(sources, local_targets, options, 1)
    targets = [str(tmp_path / "dask" / f"{i:02d}.png") for i in range(len(sources))]
    (tmp_path / "dask").mkdir()
    with use_dask(scheduler.scheduler_address) as client:
        pids = list(client.run(os.getpid).values())
        done = []
        killed = threading.Event()

        def tick(index: int) -> None:
            done.append(index)
            if len(done) == 6 and not killed.is_set():
                os.kill(pids[0], signal.SIGKILL)
                killed.set()

        written = postprocess_files(sources, targets, options, 1, on_done=tick)
    assert killed.is_set() and written == len(sources) and done == list(range(len(sources)))
    assert _files(tmp_path / "dask") == _files(tmp_path / "local")


def _cached_models() -> int:
    from segtools.io import cluster

    return sum(1 for key in cluster._cache if key[0] == "predict")


def test_predict_loads_the_model_once_per_worker_and_writes_the_local_bytes(cli, dataset, scheduler, tmp_path):
    torch = pytest.importorskip("torch", reason="predict needs the models extra (torch)")
    import cv2

    from segtools.models import build_model
    from segtools.weights.checkpoint import make_checkpoint, save_checkpoint

    from conftest import CAMVID

    torch.manual_seed(0)
    model = build_model("unet", 11, depth=2, base_channels=4)
    checkpoint = save_checkpoint(tmp_path / "tiny.pt", make_checkpoint(
        "unet", 11, model.state_dict(), classes={"names": [f"class{i}" for i in range(11)], "ignore_index": 11},
        arch_options={"depth": 2, "base_channels": 4}))
    for file in sorted((CAMVID / "val").glob("*.png"))[:8]:
        image = cv2.imread(str(file))
        assert cv2.imwrite(str(tmp_path / "images" / file.name) if (tmp_path / "images").mkdir(exist_ok=True) is None
                           else "", image[:96, :128])
    local = cli("predict", tmp_path / "images", "--weights", checkpoint, "-o", tmp_path / "local")
    remote = cli("predict", tmp_path / "images", "--weights", checkpoint, "-o", tmp_path / "dask",
                 "--dask", scheduler.scheduler_address)
    assert local.code == 0 and remote.code == 0, remote.stderr
    assert _files(tmp_path / "dask") == _files(tmp_path / "local") and len(_files(tmp_path / "local")) == 8
    with distributed.Client(scheduler.scheduler_address, set_as_default=False) as client:
        loads = client.run(_cached_models)
    assert sum(loads.values()) >= 1 and all(count <= 1 for count in loads.values()), loads


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """Eight CamVid val frames, cropped to 96x128 (one size: one run of batches)."""
    import cv2

    from conftest import CAMVID

    files = sorted((CAMVID / "val").glob("*.png"))[:8]
    if not files:
        pytest.skip("../shared/data/camvid is not present beside the project")
    folder = tmp_path_factory.mktemp("frames")
    for file in files:
        assert cv2.imwrite(str(folder / file.name), cv2.imread(str(file))[:96, :128])
    return folder


def test_predict_with_the_default_onnx_model_writes_the_local_bytes(cli, frames, scheduler, tmp_path):
    pytest.importorskip("onnxruntime", reason="the default model runs in ONNX Runtime (segtools[onnx])")
    from segtools.cli.predict_backends import default_onnx

    if default_onnx(None) is None:
        pytest.skip("the bundled default model has no ONNX file here")
    local = cli("predict", frames, "-o", tmp_path / "local", "--batch", "3")
    remote = cli("predict", frames, "-o", tmp_path / "dask", "--batch", "3", "--dask", scheduler.scheduler_address)
    assert local.code == 0 and remote.code == 0, remote.stderr
    assert _files(tmp_path / "dask") == _files(tmp_path / "local") and len(_files(tmp_path / "local")) == 8
    with distributed.Client(scheduler.scheduler_address, set_as_default=False) as client:
        specs = client.run(lambda: [key[1] for key in __import__("segtools.io.cluster").io.cluster._cache
                                    if key[0] == "predict" and key[1].startswith("RunnerSpec(")])
    assert all(len(found) <= 1 for found in specs.values()) and any(specs.values()), specs


@pytest.mark.slow  # a ResNet-50 Mask R-CNN loaded in this process and in both workers
@pytest.mark.usefixtures("torch_one_thread")  # as in a worker: torch's sums change with its thread count
def test_predict_with_an_instance_model_writes_the_local_masks_and_coco_results(cli, frames, scheduler, tmp_path):
    torch = pytest.importorskip("torch", reason="instance models need the models extra (torch)")
    import golden_detection

    from segtools.models.detection import build_detector
    from segtools.weights.checkpoint import make_checkpoint, save_checkpoint

    arch, sizes = "maskrcnn-resnet50-fpn", {"min_size": 96, "max_size": 128}
    with torch.device("meta"):
        model = build_detector(arch, 5, **sizes)
    golden_detection.fill_detector(model)
    checkpoint = save_checkpoint(tmp_path / "maskrcnn.pt", make_checkpoint(arch, 5, model.state_dict(),
                                                                            arch_options=sizes))
    few = tmp_path / "few"  # three frames: two batches of a ResNet-50, one of them short
    few.mkdir()
    for file in sorted(frames.iterdir())[:3]:
        (few / file.name).write_bytes(file.read_bytes())
    args = ("predict", few, "--weights", checkpoint, "--arch", arch, "--min-score", "0.3", "--batch", "2")
    _masks_and_results_equal_a_local_run(cli, args, scheduler.scheduler_address, tmp_path, 3)


def _masks_and_results_equal_a_local_run(cli, args, address: str, tmp_path: Path, count: int) -> list:
    """``predict ARGS`` into instance masks and into COCO results, locally and on the
    cluster at ``address``: the same bytes; the COCO results."""
    local = cli(*args, "-o", tmp_path / "local")
    remote = cli(*args, "-o", tmp_path / "dask", "--dask", address)
    assert local.code == 0 and remote.code == 0, remote.stderr
    assert _files(tmp_path / "dask") == _files(tmp_path / "local") and len(_files(tmp_path / "local")) == count
    local = cli(*args, "--format", "coco", "-o", tmp_path / "local.json")
    remote = cli(*args, "--format", "coco", "-o", tmp_path / "dask.json", "--dask", address)
    assert local.code == 0 and remote.code == 0, remote.stderr
    assert (tmp_path / "dask.json").read_bytes() == (tmp_path / "local.json").read_bytes()
    return json.loads((tmp_path / "local.json").read_text())


def test_predict_to_stdout_on_the_cluster_is_refused_by_name(cli, frames, scheduler):
    pytest.importorskip("onnxruntime", reason="the default model runs in ONNX Runtime (segtools[onnx])")
    result = cli("predict", frames / sorted(p.name for p in frames.iterdir())[0], "--dask", scheduler.scheduler_address)
    assert_one_line_error(result, 2)
    assert "--dask" in result.stderr and "stdout" in result.stderr


def test_tile_split_on_the_cluster_writes_the_local_tiles_and_manifest(cli, scheduler, tmp_path):
    from conftest import CAMVID

    image = CAMVID / "val" / "0016E5_07959.png"
    mask = CAMVID / "valannot" / "0016E5_07959.png"
    if not image.is_file() or not mask.is_file():
        pytest.skip("../shared/data/camvid is not present beside the project")
    args = ("tile", "split", image, "--mask", mask, "--size", "128", "--overlap", "32", "--min-foreground", "0.2",
            "--background", "0")
    local = cli(*args, "-o", tmp_path / "local")
    remote = cli(*args, "-o", tmp_path / "dask", "--dask", scheduler.scheduler_address)
    assert local.code == 0 and remote.code == 0, remote.stderr
    tiles = _files(tmp_path / "local")
    assert _files(tmp_path / "dask") == tiles and len(tiles) > 10 and "manifest.json" in tiles


def test_a_failing_band_leaves_no_tiles(cli, scheduler, tmp_path):
    from conftest import CAMVID

    image = CAMVID / "val" / "0016E5_07959.png"
    if not image.is_file():
        pytest.skip("../shared/data/camvid is not present beside the project")
    out = tmp_path / "tiles"
    out.mkdir()
    (out / "0016E5_07959_y00232_x00000.png").mkdir()  # a folder where a tile of the last band goes
    result = cli("tile", "split", image, "--size", "128", "--overlap", "0", "-o", out,
                 "--dask", scheduler.scheduler_address)
    assert_one_line_error(result, 1)
    assert sorted(p.name for p in out.iterdir()) == ["0016E5_07959_y00232_x00000.png"]


@pytest.fixture(scope="module")
def sam_inputs(tmp_path_factory):
    """The small seeded SAM of the SAM tests, saved as a state dict, and four photos."""
    pytest.importorskip("torch", reason="SAM needs the models extra (torch)")
    import torch
    from PIL import Image

    import golden_util
    from segtools.models.sam.model import SamConfig, build_sam

    root = tmp_path_factory.mktemp("sam")
    model = build_sam(SamConfig(**golden_util.SAM_TINY))
    golden_util.fill_deterministic(model)
    torch.save(model.state_dict(), root / "tiny_sam.pth")
    image = golden_util.sam_golden_image()
    (root / "images").mkdir()
    for number, picture in enumerate((image, image[::-1], image[:, ::-1], np.roll(image, 20, axis=1)), 1):
        Image.fromarray(np.ascontiguousarray(picture)).save(root / "images" / f"{number}.png")
    return root


@pytest.mark.usefixtures("torch_one_thread")  # as in a worker: torch's sums change with its thread count
def test_sam_prompts_everything_and_boxes_to_masks_on_the_cluster_equal_a_local_run(cli, sam_inputs, scheduler,
                                                                                     tmp_path):
    """Segment Anything on the cluster: the same prompts on every image, segment-everything
    (COCO results gathered in input order) and a box dataset labelled by the workers — each
    the bytes of a local run; each worker opens the model once."""
    root, address = sam_inputs, scheduler.scheduler_address
    base = ("predict", root / "images", "--weights", root / "tiny_sam.pth")
    runs = {
        "boxes": ("--box", "28,18,92,72", "--box", "118,88,192,142", "-o"),
        "point": ("--point", "60,45", "-o"),
        "everything.json": ("--everything", "--points-per-side", "4", "--pred-iou-thresh", "0", "--stability-thresh",
                            "0", "--box-nms", "1", "--format", "coco", "-o"),
        "everything": ("--everything", "--points-per-side", "4", "--pred-iou-thresh", "0", "--stability-thresh", "0",
                       "-o"),
        "nothing": ("--everything", "--points-per-side", "4", "-o"),  # no mask passes: empty instance masks
    }
    for name, args in runs.items():
        local = cli(*base, *args, tmp_path / "local" / name)
        remote = cli(*base, *args, tmp_path / "dask" / name, "--dask", address)
        assert local.code == 0 and remote.code == 0, (name, remote.stderr)
        here, there = tmp_path / "local" / name, tmp_path / "dask" / name
        if here.is_dir():
            assert _files(there) == _files(here) and len(_files(here)) == 4, name
        else:
            assert there.read_bytes() == here.read_bytes() and json.loads(here.read_text()), name
    images = [{"id": n, "file_name": f"{n}.png", "width": 200, "height": 150} for n in range(1, 5)]
    boxes = [{"id": k, "image_id": 1 + k % 4, "category_id": 1, "bbox": [20 + k, 15, 60, 50], "area": 3000,
              "iscrowd": 0} for k in range(8)]
    (tmp_path / "boxes.json").write_text(json.dumps({"images": images, "annotations": boxes,
                                                     "categories": [{"id": 1, "name": "thing"}]}))
    label = (*base, "--prompts", tmp_path / "boxes.json", "--format", "coco")
    local = cli(*label, "-o", tmp_path / "labelled-local.json")
    remote = cli(*label, "-o", tmp_path / "labelled-dask.json", "--dask", address)
    assert local.code == 0 and remote.code == 0, remote.stderr
    assert (tmp_path / "labelled-dask.json").read_bytes() == (tmp_path / "labelled-local.json").read_bytes()
    with distributed.Client(address, set_as_default=False) as client:
        opened = client.run(lambda: [repr(key[1]) for key in __import__("segtools.io.cluster").io.cluster._cache
                                     if key[0] == "predict" and "SamPrompting(" in repr(key[1])])
    assert any(opened.values()), opened  # the prompting runs went through the workers' model cache


def test_sam_shards_cover_the_images_once(cli, sam_inputs, tmp_path):
    base = ("predict", sam_inputs / "images", "--weights", sam_inputs / "tiny_sam.pth", "--point", "60,45")
    whole = cli(*base, "-o", tmp_path / "whole")
    assert whole.code == 0, whole.stderr
    for index in range(3):
        part = cli(*base, "-o", tmp_path / "parts", "--shard", f"{index}/3")
        assert part.code == 0, part.stderr
    assert _files(tmp_path / "parts") == _files(tmp_path / "whole")


def test_coco_results_of_shards_join_into_the_whole_runs(cli, sam_inputs, tmp_path):
    """Names that are not numbers: ids count over all the inputs, not over a shard's, so the
    shards' results join without two images sharing an id."""
    folder = tmp_path / "named"
    folder.mkdir()
    for number, file in enumerate(sorted((sam_inputs / "images").iterdir())):
        (folder / f"frame_{'abcd'[number]}.png").write_bytes(file.read_bytes())
    base = ("predict", folder, "--weights", sam_inputs / "tiny_sam.pth", "--box", "28,18,92,72", "--format", "coco")
    whole = cli(*base, "-o", tmp_path / "whole.json")
    assert whole.code == 0, whole.stderr
    joined = []
    for index in range(2):
        part = cli(*base, "-o", tmp_path / f"part{index}.json", "--shard", f"{index}/2")
        assert part.code == 0, part.stderr
        joined += json.loads((tmp_path / f"part{index}.json").read_text())
    expected = json.loads((tmp_path / "whole.json").read_text())
    assert sorted(e["image_id"] for e in expected) == [1, 2, 3, 4]
    assert sorted(joined, key=lambda e: e["image_id"]) == sorted(expected, key=lambda e: e["image_id"])


def test_yolo_seg_on_the_cluster_writes_the_local_masks_and_coco_results(cli, frames, scheduler, tmp_path):
    """A YOLO-seg ONNX graph (the tiny one of the YOLO tests): each worker opens it once;
    instance masks and COCO results equal those of a local run on one thread."""
    pytest.importorskip("onnxruntime", reason="YOLO-seg graphs run in ONNX Runtime (segtools[onnx])")
    pytest.importorskip("onnx", reason="the test writes its graph with onnx")
    from test_backends_yolo import make_yolo_graph

    graph = make_yolo_graph(tmp_path / "yolo-seg.onnx")
    args = ("predict", frames, "--model", graph, "--min-score", "0.05", "--threads", "1")
    assert _masks_and_results_equal_a_local_run(cli, args, scheduler.scheduler_address, tmp_path, 8)  # some found


def test_staged_items_run_here_when_a_worker_is_on_another_machine(cli, dataset, scheduler, monkeypatch):
    """A mask prefix that is not a plain folder of masks (a note beside them) is staged to a
    local folder; workers on other machines could not read it, so the items run in this
    process, with a warning, and give the local bytes. Other machines are simulated by
    host names; no task may reach the cluster."""
    import fsspec

    from segtools.io import cluster

    masks = sorted((dataset / "gt").rglob("*.png"))
    store = fsspec.filesystem("memory")
    for path in masks:
        store.pipe(f"/staged-convert/{path.name}", path.read_bytes())
    store.pipe("/staged-convert/notes.txt", b"not a mask")
    local = dataset.parent / "staged-convert-local"
    local.mkdir(exist_ok=True)
    for path in masks:
        (local / path.name).write_bytes(path.read_bytes())
    here = cli("convert", local, "--to", "coco", "--classes", "camvid")
    assert here.code == 0, here.stderr

    def no_tasks(*args, **kwargs):
        raise AssertionError("a task was sent to the cluster")

    monkeypatch.setattr(distributed.Client, "submit", no_tasks)
    monkeypatch.setattr(cluster, "workers_here", lambda client: False)
    there = cli("convert", "memory://staged-convert/", "--to", "coco", "--classes", "camvid",
                "--dask", scheduler.scheduler_address)
    assert there.code == 0, there.stderr
    assert there.stdout == here.stdout and json.loads(here.stdout)["annotations"]
    assert "staged on this machine" in there.stderr and "run here" in there.stderr


def test_workers_here_tells_this_machine_from_others(scheduler):
    from segtools.io.cluster import workers_here

    class Fake:
        def __init__(self, *hosts):
            self.hosts = hosts

        def scheduler_info(self, n_workers=-1):
            return {"workers": {f"tcp://{host}:1": {"host": host} for host in self.hosts}}

    with distributed.Client(scheduler.scheduler_address, set_as_default=False) as client:
        assert workers_here(client)  # the LocalCluster on 127.0.0.1
    assert workers_here(Fake("127.0.0.1", "localhost"))
    assert not workers_here(Fake("127.0.0.1", "203.0.113.7"))  # a documentation address: never this machine
    assert not workers_here(Fake())  # no workers yet: where they start is unknown
