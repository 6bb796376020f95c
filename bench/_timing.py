"""Wall-clock timing shared by the ``bench/*.py`` scripts.

The scripts run as ``python bench/NAME.py``, which puts this folder on ``sys.path``.
"""

from __future__ import annotations

import time
from typing import Callable


def seconds(fn: Callable[[], object]) -> float:
    """Wall-clock seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def best_seconds(fn: Callable[[], object], repeat: int, warmup: bool = False) -> float:
    """The best of ``repeat`` timings, in seconds: the one least disturbed by other load,
    as ``timeit`` advises. ``warmup`` runs ``fn`` once, untimed, first."""
    if warmup:
        fn()
    return min(seconds(fn) for _ in range(repeat))
