"""Shared fixtures: the CamVid data (skipped cleanly when absent) and CLI runners."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
CAMVID = SHARED_DATA / "camvid"


if os.environ.get("CI"):  # CI is reproducible: hypothesis draws the same examples on every run
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile("ci", derandomize=True, database=None)
    _hypothesis_settings.load_profile("ci")


def pytest_addoption(parser) -> None:
    parser.addoption("--fuzz-long", action="store_true", default=False,
                     help="fuzz each reader with 1,000 cases instead of 200 (tests/test_fuzz.py)")


@pytest.fixture
def camvid() -> Path:
    """``../shared/data/camvid`` (train/, trainannot/, val/, valannot/); skips when absent."""
    if not (CAMVID / "valannot").is_dir():
        pytest.skip("../shared/data/camvid is not present beside the project")
    return CAMVID


@dataclass
class CliResult:
    code: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")


class _KeptBytes(io.BytesIO):
    def close(self) -> None:  # the wrapper's finaliser must not discard what was captured
        pass


class _Stream(io.TextIOWrapper):
    def isatty(self) -> bool:  # pipes, never a terminal
        return False


def run_cli(*args: str, input: bytes | None = None) -> CliResult:
    """Run ``segtools ARGS`` in this process with stdin/stdout/stderr captured."""
    from segtools.cli import common
    from segtools.cli.app import run
    from segtools.io import limits

    old = sys.stdin, sys.stdout, sys.stderr
    out_bytes = _KeptBytes()
    sys.stdin = _Stream(io.BytesIO(input or b""), encoding="utf-8")
    sys.stdout = _Stream(out_bytes, encoding="utf-8", write_through=True)
    err = io.StringIO()
    sys.stderr = err
    try:
        code = run([str(a) for a in args])
        sys.stdout.flush()
    finally:
        sys.stdin, sys.stdout, sys.stderr = old
        common.STATE.quiet = common.STATE.verbose = False
        limits.set_max_pixels(None)
    return CliResult(code, out_bytes.getvalue(), err.getvalue())


def run_proc(*args: str, input: bytes | None = None, cwd: str | os.PathLike | None = None,
             env: dict | None = None, timeout: float = 300) -> CliResult:
    """Run ``python -m segtools ARGS`` as a real subprocess (pipes, exit codes)."""
    full_env = dict(os.environ, **(env or {}))
    proc = subprocess.run([sys.executable, "-m", "segtools", *map(str, args)], input=input or b"",
                          capture_output=True, cwd=cwd, env=full_env, timeout=timeout)
    return CliResult(proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"))


def run_bounded(*args: str, input: bytes | None = None, mem_mb: int = 1536, timeout: float = 30,
                cwd: str | os.PathLike | None = None, env: dict | None = None) -> CliResult:
    """:func:`run_proc` under an address-space limit of ``mem_mb`` MiB (Python, numpy, OpenCV
    and torch take ~1 GiB of it to start): a reader that allocates what a hostile file
    declares fails with ``out of memory`` or a signal instead of passing."""
    import resource

    limit = mem_mb << 20

    def _limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    full_env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", **(env or {}))
    proc = subprocess.run([sys.executable, "-m", "segtools", *map(str, args)], input=input or b"",
                          capture_output=True, cwd=cwd, env=full_env, timeout=timeout, preexec_fn=_limit)
    return CliResult(proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"))


@pytest.fixture(scope="module")
def torch_one_thread():
    """One intra-op torch thread for a module: small forwards are fastest (and fairest to a
    shared CI) so. Use with ``pytestmark = pytest.mark.usefixtures("torch_one_thread")``."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def cli():
    """In-process runner: ``cli("metrics", a, b, input=b"...") -> CliResult``."""
    return run_cli


@pytest.fixture
def proc():
    """Subprocess runner: ``proc("postprocess", input=png_bytes) -> CliResult``."""
    return run_proc


def assert_one_line_error(result: CliResult, code: int | None = None) -> None:
    """The contract for bad input: non-zero exit, one ``segtools: error:`` line, no traceback."""
    assert result.code != 0, result
    if code is not None:
        assert result.code == code, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("segtools: error: ")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def assert_clean_refusal(result: CliResult, code: int | None = None) -> None:
    """The hostile-input contract, stricter than :func:`assert_one_line_error`: exit 1 or 2,
    stderr is exactly one line, ``segtools: error: …``, and it is not an internal error."""
    assert result.code in (1, 2), result
    if code is not None:
        assert result.code == code, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("segtools: error: "), result.stderr
    assert "internal error" not in lines[0], result.stderr


def write_instance_masks(labels_folder: Path, out: Path, scores: bool, pattern: str = "**/*.png") -> None:
    """Instance-id masks (class list, and scores for detections) from CamVid label masks: the
    connected regions of Pole, SignSymbol, Car and Pedestrian, under the same relative names."""
    import numpy as np
    from scipy import ndimage

    from segtools.formats.instances import instance_meta
    from segtools.io.masks import read_label_mask, write_label_mask

    names = ["Pole", "SignSymbol", "Car", "Pedestrian"]
    for file in sorted(labels_folder.glob(pattern)):
        labels = read_label_mask(str(file)).labels
        ids, classes, score = np.zeros(labels.shape, np.uint16), [-1], [0.0]
        for index, label in enumerate((2, 6, 8, 9)):
            regions, count = ndimage.label(labels == label)
            for region in range(1, count + 1):
                ids[regions == region] = len(classes)
                classes.append(index)
                score.append(round(0.2 + 0.7 * ((region * 37 + index) % 11) / 11, 3))
        meta = instance_meta(classes, names)
        if scores:
            meta.extra["instance_score"] = score
        target = out / file.relative_to(labels_folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_label_mask(ids, str(target), meta)
