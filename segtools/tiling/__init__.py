"""Tile grids, split, stitch and blend.

Import submodules directly (``from segtools.tiling.grid import tile_grid``); this package
file imports nothing heavy so the CLI stays fast.

- :mod:`~segtools.tiling.grid` — :class:`Tile` and :func:`tile_grid` (positions only).
- :mod:`~segtools.tiling.blend` — blending weights and :class:`ScoreAccumulator`.
- :mod:`~segtools.tiling.stitch` — seam-free label stitching (nearest tile centre, majority).
- :mod:`~segtools.tiling.manifest` — the ``manifest.json`` that ``tile split`` writes.
- :mod:`~segtools.tiling.split` / :mod:`~segtools.tiling.merge` — the two halves of ``segtools tile``
  (huge rasters are read and written in bands by :mod:`segtools.io.rasters`).
"""
