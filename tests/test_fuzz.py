"""Fuzz every reader through the CLI (seeded hypothesis; see ``fuzzing.py`` for the contract).

Each reader starts from a valid file and mutates it: a few hundred cases per reader here,
``--fuzz-long`` for 1,000 (``bench/fuzz.py`` runs that and prints the table). Failing cases
are kept under ``$TMPDIR/segtools-fuzz-failures/<reader>/<n>/`` with their command line.
"""

from __future__ import annotations

import io
import json
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import fuzzing
from fuzzing import mutated_bytes, mutated_json, mutated_png, mutated_text

FIXTURES = Path(__file__).parent / "fixtures" / "formats"
FAILURES = Path(tempfile.gettempdir()) / "segtools-fuzz-failures"
RNG = np.random.default_rng(7)


def _png_mask(shape=(16, 20), classes=4) -> bytes:
    from segtools.io.masks import encode_label_mask
    from segtools.io.meta import ClassMeta

    labels = RNG.integers(0, classes, shape).astype(np.uint8)
    labels[0, :3] = 255
    meta = ClassMeta(names=tuple(f"c{i}" for i in range(classes)), ignore_index=255)
    return encode_label_mask(labels, meta)


def _rgb_png(shape=(16, 20, 3)) -> bytes:
    from segtools.io.images import encode_image

    return encode_image(RNG.integers(0, 256, shape).astype(np.uint8))


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _npz_scores() -> bytes:
    from segtools.io.masks import encode_score_map

    scores = RNG.random((3, 16, 20)).astype(np.float32)
    return encode_score_map(scores / scores.sum(0))


def _manifest(root: Path) -> dict[str, bytes]:
    """A real `tile split` output: a manifest and its tiles."""
    from conftest import run_cli

    work = Path(tempfile.mkdtemp())
    (work / "scene.png").write_bytes(_png_mask((40, 50)))
    assert run_cli("tile", "split", work / "scene.png", "--size", "24", "--overlap", "8", "-o", work / "tiles").code == 0
    return {f"tiles/{p.name}": p.read_bytes() for p in (work / "tiles").iterdir()}


def _safetensors_parts() -> tuple[dict, bytes]:
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    from segtools.weights.checkpoint import make_checkpoint, save_checkpoint

    path = Path(tempfile.mkdtemp()) / "w.safetensors"
    state = {"conv.weight": torch.zeros(2, 3, 1, 1), "conv.bias": torch.zeros(2)}
    save_checkpoint(path, make_checkpoint("unet", 2, state, classes={"names": ["a", "b"]}))
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + size]), data[8 + size:]


def _torch_zip() -> bytes:
    torch = pytest.importorskip("torch")
    buffer = io.BytesIO()
    torch.save({"state_dict": {"conv.weight": torch.zeros(2, 3, 1, 1)}, "num_classes": 2}, buffer)
    return buffer.getvalue()


# ---- one case builder per reader: draw(data, escape_root) -> (args, files, stdin)

def png_mask_case(data, escape):
    png = data.draw(mutated_png(SEEDS["png"]))
    command = data.draw(st.sampled_from(["info", "postprocess", "visualize", "metrics", "stdin"]))
    if command == "metrics":
        return ["metrics", "in.png", "in.png", "--num-classes", "4", "-f", "json"], {"in.png": png}, b""
    if command == "stdin":
        return ["postprocess", "--min-area", "3", "-o", "out/m.png"], {}, png
    extra = {"info": [], "postprocess": ["--min-area", "3", "-o", "out/m.png"], "visualize": ["-o", "out/v.png"]}
    return [command, "in.png", *extra[command]], {"in.png": png}, b""


def npy_case(data, escape):
    seed = data.draw(st.sampled_from([SEEDS["npy-labels"], SEEDS["npy-scores"]]))
    raw = data.draw(mutated_bytes(seed))
    command = data.draw(st.sampled_from(["info", "postprocess", "visualize"]))
    extra = {"info": [], "postprocess": ["-o", "out/m.png"], "visualize": ["-o", "out/v.png"]}
    return [command, "in.npy", *extra[command]], {"in.npy": raw}, b""


def npz_case(data, escape):
    raw = data.draw(mutated_bytes(SEEDS["npz"]))
    command = data.draw(st.sampled_from(["info", "postprocess", "visualize"]))
    extra = {"info": [], "postprocess": ["-o", "out/m.png"], "visualize": ["-o", "out/v.png"]}
    return [command, "in.npz", *extra[command]], {"in.npz": raw}, b""


def image_case(data, escape):
    image = data.draw(mutated_png(SEEDS["rgb"]))
    return (["visualize", "m.png", "--over", "in.png", "-o", "out/v.png"],
            {"in.png": image, "m.png": SEEDS["png"]}, b"")


def coco_case(data, escape):
    text = data.draw(mutated_json(SEEDS["coco"], escape))
    target = data.draw(st.sampled_from(["mask", "yolo-seg", "coco-rle"]))
    extra = ["--images", "imgs"] if target == "yolo-seg" else []
    return (["convert", "ann.json", "--to", target, "-o", "out/", *extra],
            {"ann.json": text, "imgs/frame_000000.jpg": b"x", "imgs/frame_000001.jpg": b"y"}, b"")


def panoptic_case(data, escape):
    text = data.draw(mutated_json(SEEDS["panoptic"], escape))
    png = data.draw(mutated_png(SEEDS["panoptic-png"])) if data.draw(st.booleans()) else SEEDS["panoptic-png"]
    return (["convert", "panoptic_val.json", "--to", "mask", "-o", "out/"],
            {"panoptic_val.json": text, "panoptic_val/a.png": png}, b"")


def labelme_case(data, escape):
    text = data.draw(mutated_json(SEEDS["labelme"], escape))
    if data.draw(st.booleans()):
        return ["convert", "-", "--from", "labelme", "--to", "mask", "-o", "out/m.png"], {}, text
    return ["convert", "l.json", "--to", "mask", "-o", "out/m.png"], {"l.json": text}, b""


def voc_case(data, escape):
    text = data.draw(mutated_text(SEEDS["voc"], escape))
    return (["convert", "Annotations", "--to", "coco", "-o", "out/c.json"],
            {"Annotations/frame_000000.xml": text}, b"")


def yolo_case(data, escape):
    files = {f"ds/{k}": v for k, v in SEEDS["yolo"].items()}
    name = data.draw(st.sampled_from(sorted(files)))
    files[name] = data.draw(mutated_text(files[name].decode(), escape))
    if data.draw(st.booleans()):
        files.pop("ds/data.yaml")
    target = data.draw(st.sampled_from(["coco", "mask"]))
    return ["convert", "ds", "--to", target, "--image-size", "10x8", "-o", "out/x"], files, b""


def manifest_case(data, escape):
    files = dict(SEEDS["manifest"])
    manifest = json.loads(files["tiles/manifest.json"])
    files["tiles/manifest.json"] = data.draw(mutated_json(manifest, escape))
    return ["tile", "merge", "tiles", "-o", "out/m.png"], files, b""


def classes_case(data, escape):
    text = data.draw(mutated_json({"names": ["a", "b", "c", "d"], "palette": [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]],
                                   "ignore_index": 255}, escape))
    command = data.draw(st.sampled_from(["metrics", "visualize"]))
    args = (["metrics", "p.png", "p.png", "--classes", "c.json", "-f", "json"] if command == "metrics"
            else ["visualize", "p.png", "--classes", "c.json", "-o", "out/v.png"])
    return args, {"c.json": text, "p.png": SEEDS["png"]}, b""


def checkpoint_case(data, escape):
    if data.draw(st.booleans()):
        header, body = SEEDS["safetensors"]
        text = data.draw(mutated_json(header, escape, raw_ops=False))
        raw = struct.pack("<Q", len(text)) + text + body
        if data.draw(st.booleans()):
            raw = data.draw(mutated_bytes(raw, max_ops=2))
        return ["weights", "info", "w.safetensors"], {"w.safetensors": raw}, b""
    raw = data.draw(mutated_bytes(SEEDS["torch"]))
    return ["weights", "info", "w.pt"], {"w.pt": raw}, b""


CVAT_XML = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta><task><labels><label><name>car</name></label><label><name>road</name></label></labels></task></meta>
  <image id="0" name="frame_000000.jpg" width="12" height="10">
    <polygon label="road" occluded="0" points="0.00,6.00;11.00,6.00;11.00,9.00;0.00,9.00" z_order="0"></polygon>
    <mask label="car" occluded="0" rle="3, 2, 4, 3" left="2" top="2" width="4" height="3" z_order="1"></mask>
    <box label="car" occluded="0" xtl="7.00" ytl="1.00" xbr="10.50" ybr="4.00" rotation="30.0" z_order="0"></box>
    <ellipse label="road" occluded="0" cx="5.00" cy="7.00" rx="2.00" ry="1.50" z_order="0"></ellipse>
  </image>
</annotations>
"""


def cvat_case(data, escape):
    text = data.draw(mutated_text(CVAT_XML, escape))
    target = data.draw(st.sampled_from(["coco-rle", "mask"]))
    return ["convert", "annotations.xml", "--to", target, "-o", "out/x"], {"annotations.xml": text}, b""


def cityscapes_polygons_case(data, escape):
    doc = {"imgHeight": 10, "imgWidth": 12, "objects": [
        {"label": "road", "polygon": [[0, 6], [11, 6], [11, 9], [0, 9]]},
        {"label": "car", "polygon": [[2, 2], [6, 2], [6, 5], [2, 5]]},
        {"label": "cargroup", "polygon": [[8, 1], [10, 1], [10, 3]]}]}
    text = data.draw(mutated_json(doc, escape))
    target = data.draw(st.sampled_from(["coco-rle", "mask"]))
    name = "val/aachen/aachen_000000_000019_gtFine_polygons.json"
    return ["convert", name, "--to", target, "-o", "out/x"], {name: text}, b""


def _sa1b_doc() -> dict:
    from segtools.formats import rle

    masks = [np.zeros((9, 10), np.uint8) for _ in range(2)]
    masks[0][1:8, 1:9] = 1
    masks[1][2:5, 2:5] = 1
    return {"image": {"image_id": 11, "width": 10, "height": 9, "file_name": "sa_11.jpg"},
            "annotations": [{"id": 100 + k, "segmentation": rle.encode(m), "bbox": [1, 1, 8, 7], "area": int(m.sum()),
                             "predicted_iou": 0.9, "stability_score": 0.95, "point_coords": [[3.0, 3.0]],
                             "crop_box": [0, 0, 10, 9]} for k, m in enumerate(masks)]}


def sa1b_case(data, escape):
    text = data.draw(mutated_json(SEEDS["sa1b"], escape))
    target = data.draw(st.sampled_from(["coco-rle", "instances"]))
    return ["convert", "sa_11.json", "--to", target, "-o", "out/x"], {"sa_11.json": text}, b""


def coco_results_case(data, escape):
    """Detections against a COCO ground truth (``metrics --task instance``): the results reader."""
    results = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
                "segmentation": a["segmentation"], "score": 0.9 - 0.1 * k}
               for k, a in enumerate(SEEDS["coco"]["annotations"][:6])]
    text = data.draw(mutated_json(results, escape))
    iou_type = data.draw(st.sampled_from(["segm", "bbox"]))
    return (["metrics", "--task", "instance", "--iou-type", iou_type, "res.json", "gt.json", "-f", "json"],
            {"res.json": text, "gt.json": json.dumps(SEEDS["coco"]).encode()}, b"")


READERS = {
    "cvat-xml": cvat_case, "cityscapes-polygons": cityscapes_polygons_case, "sa1b": sa1b_case,
    "coco-results": coco_results_case,
    "png-mask": png_mask_case, "npy": npy_case, "npz": npz_case, "image": image_case,
    "coco": coco_case, "coco-panoptic": panoptic_case, "labelme": labelme_case, "voc-xml": voc_case,
    "yolo": yolo_case, "tile-manifest": manifest_case, "class-metadata": classes_case,
    "checkpoint": checkpoint_case,
}
PRELOAD = {"checkpoint": ("torch", "safetensors.torch")}
SEEDS: dict = {}


def _seeds() -> dict:
    if SEEDS:
        return SEEDS
    from segtools.formats import coco_panoptic
    from segtools.io.images import encode_image

    semantic = np.array([[0, 0, 1, 1], [0, 1, 1, 255]], np.uint8)
    instances = np.array([[0, 0, 1, 1], [0, 2, 2, 0]], np.uint8)
    ids, segments = coco_panoptic.from_masks(semantic, instances, [17, 1], {1})
    SEEDS.update({
        "png": _png_mask(), "rgb": _rgb_png(), "npz": _npz_scores(),
        "npy-labels": _npy(RNG.integers(0, 4, (16, 20)).astype(np.uint8)),
        "npy-scores": _npy(RNG.random((3, 16, 20)).astype(np.float32)),
        "coco": json.loads((FIXTURES / "coco_cvat.json").read_text()),
        "panoptic": {"images": [{"id": 1, "file_name": "a.jpg", "height": 2, "width": 4}],
                     "annotations": [{"image_id": 1, "file_name": "a.png", "segments_info": segments}],
                     "categories": [{"id": 1, "name": "person", "isthing": 1}, {"id": 17, "name": "sky", "isthing": 0}]},
        "panoptic-png": encode_image(coco_panoptic.ids_to_rgb(ids)),
        "labelme": json.loads((FIXTURES / "labelme_000000.json").read_text()),
        "voc": (FIXTURES / "voc_000000.xml").read_text(),
        "yolo": {str(p.relative_to(FIXTURES / "yolo")): p.read_bytes()
                 for p in (FIXTURES / "yolo").rglob("*") if p.is_file()},
        "manifest": _manifest(FIXTURES),
        "sa1b": _sa1b_doc(),
    })
    return SEEDS


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.parametrize("reader", sorted(READERS))
def test_fuzz_reader(reader, fuzz_root, request):
    seeds = _seeds()
    if reader == "checkpoint":
        seeds.setdefault("safetensors", _safetensors_parts())
        seeds.setdefault("torch", _torch_zip())
    examples = 1000 if request.config.getoption("--fuzz-long") else 200
    worker = fuzzing.Worker(fuzz_root / reader, PRELOAD.get(reader, ()))
    escape = fuzz_root / reader / "escape"
    failures: list[tuple[list[str], fuzzing.Outcome, dict]] = []

    @settings(max_examples=examples, derandomize=True, deadline=None, database=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(st.data())
    def one_case(data):
        args, files, stdin = READERS[reader](data, escape)
        outcome = worker.run(args, files, stdin, reader)
        if outcome.problems:
            failures.append((args, outcome, dict(files, **({"<stdin>": stdin} if stdin else {}))))

    try:
        one_case()
    finally:
        worker.close()
        _report(reader, worker.stats)
    if failures:
        kept = FAILURES / reader
        for n, (args, outcome, files) in enumerate(failures[:20]):
            case = kept / str(n)
            for name, blob in files.items():
                (case / name.replace("<stdin>", "stdin.bin")).parent.mkdir(parents=True, exist_ok=True)
                (case / name.replace("<stdin>", "stdin.bin")).write_bytes(blob)
            (case / "command.txt").write_text(" ".join(args) + "\n" + "\n".join(outcome.problems) + "\n")
        distinct = sorted({p[:160] for _, o, _ in failures for p in o.problems})
        pytest.fail(f"{len(failures)} of {worker.count} {reader} cases broke the contract (kept in {kept}):\n"
                    + "\n".join(distinct[:12]))
    assert worker.count == examples


def _report(reader: str, stats: list[dict]) -> None:
    """Append per-case figures to $SEGTOOLS_FUZZ_REPORT (JSON lines) for bench/fuzz.py."""
    target = os.environ.get("SEGTOOLS_FUZZ_REPORT")
    if target:
        with open(target, "a") as report:
            for row in stats:
                report.write(json.dumps(row) + "\n")
