"""YOLO-seg ONNX graphs in Ultralytics' export layout → instances.

``yolo export format=onnx`` of a segmentation model gives a graph with one input
(1×3×S×S RGB in [0, 1], letterboxed) and two outputs:

* ``output0`` — 1×(4 + K + M)×A: for each of A anchors a box (centre x, centre y, width,
  height, input pixels), K class scores in [0, 1] and M (32) mask coefficients;
* ``output1`` — 1×M×h×w prototype masks (a quarter of the input size).

:func:`decode` follows Ultralytics' documented post-processing: keep anchors whose best
class score passes ``conf``, class-aware non-maximum suppression at ``iou`` (at most
``max_det`` boxes, best first), each instance's mask logits = coefficients · prototypes; the
letterbox padding is cut off the prototype masks, which are resized bilinearly to the
original image (Ultralytics' ``retina_masks`` path), cropped to the box and thresholded at
logit 0 (probability 0.5); boxes are mapped back through the letterbox.
"""

from __future__ import annotations

import numpy as np

from segtools.errors import InputError
from segtools.io.meta import ClassMeta

PAD_GREY = 114
MASK_COEFFICIENTS = 32


def is_yolo_seg(session) -> bool:
    """Whether an onnxruntime session's graph has YOLO-seg's layout."""
    outputs = session.get_outputs()
    if len(outputs) != 2 or len(outputs[0].shape) != 3 or len(outputs[1].shape) != 4:
        return False
    meta = dict(session.get_modelmeta().custom_metadata_map)
    if meta.get("task") == "segment":
        return True
    rows, protos = outputs[0].shape[1], outputs[1].shape[1]
    return isinstance(rows, int) and isinstance(protos, int) and rows > 4 + protos


def letterbox(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float, tuple[int, int]]:
    """``image`` (H×W×3 uint8) scaled to fit ``size`` keeping its aspect, centred on grey
    114 padding: the canvas, the scale and the (top, left) padding in pixels."""
    import cv2

    height, width = image.shape[:2]
    ratio = min(size[0] / height, size[1] / width)
    new_h, new_w = int(round(height * ratio)), int(round(width * ratio))
    top = int(round((size[0] - new_h) / 2 - 0.1))
    left = int(round((size[1] - new_w) / 2 - 0.1))
    canvas = np.full((size[0], size[1], 3), PAD_GREY, np.uint8)
    resized = image if (new_h, new_w) == (height, width) else cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    canvas[top:top + new_h, left:left + new_w] = resized
    return canvas, ratio, (top, left)


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float, max_det: int) -> np.ndarray:
    """Indices kept by class-aware greedy NMS (IoU > ``iou`` suppresses), best score first."""
    import cv2

    if not len(boxes):
        return np.zeros(0, np.int64)
    xywh = np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]]).astype(np.float64)
    kept = cv2.dnn.NMSBoxesBatched(xywh.tolist(), scores.astype(np.float64).tolist(), classes.astype(np.int32).tolist(),
                                   0.0, float(iou))
    kept = np.asarray(kept, np.int64).reshape(-1)
    order = np.argsort(-scores[kept], kind="stable")
    return kept[order][:max_det]


def decode(predictions: np.ndarray, prototypes: np.ndarray, image_size: tuple[int, int], ratio: float,
           pad: tuple[int, int], conf: float = 0.25, iou: float = 0.7, max_det: int = 300):
    """:class:`segtools.inference.instances.Instances` (labels: class index + 1, 0 being no
    instance, as for every instance model of segtools) from one image's raw outputs (``predictions`` (4+K+M)×A, ``prototypes``
    M×h×w), for the original ``image_size`` (height, width) letterboxed at ``ratio`` and
    ``pad`` (top, left)."""
    import cv2

    coefficients = prototypes.shape[0]
    class_count = predictions.shape[0] - 4 - coefficients
    if class_count < 1:
        raise InputError(f"YOLO-seg output has {predictions.shape[0]} rows for {coefficients} prototypes: no class rows")
    scores_all = predictions[4:4 + class_count]
    best = scores_all.argmax(axis=0)
    score = scores_all[best, np.arange(predictions.shape[1])]
    keep = np.flatnonzero(score > conf)
    cx, cy, w, h = predictions[:4, keep]
    boxes = np.column_stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]).astype(np.float32)
    kept = keep[nms(boxes, score[keep], best[keep], iou, max_det)]
    boxes = boxes[np.searchsorted(keep, kept)] if len(kept) else np.zeros((0, 4), np.float32)
    height, width = image_size
    top, left = pad
    boxes = (boxes - np.array([left, top, left, top], np.float32)) / np.float32(ratio)
    boxes = np.clip(boxes, 0, np.array([width, height, width, height], np.float32))
    masks = np.zeros((len(kept), height, width), bool)
    if len(kept):
        proto_h, proto_w = prototypes.shape[1:]
        logits = (predictions[4 + class_count:, kept].T @ prototypes.reshape(coefficients, -1)).reshape(-1, proto_h, proto_w)
        gain = min(proto_h / height, proto_w / width)  # the letterbox, in prototype pixels
        pad_h, pad_w = (proto_h - height * gain) / 2, (proto_w - width * gain) / 2
        y0, x0 = int(round(pad_h - 0.1)), int(round(pad_w - 0.1))
        y1, x1 = proto_h - int(round(pad_h + 0.1)), proto_w - int(round(pad_w + 0.1))
        cropped = np.ascontiguousarray(logits[:, y0:y1, x0:x1].transpose(1, 2, 0))
        resized = cv2.resize(cropped, (width, height), interpolation=cv2.INTER_LINEAR).reshape(height, width, -1)
        rows, cols = np.arange(height)[None, :, None], np.arange(width)[None, None, :]
        inside = ((cols >= boxes[:, 0, None, None]) & (cols < boxes[:, 2, None, None])
                  & (rows >= boxes[:, 1, None, None]) & (rows < boxes[:, 3, None, None]))
        masks = (resized.transpose(2, 0, 1) > 0) & inside
    from segtools.inference.instances import Instances

    return Instances(boxes.astype(np.float32), score[kept].astype(np.float32), best[kept].astype(np.int64) + 1,
                     masks, (height, width))


class YoloSegRunner:
    """A YOLO-seg graph: an RGB image in, instances out (an instance runner)."""

    kind = "instances"

    def __init__(self, session, where: str, classes: ClassMeta | None = None) -> None:
        from segtools.backends.onnx import check_image_input, graph_metadata, model_info

        self.session, self.where = session, where
        image = session.get_inputs()[0]
        check_image_input(image, where)
        self.input_name = image.name
        size = [d if isinstance(d, int) and d > 0 else None for d in image.shape[2:]]
        meta = graph_metadata(session)
        if None in size:  # a dynamic export: Ultralytics' imgsz, else 640
            try:
                import ast

                imgsz = ast.literal_eval(meta.get("imgsz", "[640, 640]"))
                size = [int(imgsz[0]), int(imgsz[-1])] if isinstance(imgsz, (list, tuple)) else [int(imgsz)] * 2
            except (ValueError, SyntaxError, TypeError, IndexError):
                size = [640, 640]
        self.input_size = (size[0], size[1])
        meta_classes, _, _ = model_info({k: v for k, v in meta.items() if k in ("names",)}, where)
        self.classes = classes if classes is not None else meta_classes
        rows, protos = session.get_outputs()[0].shape[1], session.get_outputs()[1].shape[1]
        self.num_classes = rows - 4 - protos if isinstance(rows, int) and isinstance(protos, int) else None

    def predict(self, image: np.ndarray, conf: float = 0.25, iou: float = 0.7, max_det: int = 300):
        """Instances in one image (any size; grey, RGB or RGBA)."""
        from segtools.backends.runner import rgb8

        image = rgb8(image)
        canvas, ratio, pad = letterbox(image, self.input_size)
        x = (canvas.transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255.0))
        predictions, prototypes = self.session.run(None, {self.input_name: np.ascontiguousarray(x)})[:2]
        return decode(predictions[0], prototypes[0], image.shape[:2], ratio, pad, conf, iou, max_det)
