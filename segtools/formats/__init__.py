"""Annotation formats: COCO (polygons, RLE, panoptic), YOLO, Pascal VOC, labelme, Cityscapes.

One internal representation per concept — label masks are numpy arrays, polygons are N×2
float arrays in COCO pixel coordinates, boxes are COCO ``[x, y, w, h]`` — and converters at
the edges. Submodules are imported directly (``from segtools.formats import rle``).

A whole dataset converts in three calls of :mod:`segtools.formats.registry` (``detect``,
``read``, ``write``); every reader yields and every writer takes the records of
:mod:`segtools.formats.records`.

Conversions never drop anything silently: each one counts what it changed or lost in a
:class:`Summary`, which the CLI prints on stderr.
"""

from __future__ import annotations

from collections import Counter


class Summary:
    """Counts of what a conversion did; ``lossy`` events are the ones that lost information."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.lossy: set[str] = set()

    def add(self, event: str, n: int = 1, lossy: bool = False) -> None:
        if n:
            self.counts[event] += n
            if lossy:
                self.lossy.add(event)

    def __getitem__(self, event: str) -> int:
        return self.counts[event]

    def lines(self) -> list[str]:
        """One line per event, lossy ones marked, in a stable order."""
        return [f"{'LOSSY: ' if e in self.lossy else ''}{e}: {n}" for e, n in sorted(self.counts.items())]


def load_json(source, name: str | None = None):
    """Parse a JSON file, ``-`` (stdin) or bytes; a parse error names the source."""
    from segtools.io.jsondata import parse_json
    from segtools.io.streams import describe, read_bytes

    return parse_json(read_bytes(source), name or describe(source))


def merge_counts(summary: Summary, counts: dict, lossy: set[str]) -> None:
    """Fold counts made elsewhere (e.g. in a worker process) into ``summary``."""
    for event, n in counts.items():
        summary.add(event, n, event in lossy)
