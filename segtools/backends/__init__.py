"""Back-ends for models the native zoo does not hold: ONNX Runtime and Hugging Face transformers.

Every back-end gives ``predict`` a *runner* (:class:`segtools.backends.runner.SemanticRunner`):
an object whose ``forward`` maps a normalised N×3×H×W float32 batch to class scores, with the
class metadata and preprocessing it was found with. :class:`segtools.backends.runner.RunnerPredictor`
does the rest in numpy — 8-bit RGB conversion, resizing, batching of same-size images, sliding
windows, test-time augmentation, upsampling to the image's size, softmax or argmax — so the
ONNX path never imports torch.

* :mod:`segtools.backends.onnx` — ``.onnx`` graphs (semantic logits or labels; YOLO-seg
  through :mod:`segtools.backends.yolo`).
* :mod:`segtools.backends.hf` — ``hf:PATH`` / ``hf:ORG/NAME`` transformers checkpoints.

Nothing here imports onnxruntime, transformers or torch at module level.
"""
