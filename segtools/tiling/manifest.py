"""``manifest.json``: everything ``segtools tile merge`` needs to put tiles back together.

Written by ``tile split`` beside the tiles::

    {"format": "segtools-tiles", "version": 1,
     "source": {"name": "scene.png", "height": 5000, "width": 8000, "channels": 3,
                "dtype": "uint8", "kind": "image"},
     "grid": {"size": [512, 512], "stride": [448, 448], "overlap": [64, 64],
              "pad": null, "pad_value": 0},
     "classes": null,
     "tiles": [{"y": 0, "x": 0, "h": 512, "w": 512, "file": "scene_y00000_x00000.png",
                "mask": "masks/scene_y00000_x00000.png"},
               {"y": 0, "x": 448, "h": 512, "w": 512, "file": null, "skipped": "min-foreground"}, ...]}

Every tile of the grid is listed, skipped ones with ``"file": null`` and the reason, so the
grid stays regular. File names are relative to the manifest's folder; a manifest naming a
file outside that folder (``..``, an absolute path, a symlink out) is refused.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

from segtools.errors import InputError
from segtools.io.geotiff import geo_from_json
from segtools.io.jsondata import check_int, get_field, get_int, parse_json
from segtools.io.limits import check_size
from segtools.io.meta import ClassMeta
from segtools.tiling.grid import Tile

MANIFEST_NAME = "manifest.json"
FORMAT = "segtools-tiles"
VERSION = 1
PAD_MODES = ("reflect", "constant")
_MAX_SIDE = 2**31 - 1


@dataclass
class TileRecord:
    """One grid position: the tile, its file (``None`` when skipped) and optional mask file."""

    tile: Tile
    file: str | None
    mask: str | None = None
    skipped: str | None = None


@dataclass
class Manifest:
    """The source's size and kind, the grid, and one record per tile (row-major)."""

    source: dict
    size: tuple[int, int]
    stride: tuple[int, int]
    overlap: tuple[int, int]
    pad: str | None
    tiles: list[TileRecord]
    pad_value: float = 0
    classes: dict | None = None
    extra: dict = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.source["height"])

    @property
    def width(self) -> int:
        return int(self.source["width"])

    @property
    def written(self) -> int:
        """How many tiles were written (the others were skipped)."""
        return sum(record.file is not None for record in self.tiles)

    @property
    def bands(self) -> int:
        """How many rows of tiles the grid has."""
        return len({record.tile.y for record in self.tiles})

    def to_json(self) -> str:
        tiles = []
        for record in self.tiles:
            entry = {"y": record.tile.y, "x": record.tile.x, "h": record.tile.h, "w": record.tile.w,
                     "file": record.file}
            if record.mask is not None:
                entry["mask"] = record.mask
            if record.skipped is not None:
                entry["skipped"] = record.skipped
            tiles.append(entry)
        body = {"format": FORMAT, "version": VERSION, "source": self.source,
                "grid": {"size": list(self.size), "stride": list(self.stride), "overlap": list(self.overlap),
                         "pad": self.pad, "pad_value": self.pad_value},
                "classes": self.classes, **self.extra, "tiles": tiles}
        return json.dumps(body, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, name: str = MANIFEST_NAME) -> "Manifest":
        """Parse and validate a manifest: types checked strictly, the source size within the
        pixel budget, every tile's box inside the source (or, with ``pad``, starting inside
        it and at most one tile past its edge), before anything of those sizes is made."""
        body = parse_json(text, name)
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise InputError(f"{name}: not a segtools tile manifest (no \"format\": \"{FORMAT}\")")
        version = get_int(body, "version", name, low=0, default=0)
        if version > VERSION:
            raise InputError(f"{name}: manifest version {version} is newer than this segtools "
                             f"understands ({VERSION}); upgrade segtools")
        source = get_field(body, "source", name, dict)
        height, width = get_int(source, "height", f"{name}: source"), get_int(source, "width", f"{name}: source")
        check_size(width, height, f"{name}: source")
        geo_from_json(source.get("geo"), f"{name}: source")
        grid = get_field(body, "grid", name, dict)
        size = _pair(grid, "size", f"{name}: grid", low=1)
        stride = _pair(grid, "stride", f"{name}: grid", low=1)
        overlap = _pair(grid, "overlap", f"{name}: grid", low=0, default=[0, 0])
        pad = get_field(grid, "pad", f"{name}: grid", str, None)
        if pad is not None and pad not in PAD_MODES:
            raise InputError(f"{name}: grid: 'pad' must be null or one of {', '.join(PAD_MODES)}, not {pad[:20]!r}")
        pad_value = get_field(grid, "pad_value", f"{name}: grid", float, 0)
        classes = get_field(body, "classes", name, dict, None)
        if classes is not None:
            ClassMeta.from_dict(classes, f"{name}: classes")
        entries = get_field(body, "tiles", name, list)
        if not entries:
            raise InputError(f"{name}: lists no tiles")
        tiles = [_tile_record(entry, f"{name}: tiles[{index}]", height, width, pad is not None, name)
                 for index, entry in enumerate(entries)]
        if len({(r.tile.y, r.tile.x) for r in tiles}) != len(tiles):
            raise InputError(f"{name}: lists a tile position twice")
        return cls(source, size, stride, overlap, pad, tiles, pad_value, classes)


def _pair(obj: dict, key: str, where: str, low: int, default=None) -> tuple[int, int]:
    values = get_field(obj, key, where, list, default) if default is not None else get_field(obj, key, where, list)
    if len(values) != 2:
        raise InputError(f"{where}: '{key}' must be [rows, columns], got {len(values)} values")
    return tuple(check_int(v, f"{where}: {key}[{i}]", low, _MAX_SIDE) for i, v in enumerate(values))


def _tile_record(entry, where: str, height: int, width: int, padded: bool, name: str) -> TileRecord:
    y, x = get_int(entry, "y", where, 0, height - 1), get_int(entry, "x", where, 0, width - 1)
    h, w = get_int(entry, "h", where, 1, _MAX_SIDE), get_int(entry, "w", where, 1, _MAX_SIDE)
    y_limit, x_limit = (height + h - 1, width + w - 1) if padded else (height, width)
    if y + h > y_limit or x + w > x_limit:
        raise InputError(f"{where}: tile {w}x{h} at x={x}, y={y} reaches past the {width}x{height} source"
                         + ("" if padded else " (the manifest has no padding)"))
    skipped = get_field(entry, "skipped", where, str, None)
    return TileRecord(Tile(y, x, h, w), _checked_name(entry.get("file"), name),
                      _checked_name(entry.get("mask"), name), skipped)


def _checked_name(value, manifest_name: str) -> str | None:
    """A tile file name must be a relative path that stays inside the manifest's folder."""
    if value is None:
        return None
    if not isinstance(value, str) or not value or "\x00" in value:
        raise InputError(f"{manifest_name}: tile file name {value!r} is not a file name")
    posix, windows = PurePosixPath(value), PureWindowsPath(value)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or ".." in posix.parts or ".." in windows.parts:
        raise InputError(f"{manifest_name}: refusing tile path {value!r} that points outside the manifest's folder")
    return value


def resolve_tile_path(base: Path, relative: str, manifest_name: str = MANIFEST_NAME) -> Path:
    """``base / relative``, refusing anything (``..``, absolute, a symlink) that leaves ``base``."""
    relative = _checked_name(relative, manifest_name)
    root = Path(os.path.realpath(base))
    target = Path(os.path.realpath(root / relative))
    if target != root and root not in target.parents:
        raise InputError(f"{manifest_name}: refusing tile path {relative!r} that resolves outside {base}")
    return target


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Read and validate a manifest file (or the ``manifest.json`` inside a folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such manifest; tile folders made by `segtools tile split` have one "
                         "(or give the manifest.json file itself)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    return Manifest.from_json(text, str(path))


def tile_file_name(stem: str, tile: Tile, extension: str, digits: int = 5) -> str:
    """``scene_y01024_x02048.png``: the tile's origin in the name, zero-padded to sort."""
    return f"{stem}_y{tile.y:0{digits}d}_x{tile.x:0{digits}d}{extension}"
