"""ImageNet-pretrained backbones (torchvision's classification checkpoints) for
``segtools train --init-backbone NAME``: the ResNet-50/101 of the DeepLabV3, DeepLabV3+ and
FCN models, and the MobileNetV3-Large of LR-ASPP and DeepLabV3-MobileNetV3.

Figures are torchvision's published ones (ImageNet-1K top-1 accuracy, parameters, file size
in MB); the SHA-256 prefix is the one in each file name, checked by ``weights pull``.
"""

from __future__ import annotations

from segtools.models.preprocessing import IMAGENET
from segtools.weights.download import hash_prefix_from_name
from segtools.weights.entry import WeightsEntry

_USED_BY = {
    "resnet50": "deeplabv3-resnet50, deeplabv3plus-resnet50, fcn-resnet50",
    "resnet101": "deeplabv3-resnet101, deeplabv3plus-resnet101, fcn-resnet101",
    "mobilenet_v3_large": "lraspp-mnv3, deeplabv3-mnv3",
}


def _backbone(name: str, backbone: str, file: str, params: int, top1: float, size_mb: float, recipe: str) -> WeightsEntry:
    return WeightsEntry(
        name=name, arch=backbone, classes={"names": [], "palette": [], "ignore_index": None}, num_classes=1000,
        preprocessing=IMAGENET, url=f"https://download.pytorch.org/models/{file}",
        hash_prefix=hash_prefix_from_name(file), file_size_mb=size_mb, num_params=params,
        metrics={"top1": top1, "dataset": "ImageNet-1K val"}, license="BSD-3-Clause", kind="backbone",
        description=f"torchvision {backbone} ImageNet weights ({recipe}), backbone for "
                    f"train --init-backbone with {_USED_BY[backbone]}")


ENTRIES: tuple[WeightsEntry, ...] = (
    _backbone("resnet50-imagenet", "resnet50", "resnet50-0676ba61.pth", 25557032, 76.13, 97.781, "IMAGENET1K_V1"),
    _backbone("resnet50-imagenet-v2", "resnet50", "resnet50-11ad3fa6.pth", 25557032, 80.858, 97.79, "IMAGENET1K_V2"),
    _backbone("resnet101-imagenet", "resnet101", "resnet101-63fe2227.pth", 44549160, 77.374, 170.511, "IMAGENET1K_V1"),
    _backbone("resnet101-imagenet-v2", "resnet101", "resnet101-cd907fc2.pth", 44549160, 81.886, 170.53,
              "IMAGENET1K_V2"),
    _backbone("mnv3-large-imagenet", "mobilenet_v3_large", "mobilenet_v3_large-8738ca79.pth", 5483032, 74.042,
              21.114, "IMAGENET1K_V1"),
    _backbone("mnv3-large-imagenet-v2", "mobilenet_v3_large", "mobilenet_v3_large-5c1a4163.pth", 5483032, 75.274,
              21.107, "IMAGENET1K_V2"),
)
