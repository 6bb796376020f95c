"""Help text as users read it: whole sentences, no markup eaten by the renderer."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import gen_docs  # noqa: E402

COMMANDS = [node.path[1:] for node in gen_docs._walk(gen_docs.command_tree())]


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "segtools")
def test_help_has_no_space_before_a_full_stop(path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    result = run_cli(*path, "--help")
    assert result.code == 0
    text = re.sub(r"[│╭╮╰╯─]", " ", result.text)
    assert not re.search(r"\w \.(\s|$)", text), [line for line in text.splitlines() if re.search(r"\w \.", line)]


def test_each_commands_first_help_paragraph_is_one_sentence():
    for node in gen_docs._walk(gen_docs.command_tree()):
        first = " ".join(node.help.split("\n\n")[0].split())
        assert first.endswith("."), node.name
        assert not re.search(r"[.!?] [A-Z]", first), f"{node.name}: {first}"


def test_metrics_table_notes_are_whole_sentences_on_their_own_lines(tmp_path):
    import cv2
    import numpy as np

    gt = np.zeros((16, 16), np.uint8)
    gt[:, 8:] = 1
    pred = gt.copy()
    pred[:4] = 2
    cv2.imwrite(str(tmp_path / "gt.png"), gt)
    cv2.imwrite(str(tmp_path / "pred.png"), pred)
    result = run_cli("metrics", tmp_path / "pred.png", tmp_path / "gt.png", "-n", "4")
    assert result.code == 0, result.stderr
    notes = [line for line in result.text.splitlines() if "left out of the means" in line or "only predicted" in line
             or "gnore index" in line]
    assert notes and all(line.rstrip().endswith(".") and len(line) <= 120 for line in notes), notes
