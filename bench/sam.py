#!/usr/bin/env python
"""SAM speed, side by side with the official segment-anything in the same run.

    python bench/sam.py --reference-python /path/to/venv-with-segment-anything/bin/python

Rows:

* segment everything: ``segtools`` (``inference.sam_auto.generate_masks``) against
  ``SamAutomaticMaskGenerator`` on the same model, weights and image, best of ``--repeat``;
  the masks are compared (count, IoU of each pair in order). The model is SAM's real prompt
  encoder and mask decoder at 1024 pixels (64×64 embedding, 256×256 low-res masks) behind a
  small ViT (``--encoder tiny``, so the row measures the decoding, filtering, NMS and
  upscaling that differ) or ViT-B (``--encoder vit-b``); weights random, filled by key
  (tests/golden_util.py). Settings: the generator's defaults (0.88 / 0.95 / offset 1: with
  random weights almost no candidate passes them, so only decoding is compared), and
  ``survivors`` (IoU > 0.3, stability >= 0.6 at offset 0.05, the same on both sides), under
  which a share of the candidates passes, as with the published weights, so that
  upscaling, stability, NMS and mask encoding count. Rounds are interleaved (reference,
  then segtools, ``--repeat`` times; best of each); each row says how many candidates
  passed the IoU filter.
* per-prompt decoding: ``SamRunner.predict`` (one point, masks at the image size) against
  the bare prompt encoder + mask decoder forward on the same tensors.
* encoder: ``SamRunner.encode`` (resize, normalise, pad, encode) against the bare image
  encoder forward; ViT-B and MobileSAM's TinyViT when ``--encoders`` names them.

Without ``--reference-python`` only segtools' side is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import golden_util  # noqa: E402
from _timing import best_seconds  # noqa: E402

TINY_1024 = {**golden_util.SAM_TINY, "img_size": 1024, "window_size": 14}

REFERENCE = r'''
import json, sys, time
from functools import partial
import numpy as np, torch
sys.path.insert(0, sys.argv[2])
import golden_util
from segment_anything import SamAutomaticMaskGenerator, sam_model_registry
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
job = json.load(open(sys.argv[1]))
torch.set_num_threads(job["threads"])
if job["encoder"] == "vit-b":
    model = sam_model_registry["vit_b"]()
else:
    cfg = job["tiny"]
    model = Sam(image_encoder=ImageEncoderViT(img_size=1024, patch_size=16, embed_dim=cfg["embed_dim"], depth=cfg["depth"],
                num_heads=cfg["num_heads"], mlp_ratio=4, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), qkv_bias=True,
                use_rel_pos=True, global_attn_indexes=cfg["global_attn"], window_size=cfg["window_size"], out_chans=256),
                prompt_encoder=PromptEncoder(embed_dim=256, image_embedding_size=(64, 64), input_image_size=(1024, 1024),
                mask_in_chans=16), mask_decoder=MaskDecoder(num_multimask_outputs=3, transformer=TwoWayTransformer(
                depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8), transformer_dim=256, iou_head_depth=3,
                iou_head_hidden_dim=256))
golden_util.fill_deterministic(model)
model.eval()
image = np.load(job["image"])
out = {}
for name, options in job["settings"].items():
    gen = SamAutomaticMaskGenerator(model, **options)
    start = time.perf_counter()
    with torch.inference_mode():
        records = gen.generate(image)
    best = time.perf_counter() - start
    masks = np.array([r["segmentation"] for r in records], bool).reshape(-1, *image.shape[:2])
    np.save(job["out"] + f".{name}.npy", np.packbits(masks, axis=-1))
    out[name] = best
print(json.dumps(out))
'''


def bench_image(size: tuple[int, int]) -> np.ndarray:
    camvid = ROOT.parent / "shared" / "data" / "camvid" / "val"
    frames = sorted(camvid.glob("*.png")) if camvid.is_dir() else []
    if frames:
        from PIL import Image

        return np.asarray(Image.open(frames[0]).convert("RGB"))
    h, w = size
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


def our_model(encoder: str):
    from segtools.models.sam.model import SamConfig, build_sam

    model = build_sam("sam-vit-b") if encoder == "vit-b" else build_sam(SamConfig(**TINY_1024))
    golden_util.fill_deterministic(model)
    return model.eval()


def passed_iou(runner, image: np.ndarray, per_side: int, setting: dict) -> str:
    """How many of the grid's candidate masks pass the setting's predicted-IoU filter."""
    import torch

    from segtools.inference.sam_auto import point_grid

    threshold = setting.get("pred_iou_thresh", 0.88)
    embedding = runner.encode(image)
    points = point_grid(per_side) * np.array(image.shape[:2])[None, ::-1]
    with torch.inference_mode():
        iou, _, _ = runner.decode_above(embedding, points[:, None], np.ones((len(points), 1)), float("inf"))
    return f"{int((iou > threshold).sum())}/{iou.numel()}"


def mask_ious(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.reshape(len(a), -1).astype(np.float32)
    b = b.reshape(len(b), -1).astype(np.float32)
    inter = (a * b).sum(1)
    return inter / (a.sum(1) + b.sum(1) - inter)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-python", help="python of a venv with segment-anything + torchvision")
    parser.add_argument("--encoder", choices=("tiny", "vit-b"), default="tiny")
    parser.add_argument("--encoders", nargs="*", default=["vit-b"], help="encoders to time: vit-b, mobile-sam")
    parser.add_argument("--points-per-side", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-everything", action="store_true")
    parser.add_argument("--settings", nargs="*", default=["defaults", "survivors"], help="defaults, survivors")
    args = parser.parse_args()

    import torch

    from segtools.inference.sam import SamRunner
    from segtools.inference.sam_auto import EverythingOptions, generate_masks

    torch.set_num_threads(args.threads)
    image = bench_image((360, 480))
    rows = []
    settings = {"defaults": {},
                "survivors": {"pred_iou_thresh": 0.3, "stability_score_thresh": 0.6, "stability_score_offset": 0.05}}
    names = {"pred_iou_thresh": "pred_iou_thresh", "stability_score_thresh": "stability_thresh",
             "stability_score_offset": "stability_offset"}
    print(f"load average {os.getloadavg()[0]:.1f} at the start", flush=True)
    if not args.skip_everything:
        runner = SamRunner(our_model(args.encoder))
        with tempfile.TemporaryDirectory() as tmp:
            np.save(f"{tmp}/image.npy", image)
            job = {"encoder": args.encoder, "tiny": TINY_1024, "image": f"{tmp}/image.npy", "out": f"{tmp}/ref",
                   "threads": args.threads,
                   "settings": {k: {"points_per_side": args.points_per_side, **v} for k, v in settings.items()
                                if k in args.settings}}
            Path(f"{tmp}/job.json").write_text(json.dumps(job))
            reference: dict[str, float] = {}
            ours: dict[str, float] = {}
            found: dict = {}
            for _ in range(args.repeat):  # interleaved rounds: both sides see the same load
                if args.reference_python:
                    done = subprocess.run([args.reference_python, "-c", REFERENCE, f"{tmp}/job.json", str(ROOT / "tests")],
                                          capture_output=True, text=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
                    if done.returncode:
                        sys.exit(f"reference failed: {done.stderr[-2000:]}")
                    for name, value in json.loads(done.stdout.strip().splitlines()[-1]).items():
                        reference[name] = min(reference.get(name, float("inf")), value)
                for name in job["settings"]:
                    options = EverythingOptions(points_per_side=args.points_per_side,
                                                **{names[k]: v for k, v in settings[name].items()})
                    start = time.perf_counter()
                    found[name] = generate_masks(runner, image, options)
                    ours[name] = min(ours.get(name, float("inf")), time.perf_counter() - start)
            for name in job["settings"]:
                masks = found[name].masks
                row = {"row": f"everything ({name}, {args.points_per_side}² points, {args.encoder} encoder)",
                       "segtools_s": round(ours[name], 2), "masks": len(masks),
                       "passed_iou": passed_iou(runner, image, args.points_per_side, settings[name])}
                if name in reference:
                    ref = np.unpackbits(np.load(f"{tmp}/ref.{name}.npy"), axis=-1, count=image.shape[1]).astype(bool)
                    row.update(reference_s=round(reference[name], 2), speedup=round(reference[name] / ours[name], 2),
                               reference_masks=len(ref),
                               min_iou=float(mask_ious(ref, masks).min()) if len(ref) == len(masks) and len(ref) else None)
                rows.append(row)
                print(json.dumps(row), flush=True)

    # per-prompt decoding: the runner against the bare modules
    runner = SamRunner(our_model("tiny"))
    embedding = runner.encode(image)
    model = runner.model
    point = np.array([[[image.shape[1] / 2, image.shape[0] / 2]]])

    def bare_decode():
        with torch.inference_mode():
            coords = torch.as_tensor(runner.scale_coords(point, embedding), dtype=torch.float32)
            sparse, dense = model.prompt_encoder((coords, torch.ones(1, 1, dtype=torch.int64)), None, None)
            low, _ = model.mask_decoder(embedding.features, model.prompt_encoder.dense_positions(), sparse, dense, True)
            return low

    def runner_decode():
        runner.predict(embedding, point, [[1]], multimask=True)

    bare = best_seconds(bare_decode, max(5, args.repeat), warmup=True)
    full = best_seconds(runner_decode, max(5, args.repeat), warmup=True)
    rows.append({"row": "per-prompt decoder, one point, 3 masks (SamRunner.predict vs bare forward)",
                 "segtools_s": round(full, 4), "bare_s": round(bare, 4), "ratio": round(full / bare, 3)})
    print(json.dumps(rows[-1]), flush=True)

    for encoder in args.encoders:
        from segtools.models.sam.model import build_sam

        model = build_sam("mobile-sam" if encoder == "mobile-sam" else "sam-vit-b")
        golden_util.fill_deterministic(model)
        runner = SamRunner(model)
        x, _ = runner.preprocess(image)

        def bare_encode():
            with torch.inference_mode():
                model.image_encoder(x)

        bare = best_seconds(bare_encode, args.repeat, warmup=True)
        full = best_seconds(lambda: runner.encode(image), args.repeat)
        rows.append({"row": f"encoder {encoder}, {image.shape[0]}x{image.shape[1]} image (SamRunner.encode vs bare)",
                     "segtools_s": round(full, 3), "bare_s": round(bare, 3), "ratio": round(full / bare, 3)})
        print(json.dumps(rows[-1]), flush=True)

    print("\n| row | segtools | reference | ratio |\n|---|---|---|---|")
    for row in rows:
        ref = row.get("reference_s", row.get("bare_s", ""))
        ratio = row.get("speedup", row.get("ratio", ""))
        extra = f" ({row['masks']} masks vs {row.get('reference_masks')}, min IoU {row.get('min_iou')})" \
            if "masks" in row else ""
        if "passed_iou" in row:
            extra += f", {row['passed_iou']} candidates past the IoU filter"
        print(f"| {row['row']} | {row['segtools_s']} s{extra} | {ref} s | {ratio}× |")
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
