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
from segtools.tiling.grid import Tile

MANIFEST_NAME = "manifest.json"
FORMAT = "segtools-tiles"
VERSION = 1


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
    def from_json(cls, text: str, name: str = MANIFEST_NAME) -> "Manifest":
        try:
            body = json.loads(text)
        except ValueError as exc:
            raise InputError(f"{name}: not valid JSON ({exc})") from None
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise InputError(f"{name}: not a segtools tile manifest (no \"format\": \"{FORMAT}\")")
        if body.get("version", 0) > VERSION:
            raise InputError(f"{name}: manifest version {body.get('version')} is newer than this segtools "
                             f"understands ({VERSION}); upgrade segtools")
        try:
            source, grid = body["source"], body["grid"]
            int(source["height"]), int(source["width"])
            tiles = [TileRecord(Tile(int(t["y"]), int(t["x"]), int(t["h"]), int(t["w"])),
                                _checked_name(t.get("file"), name), _checked_name(t.get("mask"), name),
                                t.get("skipped")) for t in body["tiles"]]
            manifest = cls(source, tuple(grid["size"]), tuple(grid["stride"]), tuple(grid.get("overlap", (0, 0))),
                           grid.get("pad"), tiles, grid.get("pad_value", 0), body.get("classes"))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{name}: malformed manifest ({type(exc).__name__}: {exc})") from None
        if not tiles:
            raise InputError(f"{name}: lists no tiles")
        return manifest


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
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such manifest; tile folders made by `segtools tile split` have one "
                         "(or pass --manifest FILE)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    return Manifest.from_json(text, str(path))


def tile_file_name(stem: str, tile: Tile, extension: str, digits: int = 5) -> str:
    """``scene_y01024_x02048.png``: the tile's origin in the name, zero-padded to sort."""
    return f"{stem}_y{tile.y:0{digits}d}_x{tile.x:0{digits}d}{extension}"
