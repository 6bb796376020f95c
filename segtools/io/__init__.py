"""Everything that touches bytes: masks, score maps, images, class metadata, batches.

Public names are imported lazily, so ``import segtools.io`` costs nothing until used.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ClassMeta": "meta", "load_classes": "meta", "default_palette": "meta",
    "LabelMask": "masks", "ScoreMap": "masks", "read_label_mask": "masks", "read_score_map": "masks",
    "read_mask_or_scores": "masks", "write_label_mask": "masks", "write_score_map": "masks",
    "encode_label_mask": "masks", "encode_score_map": "masks",
    "read_image": "images", "write_image": "images", "encode_image": "images", "to_rgb8": "images",
    "colours_to_labels": "colour", "labels_to_colours": "colour",
    "Item": "batch", "expand_inputs": "batch", "pair_items": "batch", "pairing_key": "batch",
    "output_path": "batch", "check_output_dir": "batch",
    "pmap": "parallel", "resolve_jobs": "parallel",
    "read_bytes": "streams", "write_bytes": "streams", "emit": "streams", "write_stdout": "streams",
    "check_output_path": "streams", "mark_input": "streams",
    "sniff": "sniff", "Sniffed": "sniff",
    "set_max_pixels": "limits", "check_pixels": "limits",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'segtools.io' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"segtools.io.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
