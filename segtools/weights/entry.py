"""One named checkpoint of the weights registry (:class:`WeightsEntry`).

Its own module so that each model family can declare its entries beside its code
(``segtools/weights/entries_*.py``) without importing the registry.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from segtools.models.preprocessing import IMAGENET, Preprocessing


@dataclass(frozen=True)
class WeightsEntry:
    """A named checkpoint.

    Attributes
    ----------
    name : registry name (``segtools predict --model NAME``).
    arch : architecture in :data:`segtools.models.ARCHITECTURES`.
    classes : a class preset name (``voc``, ``camvid``...) or a :meth:`ClassMeta.to_dict` dict.
    num_classes : output channels of the model.
    preprocessing : :class:`~segtools.models.preprocessing.Preprocessing` (``mean``/``std``/
        ``scale`` and optionally ``resize_short`` or ``resize_factor``); a dict in JSON.
    url : where ``weights pull`` downloads it ("" for local entries).
    sha256 : full hex SHA-256, when published.
    hash_prefix : the torch-hub style prefix of the SHA-256 in the file name, when present.
    file_name : name of the file in the cache (default: the URL's last component).
    file_size_mb : size in MB (10^6 bytes) as published.
    num_params : number of parameters as published.
    metrics : published accuracy, e.g. ``{"miou": 66.4, "pixel_acc": 92.4, "dataset": ...}``.
    license : licence of the weights.
    arch_options : keyword options for :func:`segtools.models.build_model`.
    path : a local file (imported entries) or a file name under ``segtools/data/weights``
        (``bundled``).
    source : ``builtin``, ``bundled`` or ``imported``.
    kind : ``segmentation`` (a model ``predict`` runs) or ``backbone`` (ImageNet weights of
        a backbone, for ``train --init-backbone``; ``arch`` then names the backbone).
    files : a multi-file entry (a Hugging Face ``save_pretrained`` folder): the file names,
        each fetched from ``url`` + name into one cached folder (:attr:`cache_name`); empty
        for a single-file entry.
    file_sha256 : full hex SHA-256 of some of ``files``, by name, where it is established.
    backend : what runs the entry: ``""`` for the native zoo, ``hf`` for transformers.
    """

    name: str
    arch: str
    classes: str | dict
    num_classes: int
    preprocessing: Preprocessing = IMAGENET
    url: str = ""
    sha256: str = ""
    hash_prefix: str = ""
    file_name: str = ""
    file_size_mb: float | None = None
    num_params: int | None = None
    metrics: dict = field(default_factory=dict)
    license: str = ""
    arch_options: dict = field(default_factory=dict)
    description: str = ""
    path: str = ""
    source: str = "builtin"
    kind: str = "segmentation"
    files: tuple = ()
    file_sha256: dict = field(default_factory=dict)
    backend: str = ""

    @property
    def cache_name(self) -> str:
        if self.files:  # one folder per multi-file entry
            return self.file_name or self.name
        return self.file_name or self.url.rsplit("/", 1)[-1] or f"{self.name}.pt"

    def present(self, path) -> bool:
        """Whether ``path`` (see :func:`segtools.weights.registry.local_path`) holds the whole
        entry: the file, or for a multi-file entry every one of its files."""
        from pathlib import Path

        path = Path(path)
        if self.files:
            return path.is_dir() and all((path / name).is_file() for name in self.files)
        return path.is_file()

    def __post_init__(self) -> None:
        object.__setattr__(self, "preprocessing", Preprocessing.of(self.preprocessing))
        object.__setattr__(self, "files", tuple(self.files))

    def to_dict(self) -> dict:
        return {**asdict(self), "preprocessing": self.preprocessing.to_dict(), "files": list(self.files)}

    @classmethod
    def from_dict(cls, data: dict) -> "WeightsEntry":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
