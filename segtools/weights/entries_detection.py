"""Built-in weights of the instance models: torchvision's COCO Mask / Faster R-CNN checkpoints.

Their labels are COCO category ids (1..90, with ten ids COCO never used, named ``N/A``;
0 is the background), so ``category_id`` in ``predict --format coco`` output is the label
itself. Published accuracy: COCO val2017 box and mask AP, as torchvision documents them.
"""

from __future__ import annotations

from segtools.io.presets import COCO_CLASSES
from segtools.models.preprocessing import IMAGENET
from segtools.weights.download import hash_prefix_from_name
from segtools.weights.entry import WeightsEntry

#: COCO category ids that have no category (the 2014 paper's 91 minus the 80 released)
COCO_UNUSED_IDS = (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)


def coco_label_names() -> list[str]:
    """Names by label for torchvision's COCO detectors: ``__background__``, then per COCO
    category id its name, ``N/A`` for the unused ids (91 names)."""
    names, released = ["__background__"], iter(COCO_CLASSES)
    for category_id in range(1, 91):
        names.append("N/A" if category_id in COCO_UNUSED_IDS else next(released))
    return names


def _coco(name: str, arch: str, file: str, params: int, box_ap: float, mask_ap: float | None, size_mb: float,
          description: str) -> WeightsEntry:
    metrics = {"box_map": box_ap, "dataset": "COCO val2017"}
    if mask_ap is not None:
        metrics["mask_map"] = mask_ap
    return WeightsEntry(
        name=name, arch=arch, classes={"names": coco_label_names(), "ignore_index": None}, num_classes=91,
        preprocessing=IMAGENET.with_(resize_short=800),
        url=f"https://download.pytorch.org/models/{file}", hash_prefix=hash_prefix_from_name(file),
        file_size_mb=size_mb, num_params=params, metrics=metrics, license="BSD-3-Clause",
        arch_options={"min_size": 800, "max_size": 1333}, description=description)


ENTRIES: tuple[WeightsEntry, ...] = (
    _coco("maskrcnn-resnet50-fpn-coco", "maskrcnn-resnet50-fpn", "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth",
          44401393, 37.9, 34.6, 169.84, "torchvision Mask R-CNN ResNet-50 FPN, COCO instances"),
    _coco("maskrcnn-resnet50-fpn-v2-coco", "maskrcnn-resnet50-fpn-v2", "maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth",
          46359409, 47.4, 41.8, 177.219, "torchvision Mask R-CNN ResNet-50 FPN v2, COCO instances"),
    _coco("fasterrcnn-resnet50-fpn-coco", "fasterrcnn-resnet50-fpn", "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth",
          41755286, 37.0, None, 159.743, "torchvision Faster R-CNN ResNet-50 FPN, COCO boxes"),
    _coco("fasterrcnn-resnet50-fpn-v2-coco", "fasterrcnn-resnet50-fpn-v2", "fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth",
          43712278, 46.7, None, 167.104, "torchvision Faster R-CNN ResNet-50 FPN v2, COCO boxes"),
)
