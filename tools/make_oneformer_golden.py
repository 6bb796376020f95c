#!/usr/bin/env python
"""Record what transformers' OneFormer processor (its torchvision back-end) makes of the raw
outputs of ``tests/golden_oneformer.py``'s cases, to prove segtools' own post-processing
(``segtools.backends.universal_post``) equal to it where torchvision is absent.

Run in a separate venv with torch, torchvision and transformers (never segtools' runtime
dependencies)::

    /path/to/venv/bin/python tools/make_oneformer_golden.py

Writes ``tests/fixtures/golden/oneformer_post.json``: per case the segment-id map as runs and
the ``segments_info`` list, with the versions that made them.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import torch
import torchvision
import transformers
from transformers.models.oneformer.image_processing_oneformer import OneFormerImageProcessor

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import golden_oneformer as golden  # noqa: E402


def processor(classes: int, folder: Path) -> OneFormerImageProcessor:
    info = {str(k): {"name": f"class{k}", "isthing": int(k % 2 == 1)} for k in range(classes)}
    (folder / "class_info.json").write_text(json.dumps(info))
    return OneFormerImageProcessor(class_info_file="class_info.json", repo_path=str(folder), num_text=2,
                                   num_labels=classes)


def main() -> None:
    record = {"versions": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                           "transformers": transformers.__version__}, "cases": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (task, _, classes, _, _, size, threshold, fuse) in golden.CASES.items():
            class_logits, mask_logits = golden.outputs(name)
            outputs = SimpleNamespace(class_queries_logits=torch.from_numpy(class_logits)[None],
                                      masks_queries_logits=torch.from_numpy(mask_logits)[None])
            folder = Path(tmp) / name
            folder.mkdir()
            images = processor(classes, folder)
            if task == "instance":
                found = images.post_process_instance_segmentation(outputs, task_type="instance", threshold=threshold,
                                                                  target_sizes=[size])[0]
            else:
                found = images.post_process_panoptic_segmentation(outputs, threshold=threshold,
                                                                  label_ids_to_fuse=set(fuse), target_sizes=[size])[0]
            record["cases"][name] = {"segmentation": golden.runs(found["segmentation"].numpy()),
                                     "segments_info": found["segments_info"]}
            print(f"{name}: {len(found['segments_info'])} segments", file=sys.stderr)
    golden.FIXTURE.write_text(json.dumps(record, indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {golden.FIXTURE}", file=sys.stderr)


if __name__ == "__main__":
    main()
