"""OneFormer's instance and panoptic post-processing, over torch tensors, without torchvision.

transformers' OneFormer processors (both the PIL and the torchvision one) resize their mask
maps with torchvision's ``resize`` even where everything else is plain torch, so without
torchvision they cannot post-process instances or panoptic segments. These functions
compute what ``post_process_instance_segmentation(task_type="instance")`` and
``post_process_panoptic_segmentation`` compute, for one image:

* **Instances**: class probabilities (softmax, "no object" dropped) flattened over
  queries × classes, the top ``Q`` of them (torch's unsorted ``topk``, as transformers calls
  it) each with its query's mask *logits*, those above ``threshold`` kept.
* **Panoptic**: each query's best class and probability; queries whose class is "no
  object" or whose probability is not above ``threshold`` dropped; sigmoid mask
  probabilities.
* **Segments** (both): the maps resized to the image as torchvision's ``resize`` does
  (bilinear, half-pixel centres, antialiased when shrinking; untouched at the same size),
  weighted by the scores, and every pixel given to its best query. A query keeps a segment
  when it wins pixels and those are more than ``overlap`` of the pixels where its own
  weighted map reaches ``mask_threshold``; ids count up from 1 in query order, and a class in
  ``fuse`` keeps one id for all its queries. A pixel whose query kept nothing is 0.

Each returns ``{"segmentation": H×W tensor, "segments_info": [{"id", "label_id",
"was_fused", "score"}]}`` as the processor does (a map of -1 when no query passes).
Golden-tested against transformers with torchvision (``tests/test_universal_post.py``).
"""

from __future__ import annotations


def resize_maps(maps, size: tuple[int, int]):
    """Q×h×w float maps resized to ``size`` as torchvision's v2 ``resize`` (bilinear)."""
    import torch.nn.functional as F

    if tuple(maps.shape[-2:]) == tuple(size) or maps.numel() == 0:
        return maps
    return F.interpolate(maps[None], size=tuple(size), mode="bilinear", align_corners=False, antialias=True)[0]


def compute_segments(maps, scores, labels, size: tuple[int, int] | None = None, mask_threshold: float = 0.5,
                     overlap: float = 0.8, fuse=frozenset()) -> dict:
    """Segment ids over the image from Q maps, their scores and class labels (see module)."""
    import torch

    if size is not None:
        maps = resize_maps(maps, size)
    maps = maps * scores.view(-1, 1, 1)
    winners = maps.argmax(0)
    won = torch.bincount(winners.flatten(), minlength=len(scores))
    own = (maps >= mask_threshold).flatten(1).sum(1)
    kept = (won > 0) & (own > 0)
    # the ratio is a float32 quotient compared in double (transformers compares its ``.item()``):
    # 4/5 passes 0.8 that way, and would not in float32
    kept &= (won / own.clamp(min=1)).double() > overlap
    lut = torch.zeros(len(scores), dtype=torch.int32)
    segments, fused, current = [], {}, 0
    for k in torch.nonzero(kept).flatten().tolist():
        label = int(labels[k])
        if label in fused:
            current = fused[label]
        else:
            current += 1
        lut[k] = current
        segments.append({"id": current, "label_id": label, "was_fused": label in fuse,
                         "score": round(float(scores[k]), 6)})
        if label in fuse:
            fused[label] = current
    return {"segmentation": lut[winners], "segments_info": segments}


def _empty(size, maps) -> dict:
    import torch

    height, width = size if size is not None else maps.shape[-2:]
    return {"segmentation": torch.zeros((height, width)) - 1, "segments_info": []}


def oneformer_instances(class_logits, mask_logits, size: tuple[int, int] | None = None, threshold: float = 0.5,
                        mask_threshold: float = 0.5, overlap: float = 0.8) -> dict:
    """One image's instances from Q×(K+1) class logits and Q×h×w mask logits (see module)."""
    import torch

    queries, classes = class_logits.shape[0], class_logits.shape[1] - 1
    probs = torch.softmax(class_logits, dim=-1)[:, :-1]
    top, index = probs.flatten().topk(queries, sorted=False)
    labels, query = index % classes, torch.div(index, classes, rounding_mode="floor")
    keep = top > threshold
    top, labels, maps = top[keep], labels[keep], mask_logits[query][keep]
    if len(top) == 0:
        return _empty(size, maps)
    return compute_segments(maps, top, labels, size, mask_threshold, overlap)


def oneformer_panoptic(class_logits, mask_logits, size: tuple[int, int] | None = None, threshold: float = 0.5,
                       mask_threshold: float = 0.5, overlap: float = 0.8, fuse=frozenset()) -> dict:
    """One image's panoptic segments from Q×(K+1) class logits and Q×h×w mask logits."""
    import torch

    scores, labels = torch.softmax(class_logits, dim=-1).max(-1)
    keep = (labels != class_logits.shape[1] - 1) & (scores > threshold)
    maps = mask_logits.sigmoid()[keep]
    if len(maps) == 0:
        return _empty(size, maps)
    return compute_segments(maps, scores[keep], labels[keep], size, mask_threshold, overlap, frozenset(fuse or ()))
