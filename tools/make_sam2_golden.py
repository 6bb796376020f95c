#!/usr/bin/env python
"""Record the golden outputs that prove segtools' SAM 2.1 image predictor equals the official ``sam2``.

Run once in a separate venv that has ``sam2`` and torchvision (never runtime dependencies
of segtools)::

    /work/refenv/bin/pip install --no-deps sam2 hydra-core iopath omegaconf==2.3.0 \
        antlr4-python3-runtime==4.9.3 pyyaml packaging portalocker tqdm   # SAM2_BUILD_CUDA=0
    /work/refenv/bin/python tools/make_sam2_golden.py      # writes tests/fixtures/golden/sam2/

It writes

* ``keys-sam2.1-hiera-{tiny,small,base-plus,large}.json.gz``: key and shape of every
  tensor of the official model built from its shipped config (image path and video parts),
  for a key-for-key test of our builders and of the variant recognition;
* ``predictor.npz`` / ``predictor.json``: a small Hiera (``TINY`` below) in the official
  SAM2Base (with the full-size prompt encoder, mask decoder and small memory parts), built
  by ``build_sam2`` from the tiny config with overrides, every tensor filled by key
  (``tests/golden_util.py``), run by ``SAM2ImagePredictor`` (``set_image`` + ``predict``)
  on ``golden_util.sam_golden_image()`` for each case of ``CASES``: masks (bit-packed),
  IoU predictions, low-res logits (strided sample and per-mask sums), full-size logits
  (strided by 8), object-score logits; the image embedding and high-resolution features
  (samples and channel sums); and the predictor's preprocessing of a large image (the
  downscaling path, antialiased).

``tests/test_sam2_golden.py`` rebuilds our model from the recorded config, fills it the
same way and compares.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

import numpy as np
import sam2
import torch
from hydra import compose
from hydra.utils import instantiate
from omegaconf import OmegaConf
from sam2.build_sam import build_sam2
from sam2.sam2_image_predictor import SAM2ImagePredictor

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import golden_util  # noqa: E402

OUT = golden_util.GOLDEN_DIR / "sam2"
CONFIGS = {"sam2.1-hiera-tiny": "t", "sam2.1-hiera-small": "s", "sam2.1-hiera-base-plus": "b+",
           "sam2.1-hiera-large": "l"}
#: the small trunk of the golden model: four stages (1, 2, 3, 1 blocks), windows that need
#: padding and pooling, one global block; the neck, prompt encoder and decoder are full size
TINY = {"embed_dim": 16, "num_heads": 1, "stages": [1, 2, 3, 1], "global_blocks": [5], "window_spec": [8, 4, 14, 7],
        "pos_size": [7, 7]}
#: prompt cases: golden_util's SAM cases plus one click asking for a single mask
CASES = {**golden_util.SAM_PROMPT_CASES,
         "point_single": {"points": [[[150.0, 60.0]]], "labels": [[1]], "multimask": False}}
BIG_SHAPE = (1100, 1500, 3)  # downscaled to 1024x1024: the antialiased path


def big_image() -> np.ndarray:
    rng = np.random.default_rng(20240610)
    h, w, _ = BIG_SHAPE
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.stack([(xx // 7 % 2) * 200.0, yy * 255 / h, (xx * yy) % 251], axis=-1) + rng.normal(0, 10, BIG_SHAPE)
    return image.clip(0, 255).astype(np.uint8)


def tiny_overrides() -> list[str]:
    t = TINY
    channels = [t["embed_dim"] * 2 ** i for i in range(4)][::-1]
    return [f"++model.image_encoder.trunk.embed_dim={t['embed_dim']}",
            f"++model.image_encoder.trunk.num_heads={t['num_heads']}",
            f"++model.image_encoder.trunk.stages={t['stages']}",
            f"++model.image_encoder.trunk.global_att_blocks={t['global_blocks']}",
            f"++model.image_encoder.trunk.window_spec={t['window_spec']}",
            f"++model.image_encoder.trunk.window_pos_embed_bkg_spatial_size={t['pos_size']}",
            f"++model.image_encoder.neck.backbone_channel_list={channels}"]


def record_keys() -> None:
    for name, short in CONFIGS.items():
        cfg = compose(config_name=f"configs/sam2.1/sam2.1_hiera_{short}.yaml")
        OmegaConf.resolve(cfg)
        model = instantiate(cfg.model, _recursive_=True)
        keys = [[k, list(v.shape)] for k, v in model.state_dict().items()]
        with gzip.open(OUT / f"keys-{name}.json.gz", "wt") as f:
            f.write(json.dumps(keys, separators=(",", ":")) + "\n")
        print(f"{name}: {len(keys)} keys, {sum(int(np.prod(s)) for _, s in keys)} values")


def record_predictor() -> None:
    model = build_sam2("configs/sam2.1/sam2.1_hiera_t.yaml", None, device="cpu", hydra_overrides_extra=tiny_overrides())
    golden_util.fill_deterministic(model)
    model.eval()
    predictor = SAM2ImagePredictor(model)
    image = golden_util.sam_golden_image()
    scores = []
    model.sam_mask_decoder.pred_obj_score_head.register_forward_hook(lambda m, i, o: scores.append(o.detach()))
    predictor.set_image(image)
    embed = predictor._features["image_embed"].numpy()
    s0, s1 = (f.numpy() for f in predictor._features["high_res_feats"])
    arrays = {"features_sample": embed[:, :, ::8, ::8], "features_sum": embed.sum(axis=(2, 3), dtype=np.float64),
              "s0_sample": s0[:, :, ::16, ::16], "s0_sum": s0.sum(axis=(2, 3), dtype=np.float64),
              "s1_sample": s1[:, :, ::8, ::8], "s1_sum": s1.sum(axis=(2, 3), dtype=np.float64)}
    big = predictor._transforms(big_image()).numpy()
    arrays["big_input_sample"] = big[:, ::32, ::32]
    arrays["big_input_sum"] = big.sum(axis=(1, 2), dtype=np.float64)
    summary = {}
    low_full = {}
    for name, case in CASES.items():
        mask_input = None
        if "mask_from" in case:
            source = case["mask_from"]
            best = int(np.argmax(arrays[f"{source}_iou"][0]))
            mask_input = low_full[source][0, best][None]
        boxes = np.array(case["boxes"]) if "boxes" in case else None
        points = np.array(case["points"][0]) if "points" in case else None
        labels = np.array(case["labels"][0]) if "labels" in case else None
        scores.clear()
        with torch.inference_mode():
            logits, iou, low = predictor.predict(points, labels, boxes, mask_input, case["multimask"],
                                                 return_logits=True)
        if logits.ndim == 3:  # one prompt: the predictor drops the batch axis
            logits, iou, low = logits[None], iou[None], low[None]
        low_full[name] = low
        masks = logits > 0.0
        arrays[f"{name}_masks"] = np.packbits(masks, axis=-1)
        arrays[f"{name}_iou"] = iou
        arrays[f"{name}_low_res_sample"] = low[..., ::8, ::8].astype(np.float32)
        arrays[f"{name}_low_res_sum"] = low.sum(axis=(-2, -1), dtype=np.float64)
        arrays[f"{name}_logits_sample"] = logits[..., ::8, ::8].astype(np.float32)
        arrays[f"{name}_object_score"] = scores[-1].numpy()
        summary[name] = {"iou": iou.tolist(), "mask_area": masks.sum(axis=(-2, -1)).tolist(),
                         "near_zero_logits": int((np.abs(logits) < 1e-4).sum()),
                         "object_score": scores[-1].flatten().tolist()}
    np.savez_compressed(OUT / "predictor.npz", **arrays)
    meta = {"reference": f"sam2 {getattr(sam2, '__version__', '1.1.0')} SAM2ImagePredictor (build_sam2 defaults: "
                         "dynamic multimask via stability)",
            "torch": torch.__version__, "image_shape": list(image.shape), "big_shape": list(BIG_SHAPE), "tiny": TINY,
            "cases": CASES, "summary": summary}
    (OUT / "predictor.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(summary))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("keys", "predictor"), nargs="*")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    parts = args.only or ("keys", "predictor")
    if "keys" in parts:
        record_keys()
    if "predictor" in parts:
        record_predictor()


if __name__ == "__main__":
    main()
