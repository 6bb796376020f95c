"""``predict --dask``: the command's side of :mod:`segtools.inference.cluster_predict`."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from segtools.cli.common import info, progress
from segtools.errors import UsageError


def wanted(dask: Optional[str]) -> bool:
    """Whether ``predict`` runs on a cluster (``--dask`` or ``$DASK_SCHEDULER_ADDRESS``)."""
    from segtools.io.cluster import resolve_address

    return resolve_address(dask) is not None


def refuse(dask: Optional[str], what: str) -> None:
    """Refuse ``--dask`` for the models that do not run on a cluster yet."""
    if dask is not None:
        raise UsageError(f"--dask: semantic torch models only so far, not {what}")


def predict_on_cluster(dask: Optional[str], items: Sequence, targets: Sequence[Optional[str]], video: Any,
                       **model: Any) -> None:
    """Predict ``items`` into ``targets`` on the cluster; ``model``: the fields of
    :class:`~segtools.inference.cluster_predict.ModelSpec`."""
    from segtools.inference.cluster_predict import ModelSpec, predict_on_cluster as run
    from segtools.io.cluster import use_dask

    if video is not None:
        raise UsageError("--dask: predict maps over image files; a video is read by one process")
    if any(item.path == "-" for item in items) or None in targets:
        raise UsageError("--dask: workers read and write files: give image files and -o FILE or DIR, not stdin/stdout")
    with use_dask(dask), progress(len(items), "predict") as advance:
        count = run(ModelSpec(**model), [item.path for item in items], targets, on_done=advance)
    if count > 1:
        info(f"predicted {count} images")
