"""SAM 2.1 checkpoints (Meta's Hiera tiny / small / base+ / large, release of 2024-09-28).

Each file is ``{"model": state_dict}`` holding the image path and the video parts; the image
predictor loads the first and ignores the second (:mod:`segtools.models.sam2.model`).
No SHA-256 is listed: the publisher gives none, so downloads are checked by loading.
Sizes are the float32 tensors of the official configs (every parameter, video parts
included) — about the file sizes, not published figures. SAM 2's preprocessing (done by
the SAM 2 runner): the image resized to 1024×1024, pixels scaled to [0, 1] and normalised
by ImageNet's mean/std.
"""

from __future__ import annotations

from segtools.models.preprocessing import IMAGENET
from segtools.weights.entry import WeightsEntry

_MASK = {"names": ["background", "object"], "palette": [[0, 0, 0], [255, 255, 255]], "ignore_index": None}
_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"


def _sam2(name: str, file: str, params: int, description: str) -> WeightsEntry:
    return WeightsEntry(name=name, arch=name, classes=_MASK, num_classes=1, preprocessing=IMAGENET, url=_URL + file,
                        file_size_mb=round(params * 4 / 1e6, 1), num_params=params, license="Apache-2.0",
                        metrics={"dataset": "SA-1B + SA-V (promptable, class-agnostic masks)"},
                        description=description)


ENTRIES: tuple[WeightsEntry, ...] = (
    _sam2("sam2.1-hiera-tiny", "sam2.1_hiera_tiny.pt", 38962754, "SAM 2.1, Hiera tiny image encoder (Meta AI)"),
    _sam2("sam2.1-hiera-small", "sam2.1_hiera_small.pt", 46060610, "SAM 2.1, Hiera small image encoder (Meta AI)"),
    _sam2("sam2.1-hiera-base-plus", "sam2.1_hiera_base_plus.pt", 80850434,
          "SAM 2.1, Hiera base+ image encoder (Meta AI)"),
    _sam2("sam2.1-hiera-large", "sam2.1_hiera_large.pt", 224446898, "SAM 2.1, Hiera large image encoder (Meta AI)"),
)
