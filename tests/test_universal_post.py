"""OneFormer's instance and panoptic post-processing without torchvision
(``segtools.backends.universal_post``): equal to transformers' ``OneFormerImageProcessor``
with torchvision (golden record of ``tools/make_oneformer_golden.py``), and to transformers'
own rules on many more random outputs."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests import golden_oneformer as golden  # noqa: E402


def _ours(name: str):
    from segtools.backends.universal_post import oneformer_instances, oneformer_panoptic

    task, _, _, _, _, size, threshold, fuse = golden.CASES[name]
    class_logits, mask_logits = (torch.from_numpy(a) for a in golden.outputs(name))
    if task == "instance":
        return oneformer_instances(class_logits, mask_logits, size, threshold=threshold)
    return oneformer_panoptic(class_logits, mask_logits, size, threshold=threshold, fuse=fuse)


@pytest.mark.parametrize("name", sorted(golden.CASES))
def test_equal_to_transformers_with_torchvision(name):
    record = json.loads(golden.FIXTURE.read_text())["cases"][name]
    size = golden.CASES[name][5]
    found = _ours(name)
    expected = golden.from_runs(record["segmentation"], size)
    assert found["segmentation"].shape == size
    assert (found["segmentation"].numpy() == expected).all()
    assert [{k: s[k] for k in ("id", "label_id", "was_fused")} for s in found["segments_info"]] == \
        [{k: s[k] for k in ("id", "label_id", "was_fused")} for s in record["segments_info"]]
    assert np.allclose([s["score"] for s in found["segments_info"]], [s["score"] for s in record["segments_info"]],
                       atol=1e-6)


def test_the_golden_cases_exercise_every_rule():
    """Shrinking and growing, fusion, a case where nothing passes, and queries the 0.8
    overlap rule drops (fewer segments than queries above the threshold)."""
    cases = json.loads(golden.FIXTURE.read_text())["cases"]
    assert not cases["panoptic-none-pass"]["segments_info"]
    fused = [s for s in cases["panoptic-fused"]["segments_info"] if s["was_fused"]]
    assert len(fused) > len({s["id"] for s in fused}) >= 1
    assert any(len(c["segments_info"]) > 0 for n, c in cases.items() if n.endswith("down"))


def shim_torchvision_resize(monkeypatch) -> None:
    """Where torchvision is absent, transformers' PIL OneFormer processor gets torch's
    resize in place of torchvision's (what segtools resizes with), so that its own
    post-processing rules run; the golden record above covers the real resize."""
    import importlib.util

    pytest.importorskip("transformers")
    if importlib.util.find_spec("torchvision") is not None:
        return
    import torch.nn.functional as F
    from transformers.models.oneformer import image_processing_pil_oneformer as module

    def resize(maps, size, interpolation):
        if tuple(maps.shape[-2:]) == tuple(size):
            return maps
        return F.interpolate(maps, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)

    monkeypatch.setattr(module, "tvF", SimpleNamespace(resize=resize, InterpolationMode=SimpleNamespace(BILINEAR=2)),
                        raising=False)


def _shimmed_pil_processor(monkeypatch, classes: int, folder):
    shim_torchvision_resize(monkeypatch)
    from transformers.models.oneformer.image_processing_pil_oneformer import OneFormerImageProcessorPil

    info = {str(k): {"name": f"c{k}", "isthing": k % 2} for k in range(classes)}
    (folder / "class_info.json").write_text(json.dumps(info))
    return OneFormerImageProcessorPil(class_info_file="class_info.json", repo_path=str(folder), num_text=2,
                                      num_labels=classes)


@pytest.mark.parametrize("task", ["instance", "panoptic"])
def test_equal_to_transformers_rules_on_random_outputs(task, monkeypatch, tmp_path):
    from segtools.backends.universal_post import oneformer_instances, oneformer_panoptic

    processor = _shimmed_pil_processor(monkeypatch, 4, tmp_path)
    rng = np.random.default_rng(5)
    seen = 0
    for trial in range(40):
        queries, (h, w) = int(rng.integers(1, 12)), rng.integers(4, 30, size=2)
        size = tuple(int(v) for v in rng.integers(3, 60, size=2))
        class_logits = torch.from_numpy((rng.normal(size=(queries, 5)) * 3).astype(np.float32))
        mask_logits = torch.from_numpy((rng.normal(size=(queries, h, w)) * 4).astype(np.float32))
        threshold = float(rng.choice([0.0, 0.1, 0.4]))
        outputs = SimpleNamespace(class_queries_logits=class_logits[None], masks_queries_logits=mask_logits[None])
        if task == "instance":
            expected = processor.post_process_instance_segmentation(outputs, task_type="instance", threshold=threshold,
                                                                    target_sizes=[size])[0]
            found = oneformer_instances(class_logits, mask_logits, size, threshold=threshold)
        else:
            fuse = {int(v) for v in rng.integers(0, 4, size=2)}
            expected = processor.post_process_panoptic_segmentation(outputs, threshold=threshold, target_sizes=[size],
                                                                    label_ids_to_fuse=fuse)[0]
            found = oneformer_panoptic(class_logits, mask_logits, size, threshold=threshold, fuse=fuse)
        assert torch.equal(found["segmentation"].to(expected["segmentation"].dtype), expected["segmentation"]), trial
        assert found["segments_info"] == expected["segments_info"], trial
        seen += len(found["segments_info"])
    assert seen > 20
