"""The CLI face: global options, exit codes, one-line errors, pipes through real processes."""

from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest

from conftest import assert_one_line_error
from segtools import __version__
from segtools.io.masks import encode_label_mask
from segtools.io.meta import load_classes


def test_version_and_help(cli):
    result = cli("--version")
    assert result.code == 0 and result.text.strip() == f"segtools {__version__}"
    result = cli("--help")
    assert result.code == 0 and "Example" in result.text


def test_usage_errors_exit_2_with_one_line(cli):
    assert_one_line_error(cli("--no-such-option"), 2)
    assert_one_line_error(cli("info", "--format", "xml", "-"), 2)
    assert_one_line_error(cli("no-such-command"), 2)


def test_missing_file_exits_1(cli):
    result = cli("info", "does-not-exist.png")
    assert_one_line_error(result, 1)
    assert "does-not-exist.png" in result.stderr


def test_info_reads_stdin_and_metadata(cli):
    labels = np.array([[0, 1], [11, 11]], np.uint8)
    result = cli("info", "--format", "json", input=encode_label_mask(labels, load_classes("camvid")))
    assert result.code == 0, result.stderr
    report = json.loads(result.text)
    assert report["kind"] == "label mask" and report["values"] == {"0": 1, "1": 1, "11": 2}
    assert report["meta"]["names"][3] == "Road" and report["meta"]["ignore_index"] == 11


@pytest.mark.parametrize("payload", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\ntruncated"])
def test_bad_stdin_through_a_real_process(proc, payload):
    assert_one_line_error(proc("info", "-", input=payload), 1)


def test_traceback_only_when_debugging(proc):
    quiet = proc("info", "nope.png")
    assert "Traceback" not in quiet.stderr
    loud = proc("--verbose", "info", "nope.png")
    assert loud.code == 1 and "Traceback" in loud.stderr


def test_max_pixels_option(cli):
    data = encode_label_mask(np.zeros((50, 50), np.uint8))
    assert_one_line_error(cli("--max-pixels", "100", "info", "-", input=data), 1)
    assert cli("--max-pixels", "0", "info", "-", input=data).code == 0


def test_binary_is_never_written_to_a_terminal(monkeypatch):
    from segtools.errors import OutputError
    from segtools.io import streams

    monkeypatch.setattr(streams, "stdout_is_terminal", lambda: True)
    with pytest.raises(OutputError, match="terminal"):
        streams.write_stdout(b"\x89PNG", "a PNG mask")


def test_python_dash_m_and_console_script_agree(tmp_path):
    """The installed ``segtools`` script (beside this interpreter) and ``python -m segtools``
    give the same output and exit code, for success and for a one-line error."""
    script = Path(sys.executable).with_name("segtools")
    if not script.is_file():
        pytest.skip("the segtools console script is not installed beside this Python (pip install -e .)")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    for args in (["--version"], ["info", str(tmp_path / "bad.png")]):
        by_module = subprocess.run([sys.executable, "-m", "segtools", *args], capture_output=True, text=True)
        by_script = subprocess.run([str(script), *args], capture_output=True, text=True)
        assert (by_script.returncode, by_script.stdout, by_script.stderr) == \
            (by_module.returncode, by_module.stdout, by_module.stderr)
    assert by_module.returncode == 1 and by_module.stderr.startswith("segtools: error: ")
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.strip() == f"segtools {__version__}"


def test_help_does_not_import_torch_or_numpy():
    code = ("import sys; from segtools.cli.app import run; rc = run(['--help']); "
            "print('torch' in sys.modules, 'numpy' in sys.modules, file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stderr.strip().splitlines()[-1] == "False False", out.stderr


@pytest.mark.parametrize("args, expected", [
    (["metrics", "pred/", "gt/"], "metrics"),
    (["-q", "--max-pixels", "5", "info", "x.png"], "info"),
    (["--max-pixels=5", "-qv", "visualize", "draw"], "visualize"),
    (["--help"], None),
    (["-h", "metrics"], None),
    (["--version"], None),
    ([], None),
    (["metrcs"], None),
    (["--max-pixels", "metrics"], None),  # "metrics" is the option's value here
])
def test_invoked_command_finds_the_subcommand_past_global_options(args, expected):
    from segtools.cli.app import invoked_command

    assert invoked_command(args) == expected


def test_a_run_builds_only_its_own_subcommand(cli):
    """One subcommand's run imports and builds only that subcommand (start-up time), while
    top-level help and a mistyped name still see them all."""
    code = ("import sys; from segtools.cli.app import COMMAND_MODULES, run; rc = run(sys.argv[1:]); "
            "print(sorted(m for m in sys.modules if m.startswith('segtools.cli.') and "
            "m.split('.')[-1] in COMMAND_MODULES), file=sys.stderr)")
    for args, loaded in ((["info", "--help"], ["segtools.cli.info"]),
                         (["--help"], None), (["metrcs"], None)):
        out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
        modules = eval(out.stderr.strip().splitlines()[-1])
        if loaded is None:
            assert len(modules) == 9, modules
        else:
            assert modules == loaded
    result = cli("metrcs")
    assert result.code == 2 and "Did you mean 'metrics'" in result.stderr


_FAULTS_SCRIPT = """
import resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from segtools.io.parallel import reuse_freed_memory
    assert reuse_freed_memory()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(40):  # a batch: two same-size 2 MiB images at a time, freed after each step
    a = np.ones((1024, 2048), np.uint8)
    b = np.ones((1024, 2048), np.uint8)
    del a, b
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning")
def test_cli_keeps_freed_image_buffers_for_the_next_image():
    """With glibc's defaults each 2 MiB image buffer is mapped fresh and faulted in page by
    page; after reuse_freed_memory() (the CLI calls it as it starts) a batch reuses the freed buffers (counted in minor page
    faults, not time)."""
    import os

    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (ValueError, OSError):
        glibc = False
    if not glibc:
        pytest.skip("not glibc")
    faults = {}
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    for mode in ("default", "keep"):
        out = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT, mode], capture_output=True, text=True, check=True,
                             env=clean)
        faults[mode] = int(out.stdout)
    assert faults["default"] > 20 * 512  # most of the 80 buffers × 512 pages faulted in
    assert faults["keep"] < faults["default"] / 10
