"""Segment Anything (SAM ViT-B/L/H and MobileSAM) as native torch modules.

Importing this package does not import torch; :mod:`segtools.models.sam.model` holds the
model (``Sam``, ``build_sam``, ``load_sam``, ``sam_config``) and
:mod:`segtools.inference.sam` the prompt runner and the automatic mask generator.
"""

from __future__ import annotations

#: registry architecture names of the SAM family (``WeightsEntry.arch``)
SAM_ARCHS = ("sam-vit-b", "sam-vit-l", "sam-vit-h", "mobile-sam", "sam-vit")  # sam-vit: other ViT sizes

__all__ = ["SAM_ARCHS"]
