"""The weights registry: published checkpoints segtools knows, plus the ones a user imported.

Each :class:`WeightsEntry` carries what a user needs to run and judge a checkpoint: the
architecture and its options, the classes, the preprocessing, where to get the file and how to
verify it, its licence and the accuracy its authors published.

Built-in entries live in :data:`BUILTIN`; imported ones in ``$SEGTOOLS_HOME/weights/registry.json``
(written by ``segtools weights import``). Downloaded and imported files live in
``$SEGTOOLS_HOME/weights/`` (``$SEGTOOLS_HOME`` defaults to ``$XDG_CACHE_HOME/segtools``, i.e.
``~/.cache/segtools``). Only the standard library is imported here; :func:`pull` imports the
downloader when called. Importing a local checkpoint is :func:`segtools.weights.loader.import_checkpoint`
(it loads the model, which the registry itself never does).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from segtools.errors import InputError, OutputError
from segtools.models.preprocessing import IMAGENET, UNIT
from segtools.weights.download import hash_prefix_from_name
from segtools.weights.entry import WeightsEntry

__all__ = ["WeightsEntry", "BUILTIN", "DEFAULT_MODEL"]


def _torchvision(name: str, arch: str, file: str, params: int, miou: float, acc: float, size_mb: float,
                 description: str) -> WeightsEntry:
    return WeightsEntry(
        name=name, arch=arch, classes="voc", num_classes=21,
        preprocessing=IMAGENET.with_(resize_short=520),
        url=f"https://download.pytorch.org/models/{file}", hash_prefix=hash_prefix_from_name(file),
        file_size_mb=size_mb, num_params=params,
        metrics={"miou": miou, "pixel_acc": acc, "dataset": "COCO val2017, 20 VOC categories"},
        license="BSD-3-Clause", arch_options={"aux": arch.startswith(("deeplabv3", "fcn"))},
        description=description)


def _carvana(name: str, scale: float) -> WeightsEntry:
    file = f"unet_carvana_scale{scale}_epoch2.pth"
    return WeightsEntry(
        name=name, arch="unet", classes={"names": ["background", "car"], "palette": [[0, 0, 0], [255, 255, 255]],
                                         "ignore_index": None},
        num_classes=2, preprocessing=UNIT.with_(resize_factor=scale),
        url=f"https://github.com/milesial/Pytorch-UNet/releases/download/v3.0/{file}",
        metrics={"dice": 0.988423, "dataset": "Carvana (Kaggle), held-out images"},
        license="GPL-3.0", arch_options={"bilinear": False},
        description=f"milesial/Pytorch-UNet, Carvana car masks, images scaled ×{scale}")


#: Published checkpoints (torchvision: trained on COCO train2017 with the 20 VOC categories).
BUILTIN: dict[str, WeightsEntry] = {e.name: e for e in (
    _torchvision("deeplabv3-resnet50-voc", "deeplabv3-resnet50", "deeplabv3_resnet50_coco-cd0a2569.pth",
                 42004074, 66.4, 92.4, 160.515, "torchvision DeepLabV3 ResNet-50, COCO with VOC labels"),
    _torchvision("deeplabv3-resnet101-voc", "deeplabv3-resnet101", "deeplabv3_resnet101_coco-586e9e4e.pth",
                 60996202, 67.4, 92.4, 233.217, "torchvision DeepLabV3 ResNet-101, COCO with VOC labels"),
    _torchvision("deeplabv3-mnv3-voc", "deeplabv3-mnv3", "deeplabv3_mobilenet_v3_large-fc3c493d.pth",
                 11029328, 60.3, 91.2, 42.301, "torchvision DeepLabV3 MobileNetV3-Large, COCO with VOC labels"),
    _torchvision("fcn-resnet50-voc", "fcn-resnet50", "fcn_resnet50_coco-1167a1af.pth",
                 35322218, 60.5, 91.4, 135.009, "torchvision FCN ResNet-50, COCO with VOC labels"),
    _torchvision("fcn-resnet101-voc", "fcn-resnet101", "fcn_resnet101_coco-7ecb50ca.pth",
                 54314346, 63.7, 91.9, 207.711, "torchvision FCN ResNet-101, COCO with VOC labels"),
    _torchvision("lraspp-mnv3-voc", "lraspp-mnv3", "lraspp_mobilenet_v3_large-d234d4ea.pth",
                 3221538, 57.9, 91.2, 12.49, "torchvision LR-ASPP MobileNetV3-Large, COCO with VOC labels"),
    _carvana("unet-carvana", 0.5),
    _carvana("unet-carvana-full", 1.0),
    WeightsEntry(name="camvid", arch="lraspp-mnv3", classes="camvid", num_classes=11, preprocessing=IMAGENET,
                 path="camvid.pt", source="bundled", license="MIT",
                 # as shipped (tests/test_default_model.py checks them against the file): val mIoU
                 # and pixel accuracy from its metrics, re-measured through the CLI (bench/RESULTS.md);
                 # it was trained on train + val, so these val figures are optimistic
                 file_size_mb=6.584, num_params=3219838,
                 metrics={"miou": 73.7, "pixel_acc": 94.6,
                          "dataset": "CamVid val (101 frames, 11 classes; in the training data)",
                          "heldout_miou": 40.7, "heldout_30_epoch_miou": 38.0,
                          "heldout_dataset": "CamVid drive 0006R0 held out (101 frames): the same recipe (base, "
                                             "fine-tune, average) on the other two drives (367 frames), its base "
                                             "at 60 epochs; beside it with the base at 30 epochs"},
                 description="segtools' own LR-ASPP MobileNetV3 for CamVid (11 classes): from scratch on train + "
                             "val, 80 epochs, no class weights, scale 0.5–2×, EMA of weights, then 0.25 × that + "
                             "0.75 × its cross-entropy + Lovász fine-tune (the recipe chosen on held-out drives); "
                             "bundled (recipe: bench/RESULTS.md)"),
)}

#: Modules ``segtools.weights.<name>`` that declare more built-in entries, one per model
#: family, each as ``ENTRIES: tuple[WeightsEntry, ...]`` (imported here, at registry load).
FAMILY_MODULES: tuple[str, ...] = (
    "entries_backbones",
    "entries_detection",
    "entries_sam",
    "entries_sam2",
    "entries_hf",
)


def _add_families() -> None:
    import importlib

    for module in FAMILY_MODULES:
        for entry in importlib.import_module(f"segtools.weights.{module}").ENTRIES:
            if entry.name in BUILTIN:
                raise RuntimeError(f"weights entry {entry.name!r} declared twice")
            BUILTIN[entry.name] = entry


_add_families()

DEFAULT_MODEL = "camvid"


def segtools_home() -> Path:
    """``$SEGTOOLS_HOME``, else ``$XDG_CACHE_HOME/segtools``, else ``~/.cache/segtools``."""
    if os.environ.get("SEGTOOLS_HOME"):
        return Path(os.environ["SEGTOOLS_HOME"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "segtools"


def weights_dir() -> Path:
    """Where downloaded and imported checkpoints are kept."""
    return segtools_home() / "weights"


def bundled_dir() -> Path:
    """Checkpoints shipped inside the package (``segtools/data/weights``)."""
    return Path(__file__).resolve().parents[1] / "data" / "weights"


def _user_registry_path() -> Path:
    return weights_dir() / "registry.json"


def imported_entries() -> dict[str, WeightsEntry]:
    """Entries registered with ``segtools weights import`` (empty when none)."""
    path = _user_registry_path()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {name: WeightsEntry.from_dict({**entry, "name": name, "source": "imported"})
                for name, entry in data.get("weights", {}).items()}
    except (json.JSONDecodeError, AttributeError, TypeError) as exc:
        raise InputError(f"{path}: corrupt weights registry ({exc}); fix or delete it") from None


def all_entries() -> dict[str, WeightsEntry]:
    """Built-in entries followed by imported ones (an import may not shadow a built-in).

    A bundled entry is listed only when this installation really ships its file: the
    ``camvid`` default is reserved until a trained model is bundled (see docs/train.md).
    """
    shipped = {name: entry for name, entry in BUILTIN.items()
               if entry.source != "bundled" or is_available(entry)}
    return {**shipped, **imported_entries()}


def get_entry(name: str) -> WeightsEntry:
    """The entry called ``name``; the error lists the known names."""
    entries = all_entries()
    if name in entries:
        return entries[name]
    raise InputError(f"unknown weights {name!r}; known: {', '.join(entries)} "
                     "(see `segtools weights list`, or give a checkpoint file as weights, with its arch)")


def register_imported(entry: WeightsEntry) -> None:
    """Add or replace an imported entry in the user registry (atomic write)."""
    from segtools.io.streams import write_bytes

    if entry.name in BUILTIN:
        raise OutputError(f"{entry.name!r} is a built-in weights name; choose another name")
    path = _user_registry_path()
    current = {name: e.to_dict() for name, e in imported_entries().items()}
    record = entry.to_dict()
    record.pop("name")
    record["source"] = "imported"
    current[entry.name] = record
    write_bytes(path, (json.dumps({"weights": current}, indent=2, sort_keys=True) + "\n").encode(),
                allow_overwrite=True)


def local_path(entry: WeightsEntry) -> Path:
    """Where the entry's file is (or would be, once pulled)."""
    if entry.source == "bundled":
        return bundled_dir() / entry.path
    if entry.source == "imported":
        return Path(entry.path)
    return weights_dir() / entry.cache_name


def is_available(entry: WeightsEntry) -> bool:
    return entry.present(local_path(entry))


def resolve(name: str) -> tuple[WeightsEntry, Path]:
    """The entry and its local file, or an error that says how to get the file."""
    entry = get_entry(name)
    path = local_path(entry)
    if entry.present(path):
        return entry, path
    if entry.source == "bundled":
        raise InputError(f"weights {name!r} are not shipped with this installation ({path} is missing); "
                         "pull another model (`segtools weights list`) or give a checkpoint file as weights, with its arch")
    if entry.source == "imported":
        raise InputError(f"weights {name!r}: the imported file {path} is gone; import it again with "
                         f"`segtools weights import FILE --name {name} --arch {entry.arch}`")
    raise InputError(f"weights {name!r} are not downloaded: run `segtools weights pull {name}` "
                     f"(fetches {entry.url} into {weights_dir()}), or give a checkpoint file "
                     f"as weights, with arch {entry.arch}")


#: published figures ``weights list`` shows, in its order, with their short names
PUBLISHED = (("miou", "mIoU"), ("pixel_acc", "acc"), ("dice", "dice"), ("box_map", "box AP"),
             ("mask_map", "mask AP"), ("top1", "top-1"))


def published(entry: WeightsEntry) -> dict[str, float]:
    """The entry's published figures as fractions in [0, 1] (registries store them as their
    authors publish them, often in percent: a value above 1 is a percentage)."""
    out = {}
    for key, _ in PUBLISHED:
        value = entry.metrics.get(key)
        if isinstance(value, (int, float)):
            out[key] = round(value / 100.0, 6) if value > 1.0 else float(value)
    return out


def task_of(entry: WeightsEntry) -> str:
    """What the entry's model does: semantic, instance, detection, promptable or backbone."""
    if entry.kind != "segmentation":
        return entry.kind
    if entry.arch.startswith("maskrcnn"):
        return "instance"
    if entry.arch.startswith("fasterrcnn"):
        return "detection"
    if "sam" in entry.arch:
        return "promptable"
    return "semantic"


def summary(entry: WeightsEntry) -> dict:
    """One row of ``segtools weights list``: name, task, architecture, classes, published
    accuracy (fractions in [0, 1]), size, parameters, licence, and whether (and where) the
    file is local."""
    figures = published(entry)
    return {
        "name": entry.name, "task": task_of(entry), "arch": entry.arch,
        "classes": entry.classes if isinstance(entry.classes, str) else "custom",
        "num_classes": entry.num_classes, "miou": figures.get("miou"), "pixel_acc": figures.get("pixel_acc"),
        "dice": figures.get("dice"), "published": figures, "size_mb": entry.file_size_mb, "params": entry.num_params,
        "license": entry.license, "source": entry.source,
        "local": is_available(entry), "path": str(local_path(entry)), "url": entry.url,
    }


@dataclass(frozen=True)
class Pulled:
    """What :func:`pull` did: ``status`` is ``local`` (an imported or bundled entry: nothing to
    download), ``cached`` (already downloaded) or ``downloaded`` (``download`` says how)."""

    entry: WeightsEntry
    path: Path
    status: str
    download: object = None  # segtools.weights.download.Downloaded when status == "downloaded"


def pull(entry: WeightsEntry, *, force: bool = False, timeout: float = 30.0, progress=None,
         offline: bool | None = None) -> Pulled:
    """Download the file of ``entry`` into :func:`weights_dir` (resumed, verified; see
    :func:`segtools.weights.download.download`) unless it is local or already there.

    ``force`` downloads again; ``offline`` (default: ``$SEGTOOLS_OFFLINE``) refuses the
    network; ``progress(done, total)`` is called as bytes arrive. An entry without a published
    checksum is downloaded with a warning on the ``segtools`` logger naming its SHA-256.
    """
    import logging

    from segtools.weights.download import download

    path = local_path(entry)
    if entry.source != "builtin" or not entry.url:
        return Pulled(entry, path, "local")
    if entry.files:  # a folder of files (a Hugging Face checkpoint), each resumed and verified
        from segtools.weights.download import download_folder

        if entry.present(path) and not force:
            return Pulled(entry, path, "cached")
        result = download_folder(entry.url, entry.files, path, checksums=entry.file_sha256, force=force,
                                 timeout=timeout, progress=progress, offline=offline)
        unverified = {name: sha for name, sha in result.files.items() if name not in entry.file_sha256}
        if unverified:
            logging.getLogger("segtools").warning(f"{entry.name}: no published checksum to verify against; sha256 "
                                                  + ", ".join(f"{n} {sha}" for n, sha in unverified.items()))
        return Pulled(entry, path, "downloaded", result)
    if path.is_file() and not force:
        return Pulled(entry, path, "cached")
    if force:
        path.unlink(missing_ok=True)
    result = download(entry.url, path, sha256=entry.sha256, hash_prefix=entry.hash_prefix,
                      timeout=timeout, progress=progress, offline=offline)
    if not (entry.sha256 or entry.hash_prefix):
        logging.getLogger("segtools").warning(
            f"{entry.name}: no published checksum to verify against; sha256 {result.sha256}")
    return Pulled(entry, result.path, "downloaded", result)
