#!/usr/bin/env python
"""Record the state-dict layout (keys and shapes) of torchvision's ImageNet classifiers.

Run once in a separate venv that has torchvision (never a dependency of segtools)::

    /path/to/tvenv/bin/python tools/make_backbone_manifests.py   # writes tests/fixtures/backbones/

``tests/test_train_init.py`` builds checkpoint files of exactly these layouts (values from
the seeded pool of tests/golden_util.py) and checks that ``train --init-backbone`` fills
every backbone tensor of the segmentation models from them.
"""

from __future__ import annotations

import json
from pathlib import Path

import torchvision

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "backbones"

if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for name in ("resnet50", "mobilenet_v3_large"):
        model = getattr(torchvision.models, name)()
        layout = {key: list(value.shape) for key, value in model.state_dict().items()}
        (OUT / f"{name}.json").write_text(json.dumps({"torchvision": torchvision.__version__, "state_dict": layout},
                                                     separators=(",", ":")) + "\n")
        print(name, len(layout), "tensors")
