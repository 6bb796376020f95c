"""Segment Anything checkpoints (Meta's SAM ViT-B/L/H; MobileSAM's TinyViT + SAM decoder).

No SHA-256 is listed: the publishers give none (the six hex digits in SAM's file names are
not a SHA-256 prefix), so downloads are checked by size and by loading. SAM's pixel
mean/std (123.675, 116.28, 103.53 / 58.395, 57.12, 57.375 on 0-255 pixels) are ImageNet's;
the longest side is resized to 1024 and padded (done by the SAM runner, not here).
"""

from __future__ import annotations

from segtools.models.preprocessing import IMAGENET
from segtools.weights.entry import WeightsEntry

_MASK = {"names": ["background", "object"], "palette": [[0, 0, 0], [255, 255, 255]], "ignore_index": None}
_SAM = "https://dl.fbaipublicfiles.com/segment_anything/"


def _sam(name: str, file: str, size_mb: float, params: int | None, description: str, url: str = "",
         license: str = "Apache-2.0") -> WeightsEntry:
    return WeightsEntry(name=name, arch=name, classes=_MASK, num_classes=1, preprocessing=IMAGENET,
                        url=url or _SAM + file, file_size_mb=size_mb, num_params=params, license=license,
                        metrics={"dataset": "SA-1B (promptable, class-agnostic masks)"}, description=description)


ENTRIES: tuple[WeightsEntry, ...] = (
    _sam("sam-vit-b", "sam_vit_b_01ec64.pth", 375.0, 93735472, "Segment Anything, ViT-B image encoder (Meta AI)"),
    _sam("sam-vit-l", "sam_vit_l_0b3195.pth", 1249.5, 312342832, "Segment Anything, ViT-L image encoder (Meta AI)"),
    _sam("sam-vit-h", "sam_vit_h_4b8939.pth", 2564.6, 641090608, "Segment Anything, ViT-H image encoder (Meta AI)"),
    _sam("mobile-sam", "mobile_sam.pt", 40.7, None,
         "MobileSAM: TinyViT-5M image encoder distilled from SAM ViT-H, SAM's decoder (the CPU choice)",
         url="https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt"),
)
