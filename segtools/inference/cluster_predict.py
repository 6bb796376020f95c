"""``predict`` on a Dask cluster: each worker loads the model once and writes its items.

The task carries only a :class:`ModelSpec` (model name, weights path, predictor settings)
and one item's paths; a worker builds the model from the spec for its first item
(:func:`segtools.io.cluster.worker_cached`) and reuses it for every later one, so weights
never travel with a task. Each worker writes its outputs with the atomic writers of a
local run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence


@dataclass(frozen=True)
class ModelSpec:
    """What a worker needs to build the same :class:`~segtools.inference.predictor.Predictor`
    as the command: the model by registry name and/or weights path, and the settings."""

    model: Optional[str] = None
    weights: Optional[str] = None
    arch: Optional[str] = None
    classes: Optional[str] = None
    device: Optional[str] = None
    amp: Any = False
    batch: Any = None
    tiling: Any = None
    tta: Any = None
    probs: bool = False
    overwrite: bool = False


@dataclass(frozen=True)
class PredictItem:
    spec: ModelSpec
    source: str
    target: Optional[str]


def _load(spec: ModelSpec):
    import torch

    from segtools.inference.files import legend
    from segtools.inference.predictor import Predictor
    from segtools.io.parallel import kernel_threads
    from segtools.weights.loader import load_model

    torch.set_num_threads(kernel_threads())  # 1 in a cluster worker: the workers fill the cores
    loaded = load_model(model=spec.model, weights=spec.weights, arch=spec.arch, classes=spec.classes, device="cpu")
    options = {} if spec.batch is None else {"batch": spec.batch}
    predictor = Predictor(loaded.model, loaded.preprocessing, device=spec.device, amp=spec.amp,
                          tiling=spec.tiling, tta=spec.tta, **options)
    return predictor, legend(loaded.classes, loaded.num_classes)


def predict_item(item: PredictItem) -> Optional[str]:
    """Predict one image with this worker's model for ``item.spec`` and write it."""
    from segtools.inference.files import predict_files
    from segtools.io.cluster import worker_cached

    predictor, classes = worker_cached(("predict", repr(item.spec)), lambda: _load(item.spec))
    predict_files(predictor, [item.source], [item.target], classes, probs=item.spec.probs,
                  overwrite=item.spec.overwrite)
    return item.target


def predict_on_cluster(spec: ModelSpec, sources: Sequence[str], targets: Sequence[Optional[str]],
                       on_done: Optional[Callable[[int], None]] = None) -> int:
    """:func:`predict_item` over the items on the active cluster (``pmap``); the number written."""
    from segtools.io.parallel import pmap

    work = [PredictItem(spec, source, target) for source, target in zip(sources, targets)]
    return sum(1 for _ in pmap(predict_item, work, on_done=on_done))
