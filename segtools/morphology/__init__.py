"""Cleanup operations on label masks and score maps (``segtools postprocess``).

Import the submodules directly; this package re-exports the main entry points lazily so
``import segtools.morphology`` stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Cleanup": "pipeline", "clean_labels": "pipeline", "DEFAULT_ORDER": "pipeline",
    "scores_to_labels": "scores", "decode_scores": "scores",
    "PostprocessOptions": "postprocess", "postprocess": "postprocess", "postprocess_files": "postprocess",
    "remove_small_objects": "components", "fill_small_holes": "components",
    "label_instances": "components", "small_components": "components", "fill_holes": "components",
    "refill_nearest": "refill", "majority_filter": "filters", "structuring_element": "filters",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"segtools.morphology.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'segtools.morphology' has no attribute {name!r}")
