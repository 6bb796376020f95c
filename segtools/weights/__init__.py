"""Checkpoints, the weights registry, downloads, import/export and class-balancing weights.

Import submodules directly (``segtools.weights.checkpoint``, ``.classes``, ``.registry``,
``.download``); this package imports nothing heavy, and torch only where a function needs it.
"""
