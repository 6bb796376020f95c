"""The SAM 2.1 image model: Hiera encoder + neck, prompt encoder, mask decoder and the
"no memory" embedding, under the key names of the published checkpoints.

A published checkpoint (``{"model": state_dict}``) also holds the video parts — memory
attention, memory encoder, temporal encodings, object-pointer projections. They are
recognised by name (:data:`VIDEO_KEYS`) and set aside: the image predictor does not use
them. :func:`sam2_config` reads the variant off the keys and shapes, :func:`load_sam2`
builds it and loads every image-path tensor strictly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping

import torch
from torch import nn

from segtools.errors import InputError
from segtools.models.sam2.decoder import Sam2MaskDecoder, Sam2PromptEncoder
from segtools.models.sam2.hiera import FpnNeck, Hiera, ImageEncoder

#: SAM 2's input normalisation, on pixels scaled to [0, 1]
PIXEL_MEAN = (0.485, 0.456, 0.406)
PIXEL_STD = (0.229, 0.224, 0.225)

#: top-level names of the video-only tensors of a SAM 2 / 2.1 checkpoint
VIDEO_KEYS = ("memory_attention.", "memory_encoder.", "maskmem_tpos_enc", "no_mem_pos_enc", "no_obj_ptr",
              "obj_ptr_proj.", "obj_ptr_tpos_proj.", "mask_downsample.", "no_obj_embed_spatial")


@dataclass(frozen=True)
class Sam2Config:
    """Sizes of one SAM 2.1 image model (the defaults are Hiera base+ at 1024 pixels)."""

    embed_dim: int = 112
    num_heads: int = 2
    stages: tuple[int, ...] = (2, 3, 16, 3)
    global_blocks: tuple[int, ...] = (12, 16, 20)
    window_spec: tuple[int, ...] = (8, 4, 14, 7)
    pos_size: tuple[int, int] = (14, 14)
    d_model: int = 256
    top_down: tuple[int, ...] = (2, 3)
    scalp: int = 1
    image_size: int = 1024
    obj_score_mlp: bool = True
    dynamic_multimask: bool = True  # as the published image predictor is built

    @property
    def embedding_size(self) -> int:
        return self.image_size // 16

    @property
    def variant(self) -> str:
        """A :data:`VARIANTS` name, or ``sam2.1-hiera`` for other sizes."""
        for name, known in VARIANTS.items():
            if replace(self, dynamic_multimask=known.dynamic_multimask) == known:
                return name
        return "sam2.1-hiera"


#: The published SAM 2.1 variants (the image path of SAM 2.0's checkpoints is the same).
VARIANTS: dict[str, Sam2Config] = {
    "sam2.1-hiera-tiny": Sam2Config(embed_dim=96, num_heads=1, stages=(1, 2, 7, 2), global_blocks=(5, 7, 9),
                                    pos_size=(7, 7)),
    "sam2.1-hiera-small": Sam2Config(embed_dim=96, num_heads=1, stages=(1, 2, 11, 2), global_blocks=(7, 10, 13),
                                     pos_size=(7, 7)),
    "sam2.1-hiera-base-plus": Sam2Config(),
    "sam2.1-hiera-large": Sam2Config(embed_dim=144, num_heads=2, stages=(2, 6, 36, 4), global_blocks=(23, 33, 43),
                                     window_spec=(8, 4, 16, 8), pos_size=(7, 7)),
}


class Sam2(nn.Module):
    """``image_encoder``, ``sam_prompt_encoder``, ``sam_mask_decoder`` and ``no_mem_embed``,
    as in the official checkpoints (image path only)."""

    mask_threshold = 0.0

    def __init__(self, config: Sam2Config) -> None:
        super().__init__()
        self.config = config
        trunk = Hiera(config.embed_dim, config.num_heads, config.stages, config.global_blocks, config.window_spec,
                      config.pos_size)
        self.image_encoder = ImageEncoder(trunk, FpnNeck(trunk.channels, config.d_model, config.top_down),
                                          config.scalp)
        grid = (config.embedding_size, config.embedding_size)
        self.sam_prompt_encoder = Sam2PromptEncoder(config.d_model, grid, (config.image_size, config.image_size), 16)
        self.sam_mask_decoder = Sam2MaskDecoder(config.d_model, 3, config.obj_score_mlp, config.dynamic_multimask)
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, config.d_model))
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(-1, 1, 1), persistent=False)

    @property
    def img_size(self) -> int:
        return self.config.image_size

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Normalised N×3×S×S input → the image embedding (N×C×S/16×S/16, the no-memory
        embedding added, as for a single image) and the decoder's projected stride-4 and
        stride-8 features."""
        s4, s8, s16 = self.image_encoder(x)[-3:]
        decoder = self.sam_mask_decoder
        embedding = s16 + self.no_mem_embed.reshape(1, -1, 1, 1)
        return embedding, (decoder.conv_s0(s4), decoder.conv_s1(s8))


def build_sam2(variant: str | Sam2Config = "sam2.1-hiera-tiny", **overrides) -> Sam2:
    """A randomly initialised SAM 2.1 of a published ``variant`` (or a :class:`Sam2Config`), in eval mode."""
    config = variant if isinstance(variant, Sam2Config) else VARIANTS[variant]
    return Sam2(replace(config, **overrides)).eval()


def is_sam2_state(state: Mapping[str, torch.Tensor]) -> bool:
    """Whether a state dict has SAM 2's Hiera image encoder."""
    return any(key.startswith("image_encoder.trunk.") for key in state)


def image_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The image-path tensors of a SAM 2 checkpoint (video-only ones, :data:`VIDEO_KEYS`, left out)."""
    return {key: value for key, value in state.items() if not key.startswith(VIDEO_KEYS)}


def sam2_config(state: Mapping[str, torch.Tensor], source: str = "the checkpoint") -> Sam2Config:
    """The :class:`Sam2Config` of a SAM 2 / 2.1 state dict, from its key names and shapes.

    Heads, windows and global blocks are not in the shapes: the layout (width, blocks per
    stage) must be one of the published :data:`VARIANTS`.

    Raises
    ------
    InputError
        Not a SAM 2 checkpoint, or of a layout that is not published; ``source`` names it.
    """
    if not is_sam2_state(state):
        raise InputError(f"{source}: not a SAM 2 checkpoint (no image_encoder.trunk weights)")
    try:
        embed_dim = int(state["image_encoder.trunk.patch_embed.proj.weight"].shape[0])
        blocks = {int(key.split(".")[3]) for key in state if key.startswith("image_encoder.trunk.blocks.")}
        starts = sorted(i for i in blocks if f"image_encoder.trunk.blocks.{i}.proj.weight" in state)
        bounds = [0, *starts, max(blocks) + 1]
        stages = tuple(b - a for a, b in zip(bounds[:-1], bounds[1:]))
        pos_size = tuple(int(v) for v in state["image_encoder.trunk.pos_embed"].shape[2:])
        window = int(state["image_encoder.trunk.pos_embed_window"].shape[2])
        d_model = int(state["sam_mask_decoder.iou_token.weight"].shape[1])
        obj_mlp = "sam_mask_decoder.pred_obj_score_head.layers.0.weight" in state
    except (KeyError, IndexError, ValueError) as exc:
        raise InputError(f"{source}: a SAM 2 checkpoint without {exc}: incomplete or of an unknown layout") from None
    for name, known in VARIANTS.items():
        if (known.embed_dim, known.stages, known.pos_size, known.window_spec[0]) == (embed_dim, stages, pos_size, window):
            return replace(known, d_model=d_model, obj_score_mlp=obj_mlp)
    raise InputError(f"{source}: a SAM 2 Hiera of width {embed_dim} with {'/'.join(map(str, stages))} blocks per "
                     f"stage is not a published variant ({', '.join(VARIANTS)})")


def load_sam2(state: Mapping[str, torch.Tensor], expect: str | None = None, source: str = "the checkpoint",
              config: Sam2Config | None = None) -> Sam2:
    """Build the SAM 2.1 image model that ``state`` holds and load every image-path tensor.

    Video-only tensors (:data:`VIDEO_KEYS`) are accepted and ignored. ``expect`` (a
    :data:`VARIANTS` name) refuses a checkpoint of another variant, naming it; ``config``
    gives the sizes outright (for layouts that are not published).
    """
    from segtools.models.sam.model import check_variant, load_every_key

    config = config or sam2_config(state, source)
    check_variant(config.variant, expect, source)
    return load_every_key(Sam2(config), image_state(state), config.variant, source)
