"""GeoTIFF georeferencing tags: read from a TIFF, shifted to a tile's origin, written back.

A GeoTIFF places its pixels on the earth with a few TIFF tags. ``tile split`` carries them to
TIFF tiles (each tile's tiepoint moved to the tile's origin) and records them in the
manifest, so ``tile merge`` writes them back to a stitched TIFF. The tags kept:

=====  ======================  ===========================================
code   name                    value
=====  ======================  ===========================================
33550  ModelPixelScale         (scaleX, scaleY, scaleZ), doubles
33922  ModelTiepoint           (I, J, K, X, Y, Z) per tiepoint, doubles
34264  ModelTransformation     4×4 matrix, doubles
34735  GeoKeyDirectory         unsigned shorts
34736  GeoDoubleParams         doubles
34737  GeoAsciiParams          text
=====  ======================  ===========================================

``geo`` values are plain dicts ``{code: value}`` (tuples of numbers, or a string), small
enough to travel in ``manifest.json`` as ``{"33550": [...], ...}``.
"""

from __future__ import annotations

import math

from segtools.errors import InputError

PIXEL_SCALE, TIEPOINT, TRANSFORMATION = 33550, 33922, 34264
KEY_DIRECTORY, DOUBLE_PARAMS, ASCII_PARAMS = 34735, 34736, 34737
# code → TIFF data type (12 double, 3 unsigned short, 2 ASCII) and the most values accepted
GEO_TAGS = {PIXEL_SCALE: (12, 3), TIEPOINT: (12, 6 * 4096), TRANSFORMATION: (12, 16),
            KEY_DIRECTORY: (3, 4 * 4096), DOUBLE_PARAMS: (12, 4096), ASCII_PARAMS: (2, 65536)}


def read_geo_tags(tif) -> dict[int, tuple | str] | None:
    """The georeferencing tags of a ``tifffile.TiffFile``'s first page, or ``None``."""
    geo = {}
    for code in GEO_TAGS:
        tag = tif.pages[0].tags.get(code)
        if tag is None:
            continue
        value = tag.value
        geo[code] = value if isinstance(value, str) else tuple(value) if hasattr(value, "__len__") else (value,)
    return geo or None


def shift_geo(geo: dict | None, y: int, x: int) -> dict | None:
    """The tags of the sub-image whose top-left pixel is ``(y, x)`` in the tagged one.

    With a pixel scale, each tiepoint's model X moves by ``x·scaleX`` and Y by ``−y·scaleY``
    (rows go south); without one, the tiepoints' raster I/J move by ``−x``/``−y`` instead,
    which is exact for any set of tiepoints. A transformation matrix is translated by the
    model position of ``(x, y)``.
    """
    if not geo or (y == 0 and x == 0):
        return geo
    shifted = dict(geo)
    points = geo.get(TIEPOINT)
    if points:
        points = list(points)
        scale = geo.get(PIXEL_SCALE)
        for start in range(0, len(points) - 5, 6):
            if scale:
                points[start + 3] += x * scale[0]
                points[start + 4] -= y * scale[1]
            else:
                points[start] -= x
                points[start + 1] -= y
        shifted[TIEPOINT] = tuple(points)
    matrix = geo.get(TRANSFORMATION)
    if matrix and len(matrix) == 16:
        matrix = list(matrix)
        matrix[3] += matrix[0] * x + matrix[1] * y
        matrix[7] += matrix[4] * x + matrix[5] * y
        shifted[TRANSFORMATION] = tuple(matrix)
    return shifted


def extratags(geo: dict | None) -> list[tuple]:
    """``tifffile.imwrite(extratags=…)`` entries for ``geo``."""
    if not geo:
        return []
    tags = []
    for code, value in sorted(geo.items()):
        dtype = GEO_TAGS[code][0]
        if dtype == 2:
            tags.append((code, dtype, 0, value, True))
        else:
            tags.append((code, dtype, len(value), tuple(value), True))
    return tags


def geo_to_json(geo: dict | None) -> dict | None:
    """``geo`` as JSON: string keys, lists of numbers."""
    if not geo:
        return None
    return {str(code): value if isinstance(value, str) else [float(v) if GEO_TAGS[code][0] == 12 else int(v)
                                                             for v in value]
            for code, value in sorted(geo.items())}


def geo_from_json(body, where: str) -> dict | None:
    """Check a manifest's ``geo`` entry and return it as ``{code: value}``.

    Raises
    ------
    InputError
        An unknown tag, a value of the wrong type, or more values than the tag holds.
    """
    if body is None:
        return None
    if not isinstance(body, dict):
        raise InputError(f"{where}: 'geo' must be an object of GeoTIFF tags")
    geo = {}
    for key, value in body.items():
        code = int(key) if isinstance(key, str) and key.isdigit() else None
        if code not in GEO_TAGS:
            raise InputError(f"{where}: geo: {key[:20]!r} is not a GeoTIFF tag this segtools keeps "
                             f"({', '.join(str(c) for c in GEO_TAGS)})")
        dtype, most = GEO_TAGS[code]
        if dtype == 2:
            if not isinstance(value, str) or len(value) > most:
                raise InputError(f"{where}: geo: {code} must be text of at most {most} characters")
            geo[code] = value
            continue
        if not isinstance(value, list) or not 0 < len(value) <= most:
            raise InputError(f"{where}: geo: {code} must be a list of 1 to {most} numbers")
        if dtype == 3:
            if not all(type(v) is int and 0 <= v <= 65535 for v in value):
                raise InputError(f"{where}: geo: {code} must hold integers 0..65535")
        elif not all(type(v) in (int, float) and math.isfinite(v) for v in value):
            raise InputError(f"{where}: geo: {code} must hold finite numbers")
        geo[code] = tuple(value)
    return geo or None
