"""Inference: the predictor (batching, device, precision), sliding windows and test-time augmentation.

Import submodules directly (``segtools.inference.predictor``, ``.sliding``, ``.tta``).
"""
