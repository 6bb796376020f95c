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
