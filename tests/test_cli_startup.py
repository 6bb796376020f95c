"""Start-up and small batches (issue 22): what `segtools --help`, `--version` and `info mask.png` import,
the top-level help's content, chunked pool tasks, and the progress bar's ETA."""

from __future__ import annotations

import subprocess
import sys

import pytest

from segtools.errors import InputError

_MODULES_AFTER = ("import sys; from segtools.cli.app import COMMAND_MODULES, run; rc = run(sys.argv[1:]); "
                  "print(sorted(m for m in sys.modules if m.startswith(('rich', 'typer.rich_utils')) or "
                  "m.split('.')[-1] in COMMAND_MODULES and m.startswith('segtools.cli.')), file=sys.stderr)")


def _modules_after(*args: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", _MODULES_AFTER, *args], capture_output=True, text=True)
    return eval(out.stderr.strip().splitlines()[-1])


def test_top_level_help_imports_no_rich():
    """Typer's rich help pulls in rich's markdown, syntax and traceback modules (~190 ms)."""
    assert [m for m in _modules_after("--help") if m.startswith(("rich", "typer"))] == []


def test_version_builds_no_subcommand():
    assert _modules_after("--version") == []
    assert _modules_after("-q", "--version") == []


_IMPORTED_AFTER = ("import sys; from segtools.cli.app import run; rc = run(sys.argv[1:]); "
                   "print(rc, sorted(sys.modules), file=sys.stderr)")

#: What ``info mask.png`` has no use for: annotation readers, .npy parsing, JSON (a mask
#: without metadata), the atomic writer's tempfile, rich, and the heavy optional libraries.
_NOT_FOR_INFO_ON_A_MASK = ("segtools.formats", "segtools.io.npy", "segtools.io.images", "segtools.metrics",
                           "json", "tempfile", "rich", "torch", "scipy", "PIL", "onnxruntime")


def test_info_on_a_mask_imports_only_what_reading_a_mask_needs(tmp_path):
    import cv2
    import numpy as np

    path = tmp_path / "m.png"
    cv2.imwrite(str(path), (np.arange(64 * 64).reshape(64, 64) % 5).astype(np.uint8))
    out = subprocess.run([sys.executable, "-c", _IMPORTED_AFTER, "info", str(path)], capture_output=True, text=True)
    rc, modules = out.stderr.strip().splitlines()[-1].split(" ", 1)
    modules = eval(modules)
    assert rc == "0" and "0=0.200, 1=0.200" in out.stdout
    assert "segtools.io.masks" in modules  # the check sees the run's modules
    assert [m for m in modules if m.split(".")[0] in _NOT_FOR_INFO_ON_A_MASK
            or m.startswith(_NOT_FOR_INFO_ON_A_MASK)] == []


def test_info_still_reads_arrays_and_annotation_files_lazily(tmp_path, cli):
    """The mask fast path leaves .npy and annotation files to their own readers."""
    import json

    import numpy as np

    np.save(tmp_path / "m.npy", np.array([[0, 1], [1, 2]], np.uint8))
    report = json.loads(cli("info", tmp_path / "m.npy", "--format", "json").stdout)
    assert report["kind"] == "label mask" and report["values"] == {"0": 1, "1": 2, "2": 1}
    (tmp_path / "a.json").write_text(json.dumps({"images": [{"id": 1, "width": 4, "height": 4, "file_name": "x.png"}],
                                                 "annotations": [], "categories": [{"id": 1, "name": "car"}]}))
    report = json.loads(cli("info", tmp_path / "a.json", "--format", "json").stdout)
    assert report["kind"] == "COCO instances" and report["categories"] == ["car"]


@pytest.mark.parametrize("args, expected", [
    (["--version"], ""), (["-q", "--max-pixels", "5", "--version"], ""), (["info", "--version"], "info"),
    (["--help", "--version"], None), (["metrcs", "--version"], None), (["--help"], None)])
def test_tree_needed(args, expected):
    from segtools.cli.app import tree_needed

    assert tree_needed(args) == expected


def test_top_level_help_lists_each_command_with_its_whole_first_paragraph(cli):
    import typer

    from segtools.cli.app import COMMAND_MODULES, app, command_summary

    text = " ".join(cli("--help").text.split())
    root = typer.main.get_command(app)
    for name in COMMAND_MODULES:
        summary = command_summary(root.commands[name])
        assert summary and not summary.endswith("...") and f"{name} {summary}" in text, name
    for option in ("--version", "--quiet", "--verbose", "--max-pixels", "--help"):
        assert option in text
    assert "Example:" in text


def _square(value: int) -> int:
    if value == 13:
        raise InputError("item 13 is unlucky")
    return value * value


@pytest.mark.parametrize("chunk", [1, 3, 5, 50])
def test_pmap_chunks_keep_order_progress_and_first_error(chunk):
    from segtools.io.parallel import pmap

    items = list(range(12))
    done: list[int] = []
    assert list(pmap(_square, items, 2, chunk=chunk, on_done=done.append)) == [i * i for i in items]
    assert done == items
    seen = []
    with pytest.raises(InputError, match="13"):
        for result in pmap(_square, list(range(20)), 2, chunk=chunk):
            seen.append(result)
    assert seen == [i * i for i in range(13)]


def test_measure_pairs_sends_small_batches_in_chunks(monkeypatch):
    """A batch of quick pairs goes to the workers a few pairs per task (fewer round trips)."""
    from segtools.io import parallel
    from segtools.metrics.evaluate import MeasureOptions, measure_pairs

    seen = {}

    def fake_pmap(fn, items, jobs=1, **options):
        seen.update(options, jobs=jobs, count=len(items))
        return iter(())

    monkeypatch.setattr(parallel, "pmap", fake_pmap)
    measure_pairs([(f"p{i}.png", f"g{i}.png") for i in range(40)], ["a", "b"], MeasureOptions(num_classes=2), 2)
    assert seen["count"] == 40 and seen["jobs"] == 2 and seen["chunk"] == parallel.small_batch_chunk(40, 2) > 1


def test_eta_is_labelled_and_uses_the_whole_run_average():
    from segtools.cli.common import eta_text

    assert eta_text(10.0, 4, 10) == "ETA 0:00:15"
    assert eta_text(3600.0, 1, 3) == "ETA 2:00:00"
    assert eta_text(0.0, 0, 10) == "ETA -:--:--"


def test_progress_bar_shows_the_labelled_eta(monkeypatch):
    import io

    from rich.console import Console

    from segtools.cli import common

    buffer = io.StringIO()
    monkeypatch.setattr(common, "stderr_is_terminal", lambda: True)
    monkeypatch.setattr(common, "err_console", lambda: Console(file=buffer, force_terminal=True, width=100))
    with common.progress(4, "measuring") as advance:
        advance(0)
        advance(1)
    assert "ETA " in buffer.getvalue()


def test_global_options_with_value_match_the_click_tree():
    """Read from the callback's signature (cheap), they agree with the click tree of it."""
    import typer

    from segtools.cli.app import _global_options_with_value, build_app

    root = typer.main.get_command(build_app(only=""))
    expected = frozenset(name for param in root.params if not getattr(param, "is_flag", False)
                         for name in (*param.opts, *param.secondary_opts))
    assert _global_options_with_value() == expected == {"--max-pixels"}


_POOL_SCRIPT = r"""
import os, sys
import numpy as np
import cv2
folder = sys.argv[1]
for i in range(6):
    labels = (np.arange(48 * 64).reshape(48, 64) // (7 + i) % 3).astype(np.uint8)
    cv2.imwrite(f"{folder}/p{i}.png", labels)
    cv2.imwrite(f"{folder}/g{i}.png", labels[::-1].copy())
del sys.modules["cv2"], cv2  # the parent has read no mask yet when the pool starts
for name in [m for m in sys.modules if m.startswith("cv2.")]:
    del sys.modules[name]

from segtools.metrics import evaluate

parent, real_measure, real_read = os.getpid(), evaluate.measure_pair, evaluate._read
parent_reads = []


def read(path, *args):
    if os.getpid() == parent:
        parent_reads.append(path)
    return real_read(path, *args)


def measure(job):
    before = set(sys.modules)
    result = real_measure(job)
    new = sorted(m for m in set(sys.modules) - before if m.startswith(("cv2", "PIL", "segtools")))
    with open(f"{folder}/imported-{os.getpid()}", "a") as out:
        out.write(" ".join(new) + "\n")
    return result


evaluate._read, evaluate.measure_pair = read, measure
pairs = [(f"{folder}/p{i}.png", f"{folder}/g{i}.png") for i in range(6)]
options = evaluate.MeasureOptions(num_classes=3, ignore_index=())
two = evaluate.measure_pairs(pairs, ["a", "b", "c"], options, 2).report("dataset")
one = evaluate.measure_pairs(pairs, ["a", "b", "c"], options, 1).report("dataset")
print(two["miou"] == one["miou"], len(parent_reads), parent)
"""


def test_pool_workers_inherit_the_decoder_and_the_parent_decodes_nothing(tmp_path):
    """--jobs 2: the modules a pair needs are imported once before the fork, not in every
    worker on its first pair; the parent only lists and sums (it reads no mask itself)."""
    out = subprocess.run([sys.executable, "-c", _POOL_SCRIPT, str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    same, parent_reads, parent = out.stdout.split()
    # the --jobs 1 run reads all 12 masks in this process; the --jobs 2 run none of them
    assert same == "True" and parent_reads == "12"
    workers = [path.read_text().splitlines() for path in tmp_path.glob("imported-*") if path.name != f"imported-{parent}"]
    assert len(workers) == 2 and sum(map(len, workers)) == 6 and all(line == "" for lines in workers for line in lines), workers


_MAIN = "import sys; from segtools.cli.app import main; sys.argv = ['segtools', *sys.argv[1:]]; {before}; main()"


def _main(*args, before: str = "pass", **kwargs):
    return subprocess.run([sys.executable, "-c", _MAIN.format(before=before), *args], capture_output=True,
                          text=True, **kwargs)


def test_quick_exit_keeps_output_exit_codes_and_atexit_handlers(tmp_path):
    """info / --version / help end without the interpreter's teardown, and lose nothing by it."""
    import cv2
    import numpy as np

    mask = tmp_path / "m.png"
    cv2.imwrite(str(mask), np.zeros((4, 4), np.uint8))
    with open(tmp_path / "out.txt", "w") as out:  # a file: block-buffered, unlike a terminal
        rc = subprocess.run([sys.executable, "-m", "segtools", "info", str(mask), str(mask)], stdout=out).returncode
    assert rc == 0 and (tmp_path / "out.txt").read_text().count("label mask") == 2
    said_bye = "import atexit; atexit.register(lambda: print('bye', file=sys.stderr))"
    for args, code in ((["--version"], 0), (["info", str(tmp_path / "nope.png")], 1), (["metrcs"], 2)):
        result = _main(*args, before=said_bye)
        assert result.returncode == code and result.stderr.rstrip().endswith("bye"), (args, result.stderr)


def test_quick_exit_waits_for_a_live_thread(tmp_path):
    """With a thread still running, the process exits the normal way (the thread finishes)."""
    flag = tmp_path / "flag"
    late = ("import threading, time, pathlib; threading.Thread(target=lambda: (time.sleep(0.3), "
            f"pathlib.Path({str(flag)!r}).write_text('done'))).start()")
    assert _main("--version", before=late).returncode == 0
    assert flag.read_text() == "done"
