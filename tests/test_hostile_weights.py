"""Hostile checkpoints and model files: no code runs, memory stays bounded, one error line.

Every hostile file is built here, in tmp_path. The code-execution tests run the CLI in a
subprocess (so a working exploit cannot poison this process) and assert that the marker file
the payload would create does not exist.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest
from conftest import assert_clean_refusal, run_bounded

torch = pytest.importorskip("torch")

from segtools.errors import InputError  # noqa: E402
from segtools.models import build_model  # noqa: E402
from segtools.weights.exported import check_sym_expr  # noqa: E402
from segtools.weights.checkpoint import file_kind, make_checkpoint, save_checkpoint  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


class _RunsCommand:
    """Unpickling this calls ``os.system("touch MARKER")``."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _payload(marker) -> bytes:
    return pickle.dumps(_RunsCommand(marker), protocol=2)


def _tiny_unet(classes: int = 2):
    torch.manual_seed(0)
    return build_model("unet", classes, depth=2, base_channels=4).eval()


class _Conv(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 1)

    def forward(self, x):
        return self.conv(x)


def _rewrite_zip(src, dst, replace=None, add=None) -> None:
    """Copy the zip ``src`` to ``dst``, replacing members whose name ends with a key of
    ``replace`` and adding ``add`` (relative to the archive's root folder)."""
    replace, add = replace or {}, add or {}
    with zipfile.ZipFile(src) as source, zipfile.ZipFile(dst, "w") as out:
        root = source.namelist()[0].split("/")[0]
        for info in source.infolist():
            data = source.read(info.filename)
            for suffix, new in replace.items():
                if info.filename.endswith(suffix):
                    data = new(data) if callable(new) else new
            out.writestr(info.filename, data)
        for name, data in add.items():
            out.writestr(f"{root}/{name}", data)


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    """A genuine torch.export program (.pt2) and a TorchScript archive of the same model."""
    folder = tmp_path_factory.mktemp("programs")
    model = _Conv().eval()
    x = torch.rand(1, 3, 8, 8)
    torch.export.save(torch.export.export(model, (x,)), str(folder / "model.pt2"))
    torch.jit.save(torch.jit.script(model), str(folder / "model.pt"))
    return folder


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "image.npy"
    np.save(path, np.zeros((8, 8, 3), np.uint8))
    return path


def _evil_checkpoint(tmp_path, marker):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": _tiny_unet().state_dict(), "extra": _RunsCommand(marker)}, path)
    return path


def _evil_files(tmp_path, program, marker) -> dict:
    """Every crafted file whose load would run ``touch marker`` if anything unpickled or
    evaluated it."""
    files = {"checkpoint": _evil_checkpoint(tmp_path, marker)}
    pt2, ts = program / "model.pt2", program / "model.pt"
    payload = _payload(marker)
    # the issue's file: an exported program with a dummy code/ member (looked like TorchScript)
    files["export+code"] = tmp_path / "export_code.pt2"
    _rewrite_zip(pt2, files["export+code"], {"sample_inputs/model.pt": payload}, {"code/__torch__.py": b""})
    files["export-sample-inputs"] = tmp_path / "sample.pt2"
    _rewrite_zip(pt2, files["export-sample-inputs"], {"sample_inputs/model.pt": payload})

    def pickled_weight(config: bytes) -> bytes:
        table = json.loads(config)
        table["config"]["conv.weight"]["use_pickle"] = True
        return json.dumps(table).encode()

    buffer = io.BytesIO()
    torch.save(_RunsCommand(marker), buffer)
    files["export-pickled-weight"] = tmp_path / "weight.pt2"
    _rewrite_zip(pt2, files["export-pickled-weight"],
                 {"model_weights_config.json": pickled_weight, "data/weights/weight_0": buffer.getvalue()})
    files["export-opaque-constant"] = tmp_path / "opaque.pt2"
    _rewrite_zip(pt2, files["export-opaque-constant"], add={"data/constants/opaque_obj_0": payload})
    files["export-aoti"] = tmp_path / "aoti.pt2"
    _rewrite_zip(pt2, files["export-aoti"], add={"data/aotinductor/model/model.so": b"\x7fELF"})

    def sympy_eval(graph: bytes) -> bytes:  # a symbolic size that sympify would eval()
        text = graph.decode()
        expr = json.dumps(f"__import__('os').system('touch {marker}')")
        return text.replace('"sym_int_values": {}', f'"sym_int_values": {{"evil": {{"as_expr": {{"expr_str": {expr}}}}}}}', 1).encode()

    files["export-sympy"] = tmp_path / "sympy.pt2"
    _rewrite_zip(pt2, files["export-sympy"], {"models/model.json": sympy_eval})
    files["torchscript-constants"] = tmp_path / "ts_constants.pt"
    _rewrite_zip(ts, files["torchscript-constants"], {"constants.pkl": payload})
    files["torchscript-data"] = tmp_path / "ts_data.pt"
    _rewrite_zip(ts, files["torchscript-data"], {"data.pkl": payload})
    return files


_RUN_ALL = """
import json, os, sys
sys.path.insert(0, {tests!r})
from conftest import run_cli
results = []
for args in json.loads(sys.argv[1]):
    result = run_cli(*args)
    results.append([args, result.code, result.stderr, os.path.exists({marker!r})])
print(json.dumps(results))
"""


def test_no_loader_runs_code_from_a_crafted_file(tmp_path, program, image):
    """Every path that loads a model file, on every crafted file, in one subprocess (the
    CLI in-process there): exit 1, one line, and the marker never appears."""
    import subprocess
    import sys

    marker = tmp_path / "pwned"
    commands = []
    for kind, path in _evil_files(tmp_path, program, marker).items():
        commands += [("weights", "info", path), ("predict", image, "--model", path),
                     ("predict", image, "--weights", path, "--arch", "unet"),
                     ("weights", "import", path, "--name", "x", "--arch", "unet"),
                     ("weights", "export", path, "-o", tmp_path / "o.pt"), ("train", "--resume", path)]
    script = _RUN_ALL.format(tests=os.path.dirname(__file__), marker=str(marker))
    env = dict(os.environ, SEGTOOLS_HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", script, json.dumps([[str(a) for a in c] for c in commands])],
                          capture_output=True, env=env, timeout=300, text=True)
    assert done.returncode == 0, done.stderr
    assert not marker.exists()
    results = json.loads(done.stdout.splitlines()[-1])
    assert len(results) == len(commands)
    for args, code, stderr, pwned in results:
        assert not pwned, args
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert code == 1 and len(lines) == 1 and lines[0].startswith("segtools: error: "), (args, code, stderr)
        assert "internal error" not in stderr, (args, stderr)


def test_the_issue_exploit_through_the_real_entry_point(tmp_path, program, image):
    """The issue's file (torch.export zip + dummy code/ member + pickled sample inputs) and a
    pickled checkpoint, through `python -m segtools` under a memory limit."""
    marker = tmp_path / "pwned"
    files = _evil_files(tmp_path, program, marker)
    for args in (("weights", "info", files["export+code"]), ("predict", image, "--model", files["export-sample-inputs"]),
                 ("predict", image, "--weights", files["checkpoint"], "--arch", "unet")):
        result = run_bounded(*args, env={"SEGTOOLS_HOME": str(tmp_path / "home")}, timeout=60)
        assert not marker.exists(), args
        assert_clean_refusal(result, 1)


def test_the_genuine_files_still_load(tmp_path, program, cli, image):
    for path in (program / "model.pt2", program / "model.pt"):
        result = cli("predict", image, "--model", path, "-o", tmp_path / f"{path.suffix[1:]}.png")
        assert result.code == 0, result.stderr
        assert result.stderr == ""


def test_zips_are_classified_by_their_members(tmp_path, program):
    checkpoint = tmp_path / "c.pt"
    torch.save({"w": torch.zeros(1)}, checkpoint)
    assert file_kind(checkpoint) == "torch-zip"
    assert file_kind(program / "model.pt") == "torchscript"
    assert file_kind(program / "model.pt2") == "torch-export"
    mixed = tmp_path / "mixed.pt2"
    _rewrite_zip(program / "model.pt2", mixed, add={"code/__torch__.py": b""})
    assert file_kind(mixed) == "unknown"
    two_roots = tmp_path / "roots.pt"
    with zipfile.ZipFile(two_roots, "w") as out:
        out.writestr("a/data.pkl", b"x")
        out.writestr("b/data.pkl", b"x")
    assert file_kind(two_roots) == "unknown"


def test_exported_program_calling_a_torch_function_is_refused(tmp_path, program, cli):
    path = tmp_path / "load.pt2"
    _rewrite_zip(program / "model.pt2", path, {"models/model.json": lambda g: g.replace(
        b"torch.ops.aten.conv2d.default", b"torch.load")})
    result = cli("weights", "info", path)
    assert_clean_refusal(result, 1)
    assert "torch.load" in result.stderr


@pytest.mark.parametrize("expr", [
    "__import__('os').system('x')", "Symbol('s0').__class__", "Pow(Integer(10), Integer(10000000))",
    "lambda: 1", "Integer(9)**Integer(9)**Integer(9)", "Symbol('a b')", "Integer(" + "9" * 40 + ")",
])
def test_symbolic_expressions_are_parsed_never_evaluated(expr):
    with pytest.raises(InputError, match="symbolic shape expression"):
        check_sym_expr(expr, "m.pt2")


def test_symbolic_expressions_torch_writes_are_accepted():
    check_sym_expr("Add(FloorDiv(Add(Symbol('s0', positive=True, integer=True), Integer(-1)), Integer(2)), "
                   "Integer(1))", "m.pt2")
    check_sym_expr("Pow(Symbol('s1', integer=True), Integer(2))", "m.pt2")


def test_torchscript_that_touches_files_is_refused(tmp_path, cli):
    class Reads(torch.nn.Module):
        def forward(self, x):
            return x + torch.from_file("/etc/hostname", False, 1).sum()

    path = tmp_path / "reads.pt"
    torch.jit.save(torch.jit.script(Reads()), str(path))
    result = cli("weights", "info", path)
    assert_clean_refusal(result, 1)
    assert "aten::from_file" in result.stderr


# ------------------------------------------------------------------ declared sizes


def _safetensors(path, tensors: dict, metadata: dict | None = None, header_len: int | None = None) -> None:
    header, offset, blobs = {}, 0, []
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    if metadata is not None:
        header["__metadata__"] = {"segtools": json.dumps(metadata)}
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", header_len or len(raw)) + raw + b"".join(blobs))


def test_safetensors_declaring_a_billion_classes_is_refused_before_building(tmp_path):
    state = {k: ("F32", list(v.shape), v.numpy().tobytes()) for k, v in _tiny_unet().state_dict().items()
             if v.dtype == torch.float32}
    path = tmp_path / "big.safetensors"
    _safetensors(path, state, {"format": "segtools-checkpoint", "version": 1, "arch": "unet",
                               "num_classes": 1e9, "arch_options": {"depth": 2, "base_channels": 4}})
    result = run_bounded("weights", "info", path, mem_mb=1536)
    assert_clean_refusal(result, 1)
    assert "num_classes" in result.stderr and "out of range" in result.stderr


@pytest.mark.parametrize("case", ["header-longer-than-file", "shape-exceeds-bytes", "offsets-past-end", "not-json"])
def test_corrupt_safetensors_headers_are_refused(tmp_path, cli, case):
    path = tmp_path / "bad.safetensors"
    data = np.zeros(4, np.float32).tobytes()
    if case == "header-longer-than-file":
        _safetensors(path, {"w": ("F32", [4], data)}, header_len=90_000_000)
    elif case == "shape-exceeds-bytes":
        _safetensors(path, {"w": ("F32", [100000, 100000], data)})
    elif case == "offsets-past-end":
        _safetensors(path, {"w": ("F32", [4], data)})
        path.write_bytes(path.read_bytes()[:-8])
    else:
        path.write_bytes(struct.pack("<Q", 5) + b"{nope")
    assert_clean_refusal(cli("weights", "info", path, "--arch", "unet"), 1)


@pytest.mark.parametrize("fields", [
    {"arch": 5}, {"num_classes": "x"}, {"num_classes": True}, {"num_classes": 10**9}, {"num_classes": 0},
    {"state_dict": []}, {"arch_options": {"base_channels": 10**7}}, {"arch_options": {"depth": "2"}},
    {"arch_options": {"evil": 1}}, {"arch_options": []}, {"preprocessing": {"mean": [0, 0]}},
    {"preprocessing": {"std": [1, 0, 1]}}, {"preprocessing": {"scale": "1"}}, {"classes": 3},
    {"classes": {"names": ["a"] * 70000}}, {"version": "1"}, {"num_classes": 5},
])
def test_wrong_typed_or_oversized_checkpoint_fields_are_one_line(tmp_path, cli, fields):
    payload = make_checkpoint("unet", 2, _tiny_unet().state_dict(), arch_options={"depth": 2, "base_channels": 4})
    payload.update(fields)
    path = tmp_path / "bad.pt"
    torch.save(payload, path)
    assert_clean_refusal(cli("weights", "info", path), 1)


def test_expanded_tensors_posing_as_huge_weights_are_refused_unallocated(tmp_path):
    state = _tiny_unet().state_dict()
    state["inc.double_conv.0.weight"] = torch.zeros(1).expand(4096, 3, 3, 3)  # 4 bytes on disk
    path = tmp_path / "expanded.pt"
    torch.save(state, path)
    result = run_bounded("predict", "-", "--weights", path, "--arch", "unet", mem_mb=1536)
    assert_clean_refusal(result, 1)


def test_weights_of_another_shape_or_architecture_are_one_line(tmp_path, cli):
    path = tmp_path / "unet.pt"
    save_checkpoint(path, make_checkpoint("unet", 2, _tiny_unet().state_dict(),
                                          arch_options={"depth": 2, "base_channels": 4}))
    assert_clean_refusal(cli("weights", "info", path, "--arch", "lraspp-mnv3"), 1)
    raw = tmp_path / "raw.pt"
    torch.save({"outc.conv.weight": torch.zeros(3, 4, 1, 1)}, raw)
    assert_clean_refusal(cli("weights", "info", raw, "--arch", "unet"), 1)


def test_truncated_and_garbage_checkpoints_are_one_line(tmp_path, cli):
    good = tmp_path / "good.pt"
    torch.save(_tiny_unet().state_dict(), good)
    data = good.read_bytes()
    for name, content in {"half.pt": data[: len(data) // 2], "tail.pt": data[:-30],
                          "legacy.pt": b"\x80\x02garbage", "empty.pt": b""}.items():
        (tmp_path / name).write_bytes(content)
        assert_clean_refusal(cli("weights", "info", tmp_path / name, "--arch", "unet"), 1)


def test_zip_bomb_is_refused_before_expansion(tmp_path):
    path = tmp_path / "bomb.pt"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("bomb/data.pkl", pickle.dumps({}))
        with out.open("bomb/data/0", "w") as member:
            block = bytes(1 << 20)
            for _ in range(100):
                member.write(block)
    assert path.stat().st_size < 1 << 20
    result = run_bounded("weights", "info", path, "--arch", "unet", mem_mb=1536)
    assert_clean_refusal(result, 1)
    assert "zip bomb" in result.stderr
