"""ONNX Runtime and Hugging Face back-ends against their bare references, same run.

    python bench/backends.py [--image FRAME.png] [--repeat 3] [--skip-hf] [--skip-cli] [--only-cli]
                             [--no-pyc] [--importtime]

Rows (best of ``--repeat``; the machine's load makes single runs vary):

1. ``segtools predict street.png`` end to end, a fresh process each time: the default model
   through ONNX Runtime (no torch imported) vs ``--backend torch``, interleaved, after one
   untimed run of each; with ``PYTHONDONTWRITEBYTECODE`` removed from the children's
   environment, so they run from ``.pyc`` files as an installed package does
   (``--no-pyc`` keeps the variable). ``--importtime`` prints the slowest imports of the
   ONNX path (``python -X importtime``, self time, cumulative).
2. The ONNX predictor (:class:`segtools.backends.runner.RunnerPredictor`: normalise, run,
   argmax) on a batch of 4 CamVid-size frames vs a bare ``InferenceSession.run`` on the same
   normalised batch; and the torch predictor on the same batch.
3. A Hugging Face SegFormer (random weights, B0's layout, saved and loaded here) through
   segtools vs the bare model forward + its image processor and
   ``post_process_semantic_segmentation``, same images.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _timing import best_seconds

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CAMVID_FRAME = ROOT.parent / "shared" / "data" / "camvid" / "val" / "0016E5_07959.png"


def _frame(path: str | None) -> Path:
    if path:
        return Path(path)
    if CAMVID_FRAME.is_file():
        return CAMVID_FRAME
    from PIL import Image

    out = Path(tempfile.mkdtemp()) / "street.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (360, 480, 3), np.uint8)).save(out)
    return out


def _child_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _child_env(pyc: bool) -> dict:
    import os

    env = dict(os.environ)
    if pyc:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def cli_rows(frame: Path, repeat: int, pyc: bool = True) -> list[tuple[str, float, float]]:
    """Wall and CPU seconds (user + system, less disturbed by other load) of whole processes."""
    out = Path(tempfile.mkdtemp())
    exe = [sys.executable, "-m", "segtools", "predict", str(frame), "--overwrite"]
    env = _child_env(pyc)
    times: dict[str, list[tuple[float, float]]] = {"onnx": [], "torch": []}
    paths = (("onnx", []), ("torch", ["--backend", "torch"]))
    for name, extra in paths:  # untimed: writes the .pyc files, warms the file cache
        subprocess.run([*exe, *extra, "-o", str(out / f"{name}.png")], check=True, env=env)
    for _ in range(repeat):  # interleaved: both paths see the same load
        for name, extra in paths:
            cpu, start = _child_cpu(), time.perf_counter()
            subprocess.run([*exe, *extra, "-o", str(out / f"{name}.png")], check=True, env=env)
            times[name].append((time.perf_counter() - start, _child_cpu() - cpu))
    best = {name: (min(t[0] for t in runs), min(t[1] for t in runs)) for name, runs in times.items()}
    note = ".pyc" if pyc else "no .pyc"
    return [(f"segtools predict street.png ({note}), wall: ONNX (default) vs --backend torch", best["onnx"][0],
             best["torch"][0]),
            (f"segtools predict street.png ({note}), CPU user+sys: ONNX vs --backend torch", best["onnx"][1],
             best["torch"][1])]


def import_report(frame: Path, pyc: bool = True, top: int = 15) -> None:
    """The slowest imports (self microseconds) of one ONNX-path run, from ``-X importtime``."""
    out = Path(tempfile.mkdtemp()) / "labels.png"
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "segtools", "predict", str(frame), "-o",
                             str(out)], capture_output=True, text=True, env=_child_env(pyc), check=True)
    rows = []
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "self" not in line:
            own, total, name = (part.strip() for part in line[len("import time:"):].split("|"))
            rows.append((int(own), int(total), name))
    print(f"slowest imports of the ONNX path ({sum(r[0] for r in rows) / 1e6:.3f} s of imports in all):")
    for own, total, name in sorted(rows, reverse=True)[:top]:
        print(f"  {own / 1e3:8.1f} ms self {total / 1e3:8.1f} ms cumulative  {name}")


def onnx_rows(frame: Path, repeat: int) -> list[tuple[str, float, float]]:
    import torch

    from segtools.backends.onnx import open_onnx
    from segtools.backends.runner import RunnerPredictor
    from segtools.inference.predictor import Predictor
    from segtools.io.images import read_image
    from segtools.weights import registry
    from segtools.weights.loader import load_model

    image = read_image(frame)[..., :3]
    images = [image] * 4
    runner = open_onnx(registry.bundled_dir() / "camvid.onnx", device="cpu")
    predictor = RunnerPredictor(runner, batch=4)
    x = predictor.normalise(images)
    session = runner.session
    bare = best_seconds(lambda: session.run(None, {runner.input_name: x}), repeat, warmup=True)
    ours = best_seconds(lambda: list(predictor.predict_many(images, labels=True)), repeat, warmup=True)
    torch.set_num_threads(torch.get_num_threads())
    loaded = load_model(model="camvid")
    torch_path = Predictor(loaded.model, loaded.preprocessing, device="cpu", batch=4)
    torch_time = best_seconds(lambda: list(torch_path.predict_many(images, labels=True)), repeat, warmup=True)
    return [("ONNX predictor, 4 frames → labels vs bare InferenceSession.run", ours, bare),
            ("ONNX predictor vs the torch predictor, same 4 frames → labels", ours, torch_time)]


def hf_rows(frame: Path, repeat: int) -> list[tuple[str, float, float]]:
    import torch
    import transformers
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    from segtools.backends.hf import open_hf
    from segtools.backends.runner import RunnerPredictor
    from segtools.io.images import read_image

    folder = Path(tempfile.mkdtemp()) / "segformer-b0-layout"
    torch.manual_seed(0)
    SegformerForSemanticSegmentation(SegformerConfig(num_labels=11)).eval().save_pretrained(folder)
    from transformers.models.segformer.image_processing_pil_segformer import SegformerImageProcessorPil

    SegformerImageProcessorPil(size={"height": 512, "width": 512}).save_pretrained(folder)
    image = read_image(frame)[..., :3]
    images = [image] * 2
    processor = transformers.AutoImageProcessor.from_pretrained(folder)
    model = transformers.AutoModelForSemanticSegmentation.from_pretrained(folder).eval()

    def bare():
        with torch.inference_mode():
            outputs = model(**processor(images=images, return_tensors="pt"))
        return processor.post_process_semantic_segmentation(outputs, target_sizes=[image.shape[:2]] * len(images))

    predictor = RunnerPredictor(open_hf(str(folder), device="cpu"), batch=2)
    ours = best_seconds(lambda: list(predictor.predict_many(images, labels=True)), repeat, warmup=True)
    reference = best_seconds(bare, repeat, warmup=True)
    return [("HF SegFormer (B0 layout), 2 frames → labels vs forward + processor + post-process", ours, reference)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-hf", action="store_true")
    parser.add_argument("--skip-cli", action="store_true")
    parser.add_argument("--only-cli", action="store_true", help="only the end-to-end rows")
    parser.add_argument("--no-pyc", action="store_true", help="children keep PYTHONDONTWRITEBYTECODE")
    parser.add_argument("--importtime", action="store_true", help="print the ONNX path's slowest imports")
    args = parser.parse_args()
    frame = _frame(args.image)
    if args.importtime:
        import_report(frame, not args.no_pyc)
    rows = [] if args.skip_cli else cli_rows(frame, args.repeat, not args.no_pyc)
    if not args.only_cli:
        rows += onnx_rows(frame, args.repeat)
    if not args.skip_hf and not args.only_cli:
        rows += hf_rows(frame, args.repeat)
    print(f"{'what':<82} {'segtools':>9} {'reference':>10} {'ratio':>6}")
    for name, ours, reference in rows:
        print(f"{name:<82} {ours:>8.3f}s {reference:>9.3f}s {ours / reference:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
