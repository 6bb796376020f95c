#!/usr/bin/env python
"""Record the golden outputs that prove segtools' SAM equals the official ``segment-anything``.

Run once in a separate venv that has ``segment-anything`` and torchvision (never runtime
dependencies of segtools)::

    python3 -m venv /tmp/samenv
    /tmp/samenv/bin/pip install torch==2.14.1 torchvision==0.29.1 segment-anything pycocotools opencv-python-headless
    /tmp/samenv/bin/python tools/make_sam_golden.py        # writes tests/fixtures/golden/sam/

It writes

* ``keys-sam-vit-{b,l,h}.json``: the key/shape list of each published architecture (built on
  the meta device, no weights), for a key-for-key test of our builders;
* ``prompts.npz`` / ``prompts.json``: a small ViT (``golden_util.SAM_TINY``) with SAM's full
  prompt encoder and mask decoder, every tensor filled by key (``golden_util``), run by
  ``SamPredictor`` on ``golden_util.sam_golden_image()`` for each ``SAM_PROMPT_CASES`` entry:
  masks (bit-packed), IoU predictions, low-res logits, strided full-size logits, and the
  image embedding;
* ``mobile.npz`` / ``mobile.json`` (``--only mobile``; needs ``ultralytics``, installed with
  ``pip install --no-deps ultralytics`` plus what its import asks for): MobileSAM — the
  TinyViT-5M image encoder as ``ultralytics`` ships it (MobileSAM's TinyViT, the module that
  loads ``mobile_sam.pt``) at 256 pixels (``MOBILE_IMG_SIZE``), behind segment-anything's
  prompt encoder and mask decoder, every tensor filled by key, run by ``SamPredictor``: its
  state-dict keys and shapes, the image embedding, and the ``MOBILE_CASES`` prompt outputs;
* ``amg.npz``: torchvision's box NMS on ``SAM_NMS_CASES``, and ``SamAutomaticMaskGenerator`` on the same model and image for each
  ``SAM_AMG_CASES`` entry: masks (bit-packed), boxes, predicted IoUs, stability scores,
  points, crop boxes, in the generator's order.

``tests/test_sam_golden.py`` rebuilds our model, fills it the same way and compares.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path

import numpy as np
import segment_anything
import torch
from segment_anything import SamAutomaticMaskGenerator, SamPredictor, sam_model_registry
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import golden_util  # noqa: E402


def tiny_sam() -> Sam:
    cfg = golden_util.SAM_TINY
    grid = cfg["img_size"] // cfg["patch_size"]
    model = Sam(
        image_encoder=ImageEncoderViT(
            img_size=cfg["img_size"], patch_size=cfg["patch_size"], embed_dim=cfg["embed_dim"], depth=cfg["depth"],
            num_heads=cfg["num_heads"], mlp_ratio=4, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            qkv_bias=True, use_rel_pos=True, global_attn_indexes=cfg["global_attn"],
            window_size=cfg["window_size"], out_chans=256),
        prompt_encoder=PromptEncoder(embed_dim=256, image_embedding_size=(grid, grid),
                                     input_image_size=(cfg["img_size"], cfg["img_size"]), mask_in_chans=16),
        mask_decoder=MaskDecoder(num_multimask_outputs=3, transformer=TwoWayTransformer(
            depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8), transformer_dim=256,
            iou_head_depth=3, iou_head_hidden_dim=256),
    )
    golden_util.fill_deterministic(model)
    return model.eval()


#: MobileSAM's TinyViT-5M sizes (embed dims 64/128/160/320, depths 2/2/6/2, heads 2/4/5/10,
#: windows 7/7/14/7) at a 256-pixel input (16×16 embedding), so that the test stays fast
MOBILE_IMG_SIZE = 256
MOBILE_CASES = ("point", "box", "boxes3")


def mobile_sam() -> Sam:
    from ultralytics.models.sam.modules.tiny_encoder import TinyViT

    grid = MOBILE_IMG_SIZE // 16
    encoder = TinyViT(img_size=MOBILE_IMG_SIZE, in_chans=3, num_classes=1000, embed_dims=[64, 128, 160, 320],
                      depths=[2, 2, 6, 2], num_heads=[2, 4, 5, 10], window_sizes=[7, 7, 14, 7], mlp_ratio=4.0,
                      drop_rate=0.0, drop_path_rate=0.0, use_checkpoint=False, mbconv_expand_ratio=4.0,
                      local_conv_size=3, layer_lr_decay=0.8)
    model = Sam(
        image_encoder=encoder,
        prompt_encoder=PromptEncoder(embed_dim=256, image_embedding_size=(grid, grid),
                                     input_image_size=(MOBILE_IMG_SIZE, MOBILE_IMG_SIZE), mask_in_chans=16),
        mask_decoder=MaskDecoder(num_multimask_outputs=3, transformer=TwoWayTransformer(
            depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8), transformer_dim=256,
            iou_head_depth=3, iou_head_hidden_dim=256),
    )
    golden_util.fill_deterministic(model)  # mobile_sam.pt's key layout: the keys need no mapping
    return model.eval()


def record_mobile(image: np.ndarray, out: Path) -> None:
    import ultralytics

    model = mobile_sam()
    keys = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    cases = {name: golden_util.SAM_PROMPT_CASES[name] for name in MOBILE_CASES}
    record_prompts(model, image, out, "mobile", cases)
    meta = json.loads((out / "mobile.json").read_text())
    meta.pop("tiny")
    meta.update(reference=f"ultralytics {ultralytics.__version__} TinyViT (MobileSAM's encoder) + "
                          f"{meta['reference']}", img_size=MOBILE_IMG_SIZE, keys=keys)
    (out / "mobile.json").write_text(json.dumps(meta, indent=1) + "\n")


def record_keys(out: Path) -> None:
    for name in ("vit_b", "vit_l", "vit_h"):
        with torch.device("meta"):
            model = sam_model_registry[name]()
        keys = [[k, list(v.shape)] for k, v in model.state_dict().items()]
        (out / f"keys-sam-{name.replace('_', '-')}.json").write_text(json.dumps(keys, separators=(",", ":")) + "\n")
        print(f"sam-{name}: {len(keys)} keys")


def record_prompts(model: Sam, image: np.ndarray, out: Path, name: str = "prompts",
                   cases: dict | None = None) -> None:
    predictor = SamPredictor(model)
    predictor.set_image(image)
    arrays = {"features": predictor.features.numpy()}
    summary = {}
    for case_name, case in (cases or golden_util.SAM_PROMPT_CASES).items():
        mask_input = None
        if "mask_from" in case:
            source = case["mask_from"]
            best = int(np.argmax(arrays[f"{source}_iou"][0]))
            mask_input = arrays[f"{source}_low_res"][0, best][None]
        with torch.inference_mode():
            if len(case.get("boxes", [])) > 1:  # batched boxes: the predictor's torch entry point
                boxes = predictor.transform.apply_boxes_torch(torch.tensor(case["boxes"]), predictor.original_size)
                logits, iou, low = predictor.predict_torch(None, None, boxes=boxes, multimask_output=case["multimask"],
                                                           return_logits=True)
                logits, iou, low = logits.numpy(), iou.numpy(), low.numpy()
            else:
                points = np.array(case["points"][0]) if "points" in case else None
                labels = np.array(case["labels"][0]) if "labels" in case else None
                box = np.array(case["boxes"][0]) if "boxes" in case else None
                logits, iou, low = predictor.predict(points, labels, box, mask_input, case["multimask"],
                                                     return_logits=True)
                logits, iou, low = logits[None], iou[None], low[None]
        masks = logits > model.mask_threshold
        arrays[f"{case_name}_masks"] = np.packbits(masks, axis=-1)
        arrays[f"{case_name}_iou"] = iou
        arrays[f"{case_name}_low_res"] = low.astype(np.float32)
        arrays[f"{case_name}_logits_sample"] = logits[..., ::4, ::4].astype(np.float32)
        summary[case_name] = {"iou": iou.tolist(), "mask_area": masks.sum(axis=(-2, -1)).tolist(),
                              "near_zero_logits": int((np.abs(logits) < 1e-4).sum())}
    np.savez_compressed(out / f"{name}.npz", **arrays)
    meta = {"reference": f"segment_anything {getattr(segment_anything, '__version__', '1.0')} SamPredictor",
            "torch": torch.__version__, "image_shape": list(image.shape), "tiny": golden_util.SAM_TINY,
            "cases": summary}
    (out / f"{name}.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(summary))


def record_amg(model: Sam, image: np.ndarray, out: Path) -> None:
    arrays = {}
    for name, options in golden_util.SAM_AMG_CASES.items():
        generator = SamAutomaticMaskGenerator(model, output_mode="binary_mask", **options)
        with torch.inference_mode():
            records = generator.generate(image)
        masks = np.array([r["segmentation"] for r in records], dtype=bool).reshape(-1, *image.shape[:2])
        arrays[f"{name}_masks"] = np.packbits(masks, axis=-1)
        arrays[f"{name}_bbox"] = np.array([r["bbox"] for r in records], dtype=np.float64).reshape(-1, 4)
        arrays[f"{name}_area"] = np.array([r["area"] for r in records], dtype=np.int64)
        arrays[f"{name}_iou"] = np.array([r["predicted_iou"] for r in records], dtype=np.float64)
        arrays[f"{name}_stability"] = np.array([r["stability_score"] for r in records], dtype=np.float64)
        arrays[f"{name}_points"] = np.array([r["point_coords"][0] for r in records], dtype=np.float64).reshape(-1, 2)
        arrays[f"{name}_crop_box"] = np.array([r["crop_box"] for r in records], dtype=np.float64).reshape(-1, 4)
        print(f"{name}: {len(records)} masks, areas {sorted(arrays[f'{name}_area'].tolist())[:8]}…")
    from torchvision.ops import nms

    for seed, count, threshold in golden_util.SAM_NMS_CASES:
        boxes, scores = golden_util.sam_nms_boxes(seed, count)
        arrays[f"nms_{seed}_keep"] = nms(torch.from_numpy(boxes), torch.from_numpy(scores), threshold).numpy()
    np.savez_compressed(out / "amg.npz", **arrays)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=golden_util.SAM_GOLDEN_DIR)
    parser.add_argument("--only", choices=("keys", "prompts", "amg", "mobile"), nargs="*")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    parts = args.only or ("keys", "prompts", "amg")
    image = golden_util.sam_golden_image()
    if "keys" in parts:
        record_keys(args.out)
    if "prompts" in parts:
        record_prompts(tiny_sam(), image, args.out)
    if "amg" in parts:
        record_amg(tiny_sam(), image, args.out)
    if "mobile" in parts:
        record_mobile(image, args.out)


if __name__ == "__main__":
    main()
