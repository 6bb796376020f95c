"""Training: losses, augmentations, data loading, schedules and the loop (``segtools train``).

Import the submodules directly (``from segtools.train.loop import train``); this package
imports nothing heavy on its own.
"""
