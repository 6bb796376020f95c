#!/usr/bin/env python
"""Record the golden outputs that prove segtools' Mask/Faster R-CNN equal torchvision's.

Run in a separate venv that has torchvision (never a runtime dependency of segtools)::

    /path/to/tvenv/bin/python tools/make_detection_golden.py [--camvid DIR]

For every case in ``tests/golden_detection.py`` (``DETECTION_CASES``) it builds torchvision's
model as its published weights are built (v1: ResNet-50 with FrozenBatchNorm2d, so the keys
are those of the COCO checkpoints; v2: BatchNorm2d throughout), fills every parameter and
buffer by key (``fill_detector``), runs the case's CamVid frames as one batch
in eval mode in float64, and writes ``tests/fixtures/golden/detection/<case>.json``:
boxes, scores, labels, every mask thresholded at 0.5 as a COCO RLE (pycocotools), the
float32 drift of the same run, and the key/shape manifest.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from pycocotools import mask as cocomask
from torch import nn
from torchvision.models import resnet50
from torchvision.models.detection import FasterRCNN, MaskRCNN, maskrcnn_resnet50_fpn_v2
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops.misc import FrozenBatchNorm2d

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import golden_detection  # noqa: E402

CAMVID = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid" / "val"


def reference_model(case: golden_detection.DetectionCase) -> nn.Module:
    sizes = {"min_size": case.min_size, "max_size": case.max_size}
    if case.arch == "maskrcnn-resnet50-fpn-v2":
        return maskrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, **sizes)
    backbone = _resnet_fpn_extractor(resnet50(weights=None, norm_layer=FrozenBatchNorm2d), 3)
    cls = MaskRCNN if case.arch.startswith("maskrcnn") else FasterRCNN
    return cls(backbone, num_classes=91, **sizes)


def frames(case: golden_detection.DetectionCase, root: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(root / name).convert("RGB")) for name in case.frames]


def run(model: nn.Module, images: list[np.ndarray], dtype: torch.dtype) -> list[dict]:
    tensors = [torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1))).to(dtype) / 255 for im in images]
    with torch.inference_mode():
        return model.to(dtype)(tensors)


def record(case: golden_detection.DetectionCase, root: Path, out_dir: Path) -> None:
    model = reference_model(case)
    manifest_keys = [[key, list(value.shape)] for key, value in model.state_dict().items()]
    golden_detection.fill_detector(model)
    model.eval()
    images = frames(case, root)
    outputs = run(model, images, torch.float64)
    outputs32 = run(model, images, torch.float32)
    results = []
    for out, out32 in zip(outputs, outputs32):
        item = {"boxes": out["boxes"].tolist(), "scores": out["scores"].tolist(), "labels": out["labels"].tolist()}
        if "masks" in out:
            binary = np.asfortranarray((out["masks"][:, 0] > 0.5).numpy().astype(np.uint8).transpose(1, 2, 0))
            item["masks"] = [{"size": r["size"], "counts": r["counts"].decode()} for r in cocomask.encode(binary)]
        same = len(out32["labels"]) == len(out["labels"]) > 0 and bool((out32["labels"] == out["labels"]).all())
        item["float32"] = {"same_labels": same,
                           "box_max_abs": float((out32["boxes"].double() - out["boxes"]).abs().max()) if same else None,
                           "score_max_abs": float((out32["scores"].double() - out["scores"]).abs().max()) if same else None}
        results.append(item)
    document = {
        "case": case.name, "arch": case.arch, "frames": list(case.frames), "min_size": case.min_size,
        "max_size": case.max_size, "reference": case.reference, "gains": golden_detection.DETECTION_GAINS,
        "generated_with": {"torch": torch.__version__, "torchvision": torchvision.__version__},
        "images": results, "state_dict": manifest_keys,
    }
    (out_dir / f"{case.name}.json").write_text(json.dumps(document, separators=(",", ":")) + "\n")
    areas = [[int(v) for v in cocomask.area(r["masks"])[:8]] if "masks" in r else None for r in results]
    print(case.name, [len(r["labels"]) for r in results], [r["scores"][:3] for r in results],
          [r["float32"] for r in results], "mask areas", areas)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--camvid", type=Path, default=CAMVID)
    parser.add_argument("--out", type=Path, default=golden_detection.DETECTION_DIR)
    parser.add_argument("--only", nargs="*", help="case names to regenerate")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    for case in golden_detection.DETECTION_CASES:
        if not args.only or case.name in args.only:
            record(case, args.camvid, args.out)


if __name__ == "__main__":
    main()
