"""segtools checkpoints: save atomically, load as data (never as code).

A segtools checkpoint is a plain dict saved with :func:`torch.save`::

    {"format": "segtools-checkpoint", "version": 1,
     "arch": "deeplabv3-resnet50", "arch_options": {"aux": True},
     "num_classes": 21, "classes": ClassMeta.to_dict(),
     "preprocessing": {"mean": [...], "std": [...], "scale": 1/255},
     "state_dict": {...},
     # optional: "optimizer", "scheduler", "epoch", "metrics", "train_args", "rng"}

:func:`load_checkpoint` also reads what the ecosystem publishes: a raw state dict
(torchvision's ``*_coco-*.pth``, milesial's U-Net), a ``{"model"|"state_dict": ...}`` wrapper
(keys may carry DataParallel's ``module.`` prefix), and ``.safetensors`` files (segtools
metadata, when present, rides in the header's ``__metadata__`` under key ``segtools``).
Such files come back as ``{"format": "state-dict", "version": 1, "state_dict": ...}`` plus
whatever metadata was found, so callers need one code path.

Torch pickles are loaded with ``weights_only=True``: a file that would need to import or run
code on load is refused with :class:`~segtools.errors.InputError`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

from segtools.errors import InputError, OutputError, require

FORMAT = "segtools-checkpoint"
VERSION = 1
RAW_FORMAT = "state-dict"
SAFETENSORS_METADATA_KEY = "segtools"

#: checkpoint fields that are metadata (everything but tensors and training state)
METADATA_KEYS = ("format", "version", "arch", "arch_options", "num_classes", "classes",
                 "preprocessing", "epoch", "metrics", "train_args")


def make_checkpoint(arch: str, num_classes: int, state_dict: Mapping[str, Any], *,
                    classes: Mapping | None = None, preprocessing: Any = None,
                    arch_options: Mapping | None = None, **extra: Any) -> dict:
    """Assemble a segtools checkpoint dict (see the module docstring for the layout).

    Parameters
    ----------
    arch : architecture name in :data:`segtools.models.ARCHITECTURES`.
    num_classes : number of output channels (classes) of the model.
    state_dict : the model's parameters and buffers.
    classes : :meth:`ClassMeta.to_dict` output, or ``None`` when unknown.
    preprocessing : a :class:`~segtools.models.preprocessing.Preprocessing` or its dict
        (``{"mean": [3 floats], "std": [3 floats], "scale": float}``); pixels are multiplied by
        ``scale`` (1/255 for 8-bit images), then ``(x - mean) / std``. Stored as the dict.
    extra : optional fields (``optimizer``, ``scheduler``, ``epoch``, ``metrics``, ...).
    """
    from segtools.models.preprocessing import Preprocessing

    if preprocessing is not None:
        preprocessing = Preprocessing.of(preprocessing).to_dict()
    payload = {
        "format": FORMAT, "version": VERSION, "arch": str(arch),
        "arch_options": dict(arch_options or {}), "num_classes": int(num_classes),
        "classes": dict(classes) if classes is not None else None,
        "preprocessing": dict(preprocessing) if preprocessing is not None else None,
        "state_dict": dict(state_dict),
    }
    payload.update(extra)
    return payload


def save_checkpoint(path: str | os.PathLike, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (temp file in the same folder, then rename).

    ``.safetensors`` paths get the tensors of ``state_dict`` plus the metadata fields as JSON in
    the header (optimizer and scheduler state are not representable there and are dropped);
    any other path gets :func:`torch.save`.
    """
    torch = require("torch", "models")
    from segtools.io.streams import AtomicFile

    out = Path(path)
    if out.is_dir():
        raise OutputError(f"{out}: is a directory; give a checkpoint file name")
    with AtomicFile(out, allow_overwrite=True) as target:  # a run rewrites its own last.pt
        if out.suffix.lower() == ".safetensors":
            safetensors_torch = require("safetensors.torch", "models")
            metadata = {k: payload[k] for k in METADATA_KEYS if k in payload}
            tensors = {k: v.detach().contiguous() for k, v in payload["state_dict"].items()}
            target.handle.write(safetensors_torch.save(
                tensors, metadata={SAFETENSORS_METADATA_KEY: json.dumps(metadata)}))
        else:
            torch.save(dict(payload), target.handle)
    return out


def file_kind(path: str | os.PathLike) -> str:
    """What a weights file is: ``torch-zip``, ``torchscript``, ``torch-export``,
    ``torch-legacy``, ``safetensors`` or ``unknown``; zips by their member layout
    (:func:`segtools.weights.archive.classify_zip`), after the zip-bomb checks.

    Raises
    ------
    InputError
        Unreadable file, or a zip that is corrupt or declares more than it can hold.
    """
    from segtools.io.streams import read_head
    from segtools.weights.archive import classify_zip, zip_members

    head = read_head(path, 16)
    if head[:4] == b"PK\x03\x04":
        return classify_zip(path, zip_members(path))
    if head[:1] == b"\x80":
        return "torch-legacy"
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < SAFETENSORS_MAX_HEADER:
        return "safetensors"
    return "unknown"


#: the largest ``.safetensors`` header the safetensors library reads (100 MB)
SAFETENSORS_MAX_HEADER = 100_000_000


def read_weights_file(path: str | os.PathLike) -> Any:
    """The object stored in a weights file, loaded as data only (no code runs).

    Raises
    ------
    InputError
        Missing or unreadable file, a TorchScript or torch.export archive (run it with
        ``--model FILE``), a pickle that needs code to load, a corrupt, truncated or
        zip-bomb file, or a file that is no checkpoint at all.
    """
    from segtools.weights.archive import TORCH_EXPORT, TORCHSCRIPT, quiet_torch

    kind = file_kind(path)
    if kind == "safetensors":
        return _read_safetensors(path)
    if kind in (TORCHSCRIPT, TORCH_EXPORT):
        what = "a TorchScript model" if kind == TORCHSCRIPT else "a torch.export program"
        raise InputError(f"{path}: is {what}, not a checkpoint; run it with "
                         "`segtools predict --model FILE`")
    if kind == "unknown":
        raise InputError(f"{path}: not a torch checkpoint or .safetensors file")
    torch = require("torch", "models")
    import pickle

    try:
        with quiet_torch():
            return torch.load(path, map_location="cpu", weights_only=True, mmap=False)
    except pickle.UnpicklingError as exc:
        detail = str(exc).splitlines()
        hint = next((line.strip() for line in detail if "Unsupported global" in line or "GLOBAL" in line), "")
        raise InputError(
            f"{path}: refusing to load: the pickle would import or run code ({hint[:160] or 'not plain data'}); "
            "checkpoints are loaded as data only — re-save it as a state dict (torch.save(model.state_dict(), f)) "
            "or as .safetensors") from None
    except MemoryError:
        raise InputError(f"{path}: the checkpoint declares more data than fits in memory; corrupt or hostile file") from None
    except Exception as exc:  # noqa: BLE001 - torch's readers raise RuntimeError, EOFError, KeyError, ...
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: corrupt or truncated checkpoint ({first})") from None


def _read_safetensors(path: str | os.PathLike) -> dict:
    """Tensors and segtools metadata of a ``.safetensors`` file. The header length is checked
    against the file size before anything is read; the library itself checks that every
    tensor's shape × dtype size is exactly its byte range and that the ranges tile the data."""
    safetensors_torch = require("safetensors.torch", "models")
    from safetensors import safe_open

    from segtools.io.jsondata import parse_json
    from segtools.io.streams import read_head

    size = os.path.getsize(path)
    header_len = int.from_bytes(read_head(path, 8), "little")
    if header_len > size - 8:
        raise InputError(f"{path}: truncated .safetensors file (the header declares {header_len:,} bytes, "
                         f"the file has {size - 8:,} after the length)")
    try:
        tensors = safetensors_torch.load_file(str(path), device="cpu")
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except MemoryError:
        raise InputError(f"{path}: the .safetensors file declares more data than fits in memory") from None
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own SafetensorError and OSError
        raise InputError(f"{path}: corrupt .safetensors file ({str(exc)[:160]})") from None
    text = metadata.get(SAFETENSORS_METADATA_KEY)
    if not text:
        return tensors
    payload = parse_json(text, f"{path}: segtools metadata in the .safetensors header")
    if not isinstance(payload, dict):
        raise InputError(f"{path}: the segtools metadata in the .safetensors header is not a JSON object")
    payload["state_dict"] = tensors
    return payload


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint as data and normalise it to the segtools layout.

    Returns
    -------
    dict
        A segtools checkpoint as saved (``format == "segtools-checkpoint"``), or, for a raw or
        wrapped state dict, ``{"format": "state-dict", "version": 1, "state_dict": ...}`` with
        any metadata fields the file carried (``arch``, ``num_classes``, ``classes``, ...).
        Metadata fields are type-checked and bounded (:func:`segtools.weights.metadata.check_metadata`).
    """
    from segtools.weights.metadata import check_metadata
    from segtools.weights.state_dict import unwrap_state_dict

    obj = read_weights_file(path)
    if isinstance(obj, Mapping) and obj.get("format") == FORMAT:
        version = obj.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version > VERSION:
            raise InputError(f"{path}: segtools checkpoint version {str(version)[:20]!r} is not one this "
                             f"segtools reads ({VERSION}); upgrade segtools")
        if not isinstance(obj.get("state_dict"), Mapping):
            raise InputError(f"{path}: segtools checkpoint without a state_dict (got "
                             f"{type(obj.get('state_dict')).__name__})")
        checkpoint = dict(obj)
        checkpoint["state_dict"] = unwrap_state_dict(obj["state_dict"], str(path))
        return check_metadata(checkpoint, str(path))
    checkpoint: dict = {"format": RAW_FORMAT, "version": VERSION}
    if isinstance(obj, Mapping):
        checkpoint.update({k: obj[k] for k in METADATA_KEYS[2:] if k in obj})
    checkpoint["state_dict"] = unwrap_state_dict(obj, str(path))
    return check_metadata(checkpoint, str(path))


def sha256_file(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in ``chunk_bytes`` pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()
