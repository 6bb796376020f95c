"""Benchmark `segtools tile`: huge split + merge, and Gaussian score blending.

    python bench/tile.py                      # 20000² RGB split+merge, 4096²×19 score blend
    python bench/tile.py --side 8000          # smaller huge image (bytes scale as side²)
    python bench/tile.py --skip-large         # only the score-blending part

Part 1 — a side×side RGB uint8 image as ``.npy`` (the streaming path: PNG cannot be decoded
in windows) is split into 512/64 tiles (``.npy`` tiles) and merged back, each step a real
``python -m segtools tile …`` subprocess. Reference: reading the same ``.npy`` and writing its
bytes once (64 MiB chunks), also in a subprocess. Reported: wall time, peak RSS of the
process (ru_maxrss), and the ratios the issue asks for (RSS ≤ 2× raw, time ≤ 2× copy).

Part 2 — a 4096²×19 float16 score map merged from 512/64 tiles with Gaussian weights:
segtools' ScoreAccumulator vs a MONAI-style torch accumulation (``out += tile·w; count += w;
out / count``, MONAI's product-clamped Gaussian map), same tiles, same run; and the
band-wise file merge (``merge_tiles`` from ``.npy`` tiles to a streamed ``.npy``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run_measured(args: list[str]) -> tuple[float, float, float]:
    """Run a subprocess; return (wall seconds, CPU seconds, peak RSS in MiB)."""
    start = time.perf_counter()
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    err = child.stderr.read().decode()
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"failed: {' '.join(args)}\n{err}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0


COPY_SCRIPT = """
import sys, numpy as np
src, dst = sys.argv[1], sys.argv[2]
chunk = 64 << 20
with open(src, 'rb') as fin, open(dst, 'wb') as fout:
    np.lib.format.read_magic(fin); np.lib.format.read_array_header_1_0(fin)  # parse like a reader would
    fin.seek(0)
    buffer = bytearray(chunk)
    view = memoryview(buffer)
    while True:
        n = fin.readinto(view)
        if not n:
            break
        fout.write(view[:n])
"""


def make_source(path: Path, side: int) -> None:
    """A side×side×3 uint8 .npy with varied content, written in bands (never whole in memory)."""
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(
            handle, {"descr": "|u1", "fortran_order": False, "shape": (side, side, 3)})
        rng = np.random.default_rng(0)
        noise = rng.integers(0, 256, (256, side, 3), dtype=np.uint8)
        for top in range(0, side, 256):
            rows = min(256, side - top)
            band = noise[:rows].copy()
            band[..., 0] += np.uint8(top % 251)
            handle.write(band.tobytes())


def arrays_equal(a_path: Path, b_path: Path, band: int = 1024) -> bool:
    a, b = np.load(a_path, mmap_mode="r"), np.load(b_path, mmap_mode="r")
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return all(np.array_equal(a[top:top + band], b[top:top + band]) for top in range(0, a.shape[0], band))


def bench_large(side: int, workdir: Path) -> dict:
    source, copy, tiles, merged = workdir / "scene.npy", workdir / "copy.npy", workdir / "tiles", workdir / "merged.npy"
    make_source(source, side)
    raw_mib = side * side * 3 / 2**20
    py = [sys.executable]
    segtools = py + ["-m", "segtools"]
    os.sync()
    copy_s, copy_cpu, copy_rss = run_measured(py + ["-c", COPY_SCRIPT, str(source), str(copy)])
    copy.unlink()
    split_s, split_cpu, split_rss = run_measured(segtools + ["tile", "split", str(source), "--size", "512", "--overlap", "64",
                                                  "-o", str(tiles)])
    tile_mib = sum(f.stat().st_size for f in tiles.iterdir() if f.is_file()) / 2**20
    merge_s, merge_cpu, merge_rss = run_measured(segtools + ["tile", "merge", str(tiles), "-o", str(merged)])
    identical = arrays_equal(source, merged)
    shutil.rmtree(tiles)
    for path in (source, merged):
        path.unlink()
    return dict(side=side, raw_mib=raw_mib, tile_mib=tile_mib, identical=identical,
                rows=[("reference: read + write bytes once", copy_s, copy_cpu, copy_rss),
                      ("segtools tile split", split_s, split_cpu, split_rss),
                      ("segtools tile merge", merge_s, merge_cpu, merge_rss)])


def monai_style_torch(tiles, pool, channels: int, side: int, importance: np.ndarray) -> np.ndarray:
    """The reference: MONAI's sliding-window accumulation (out += tile·w; count += w), in torch.

    It is given segtools' window so the two results can be compared value for value (MONAI's
    own map differs only at the tile rim, which does not change the cost).
    """
    import torch

    importance = torch.from_numpy(np.array(importance, dtype=np.float32))
    out = torch.zeros((channels, side, side), dtype=torch.float32)
    count = torch.zeros((1, side, side), dtype=torch.float32)
    torch_pool = [torch.from_numpy(p) for p in pool]
    for index, tile in enumerate(tiles):
        scores = torch_pool[index % len(pool)].float()
        out[:, tile.y:tile.y1, tile.x:tile.x1] += scores * importance
        count[:, tile.y:tile.y1, tile.x:tile.x1] += importance
    return (out / count).numpy()


def bench_scores(side: int, channels: int, size: int, overlap: int, workdir: Path, files: bool) -> dict:
    from segtools.tiling.blend import ScoreAccumulator, blend_weights
    from segtools.tiling.grid import tile_grid
    from segtools.tiling.manifest import Manifest, TileRecord
    from segtools.tiling.merge import MergeOptions, merge_tiles

    tiles = tile_grid(side, side, size, overlap)
    rng = np.random.default_rng(0)
    pool = [rng.random((channels, size, size), dtype=np.float32).astype(np.float16) for _ in range(3)]
    work = side * side * channels / 1e6   # Mpx·class

    start, cpu = time.perf_counter(), time.process_time()
    accumulator = ScoreAccumulator(channels, side, side, mode="gaussian")
    for index, tile in enumerate(tiles):
        accumulator.add(tile, pool[index % len(pool)])
    ours = accumulator.result()
    ours_s, ours_cpu = time.perf_counter() - start, time.process_time() - cpu

    start, cpu = time.perf_counter(), time.process_time()
    reference = monai_style_torch(tiles, pool, channels, side, blend_weights(size, size, "gaussian"))
    reference_s, reference_cpu = time.perf_counter() - start, time.process_time() - cpu
    max_diff = float(np.abs(ours - reference).max())
    del ours, reference, accumulator

    files_s = files_cpu = None
    if files:
        folder = workdir / "score_tiles"
        folder.mkdir()
        records = []
        for index, tile in enumerate(tiles):
            name = f"s_y{tile.y:05d}_x{tile.x:05d}.npy"
            np.save(folder / name, pool[index % len(pool)])
            records.append(TileRecord(tile, name))
        manifest = Manifest({"name": "s.npy", "height": side, "width": side, "channels": channels,
                             "dtype": "float16", "kind": "scores"}, (size, size), (size - overlap,) * 2,
                            (overlap, overlap), None, records)
        start, cpu = time.perf_counter(), time.process_time()
        merge_tiles(manifest, folder, workdir / "scores.npy", MergeOptions(blend="gaussian"))
        files_s, files_cpu = time.perf_counter() - start, time.process_time() - cpu
        shutil.rmtree(folder)
        (workdir / "scores.npy").unlink()
    rows = [("segtools ScoreAccumulator (numpy+cv2, in memory)", ours_s, ours_cpu),
            ("reference: MONAI-style torch accumulation", reference_s, reference_cpu)]
    if files_s is not None:
        rows.append(("segtools merge_tiles (.npy tiles → .npy, bands)", files_s, files_cpu))
    return dict(side=side, channels=channels, tiles=len(tiles), work=work, rows=rows, max_diff=max_diff)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", type=int, default=20000, help="huge image side in pixels (default 20000)")
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--scores-side", type=int, default=4096)
    parser.add_argument("--no-files", action="store_true", help="skip the file-based score merge")
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temp dir)")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="segtools-bench-tile-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"# segtools tile benchmark — {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
          f"numpy {np.__version__}, {time.strftime('%Y-%m-%d')}")
    if not args.skip_large:
        r = bench_large(args.side, workdir)
        print(f"\n## split + merge of a {r['side']}x{r['side']} RGB uint8 .npy "
              f"({r['raw_mib']:.0f} MiB raw; tiles 512/64 as .npy, {r['tile_mib']:.0f} MiB)")
        print(f"{'step':<36}{'wall s':>8}{'cpu s':>8}{'MiB/s':>8}{'peak RSS MiB':>14}{'RSS/raw':>9}"
              f"{'wall/copy':>11}{'cpu/copy':>10}")
        copy_wall, copy_cpu = r["rows"][0][1], r["rows"][0][2]
        for label, seconds, cpu, rss in r["rows"]:
            print(f"{label:<36}{seconds:>8.2f}{cpu:>8.2f}{r['raw_mib'] / seconds:>8.0f}{rss:>14.0f}"
                  f"{rss / r['raw_mib']:>9.2f}{seconds / copy_wall:>11.2f}{cpu / copy_cpu:>10.2f}")
        total = r["rows"][1][1] + r["rows"][2][1]
        print(f"split + merge: {total:.2f} s wall = {total / copy_wall:.2f}x one copy "
              f"({total / (2 * copy_wall):.2f}x two copies: each step reads and writes the image once); "
              f"merged == source: {r['identical']}")
    s = bench_scores(args.scores_side, 19, 512, 64, workdir, not args.no_files)
    print(f"\n## Gaussian blend of a {s['side']}² × {s['channels']}-class float16 score map "
          f"from {s['tiles']} tiles 512/64 ({s['work']:.0f} Mpx·class)")
    print(f"{'implementation':<50}{'wall s':>8}{'cpu s':>8}{'Mpx·class/s':>13}{'per cpu-s':>11}")
    for label, seconds, cpu in s["rows"]:
        print(f"{label:<50}{seconds:>8.2f}{cpu:>8.2f}{s['work'] / seconds:>13.1f}{s['work'] / cpu:>11.1f}")
    print(f"max |segtools − reference| = {s['max_diff']:.1e} (same window; float32 sums)")
    shutil.rmtree(workdir, ignore_errors=True) if args.workdir is None else None


if __name__ == "__main__":
    main()
