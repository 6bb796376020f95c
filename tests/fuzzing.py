"""Fuzzing every reader through the CLI: the worker pool, the mutators, the contract.

A case is a command line, the files it reads (built in the case's own folder) and stdin.
:class:`Worker` runs cases in a separate process under a memory budget and an alarm
(``fuzz_worker.py``); :func:`check` holds each outcome to the contract of the hostile-input
issue:

- exit 0, with every file under ``out/`` complete (no ``.part`` left, nothing empty), or
  exit 1/2 with exactly one stderr line ``segtools: error: …`` that is neither an internal
  error nor an out-of-memory report;
- no file written outside ``out/`` (the fuzz root is listed before and after);
- the process neither crashed nor hung (the alarm) nor outgrew its memory budget.

The mutators are hypothesis strategies: byte-level ones (with a PNG variant that fixes the
CRCs, so mutations reach the decoders), a JSON one that replaces, deletes or duplicates
nodes of a valid document with hostile values, and a token one for text formats.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import strategies as st

WORKER = Path(__file__).with_name("fuzz_worker.py")
ROOT = Path(__file__).resolve().parents[1]

#: a case's process may grow by this much over its start-up size (address space, MiB)
BUDGET_MB = 1536
#: a case that takes longer is a hang
TIMEOUT_S = 10


@dataclass
class Outcome:
    code: int
    stderr: str
    seconds: float = 0.0
    peak_mb: float = 0.0
    problems: list[str] = field(default_factory=list)


class Worker:
    """One fuzz worker process (restarted after a crash); ``preload`` modules are imported
    before the memory limit is set, as the CLI would import them anyway."""

    def __init__(self, root: Path, preload: tuple[str, ...] = ()) -> None:
        self.root = Path(root)
        self.cases = self.root / "cases"
        self.scratch = self.root.parent / (self.root.name + "-scratch")
        self.cases.mkdir(parents=True, exist_ok=True)
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.preload = preload
        self.log = open(self.scratch / "worker.log", "ab")  # what a dying worker said last
        self.proc: subprocess.Popen | None = None
        self.count = 0
        self.stats: list[dict] = []

    def _start(self) -> subprocess.Popen:
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
        env.pop("SEGTOOLS_MAX_PIXELS", None)
        return subprocess.Popen(
            [sys.executable, str(WORKER), str(BUDGET_MB), str(TIMEOUT_S), str(self.scratch), *self.preload],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env, cwd=self.root)

    def close(self) -> None:
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
            self.proc = None

    def run(self, args: list[str], files: dict[str, bytes], stdin: bytes = b"", reader: str = "") -> Outcome:
        """Run one case: write ``files`` (relative paths) into a fresh folder, run ``args`` there."""
        self.count += 1
        case = self.cases / str(self.count)
        case.mkdir(parents=True)
        for name, data in files.items():
            path = case / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        before = _tree(self.root, case / "out")
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        request = {"cwd": str(case), "args": [str(a) for a in args], "stdin": base64.b64encode(stdin).decode()}
        self.proc.stdin.write(json.dumps(request).encode() + b"\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            status = self.proc.wait(timeout=30)
            self.proc = None
            what = {-14: f"hang (> {TIMEOUT_S} s)", -9: "killed", -11: "segfault", -6: "abort"}.get(status, f"died ({status})")
            self.log.flush()
            tail = (self.scratch / "worker.log").read_bytes()[-300:].decode("utf-8", "replace").strip()
            what += f": {tail.splitlines()[-1] if tail else ''}"
            outcome = Outcome(status, "", problems=[what])
        else:
            reply = json.loads(line)
            outcome = Outcome(reply["code"], reply["stderr"], reply["seconds"], reply["peak_mb"])
            outcome.problems = _contract(outcome, case)
        escaped = sorted(_tree(self.root, case / "out") - before)
        if escaped:
            outcome.problems.append(f"wrote outside out/: {escaped[:3]}")
        self.stats.append({"reader": reader, "code": outcome.code, "seconds": outcome.seconds,
                           "peak_mb": outcome.peak_mb, "ok": not outcome.problems})
        shutil.rmtree(case, ignore_errors=True)
        for stray in self.root.iterdir():  # whatever escaped must not poison the next case
            if stray.name != "cases":
                shutil.rmtree(stray, ignore_errors=True) if stray.is_dir() else stray.unlink()
        return outcome


def _tree(root: Path, skip: Path) -> set[str]:
    found = set()
    for folder, dirs, names in os.walk(root):
        if Path(folder) == skip or skip in Path(folder).parents:
            continue
        found.update(os.path.join(folder, n) for n in names + dirs)
    found.discard(str(skip))
    return found


def _contract(outcome: Outcome, case: Path) -> list[str]:
    problems = []
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    if outcome.code == 0:
        noise = [line for line in lines if not line.startswith(("segtools: warning: ", "segtools: info: ", "segtools: "))]
        if noise:
            problems.append(f"exit 0 with stray stderr: {noise[:2]}")
        out = case / "out"
        if out.exists():
            for path in out.rglob("*") if out.is_dir() else [out]:
                if path.name.endswith(".part"):
                    problems.append(f"left a temp file {path.name}")
                elif path.is_file() and path.stat().st_size == 0 and path.suffix not in (".txt",):
                    problems.append(f"empty output {path.name}")
    elif outcome.code in (1, 2):
        if len(lines) != 1 or not lines[0].startswith("segtools: error: "):
            problems.append(f"stderr is not one error line: {lines[:3]}")
        elif "internal error" in lines[0] or "out of memory" in lines[0]:
            problems.append(lines[0][:300])
        for path in case.rglob("*.part"):
            problems.append(f"left a temp file {path.name}")
    else:
        problems.append(f"exit {outcome.code}: {lines[-1:]}")
    if outcome.seconds > TIMEOUT_S / 2:
        problems.append(f"slow: {outcome.seconds:.1f} s")
    return problems


# ---------------------------------------------------------------- mutators

INTERESTING_INTS = [0, 1, -1, 2, 255, 256, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**32,
                    2**40, -2**40, 2**63 - 1, -2**63, 2**64 - 1, 10**9, 30000, -30000]
INTERESTING_BYTES = [0x00, 0x01, 0x7F, 0x80, 0xFF, 0xFE]


@st.composite
def mutated_bytes(draw, seed: bytes, max_ops: int = 4) -> bytes:
    """``seed`` with 1..max_ops byte-level mutations: flips, stores, 32-bit integers,
    insertions, deletions, duplications and truncation."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, max_ops))):
        op = draw(st.sampled_from(["flip", "byte", "int32", "insert", "delete", "repeat", "truncate"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte" and data:
            data[pos] = draw(st.sampled_from(INTERESTING_BYTES))
        elif op == "int32":
            value = draw(st.sampled_from(INTERESTING_INTS)) & 0xFFFFFFFF
            data[pos:pos + 4] = struct.pack(draw(st.sampled_from([">I", "<I"])), value)
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 64))]
        elif op == "repeat":
            chunk = bytes(data[pos:pos + draw(st.integers(1, 32))])
            data[pos:pos] = chunk * draw(st.integers(1, 64))
        elif op == "truncate":
            del data[pos:]
    return bytes(data)


def fix_png_crcs(data: bytes) -> bytes:
    """Recompute every chunk's CRC that the chunk structure still lets us find, so that a
    mutated PNG gets past the CRC checks into the decoders."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return data
    out = bytearray(data)
    pos = 8
    while pos + 8 <= len(out):
        length = int.from_bytes(out[pos:pos + 4], "big")
        end = pos + 8 + length
        if end + 4 > len(out):
            break
        out[end:end + 4] = struct.pack(">I", zlib.crc32(bytes(out[pos + 4:end])) & 0xFFFFFFFF)
        pos = end + 4
    return bytes(out)


@st.composite
def mutated_png(draw, seed: bytes) -> bytes:
    data = draw(mutated_bytes(seed))
    return fix_png_crcs(data) if draw(st.booleans()) else data


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def hostile_values(escape_root: Path) -> st.SearchStrategy:
    """Values an attacker puts where a JSON reader expects something sensible."""
    paths = ["../escaped.png", "../../escaped.png", str(escape_root / "abs.png"), "/etc/passwd",
             "", "a\x00b.png", "x/../../escaped.png", "C:\\x.png", "."]
    return st.one_of(
        st.sampled_from([None, True, False, 0, -1, 1.5, 1e308, -1e308, 1e30, "", "x", "<script>",
                         [], {}, [[]], [0], [1, 2], [1e30, 1e30], {"a": 1}, "\x00"]),
        st.sampled_from(INTERESTING_INTS),
        st.sampled_from(paths),
        st.floats(allow_nan=False, allow_infinity=False, width=32),
        st.text(max_size=6),
        st.lists(st.integers(-3, 300), max_size=8),
    )


def _nodes(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _nodes(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nodes(item, path + (index,))


@st.composite
def mutated_json(draw, document, escape_root: Path, raw_ops: bool = True) -> bytes:
    """``document`` (parsed JSON) with 1..3 nodes replaced by hostile values, deleted or
    repeated; sometimes also with byte-level damage or an injected number/nesting bomb."""
    doc = json.loads(json.dumps(document))
    for _ in range(draw(st.integers(1, 3))):
        nodes = list(_nodes(doc))
        path = nodes[draw(st.integers(0, len(nodes) - 1))]
        op = draw(st.sampled_from(["replace", "replace", "replace", "delete", "repeat"]))
        if not path:
            if op == "replace":
                doc = draw(hostile_values(escape_root))
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        if op == "replace":
            parent[key] = draw(hostile_values(escape_root))
        elif op == "delete":
            del parent[key]
        elif isinstance(parent, list):
            parent[key:key] = [parent[key]] * draw(st.sampled_from([2, 50, 2000]))
        else:
            parent[key] = [parent[key]] * draw(st.sampled_from([2, 50]))
    text = json.dumps(doc).encode()
    if raw_ops:
        kind = draw(st.sampled_from(["none", "none", "none", "bytes", "bignum", "deep", "nan"]))
        if kind == "bytes":
            text = draw(mutated_bytes(text, max_ops=2))
        elif kind == "bignum":
            text = text.replace(b"16", b"1e999", 1) if b"16" in text else text + b"1e999"
        elif kind == "deep":
            text = b"[" * 100_000 + text + b"]" * 100_000
        elif kind == "nan":
            text = text.replace(b"1", b"NaN", 1)
    return text


@st.composite
def mutated_text(draw, seed: str, escape_root: Path) -> bytes:
    """A text format (YAML, XML, YOLO txt) with 1..3 of its words (what lies between
    spaces, brackets, colons and commas) replaced by hostile values; sometimes byte damage."""
    tokens = re.split(r"([\s<>:,\[\]/=\"']+)", seed)
    for _ in range(draw(st.integers(1, 3))):
        index = 2 * draw(st.integers(0, (len(tokens) - 1) // 2))
        value = draw(hostile_values(escape_root))
        tokens[index] = value if isinstance(value, str) else json.dumps(value)
    text = "".join(tokens).encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        text = draw(mutated_bytes(text, max_ops=2))
    return text
