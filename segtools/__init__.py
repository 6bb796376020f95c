"""segtools: small, sharp command-line tools and a library for image segmentation.

The library is importable without torch: ``segtools.io``, ``segtools.metrics`` and
``segtools.morphology`` need only numpy, OpenCV, Pillow and SciPy.
"""

__version__ = "0.1.0"

from segtools.errors import SegtoolsError  # noqa: E402  (cheap: stdlib only)

__all__ = ["SegtoolsError", "__version__"]
