"""Connected components of label masks: small components, the largest ones, holes, instances.

Every function works class by class on the tight bounding box of that class (classes absent
from the mask cost nothing), with OpenCV's connected-component labelling and a lookup table
indexed by the component image: no Python loop over components or pixels. Small components
of many classes spread over the whole mask (speckle) are instead labelled for every class in
one pass (:func:`same_class_components`).

Connectivity is 8 (default) or 4 for the class regions; holes (regions of *other* labels
enclosed by a class) use the complementary connectivity, so that an 8-connected ring
encloses its 4-connected inside, as in digital topology.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

from segtools.errors import UsageError

CONNECTIVITIES = (4, 8)
NOT_A_HOLE = np.int64(np.iinfo(np.int64).max)
ONE_PASS_BOXES = 4  # class boxes adding up to more images than this: label all classes at once,
ONE_PASS_MAX_PIXELS = 1 << 24  # on masks up to this size (its labelling image holds 4 int32 per pixel)


def check_connectivity(connectivity: int) -> int:
    """Return ``connectivity`` if it is 4 or 8, else raise :class:`UsageError`."""
    if connectivity not in CONNECTIVITIES:
        raise UsageError(f"connectivity={connectivity}: must be 4 or 8")
    return int(connectivity)


def class_box(class_mask: np.ndarray, pad: int = 0) -> tuple[slice, slice] | None:
    """The bounding box of the non-zero pixels of a uint8 mask, grown by ``pad`` pixels.

    Returns ``None`` when the mask is empty.
    """
    import cv2

    x, y, w, h = cv2.boundingRect(class_mask)
    if w == 0 or h == 0:
        return None
    height, width = class_mask.shape
    return (slice(max(0, y - pad), min(height, y + h + pad)),
            slice(max(0, x - pad), min(width, x + w + pad)))


def _components(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, np.ndarray]:
    """Component image (int32, 0 = not in mask) and area per component (index 0 = outside).

    ``cv2.connectedComponents`` plus one ``np.bincount`` is several times faster than
    ``connectedComponentsWithStats`` when only the areas are needed.
    """
    import cv2

    count, components = cv2.connectedComponents(
        mask.view(np.uint8) if mask.dtype == bool else mask, connectivity=connectivity, ltype=cv2.CV_32S)
    return components, np.bincount(components.ravel(), minlength=count)


def remove_small_objects(mask: np.ndarray, min_area: int, connectivity: int = 8) -> np.ndarray:
    """A copy of a binary mask without its connected components smaller than ``min_area`` pixels.

    Parameters
    ----------
    mask : H×W bool (or 0/non-zero) array.
    min_area : components with fewer pixels than this are removed (pixels).
    connectivity : 4 or 8.

    Returns
    -------
    H×W bool array.

    Examples
    --------
    >>> m = np.zeros((5, 5), bool); m[0, 0] = True; m[2:5, 2:5] = True
    >>> int(remove_small_objects(m, 2).sum())
    9
    """
    mask = np.asarray(mask).astype(bool, copy=False)
    components, areas = _components(mask, check_connectivity(connectivity))
    keep = areas >= min_area
    keep[0] = False
    return np.take(keep, components)  # take: about twice as fast as fancy indexing here


def fill_small_holes(mask: np.ndarray, max_area: int, connectivity: int = 8) -> np.ndarray:
    """A copy of a binary mask with its holes of at most ``max_area`` pixels filled.

    A hole is a connected region of background (with the connectivity complementary to
    ``connectivity``, the one of the foreground) that does not touch the image border.

    Examples
    --------
    >>> m = np.ones((5, 5), bool); m[2, 2] = False
    >>> bool(fill_small_holes(m, 1)[2, 2])
    True
    """
    mask = np.asarray(mask).astype(bool, copy=False)
    holes = _hole_areas(~mask, 12 - check_connectivity(connectivity))
    components, areas = holes
    fill = (areas <= max_area) & (areas > 0)
    fill[0] = False
    return mask | np.take(fill, components)


def _hole_areas(background: np.ndarray, hole_connectivity: int) -> tuple[np.ndarray, np.ndarray]:
    """Components of ``background`` and their areas, with border-touching ones set to area 0."""
    components, areas = _components(background, hole_connectivity)
    areas = areas.copy()
    border = np.concatenate([components[0], components[-1], components[:, 0], components[:, -1]])
    areas[border] = 0
    areas[0] = 0
    return components, areas


def _class_components(labels: np.ndarray, classes: Iterable[int], connectivity: int):
    """For each class present: ``(k, box, components, areas)`` of its connected components,
    labelled inside the class's bounding box (absent classes are skipped)."""
    for k in classes:
        class_mask = (labels == k).view(np.uint8)
        box = class_box(class_mask)
        if box is not None:
            yield (k, box) + tuple(_components(class_mask[box], connectivity))


def same_class_components(labels: np.ndarray, connectivity: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The connected components of every class at once: neighbours join when their labels are
    equal. Returns an H×W int32 component image (ids ``0..n-1``) and the area of each id.

    One OpenCV labelling (4-connected) of a (2H-1)×(2W-1) image holding the pixels at even
    positions and, between them, a link where two 4-neighbours share their label; with
    connectivity 8, components touching diagonally through a pixel pair of one label are
    then merged as a graph (SciPy), which crossing diagonals (a checkerboard of two labels)
    need and a planar image cannot hold.

    >>> ids, areas = same_class_components(np.array([[1, 2], [2, 1]]))
    >>> ids.tolist(), areas.tolist()
    ([[0, 1], [1, 0]], [2, 2])
    """
    import cv2

    height, width = labels.shape
    links = np.zeros((2 * height - 1, 2 * width - 1), np.uint8)
    links[::2, ::2] = 1
    np.equal(labels[:, :-1], labels[:, 1:], out=links[::2, 1::2].view(bool))
    np.equal(labels[:-1], labels[1:], out=links[1::2, ::2].view(bool))
    count, components = cv2.connectedComponents(links, connectivity=4, ltype=cv2.CV_32S)
    ids = np.ascontiguousarray(components[::2, ::2])
    ids -= 1  # every pixel is in a component: 0 is the space between them
    count -= 1
    if check_connectivity(connectivity) == 8 and height > 1 and width > 1:
        pairs = []
        for a, b, label_a, label_b in ((ids[:-1, :-1], ids[1:, 1:], labels[:-1, :-1], labels[1:, 1:]),
                                       (ids[:-1, 1:], ids[1:, :-1], labels[:-1, 1:], labels[1:, :-1])):
            join = (label_a == label_b) & (a != b)
            pairs.append((a[join], b[join]))
        first = np.concatenate([p[0] for p in pairs])
        if first.size:
            from scipy import sparse
            from scipy.sparse import csgraph

            second = np.concatenate([p[1] for p in pairs])
            graph = sparse.coo_matrix((np.ones(first.size, np.int8), (first, second)), shape=(count, count))
            _, merged = csgraph.connected_components(graph.tocsr(), directed=False)
            # connected_components numbers in order of first node: scan order is kept
            ids = merged.astype(np.int32)[ids]
    return ids, np.bincount(ids.ravel())


def small_components(labels: np.ndarray, classes: Iterable[int], min_area: int | Mapping[int, int],
                     connectivity: int = 8) -> np.ndarray:
    """Pixels of the connected components of ``classes`` smaller than their minimum area.

    ``min_area`` is one number of pixels for all classes or a ``{class: pixels}`` mapping
    (a class missing from it is left alone). Returns an H×W bool mask.

    Classes filling small parts of the mask are labelled each on its own bounding box
    (cheap); when those boxes add up to more than :data:`ONE_PASS_BOXES` images (speckle
    of many classes everywhere) on a mask of at most :data:`ONE_PASS_MAX_PIXELS`, every
    class is labelled in one pass
    (:func:`same_class_components`). Either way one ``np.bincount`` gives every area and
    one lookup the small pixels.
    """
    import cv2

    check_connectivity(connectivity)
    limits = {int(k): (min_area.get(int(k), 0) if isinstance(min_area, Mapping) else min_area) for k in classes}
    limits = {k: v for k, v in sorted(limits.items()) if v > 1}
    boxes = {}
    for k in limits:
        class_mask = (labels == k).view(np.uint8)
        box = class_box(class_mask)
        if box is not None:
            boxes[k] = (box, class_mask)
    if not boxes:
        return np.zeros(labels.shape, bool)
    box_pixels = sum((b[0].stop - b[0].start) * (b[1].stop - b[1].start) for b, _ in boxes.values())
    if box_pixels > ONE_PASS_BOXES * labels.size and labels.size <= ONE_PASS_MAX_PIXELS:
        components, areas = same_class_components(labels, connectivity)
        component_class = np.empty(areas.size, np.int64)
        component_class[components.ravel()] = labels.ravel()
        table = np.zeros(int(component_class.max()) + 1, np.int64)
        for k, limit in limits.items():
            if k < table.size:
                table[k] = limit
        return np.take(areas < table[component_class], components)
    components = np.zeros(labels.shape, np.int32)  # 0: a pixel of no class looked at
    component_limits = [np.zeros(1, np.int64)]
    count = 1
    for k, (box, class_mask) in boxes.items():
        found, class_components = cv2.connectedComponents(class_mask[box], connectivity=connectivity,
                                                          ltype=cv2.CV_32S)
        if found > 1:  # ids 1.. of this class become count..count+found-2
            np.add(class_components, np.int32(count - 1), out=components[box], where=class_mask[box].view(bool))
            component_limits.append(np.full(found - 1, limits[k], np.int64))
            count += found - 1
    small = np.bincount(components.ravel(), minlength=count) < np.concatenate(component_limits)
    small[0] = False
    return np.take(small, components)


def all_but_largest(labels: np.ndarray, classes: Iterable[int], keep: int, connectivity: int = 8) -> np.ndarray:
    """Pixels of every component of ``classes`` except each class's ``keep`` largest.

    Equal areas are ranked in OpenCV's scan order (the component met first, row by row,
    ranks first), so the result is deterministic.
    """
    check_connectivity(connectivity)
    removed = np.zeros(labels.shape, bool)
    for _k, box, components, areas in _class_components(labels, classes, connectivity):
        if len(areas) - 1 <= keep:
            continue
        ranked = np.argsort(-areas[1:], kind="stable") + 1
        drop = np.ones(len(areas), bool)
        drop[0] = False
        drop[ranked[:keep]] = False
        removed[box] |= np.take(drop, components)
    return removed


def fill_holes(labels: np.ndarray, classes: Iterable[int], max_area: int, connectivity: int = 8,
               ignore_index: int | None = None) -> np.ndarray:
    """Fill the holes of at most ``max_area`` pixels inside each class region with that class.

    A hole of class ``k`` is a connected region of other labels (complementary
    connectivity) that does not touch the image border; its area counts every pixel in it.
    All classes are judged on the same input (the result does not depend on class order).
    A pixel inside holes of several classes takes the class whose hole is smallest (the
    innermost region; equal areas: the lower class). Ignore pixels are never changed.

    Returns a new label array.
    """
    hole_connectivity = 12 - check_connectivity(connectivity)
    out = labels.copy()
    best_area = None
    for k in classes:
        class_mask = (labels == k).view(np.uint8)
        box = class_box(class_mask)
        if box is None:
            continue
        components, areas = _hole_areas(class_mask[box] == 0, hole_connectivity)
        eligible = (areas > 0) & (areas <= max_area)
        if not eligible.any():
            continue
        if best_area is None:
            best_area = np.full(labels.shape, NOT_A_HOLE, np.int64)
        in_hole = np.flatnonzero(eligible[components])
        hole_area = areas.astype(np.int64)[components.ravel()[in_hole]]
        rows, cols = np.divmod(in_hole, components.shape[1])
        rows += box[0].start
        cols += box[1].start
        wins = hole_area < best_area[rows, cols]
        best_area[rows[wins], cols[wins]] = hole_area[wins]
        out[rows[wins], cols[wins]] = k
    if ignore_index is not None and best_area is not None:
        ignored = labels == ignore_index
        out[ignored] = labels[ignored]
    return out


def label_instances(labels: np.ndarray, classes: Iterable[int], connectivity: int = 8) -> tuple[np.ndarray, list[int]]:
    """Connected components of ``classes`` as instance ids.

    Returns
    -------
    instances : H×W uint16 (uint32 above 65535 instances) array, 0 where no instance.
        Ids are numbered class by class (ascending), in scan order within a class.
    instance_class : ``instance_class[i]`` is the class of instance id ``i`` (index 0 is
        unused and holds -1).
    """
    check_connectivity(connectivity)
    instances = np.zeros(labels.shape, np.uint32)
    instance_class = [-1]
    for k, box, components, areas in _class_components(labels, classes, connectivity):
        count = len(areas) - 1
        if count == 0:
            continue
        offset = len(instance_class) - 1
        inside = components > 0
        instances[box][inside] = components[inside] + offset
        instance_class.extend([int(k)] * count)
    if len(instance_class) - 1 <= 65535:
        instances = instances.astype(np.uint16)
    return instances, instance_class
