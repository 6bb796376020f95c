"""Pictures of segmentations: palettes, colourised masks, overlays, contours, error maps,
legends, panels, score heatmaps, confusion-matrix plots, class statistics and HTML reports.

Every function takes and returns numpy arrays (RGB ``uint8``, H×W×3 or H×W×4); reading and
writing files is :mod:`segtools.io`'s job. Import submodules directly
(``from segtools.viz.overlay import overlay_labels``): this package imports nothing heavy.
"""
