"""The cleanup pipeline: which operations run, on which classes, in which order.

Default order (``DEFAULT_ORDER``): map → smooth → open → close → erode → dilate →
min-area → fill-holes → keep-largest. Every step sees the output of the step before it.
Thresholding a score map comes before all of them and instance labelling after all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from segtools.errors import InputError, UsageError
from segtools.io.limits import MAX_CLASSES, label_table_size
from segtools.labels import remap_labels
from segtools.morphology import components, filters, refill

DEFAULT_ORDER: tuple[str, ...] = (
    "map", "smooth", "open", "close", "erode", "dilate", "min-area", "fill-holes", "keep-largest")
FILL_MODES = ("nearest", "background")


@dataclass(frozen=True)
class Cleanup:
    """What to do to a label mask; every size is in pixels and 0 switches a step off.

    Attributes
    ----------
    relabel : ``{old: new}`` label changes (merging classes), the ``map`` step.
    smooth : majority-filter window side (odd).
    open, close, erode, dilate : kernel side (odd) of each morphology step.
    kernel : ``square``, ``ellipse`` or ``cross``.
    min_area : components smaller than this are removed (every selected class).
    min_area_per_class : ``{class: pixels}``, overriding ``min_area`` for those classes.
    fill_holes : holes of at most this many pixels are filled.
    keep_largest : keep only this many largest components per class.
    connectivity : 4 or 8, for components (holes use the other one).
    only : the classes operated on; ``None`` = every class present except the ignore
        label and the background.
    fill : where removed pixels go: ``nearest`` (the nearest kept pixel of another class)
        or ``background``.
    background : the background label, or ``None`` if the mask has none.
    ignore_index : the void label, never changed, never given to a removed pixel.
    order : the steps to run, in order (names from ``DEFAULT_ORDER``; repeats allowed);
        ``None`` = every enabled step in the default order.
    """

    relabel: Mapping[int, int] = field(default_factory=dict)
    smooth: int = 0
    open: int = 0
    close: int = 0
    erode: int = 0
    dilate: int = 0
    kernel: str = "square"
    min_area: int = 0
    min_area_per_class: Mapping[int, int] = field(default_factory=dict)
    fill_holes: int = 0
    keep_largest: int = 0
    connectivity: int = 8
    only: tuple[int, ...] | None = None
    fill: str = "nearest"
    background: int | None = None
    ignore_index: int | None = 255
    order: tuple[str, ...] | None = None

    def enabled(self) -> list[str]:
        """Names of the steps switched on, in the default order."""
        on = {
            "map": bool(self.relabel), "smooth": self.smooth > 0, "open": self.open > 0,
            "close": self.close > 0, "erode": self.erode > 0, "dilate": self.dilate > 0,
            "min-area": self.min_area > 0 or bool(self.min_area_per_class),
            "fill-holes": self.fill_holes > 0, "keep-largest": self.keep_largest > 0,
        }
        return [name for name in DEFAULT_ORDER if on[name]]

    def steps(self) -> list[str]:
        """The steps to run, in order; checks every option first."""
        self.validate()
        enabled = self.enabled()
        if self.order is None:
            return enabled
        unknown = [name for name in self.order if name not in DEFAULT_ORDER]
        if unknown:
            raise UsageError(f"order: unknown step {unknown[0]!r}; steps are {','.join(DEFAULT_ORDER)}")
        missing = [name for name in enabled if name not in self.order]
        if missing:
            raise UsageError(f"order leaves out {', '.join(missing)}, which is switched on; list every step you use")
        not_on = [name for name in self.order if name not in enabled]
        if not_on:
            name = not_on[0].replace("-", "_")
            raise UsageError(f"order names {not_on[0]}, which has no value; give it one too (e.g. {name}=N)")
        return list(self.order)

    def validate(self) -> None:
        for name in ("smooth", "open", "close", "erode", "dilate"):
            size = getattr(self, name)
            if size < 0 or (size and size % 2 == 0):
                raise UsageError(f"{name}={size}: the kernel size must be a positive odd number of pixels (1, 3, 5, ...)")
        for name in ("min_area", "fill_holes", "keep_largest"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name}={getattr(self, name)}: must be 0 or more")
        if any(v < 0 for v in self.min_area_per_class.values()):
            raise UsageError("min_area_per_class: areas must be 0 or more")
        components.check_connectivity(self.connectivity)
        filters.structuring_element(1, self.kernel)
        if self.fill not in FILL_MODES:
            raise UsageError(f"fill={self.fill!r}: must be one of {', '.join(FILL_MODES)}")
        if self.fill == "background" and self.background is None:
            raise UsageError("fill='background' needs a background label: give background=N")


def selected_classes(labels: np.ndarray, cleanup: Cleanup) -> list[int]:
    """The classes a step works on: those present, minus ignore and (unless named) background."""
    present = set(refill.present_labels(labels).tolist())
    if cleanup.only is not None:
        return sorted(present & {int(k) for k in cleanup.only})
    excluded = {cleanup.ignore_index, cleanup.background}
    return sorted(k for k in present if k not in excluded)


def relabel(labels: np.ndarray, mapping: Mapping[int, int]) -> np.ndarray:
    """Apply ``{old: new}`` to every pixel (:func:`segtools.labels.remap_labels`; unmapped
    labels stay). Labels are 0..65535 (the 16-bit PNG limit); the result is as wide as the
    input or wider.

    >>> relabel(np.array([[1, 2, 3]], np.uint8), {2: 1, 3: 300}).tolist()
    [[1, 1, 300]]
    """
    if not mapping:
        return labels.copy()
    values = [*mapping.keys(), *mapping.values()]
    if min(values) < 0 or max(values) >= MAX_CLASSES:
        raise UsageError(f"relabel: labels must be between 0 and {MAX_CLASSES - 1} (the 16-bit limit)")
    out = remap_labels(labels, list(mapping.keys()), list(mapping.values()))
    return out if out.dtype.itemsize >= labels.dtype.itemsize else out.astype(labels.dtype)


def clean_labels(labels: np.ndarray, cleanup: Cleanup) -> np.ndarray:
    """Run the cleanup pipeline on an H×W integer label mask and return a new mask.

    Guarantees (with ``fill='nearest'`` and no ``relabel``): no pixel gets a label that was
    not in the input, ignore pixels stay ignore and no other pixel becomes ignore, and a
    pixel only changes when a step takes it from its class or grows a class over it.

    Examples
    --------
    >>> lab = np.zeros((6, 6), np.uint8); lab[1:5, 1:5] = 1; lab[0, 5] = 2
    >>> out = clean_labels(lab, Cleanup(min_area=2))
    >>> int(out[0, 5]), int((out == 1).sum())
    (0, 16)
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.dtype.kind not in "iu":
        raise InputError(f"a label mask is a 2-D integer array, not {labels.ndim}-D {labels.dtype}")
    if labels.dtype.kind == "i" or labels.dtype.itemsize > 2:
        label_table_size(labels, "label mask")  # 0..65535, so uint16 holds every label exactly
        labels = labels.astype(np.uint16)
    out = labels.copy()
    for step in cleanup.steps():
        out = _run_step(step, out, cleanup)
    return out


def _run_step(step: str, labels: np.ndarray, cleanup: Cleanup) -> np.ndarray:
    if step == "map":
        return relabel(labels, cleanup.relabel)
    classes = selected_classes(labels, cleanup)
    if not classes:
        return labels
    if step == "smooth":
        return filters.majority_filter(labels, cleanup.smooth, classes, cleanup.ignore_index)
    if step in ("close", "dilate"):
        kernel = filters.structuring_element(getattr(cleanup, step), cleanup.kernel)
        return filters.grown_labels(labels, classes, kernel, step, cleanup.ignore_index)
    if step == "fill-holes":
        return components.fill_holes(labels, classes, cleanup.fill_holes, cleanup.connectivity, cleanup.ignore_index)
    if step in ("open", "erode"):
        kernel = filters.structuring_element(getattr(cleanup, step), cleanup.kernel)
        removed = filters.shrunk_pixels(labels, classes, kernel, step)
    elif step == "min-area":
        limits = {k: int(cleanup.min_area_per_class.get(k, cleanup.min_area)) for k in classes}
        removed = components.small_components(labels, classes, limits, cleanup.connectivity)
    else:  # keep-largest
        removed = components.all_but_largest(labels, classes, cleanup.keep_largest, cleanup.connectivity)
    if cleanup.fill == "background":
        return refill.refill_background(labels, removed, cleanup.background)
    return refill.refill_nearest(labels, removed, cleanup.ignore_index)
