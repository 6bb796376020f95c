"""NVIDIA's SegFormer B0–B5 checkpoints on the Hugging Face hub (ADE20K and Cityscapes).

Each entry is a ``save_pretrained`` folder of three files — ``config.json``,
``preprocessor_config.json`` and ``pytorch_model.bin`` (the hub's ``main`` revision of these
repositories has no ``model.safetensors``; transformers loads the ``.bin`` with
``torch.load(weights_only=True)``) — that ``segtools weights pull NAME`` fetches into
``$SEGTOOLS_HOME/weights/NAME/`` and ``segtools predict --model NAME`` runs through the
transformers back-end (:mod:`segtools.backends.hf`).

* **Accuracy**: the model cards print no figure; the mIoU listed is the one the SegFormer
  paper publishes for the same checkpoints (Xie et al., NeurIPS 2021, Table 2: single-scale,
  ADE20K val at 512×512 — B5 at 640×640, the only B5 ADE20K checkpoint on the hub — and
  Cityscapes val at 1024×1024 with a sliding window; ``predict`` resizes the whole image to
  the processor's 1024×1024 instead unless it is given ``--tile 1024 --resize none``).
* **Sizes**: those of ``pytorch_model.bin`` as the hub lists them (MB); B0 and B2 Cityscapes
  were not read off the hub and are given as their siblings' (B0 Cityscapes 640×1280, B2 ADE20K).
* **Parameters**: the paper's rounded figures (millions).
* **Licence**: the hub marks them ``other``: the *NVIDIA Source Code License for SegFormer*
  (https://github.com/NVlabs/SegFormer/blob/master/LICENSE) — non-commercial use, research
  and evaluation only.
* **Checksums**: none is listed. The hub's file pages carry the LFS SHA-256, but it could not
  be read and checked here; ``weights pull`` prints the SHA-256 it computed so that a user can
  compare it with the hub's.
"""

from __future__ import annotations

from segtools.models.preprocessing import IMAGENET
from segtools.weights.entry import WeightsEntry

HUB = "https://huggingface.co/"
FILES = ("config.json", "preprocessor_config.json", "pytorch_model.bin")
LICENSE = "NVIDIA Source Code License (SegFormer; non-commercial)"
#: B0..B5: parameters (millions, the paper's), and per dataset (hub repository, its resolution,
#: size of pytorch_model.bin in MB, published mIoU)
_PARAMS = {"b0": 3.8, "b1": 13.7, "b2": 27.5, "b3": 47.3, "b4": 64.1, "b5": 84.7}
_ADE = {"b0": ("512-512", 15.1, 37.4), "b1": ("512-512", 54.9, 42.2), "b2": ("512-512", 110.0, 46.5),
        "b3": ("512-512", 190.0, 49.4), "b4": ("512-512", 257.0, 50.3), "b5": ("640-640", 339.0, 51.0)}
_CITYSCAPES = {"b0": (15.0, 76.2), "b1": (54.8, 78.5), "b2": (110.0, 81.0), "b3": (189.0, 81.7),
               "b4": (256.0, 82.3), "b5": (339.0, 82.4)}


def segformer_entry(name: str, repo: str, classes: str, num_classes: int, size_mb: float, params_m: float,
                    miou: float, dataset: str, description: str) -> WeightsEntry:
    """A multi-file entry for the hub repository ``repo`` (its ``main`` revision)."""
    return WeightsEntry(name=name, arch="segformer", classes=classes, num_classes=num_classes,
                        preprocessing=IMAGENET, url=f"{HUB}{repo}/resolve/main/", files=FILES, backend="hf",
                        file_size_mb=size_mb, num_params=int(round(params_m * 1e6)),
                        metrics={"miou": miou, "dataset": dataset}, license=LICENSE, description=description)


ENTRIES: tuple[WeightsEntry, ...] = (
    *(segformer_entry(f"segformer-{b}-ade", f"nvidia/segformer-{b}-finetuned-ade-{res}", "ade20k", 150, size,
                      _PARAMS[b], miou, f"ADE20K val, single scale at {res.replace('-', 'x')} (SegFormer paper)",
                      f"NVIDIA SegFormer-{b.upper()} (MiT-{b.upper()}), ADE20K 150 classes, "
                      f"{res.replace('-', 'x')} (transformers)")
      for b, (res, size, miou) in _ADE.items()),
    *(segformer_entry(f"segformer-{b}-cityscapes", f"nvidia/segformer-{b}-finetuned-cityscapes-1024-1024",
                      "cityscapes", 19, size, _PARAMS[b], miou,
                      "Cityscapes val, 1024x1024 sliding window (SegFormer paper)",
                      f"NVIDIA SegFormer-{b.upper()} (MiT-{b.upper()}), Cityscapes 19 classes, 1024x1024 (transformers)")
      for b, (size, miou) in _CITYSCAPES.items()),
)
