#!/usr/bin/env python
"""Record the golden outputs that prove our models equal their references.

Run in a separate venv that has torchvision (never a runtime dependency of segtools)::

    python3 -m venv /tmp/tvenv
    /tmp/tvenv/bin/pip install torch==2.14.1 torchvision==0.29.1
    /tmp/tvenv/bin/python tools/make_golden.py            # writes tests/fixtures/golden/

For every case in ``tests/golden_util.py`` it builds the reference model (torchvision's
segmentation models; for U-Net and DeepLabV3+, which torchvision lacks, a literal transcript
of the reference layout below), fills every parameter and buffer deterministically by key,
runs the fixed input in eval mode in float64, and writes ``<case>.npz`` (strided output
samples and per-channel means per head) and ``<case>.json`` (the key/shape manifest).
``tests/test_models_golden.py`` rebuilds our model, fills it the same way and compares.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models import resnet50, resnet101, segmentation
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation.deeplabv3 import ASPP

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import golden_util  # noqa: E402


# --- milesial/Pytorch-UNet layout, written out level by level (depth 4, 64 channels) -----
class _DoubleConv(nn.Module):
    def __init__(self, cin: int, cout: int, cmid: int | None = None) -> None:
        super().__init__()
        cmid = cmid or cout
        self.double_conv = nn.Sequential(
            nn.Conv2d(cin, cmid, 3, padding=1, bias=False), nn.BatchNorm2d(cmid), nn.ReLU(),
            nn.Conv2d(cmid, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
        )

    def forward(self, x):
        return self.double_conv(x)


class _Down(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), _DoubleConv(cin, cout))

    def forward(self, x):
        return self.maxpool_conv(x)


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int, bilinear: bool) -> None:
        super().__init__()
        if bilinear:
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            self.conv = _DoubleConv(cin, cout, cin // 2)
        else:
            self.up = nn.ConvTranspose2d(cin, cin // 2, kernel_size=2, stride=2)
            self.conv = _DoubleConv(cin, cout)

    def forward(self, low, skip):
        return self.conv(torch.cat([skip, self.up(low)], dim=1))


class _OutConv(nn.Module):
    def __init__(self, cin: int, classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, classes, 1)

    def forward(self, x):
        return self.conv(x)


class MilesialUNet(nn.Module):
    def __init__(self, n_channels: int, n_classes: int, bilinear: bool = False) -> None:
        super().__init__()
        factor = 2 if bilinear else 1
        self.inc = _DoubleConv(n_channels, 64)
        self.down1 = _Down(64, 128)
        self.down2 = _Down(128, 256)
        self.down3 = _Down(256, 512)
        self.down4 = _Down(512, 1024 // factor)
        self.up1 = _Up(1024, 512 // factor, bilinear)
        self.up2 = _Up(512, 256 // factor, bilinear)
        self.up3 = _Up(256, 128 // factor, bilinear)
        self.up4 = _Up(128, 64, bilinear)
        self.outc = _OutConv(64, n_classes)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x = self.up4(self.up3(self.up2(self.up1(x5, x4), x3), x2), x1)
        return {"out": self.outc(x)}


# --- DeepLabV3+ with the VainF/DeepLabV3Plus-Pytorch head layout ---------------------------
class _PlusHead(nn.Module):
    def __init__(self, classes: int, rates: tuple[int, int, int], decoder_convs: int) -> None:
        super().__init__()
        self.project = nn.Sequential(nn.Conv2d(256, 48, 1, bias=False), nn.BatchNorm2d(48), nn.ReLU())
        self.aspp = ASPP(2048, rates)
        blocks: list[nn.Module] = [nn.Conv2d(304, 256, 3, padding=1, bias=False), nn.BatchNorm2d(256), nn.ReLU()]
        if decoder_convs == 2:
            blocks += [nn.Conv2d(256, 256, 3, padding=1, bias=False), nn.BatchNorm2d(256), nn.ReLU()]
        self.classifier = nn.Sequential(*blocks, nn.Conv2d(256, classes, 1))

    def forward(self, features):
        low = self.project(features["low_level"])
        high = F.interpolate(self.aspp(features["out"]), size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.classifier(torch.cat([low, high], dim=1))


class DeepLabV3Plus(nn.Module):
    def __init__(self, depth: int, classes: int, output_stride: int, decoder_convs: int) -> None:
        super().__init__()
        dilate = [False, False, True] if output_stride == 16 else [False, True, True]
        rates = (6, 12, 18) if output_stride == 16 else (12, 24, 36)
        trunk = (resnet50 if depth == 50 else resnet101)(weights=None, replace_stride_with_dilation=dilate)
        self.backbone = IntermediateLayerGetter(trunk, return_layers={"layer1": "low_level", "layer4": "out"})
        self.classifier = _PlusHead(classes, rates, decoder_convs)

    def forward(self, x):
        logits = self.classifier(self.backbone(x))
        return {"out": F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)}


def reference_model(case: golden_util.GoldenCase) -> nn.Module:
    """The reference implementation for one golden case."""
    tv = {
        "deeplabv3-resnet50": segmentation.deeplabv3_resnet50,
        "deeplabv3-resnet101": segmentation.deeplabv3_resnet101,
        "deeplabv3-mnv3": segmentation.deeplabv3_mobilenet_v3_large,
        "fcn-resnet50": segmentation.fcn_resnet50,
        "fcn-resnet101": segmentation.fcn_resnet101,
    }
    if case.arch in tv:
        return tv[case.arch](weights=None, weights_backbone=None, num_classes=case.num_classes, aux_loss=True)
    if case.arch == "lraspp-mnv3":
        return segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=case.num_classes)
    if case.arch.startswith("deeplabv3plus"):
        depth = 101 if case.arch.endswith("101") else 50
        return DeepLabV3Plus(depth, case.num_classes, case.options.get("output_stride", 16), case.options.get("decoder_convs", 2))
    if case.arch == "unet":
        return MilesialUNet(3, case.num_classes, bilinear=case.options.get("bilinear", False))
    raise ValueError(case.arch)


def record(case: golden_util.GoldenCase, out_dir: Path) -> None:
    model = reference_model(case)
    manifest_keys = [[key, list(value.shape), str(value.dtype).replace("torch.", "")] for key, value in model.state_dict().items()]
    golden_util.fill_deterministic(model)
    model = model.double().eval()
    with torch.inference_mode():
        outputs = model(torch.from_numpy(golden_util.golden_input()))
        outputs32 = model.float()(torch.from_numpy(golden_util.golden_input()).float())
    arrays: dict[str, np.ndarray] = {}
    drift = {}
    for head in case.heads:
        logits = outputs[head].numpy()
        for field_name, value in golden_util.summarise(logits).items():
            arrays[f"{head}_{field_name}"] = value
        drift[head] = float(np.abs(outputs32[head].numpy() - logits).max())
    np.savez_compressed(out_dir / f"{case.name}.npz", **arrays)
    manifest = {
        "case": case.name,
        "arch": case.arch,
        "num_classes": case.num_classes,
        "options": case.options,
        "reference": case.reference,
        "generated_with": {"torch": torch.__version__, "torchvision": torchvision.__version__},
        "input_shape": list(golden_util.INPUT_SHAPE),
        "heads": list(case.heads),
        "float32_vs_float64_max_abs": drift,
        "output_abs_max": {head: float(np.abs(outputs[head].numpy()).max()) for head in case.heads},
        "state_dict": manifest_keys,
    }
    (out_dir / f"{case.name}.json").write_text(json.dumps(manifest, separators=(",", ":")) + "\n")
    print(f"{case.name:36s} keys={len(manifest_keys):4d} |out|max={manifest['output_abs_max']} f32 drift={drift}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=golden_util.GOLDEN_DIR)
    parser.add_argument("--only", nargs="*", help="case names to regenerate")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    for case in golden_util.GOLDEN_CASES:
        if not args.only or case.name in args.only:
            record(case, args.out)


if __name__ == "__main__":
    main()
