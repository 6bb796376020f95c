"""completions/ and man/ are generated from the CLI and must not go stale."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import gen_docs  # noqa: E402


def test_committed_completions_and_man_pages_are_current():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_docs.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_command_has_a_man_page_and_an_example():
    tree = gen_docs.command_tree()
    files = gen_docs.generate()
    for node in gen_docs._walk(tree):
        assert f"man/{'-'.join(node.path)}.1" in files
        if not node.children:
            assert "Example" in node.help, f"{node.name} --help has no example"


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_bash_completion_parses_and_completes():
    script = (f"source {ROOT / 'completions' / 'segtools.bash'}; COMP_WORDS=(segtools in); COMP_CWORD=1; "
              "_segtools; echo ${COMPREPLY[@]}")
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "info" in out.stdout.split()


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish not installed")
def test_fish_completion_parses():
    out = subprocess.run(["fish", "--no-execute", str(ROOT / "completions" / "segtools.fish")], capture_output=True)
    assert out.returncode == 0, out.stderr


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed")
def test_zsh_completion_parses():
    out = subprocess.run(["zsh", "-n", str(ROOT / "completions" / "_segtools")], capture_output=True)
    assert out.returncode == 0, out.stderr


def test_environment_section_lists_every_variable_segtools_reads():
    import re

    read = set()
    for path in (ROOT / "segtools").rglob("*.py"):
        read |= set(re.findall(r"environ(?:\.get)?[\[(]\"(SEGTOOLS_[A-Z_]+)\"", path.read_text()))
    listed = {name for name, _ in gen_docs.ENVIRONMENT}
    assert {"SEGTOOLS_MAX_PIXELS", "SEGTOOLS_THREADS", "SEGTOOLS_HOME", "SEGTOOLS_DEBUG"} <= read
    assert read <= listed and "NO_COLOR" in listed
    page = gen_docs.generate()["man/segtools-predict.1"]
    assert all(f".B {name}" in page for name in listed)


def test_synopsis_gives_each_form_its_own_line():
    page = gen_docs.generate()["man/segtools-metrics.1"]
    synopsis = page.split(".SH SYNOPSIS\n")[1].split(".SH")[0]
    assert "|" not in synopsis
    assert "[OPTIONS] PRED GT\n" in synopsis and "[OPTIONS] merge REPORT...\n" in synopsis


def test_man_pages_keep_sentences_and_list_items_apart():
    page = gen_docs.generate()["man/segtools-metrics.1"]
    assert "pixel counts.\nOverall: mIoU" in page     # one sentence per roff line
    assert gen_docs._paragraph("Steps:\n- one thing.\n- another.") == [".PP", "Steps:", ".br", "\\- one thing.",
                                                                       ".br", "\\- another."]


@pytest.mark.parametrize("text,choices,files", [
    ("Report format: table, json, csv or markdown.", ["table", "json", "csv", "markdown"], False),
    ("Colour→class map for RGB colour masks: voc, cityscapes, or a JSON file.", ["voc", "cityscapes"], True),
    ("row (recall view, default), column (precision view) or none (counts).", ["row", "column", "none"], False),
    ("auto, cpu, cuda, cuda:N or mps (default: auto).", ["auto", "cpu", "cuda", "mps"], False),
    ("Tile overlap in pixels (64) or a fraction (0.25).", [], False),
    ("Architecture of a plain state dict, e.g. deeplabv3-resnet50, unet.", [], False),
])
def test_documented_choices_are_read_from_the_help(text, choices, files):
    assert gen_docs.documented_choices(text) == (choices, files)


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
@pytest.mark.parametrize("words,expected", [
    ("segtools metrics p g --format", {"table", "json", "csv", "markdown"}),
    ("segtools convert m.png --to", {"coco", "coco-rle", "yolo-seg"}),
    ("segtools predict x.png --model", {"camvid", "lraspp-mnv3-voc"}),
    ("segtools metrics p g --classes", {"camvid", "cityscapes", "voc"}),
])
def test_bash_completion_completes_option_values(words, expected):
    script = (f"source {ROOT / 'completions' / 'segtools.bash'}; COMP_WORDS=({words} ''); "
              f"COMP_CWORD={len(words.split())}; _segtools; echo ${{COMPREPLY[@]}}")
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=ROOT / "tests")
    assert out.returncode == 0, out.stderr
    assert expected <= set(out.stdout.split())


def test_completion_descriptions_are_never_cut_mid_word():
    assert gen_docs._brief("Short one. And more.") == "Short one."
    long = "word " * 30
    brief = gen_docs._brief(long)
    assert brief.endswith("word…") and len(brief) <= 80
