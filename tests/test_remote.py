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
