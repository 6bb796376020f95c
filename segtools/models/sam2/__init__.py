"""SAM 2.1's image predictor (Hiera tiny / small / base+ / large) as native torch modules.

Importing this package does not import torch: :mod:`segtools.models.sam2.model` holds the
model (``Sam2``, ``build_sam2``, ``load_sam2``, ``sam2_config``), :mod:`.hiera` the image
encoder, :mod:`.decoder` the prompt encoder and mask decoder, and
:mod:`segtools.inference.sam2` the prompt runner.
"""

from __future__ import annotations

#: registry architecture names of the SAM 2.1 family (``WeightsEntry.arch``)
SAM2_ARCHS = ("sam2.1-hiera-tiny", "sam2.1-hiera-small", "sam2.1-hiera-base-plus", "sam2.1-hiera-large")

__all__ = ["SAM2_ARCHS"]
