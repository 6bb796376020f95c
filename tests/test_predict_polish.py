"""``segtools predict`` as a new user meets it: which model a name means, the output format an
extension asks for, the precision --amp really gets on this CPU, the tile overlap default."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_one_line_error

torch = pytest.importorskip("torch")

from segtools.weights import registry  # noqa: E402
from segtools.weights.loader import model_source  # noqa: E402

SHIPPED = registry.local_path(registry.BUILTIN[registry.DEFAULT_MODEL])
needs_default = pytest.mark.skipif(not SHIPPED.is_file(), reason="this installation ships no default model")


def _png(h=20, w=24) -> bytes:
    from segtools.io.images import encode_image

    return encode_image(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8), "png")


# ------------------------------------------------------------------ which model a name means


def test_a_bare_registry_name_is_the_registry_entry_even_beside_a_file_of_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert model_source("lraspp-mnv3-voc") == ("registry", None)
    (tmp_path / "lraspp-mnv3-voc").write_bytes(b"x")
    source, note = model_source("lraspp-mnv3-voc")
    assert source == "registry" and "file here" in note and "./lraspp-mnv3-voc" in note
    assert model_source("./lraspp-mnv3-voc") == ("file", None)
    assert model_source("other.pt") == ("file", None)


@needs_default
def test_default_model_is_never_a_path_in_a_folder_holding_a_camvid_dataset(cli, tmp_path, monkeypatch):
    (tmp_path / "camvid" / "val").mkdir(parents=True)
    (tmp_path / "img.png").write_bytes(_png())
    monkeypatch.chdir(tmp_path)
    result = cli("predict", "img.png", "-o", "out.png")
    assert result.code == 0, result.stderr
    assert "registry" not in result.stderr  # nothing was ambiguous: the default is a name
    assert (tmp_path / "out.png").is_file()


@needs_default
def test_explicit_model_that_is_also_a_folder_says_which_it_took(cli, tmp_path, monkeypatch):
    (tmp_path / "camvid").mkdir()
    (tmp_path / "img.png").write_bytes(_png())
    monkeypatch.chdir(tmp_path)
    result = cli("predict", "img.png", "--model", "camvid", "-o", "out.png")
    assert result.code == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "registry" in line]
    assert len(notes) == 1 and notes[0].startswith("segtools: --model camvid: ") and "folder" in notes[0]
    assert_one_line_error(cli("predict", "img.png", "--model", "./camvid"), 1)  # ./NAME is the path
