"""The process around the library: closed or broken standard streams, a full disk, file
names no file can have, stdin that is an output, and warnings that are not the user's."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from conftest import assert_clean_refusal, run_cli


@pytest.fixture
def mask_png(tmp_path):
    from segtools.io.masks import write_label_mask

    path = tmp_path / "m.png"
    write_label_mask(np.random.default_rng(0).integers(0, 5, (300, 300)).astype(np.uint8), path)
    return path


def _segtools(args, **popen):
    """Run ``python -m segtools ARGS`` with the given standard streams; (code, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "segtools", *map(str, args)],
                            stderr=subprocess.PIPE, **popen)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err.decode("utf-8", "replace")


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("segtools: error: "), stderr
    assert "internal error" not in lines[0] and "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize("args", [["info", "{m}"], ["info", "{m}", "--format", "json"],
                                  ["postprocess", "{m}"], ["visualize", "{m}"], ["info", "--help"]])
def test_reader_gone_exits_141_silently(mask_png, args):
    """`… | head`: the reader closed the pipe before we wrote; 141 as for SIGPIPE, no message."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write now fails with EPIPE, deterministically
    try:
        code, err = _segtools([a.format(m=mask_png) for a in args], stdin=subprocess.DEVNULL,
                              stdout=write_end)
    finally:
        os.close(write_end)
    assert code == 141, err
    assert err == ""


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("command", ["info", "postprocess"])
def test_full_disk_on_stdout_is_one_line(mask_png, command):
    with open("/dev/full", "wb") as full:
        code, err = _segtools([command, mask_png], stdin=subprocess.DEVNULL, stdout=full)
    assert code == 1
    assert "No space left on device" in _one_error_line(err)


@pytest.mark.parametrize("command", ["info", "postprocess", "visualize", "metrics", "convert"])
def test_closed_stdin_reads_as_no_input(command):
    code, err = _segtools([command] + (["-", "-"] if command == "metrics" else []),
                          stdout=subprocess.DEVNULL, preexec_fn=lambda: os.close(0))
    assert code in (1, 2)
    _one_error_line(err)


@pytest.mark.parametrize("command", ["info", "postprocess"])
def test_closed_stdout_is_one_line_and_nothing_lands_on_fd_1(mask_png, tmp_path, command):
    """With fd 1 closed, the first file opened would get fd 1; it must not receive output."""
    out = tmp_path / "out.png"
    args = [command, mask_png] + (["-o", out] if command == "postprocess" else [])
    code, err = _segtools(args, stdin=subprocess.DEVNULL, preexec_fn=lambda: os.close(1))
    if command == "postprocess":  # writes its file, needs no stdout
        assert code == 0, err
        from segtools.io.masks import read_label_mask

        np.testing.assert_array_equal(read_label_mask(out).labels, read_label_mask(mask_png).labels)
    else:
        assert code == 1
        assert "stdout: closed" in _one_error_line(err)


def test_stdin_redirected_from_the_output_is_protected(mask_png):
    """`postprocess -o m.png < m.png` would replace its own input."""
    before = mask_png.read_bytes()
    with open(mask_png, "rb") as stdin:
        code, err = _segtools(["postprocess", "--min-area", "4", "-o", mask_png], stdin=stdin,
                              stdout=subprocess.DEVNULL)
    assert code == 1
    assert "refusing to overwrite an input" in _one_error_line(err)
    assert mask_png.read_bytes() == before


def test_hard_link_to_an_input_is_protected(mask_png, tmp_path):
    link = tmp_path / "link.png"
    os.link(mask_png, link)
    result = run_cli("postprocess", mask_png, "--min-area", "4", "-o", link)
    assert_clean_refusal(result)
    assert "refusing to overwrite an input" in result.stderr
    assert link.read_bytes() == mask_png.read_bytes()


@pytest.mark.parametrize("name, message", [("", "an empty file name"), ("a\x00b", "NUL byte")])
def test_impossible_input_names(name, message):
    result = run_cli("info", name)
    assert_clean_refusal(result)
    assert message in result.stderr
    assert "\x00" not in result.stderr


def test_impossible_output_name(mask_png):
    result = run_cli("postprocess", mask_png, "-o", "x\x00.png")
    assert_clean_refusal(result)
    assert "NUL byte" in result.stderr


def test_library_warnings_are_hidden_or_one_line(monkeypatch):
    from segtools.cli import common

    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        common.quiet_library_warnings()
        np.float64(1.0) / np.float64(0.0)
        assert err.getvalue() == ""
        monkeypatch.setattr(common.STATE, "verbose", True)
        np.float64(1.0) / np.float64(0.0)
    lines = err.getvalue().splitlines()
    assert lines == ["segtools: warning: RuntimeWarning: divide by zero encountered in scalar divide"]
