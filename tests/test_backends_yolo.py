"""YOLO-seg ONNX graphs (Ultralytics' export layout), decoded by the back-end and by a plain
reference written here from Ultralytics' documented post-processing (letterbox, confidence,
class-aware NMS, prototype masks cut to the letterbox, resized, cropped to the box)."""

from __future__ import annotations

import json

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

CLASSES = 3
SIZE = 64


class TinyYoloSeg(torch.nn.Module):
    """output0 1×(4+3+32)×64 (boxes in input pixels, sigmoid scores, coefficients), output1 1×32×16×16."""

    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Conv2d(3, 4 + CLASSES + 32, 8, stride=8)
        self.proto = torch.nn.Conv2d(3, 32, 4, stride=4)

    def forward(self, x):
        raw = self.head(x).flatten(2)  # 1×C×64 anchors on an 8×8 grid
        index = torch.arange(raw.shape[2], dtype=torch.float32)
        cx = (index % 8 + 0.5) * 8 + 6 * torch.tanh(raw[:, 0])
        cy = (torch.div(index, 8, rounding_mode="floor") + 0.5) * 8 + 6 * torch.tanh(raw[:, 1])
        w = 6 + 30 * torch.sigmoid(raw[:, 2])
        h = 6 + 30 * torch.sigmoid(raw[:, 3])
        boxes = torch.stack([cx, cy, w, h], 1)
        scores = torch.sigmoid(3 * raw[:, 4:4 + CLASSES])
        return torch.cat([boxes, scores, raw[:, 4 + CLASSES:]], 1), self.proto(x)


@pytest.fixture(scope="module")
def yolo_graph(tmp_path_factory):
    return make_yolo_graph(tmp_path_factory.mktemp("yolo") / "yolo-seg.onnx")


def make_yolo_graph(path):
    """The seeded TinyYoloSeg exported to ``path`` with Ultralytics' metadata; ``path``."""
    import onnx

    torch.manual_seed(3)
    with torch.no_grad():
        torch.onnx.export(TinyYoloSeg().eval(), (torch.zeros(1, 3, SIZE, SIZE),), str(path), input_names=["images"],
                          output_names=["output0", "output1"], opset_version=17, dynamo=False)
    graph = onnx.load(str(path))
    for key, value in {"task": "segment", "names": "{0: 'person', 1: 'car', 2: 'dog'}", "imgsz": f"[{SIZE}, {SIZE}]",
                       "stride": "8"}.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(graph, str(path))
    return path


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def reference_decode(path, image, conf=0.25, iou=0.7, max_det=300):
    """Ultralytics' algorithm, one detection at a time."""
    import cv2

    height, width = image.shape[:2]
    r = min(SIZE / height, SIZE / width)
    new_w, new_h = int(round(width * r)), int(round(height * r))
    dw, dh = (SIZE - new_w) / 2, (SIZE - new_h) / 2
    top, left = int(round(dh - 0.1)), int(round(dw - 0.1))
    canvas = np.full((SIZE, SIZE, 3), 114, np.uint8)
    canvas[top:top + new_h, left:left + new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    x = canvas.transpose(2, 0, 1)[None].astype(np.float32) / 255.0
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out0, out1 = session.run(None, {"images": x})
    rows = out0[0].T
    candidates = []
    for k, row in enumerate(rows):
        cls = int(np.argmax(row[4:4 + CLASSES]))
        score = float(row[4 + cls])
        if score > conf:
            cx, cy, w, h = row[:4]
            candidates.append((score, cls, [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], row[4 + CLASSES:]))
    candidates.sort(key=lambda c: -c[0])
    kept = []
    for cand in candidates:
        if all(k[1] != cand[1] or _iou(k[2], cand[2]) <= iou for k in kept):
            kept.append(cand)
    kept = kept[:max_det]
    protos = out1[0]
    ph, pw = protos.shape[1:]
    gain = min(ph / height, pw / width)
    pad_w, pad_h = (pw - width * gain) / 2, (ph - height * gain) / 2
    t, l = int(round(pad_h - 0.1)), int(round(pad_w - 0.1))
    b, rr = ph - int(round(pad_h + 0.1)), pw - int(round(pad_w + 0.1))
    results = []
    for score, cls, box, coefficients in kept:
        mask_logits = (coefficients @ protos.reshape(32, -1)).reshape(ph, pw)[t:b, l:rr]
        mask_logits = cv2.resize(np.ascontiguousarray(mask_logits), (width, height), interpolation=cv2.INTER_LINEAR)
        x0 = min(max((box[0] - left) / r, 0), width)
        y0 = min(max((box[1] - top) / r, 0), height)
        x1 = min(max((box[2] - left) / r, 0), width)
        y1 = min(max((box[3] - top) / r, 0), height)
        ys, xs = np.mgrid[:height, :width]
        mask = (mask_logits > 0) & (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
        results.append((score, cls, [x0, y0, x1, y1], mask))
    return results


@pytest.mark.parametrize("shape", [(48, 80), (90, 60), (64, 64)])
def test_decoder_equals_the_reference(yolo_graph, shape):
    from segtools.backends.onnx import open_onnx
    from segtools.backends.yolo import YoloSegRunner

    runner = open_onnx(yolo_graph, device="cpu")
    assert isinstance(runner, YoloSegRunner) and runner.classes.names == ("person", "car", "dog")
    image = np.random.default_rng(sum(shape)).integers(0, 255, (*shape, 3), np.uint8)
    found = runner.predict(image)
    expected = reference_decode(yolo_graph, image)
    assert len(found) == len(expected) > 1
    assert np.allclose(found.scores, [e[0] for e in expected], atol=1e-6)
    assert list(found.labels - 1) == [e[1] for e in expected]
    assert np.allclose(found.boxes, [e[2] for e in expected], atol=1e-3)
    for mask, e in zip(found.masks, expected):
        assert (mask != e[3]).mean() < 1e-3  # bilinear resizes may differ at a float's last bit on the 0 boundary


def test_yolo_seg_through_the_cli(yolo_graph, cli, tmp_path):
    from PIL import Image

    image = np.random.default_rng(5).integers(0, 255, (48, 80, 3), np.uint8)
    Image.fromarray(image).save(tmp_path / "7.png")
    result = cli("predict", str(tmp_path / "7.png"), "--model", str(yolo_graph), "-o", str(tmp_path / "ids.png"))
    assert result.code == 0, result.stderr
    from segtools.io.masks import read_label_mask

    mask = read_label_mask(str(tmp_path / "ids.png"))
    expected = reference_decode(yolo_graph, image)
    assert mask.meta.kind == "instance" and mask.meta.extra["class_names"] == ["person", "car", "dog"]
    assert mask.meta.extra["instance_class"][1:] == [e[1] for e in expected]
    result = cli("predict", str(tmp_path / "7.png"), "--model", str(yolo_graph), "--format", "coco",
                 "--min-score", "0.5", "-o", str(tmp_path / "r.json"))
    assert result.code == 0, result.stderr
    results = json.loads((tmp_path / "r.json").read_text())
    assert len(results) == len(reference_decode(yolo_graph, image, conf=0.5))
    assert all(r["image_id"] == 7 and r["score"] > 0.5 for r in results)
    result = cli("predict", str(tmp_path / "7.png"), "--model", str(yolo_graph), "--tile", "32", "-o", str(tmp_path / "x.png"))
    assert result.code == 2 and "--tile" in result.stderr
    for task in ("semantic", "panoptic"):
        result = cli("predict", str(tmp_path / "7.png"), "--model", str(yolo_graph), "--task", task,
                     "-o", str(tmp_path / ("t.json" if task == "panoptic" else "t.png")))
        assert result.code == 2 and f"--task {task}" in result.stderr and "predicts instances" in result.stderr
    result = cli("predict", str(tmp_path / "7.png"), "--model", str(yolo_graph), "--task", "instance",
                 "-o", str(tmp_path / "t.png"))
    assert result.code == 0, result.stderr
