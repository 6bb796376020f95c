"""Turn a registry name, a checkpoint file or a TorchScript file into a ready model.

:func:`load_model` is what ``segtools predict`` and ``segtools weights info|export`` use:

* ``--model NAME`` — a registry entry (built-in, bundled or imported): its file, architecture,
  options, classes and preprocessing;
* ``--model FILE`` / ``--weights FILE`` — a segtools checkpoint (self-describing), a raw or
  wrapped state dict (``--arch`` needed; classes count and options read off the weights), a
  ``.safetensors`` file, or a TorchScript archive (run as is; metadata from its
  ``segtools.json`` extra file when segtools exported it).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segtools.errors import InputError, UsageError, require
from segtools.io.limits import check_class_count
from segtools.io.meta import ClassMeta, load_classes
from segtools.models.preprocessing import IMAGENET, Preprocessing
from segtools.weights.checkpoint import file_kind, load_checkpoint

TORCHSCRIPT_META = "segtools.json"


@dataclass
class LoadedModel:
    """A model ready for :class:`~segtools.inference.predictor.Predictor`.

    ``classes`` is ``None`` when nothing says what the outputs mean; ``arch`` is ``""`` for
    TorchScript models.
    """

    model: Any
    arch: str
    num_classes: int | None
    classes: ClassMeta | None
    preprocessing: Preprocessing
    source: str
    arch_options: dict = field(default_factory=dict)
    path: Path | None = None
    note: str | None = None  # how an ambiguous ``model`` was read (a registry name that is also a path here)


def classes_from(spec: Any, num_classes: int | None = None) -> ClassMeta | None:
    """Class metadata from a preset name, a ``ClassMeta.to_dict`` dict, or ``None``; a list of
    names shorter or longer than ``num_classes`` is refused."""
    if spec is None or spec == "":
        meta = None
    elif isinstance(spec, ClassMeta):
        meta = spec
    elif isinstance(spec, dict):
        meta = ClassMeta.from_dict(spec, "checkpoint classes")
    else:
        meta = load_classes(str(spec))
    if meta is not None and num_classes and meta.names is not None and len(meta.names) != num_classes \
            and not (num_classes == 1 and len(meta.names) == 2):
        raise InputError(f"{len(meta.names)} class names for a model with {num_classes} outputs; "
                         "give matching classes")
    return meta


def load_model(model: str | None = None, weights: str | os.PathLike | None = None, arch: str | None = None,
               classes: str | ClassMeta | None = None, device: str = "cpu") -> LoadedModel:
    """Build the model named by ``model`` (registry name or file) or ``weights`` (file).

    Parameters
    ----------
    model : registry name, or a checkpoint/TorchScript file.
    weights : checkpoint file (state dict, segtools checkpoint, ``.safetensors``).
    arch : architecture for checkpoints that do not name one (raw state dicts).
    classes : override the class metadata (preset name, file, or :class:`ClassMeta`).
    device : where TorchScript tensors are mapped on load.

    Raises
    ------
    InputError
        Unknown name, weights not downloaded (with the command that fetches them), a file that
        does not fit the architecture, or a pickle that would run code.
    UsageError
        Both or neither of ``model``/``weights`` given, or ``--arch`` missing for a raw state dict.
    """
    from segtools.weights import registry

    if model and weights:
        raise UsageError("give a model (a registry name or file) or weights (a checkpoint file), not both")
    note = None
    if not model and not weights:
        model = registry.DEFAULT_MODEL  # a registry name, never a path (a camvid/ dataset folder here is no model)
        if model not in registry.all_entries():
            raise InputError(f"no model given and the default {model!r} weights are not installed: give "
                             "a model name (see `segtools weights list`; get one with `segtools weights pull NAME`) "
                             "or a checkpoint file as weights, with its architecture (arch)")
        source = "registry"
    elif model:
        source, note = model_source(model)
    if model and source == "registry":
        entry = registry.get_entry(model)
        if entry.kind == "backbone":
            raise InputError(f"weights {model!r} are an ImageNet {entry.arch} backbone, not a segmentation model: "
                             f"they start the backbone of a training run (`segtools train --init-backbone {model}`)")
        entry, path = registry.resolve(model)
        fallback = {"arch": entry.arch, "classes": entry.classes, "preprocessing": entry.preprocessing,
                    "arch_options": entry.arch_options, "num_classes": entry.num_classes}
        loaded = _from_checkpoint(path, arch, classes, fallback, f"weights {entry.name!r}")
        loaded.note = note
        return loaded
    from segtools.io.remote import local_file

    path = local_file(weights or model)  # a storage URL: this machine's copy
    if not path.exists():
        raise InputError(f"{path}: no such checkpoint file")
    if model and file_kind(path) in ("torchscript", "torch-export"):
        return _from_torchscript(path, classes, device)
    return _from_checkpoint(path, arch, classes, {}, str(path))  # --weights: data only, never a program


def model_source(model: str) -> tuple[str, str | None]:
    """How an explicit ``model`` is read: ``("registry", note)`` or ``("file", note)``.

    A bare registry name (no ``/``, no checkpoint extension) is the registry entry, even when
    a file or folder of that name is here; ``note`` then says so, naming the ``./NAME`` spelling
    that takes the file. Anything else that exists, or looks like a path, is a file; an unknown
    bare name goes to the registry (whose error lists the names). ``note`` is ``None`` when
    nothing was ambiguous.
    """
    from segtools.weights import registry

    bare = not _looks_like_path(model)
    if bare and model in registry.all_entries():
        if not os.path.exists(model):
            return "registry", None
        what = "folder" if os.path.isdir(model) else "file"
        return "registry", (f"model={model}: a registry name and a {what} here; took the registry weights "
                            f"{model!r} (write ./{model} for the {what})")
    if os.path.exists(model) or not bare:
        return "file", None
    return "registry", None


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.lower().endswith((".pt", ".pth", ".ckpt", ".safetensors", ".bin"))


def _from_checkpoint(path: Path, arch: str | None, classes: Any, fallback: dict, source: str) -> LoadedModel:
    """Build and fill the model. Precedence: the caller's ``arch``/``classes``, then what the
    checkpoint says about itself, then the registry entry (``fallback``), then the defaults.

    The model is first built on the ``meta`` device (no memory) and compared with the
    checkpoint's tensors, so declared sizes that do not match the weights fail before
    anything of their size is allocated."""
    torch = require("torch", "models")
    from segtools.models import build_model, get_arch
    from segtools.weights.metadata import check_arch_options
    from segtools.weights.state_dict import check_state_dict_fits, infer_options, load_state_dict_flexible

    checkpoint = load_checkpoint(path)
    arch = arch or checkpoint.get("arch") or fallback.get("arch")
    arch_options = fallback.get("arch_options") or {}
    if not arch:
        raise UsageError(f"{path}: a plain state dict does not say its architecture; give its arch "
                         "(the names: `segtools weights list`, docs/models.md)")
    spec = get_arch(arch)
    state = checkpoint["state_dict"]
    options = check_arch_options(checkpoint.get("arch_options") or {}, spec.options, arch, str(path))
    num_classes = checkpoint.get("num_classes")
    if not options or not num_classes:  # a raw state dict: read the options off the weights
        inferred = infer_options(arch, state)
        num_classes = num_classes or inferred.pop("num_classes")
        inferred.pop("num_classes", None)
        options = options or {**{k: v for k, v in arch_options.items() if k in spec.options}, **inferred}
    num_classes = check_class_count(num_classes, f"{path}: number of classes")
    options = check_arch_options(options, spec.options, arch, str(path))
    try:
        with torch.device("meta"):  # shapes only: a hostile size fails here, unallocated
            probe = build_model(arch, num_classes, **options)
    except (UsageError, ArithmeticError, RuntimeError, ValueError, TypeError, MemoryError) as exc:
        raise InputError(f"{path}: {arch} with {num_classes} classes and options {options} cannot be built "
                         f"({str(exc)[:120]})") from None
    check_state_dict_fits(probe, state)
    network = build_model(arch, num_classes, **options)
    load_state_dict_flexible(network, state)
    network.eval()
    for candidate in (classes, checkpoint.get("classes"), fallback.get("classes")):
        if candidate is not None and candidate != "":
            break
    meta = classes_from(candidate, num_classes)
    prep = spec.preprocessing.updated(fallback.get("preprocessing")).updated(checkpoint.get("preprocessing"))
    return LoadedModel(network, arch, num_classes, meta, prep, source, options, path)


def _from_torchscript(path: Path, classes: Any, device: str) -> LoadedModel:
    require("torch", "models")
    from segtools.io.jsondata import parse_json
    from segtools.weights.torchscript import load_torchscript
    from segtools.weights.metadata import check_metadata

    extra = {TORCHSCRIPT_META: ""}
    network = load_torchscript(path, device, extra_files=extra)  # TorchScript or torch.export (.pt2)
    meta: dict = {}
    if extra[TORCHSCRIPT_META]:
        where = f"{path}: {TORCHSCRIPT_META}"
        parsed = parse_json(extra[TORCHSCRIPT_META], where)
        if not isinstance(parsed, dict):
            raise InputError(f"{where}: expected a JSON object")
        meta = check_metadata(parsed, where)
    num_classes = meta.get("num_classes")
    class_meta = classes_from(classes if classes is not None else meta.get("classes"), num_classes)
    prep = Preprocessing.of(meta.get("preprocessing") or None, IMAGENET)  # foreign files: the torchvision convention
    return LoadedModel(network, meta.get("arch") or "", num_classes, class_meta, prep,
                       str(path), {}, path)


def import_checkpoint(file: str, name: str, *, arch: str | None = None, classes=None,
                      force: bool = False) -> "WeightsEntry":
    """Register a local checkpoint as ``name``: load it into its architecture (which checks it
    fits), save it as a segtools checkpoint in :func:`weights_dir` and add it to the user
    registry.

    Parameters
    ----------
    file : a state dict (``.pth``/``.pt``), a segtools checkpoint or a ``.safetensors`` file.
    name : the registry name to give it (letters, digits, ``.``, ``_``, ``-``).
    arch : the architecture, needed for plain state dicts.
    classes : class metadata override (preset name, file, or ClassMeta).
    force : replace an imported entry of the same name.

    Raises
    ------
    UsageError
        A bad or taken name, or a TorchScript file (it runs as is, there is nothing to import).
    InputError
        A file that is no checkpoint, or does not fit ``arch``.
    """
    from segtools.errors import UsageError
    from segtools.models import parameter_count
    from segtools.weights.checkpoint import make_checkpoint, save_checkpoint, sha256_file
    from segtools.weights.registry import BUILTIN, WeightsEntry, imported_entries, register_imported, weights_dir

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise UsageError(f"weights name {name!r}: use letters, digits, '.', '_' and '-'")
    if name in imported_entries() and not force:
        raise UsageError(f"weights {name!r} are already imported; import with the force option to replace them")
    if name in BUILTIN:
        raise UsageError(f"{name!r} is a built-in weights name; choose another name")
    loaded = load_model(weights=file, arch=arch, classes=classes)
    if not loaded.arch:
        raise UsageError(f"{file}: a TorchScript model runs as is (`segtools predict --model {file}`); "
                         "nothing to import")
    classes_dict = loaded.classes.to_dict() if loaded.classes is not None else None
    target = weights_dir() / f"{name}.pt"
    save_checkpoint(target, make_checkpoint(loaded.arch, loaded.num_classes, loaded.model.state_dict(),
                                            classes=classes_dict, preprocessing=loaded.preprocessing,
                                            arch_options=loaded.arch_options))
    entry = WeightsEntry(
        name=name, arch=loaded.arch, classes=classes_dict or "", num_classes=loaded.num_classes,
        preprocessing=loaded.preprocessing, sha256=sha256_file(target), arch_options=loaded.arch_options,
        num_params=parameter_count(loaded.model), path=str(target), source="imported",
        file_size_mb=round(target.stat().st_size / 1e6, 3), description=f"imported from {file}")
    register_imported(entry)
    return entry
