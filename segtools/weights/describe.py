"""What ``segtools weights info`` reports about a registry name or a checkpoint file.

Each model family is loaded by its own loader (semantic zoo, detectors, SAM), so that the
report is checked the way ``predict`` would use the weights; ImageNet backbones and
Hugging Face folders are read as tensors only. A registry entry whose file is not here yet is
described from the registry alone (``local: false``), since the point of asking is often
whether to pull it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def describe(target: str, arch: str | None = None) -> dict:
    """The report of ``target`` (a registry name or a checkpoint file).

    ``published`` holds the registry's published accuracy as fractions in [0, 1] (as
    ``weights list`` does), on ``dataset``.

    ``arch`` is the architecture of a plain state dict. The model is loaded (and so checked)
    to count its parameters; every key is always present, ``None`` when it does not apply.

    Raises
    ------
    InputError
        A file that is not a checkpoint, does not fit its architecture, or would run code.
    """
    from segtools.weights import registry
    from segtools.weights.loader import model_source

    entry = None
    if model_source(target)[0] == "registry" and target in registry.all_entries():
        entry = registry.get_entry(target)
    report = _registry_facts(entry)
    if entry is not None:
        path = registry.local_path(entry)
        if not entry.present(path):
            report.update(file=str(path), local=False)
            return report
    family = _family(entry, target, arch)
    report.update(_LOADERS[family](target, arch, entry))
    report["task"] = report["task"] or family
    report["local"] = True
    path = Path(report["file"]) if report.get("file") else None
    if path is not None and path.is_file():
        from segtools.weights.checkpoint import sha256_file

        report.update(sha256=sha256_file(path), file_bytes=path.stat().st_size)
    return report


_KEYS = ("name", "task", "file", "local", "sha256", "file_bytes", "arch", "arch_options", "num_classes",
         "parameters", "class_names", "input_size", "preprocessing", "license", "url", "published", "dataset")


def _registry_facts(entry) -> dict:
    report: dict[str, Any] = dict.fromkeys(_KEYS)
    if entry is None:
        return report
    from segtools.weights.registry import published, task_of

    report.update(name=entry.name, task=task_of(entry), arch=entry.arch, num_classes=entry.num_classes,
                  parameters=entry.num_params, license=entry.license, url=entry.url,
                  published=published(entry) or None, dataset=entry.metrics.get("dataset"),
                  arch_options=entry.arch_options or None)
    return report


def _family(entry, target: str, arch: str | None) -> str:
    """``semantic``, ``instance``, ``promptable`` (SAM, MobileSAM), ``sam2`` or ``tensors``
    (backbones, Hugging Face)."""
    from segtools.models.detection import is_detection_arch
    from segtools.models.sam import SAM_ARCHS
    from segtools.models.sam2 import SAM2_ARCHS

    if entry is not None:
        if entry.kind == "backbone" or entry.backend == "hf":
            return "tensors"
        arch = arch or entry.arch
    if arch:
        return ("instance" if is_detection_arch(arch) else "promptable" if arch in SAM_ARCHS
                else "sam2" if arch in SAM2_ARCHS else "semantic")
    if entry is not None:
        return "semantic"
    return _family_of_file(target)


def _family_of_file(path: str) -> str:
    """The family a checkpoint file's keys say (a TorchScript/export file is semantic)."""
    from segtools.weights.checkpoint import file_kind, read_weights_file
    from segtools.weights.state_dict import unwrap_state_dict

    if not Path(path).is_file() or file_kind(path) in ("torchscript", "torch-export"):
        return "semantic"  # the semantic loader names what is wrong or runs the program
    keys = unwrap_state_dict(read_weights_file(path), path).keys()
    if any(k.startswith(("sam_mask_decoder.", "image_encoder.trunk.")) for k in keys):
        return "sam2"
    if any(k.startswith(("image_encoder.", "mask_decoder.")) for k in keys):
        return "promptable"
    if any(k.startswith(("roi_heads.", "rpn.")) for k in keys):
        return "instance"
    return "semantic"


def _semantic(target: str, arch: str | None, entry) -> dict:
    from segtools.models import parameter_count
    from segtools.weights.loader import load_model

    loaded = load_model(model=target, arch=arch)
    prep = loaded.preprocessing
    size_rule = (f"any; shorter side resized to {prep.resize_short} px" if prep.resize_short
                 else f"any; scaled ×{prep.resize_factor}" if prep.resize_factor else "any (native size)")
    return {"file": str(loaded.path) if loaded.path else None, "arch": loaded.arch or "torchscript",
            "arch_options": loaded.arch_options, "num_classes": loaded.num_classes,
            "parameters": parameter_count(loaded.model),
            "class_names": list(loaded.classes.names) if loaded.classes is not None and loaded.classes.names else None,
            "input_size": size_rule, "preprocessing": prep.to_dict()}


def _instance(target: str, arch: str | None, entry) -> dict:
    from segtools.inference.instances import load_detector
    from segtools.models import parameter_count

    loaded = load_detector(model=target, arch=arch)
    options = loaded.options
    size = (f"any; shorter side resized to {options['min_size']} px (longer side at most {options['max_size']})"
            if "min_size" in options and "max_size" in options else "any (resized by the detector)")
    return {"file": str(loaded.path) if loaded.path else None, "task": "instance" if "mask" in loaded.arch else "detection",
            "arch": loaded.arch, "arch_options": options or None, "num_classes": loaded.num_classes,
            "parameters": parameter_count(loaded.model), "class_names": loaded.label_names, "input_size": size}


def _promptable(target: str, arch: str | None, entry) -> dict:
    from segtools.inference.sam_io import load_sam_model
    from segtools.models import parameter_count
    from segtools.weights import registry

    model = load_sam_model(model=target, arch=arch)
    size = model.config.img_size
    path = registry.local_path(entry) if entry is not None else Path(target)
    return {"file": str(path), "task": "promptable", "arch": model.config.variant, "num_classes": 1,
            "parameters": parameter_count(model), "input_size": f"any; longest side resized to {size} px and padded"}


def _sam2(target: str, arch: str | None, entry) -> dict:
    from segtools.inference.sam2 import load_sam2_model
    from segtools.models import parameter_count
    from segtools.weights import registry

    model = load_sam2_model(model=target, arch=arch)
    size = model.config.image_size
    path = registry.local_path(entry) if entry is not None else Path(target)
    return {"file": str(path), "task": "promptable", "arch": model.config.variant, "num_classes": 1,
            "parameters": parameter_count(model),
            "input_size": f"any; resized to {size}×{size} (image path only: the video parts are not loaded)"}


def _tensors(target: str, arch: str | None, entry) -> dict:
    """Backbones and Hugging Face folders: the tensors are counted, no model is built."""
    from segtools.weights import registry
    from segtools.weights.checkpoint import read_weights_file
    from segtools.weights.state_dict import unwrap_state_dict

    path = registry.local_path(entry)
    if path.is_dir():  # a save_pretrained folder
        files = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
    else:
        files = [path]
    parameters = 0
    for file in files:
        state = unwrap_state_dict(read_weights_file(file), str(file))
        parameters += sum(int(t.numel()) for t in state.values() if t.is_floating_point())
    return {"file": str(files[0] if len(files) == 1 else path), "parameters": parameters}


_LOADERS = {"semantic": _semantic, "instance": _instance, "promptable": _promptable, "sam2": _sam2,
            "tensors": _tensors}
