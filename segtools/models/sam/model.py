"""The Segment Anything model: image encoder + prompt encoder + mask decoder, and how a
checkpoint's keys say which variant it is.

:func:`sam_config` reads a :class:`SamConfig` off a state dict (every size is in the tensor
shapes), :func:`build_sam` builds the model, :func:`load_sam` does both and loads the
weights strictly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

import torch
from torch import nn

from segtools.errors import InputError
from segtools.models.sam.decoder import MaskDecoder, PromptEncoder
from segtools.models.sam.vit import ImageEncoderViT

PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class SamConfig:
    """Sizes of one SAM model (the defaults are SAM ViT-B at 1024 pixels)."""

    encoder: str = "vit"  # vit | tiny_vit
    img_size: int = 1024
    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    window_size: int = 14
    global_attn: tuple[int, ...] = (2, 5, 8, 11)
    prompt_dim: int = 256
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_heads: int = 8
    decoder_mlp: int = 2048
    multimask: int = 3
    iou_depth: int = 3
    iou_hidden: int = 256
    tiny: dict = field(default_factory=dict)  # TinyViT sizes (MobileSAM)

    @property
    def embedding_size(self) -> int:
        return self.img_size // 16

    @property
    def variant(self) -> str:
        """``sam-vit-b``/``-l``/``-h``, ``mobile-sam``, or ``sam-vit`` for other sizes."""
        if self.encoder == "tiny_vit":
            return "mobile-sam"
        known = {(768, 12): "sam-vit-b", (1024, 24): "sam-vit-l", (1280, 32): "sam-vit-h"}
        return known.get((self.embed_dim, self.depth), "sam-vit") if self.img_size == 1024 else "sam-vit"


#: The published variants (MobileSAM: TinyViT-5M encoder, SAM's decoder).
VARIANTS: dict[str, SamConfig] = {
    "sam-vit-b": SamConfig(),
    "sam-vit-l": SamConfig(embed_dim=1024, depth=24, num_heads=16, global_attn=(5, 11, 17, 23)),
    "sam-vit-h": SamConfig(embed_dim=1280, depth=32, num_heads=16, global_attn=(7, 15, 23, 31)),
    "mobile-sam": SamConfig(encoder="tiny_vit", embed_dim=320, depth=4, num_heads=10, tiny={
        "embed_dims": (64, 128, 160, 320), "depths": (2, 2, 6, 2), "num_heads": (2, 4, 5, 10),
        "window_sizes": (7, 7, 14, 7), "mlp_ratio": 4.0}),
}


class Sam(nn.Module):
    """``image_encoder``, ``prompt_encoder``, ``mask_decoder`` as in the official checkpoints."""

    mask_threshold = 0.0

    def __init__(self, config: SamConfig) -> None:
        super().__init__()
        self.config = config
        if config.encoder == "tiny_vit":
            from segtools.models.sam.tiny_vit import TinyViT

            self.image_encoder = TinyViT(img_size=config.img_size, out_chans=config.prompt_dim, **config.tiny)
        else:
            self.image_encoder = ImageEncoderViT(
                config.img_size, config.patch_size, config.embed_dim, config.depth, config.num_heads,
                config.mlp_ratio, config.prompt_dim, window_size=config.window_size,
                global_attn=config.global_attn)
        grid = (config.embedding_size, config.embedding_size)
        self.prompt_encoder = PromptEncoder(config.prompt_dim, grid, (config.img_size, config.img_size),
                                            config.mask_in_chans)
        self.mask_decoder = MaskDecoder(config.prompt_dim, config.multimask, config.decoder_depth,
                                        config.decoder_heads, config.decoder_mlp, config.iou_depth, config.iou_hidden)
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(-1, 1, 1), persistent=False)

    @property
    def img_size(self) -> int:
        return self.config.img_size


def build_sam(variant: str | SamConfig = "sam-vit-b", **overrides) -> Sam:
    """A randomly initialised SAM of a published ``variant`` (or a :class:`SamConfig`), in eval mode."""
    config = variant if isinstance(variant, SamConfig) else VARIANTS[variant]
    return Sam(replace(config, **overrides)).eval()


def _count(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    indices = {key[len(prefix):].split(".", 1)[0] for key in state if key.startswith(prefix)}
    return len({i for i in indices if i.isdigit()})


def sam_config(state: Mapping[str, torch.Tensor], source: str = "the checkpoint") -> SamConfig:
    """The :class:`SamConfig` of a SAM / MobileSAM state dict, read off its key names and shapes.

    Raises
    ------
    InputError
        Not a SAM checkpoint (or a SAM 2 one, which :mod:`segtools.models.sam2` loads); ``source`` names it.
    """
    if any(key.startswith("image_encoder.trunk.") for key in state) or "maskmem_tpos_enc" in state:
        raise InputError(f"{source}: is a SAM 2 checkpoint (Hiera encoder): give its architecture, "
                         "arch=sam2.1-hiera-tiny|small|base-plus|large, or a file name starting with sam2")
    needed = ("prompt_encoder.pe_layer.positional_encoding_gaussian_matrix", "mask_decoder.iou_token.weight",
              "mask_decoder.mask_tokens.weight")
    if not all(key in state for key in needed):
        raise InputError(f"{source}: not a Segment Anything checkpoint (no prompt_encoder/mask_decoder weights)")
    try:
        decoder = dict(
            prompt_dim=int(state["mask_decoder.iou_token.weight"].shape[1]),
            mask_in_chans=int(state["prompt_encoder.mask_downscaling.3.weight"].shape[0]),
            decoder_depth=_count(state, "mask_decoder.transformer.layers."),
            decoder_mlp=int(state["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0]),
            multimask=int(state["mask_decoder.mask_tokens.weight"].shape[0]) - 1,
            iou_depth=_count(state, "mask_decoder.iou_prediction_head.layers."),
            iou_hidden=int(state["mask_decoder.iou_prediction_head.layers.0.weight"].shape[0]))
        if "image_encoder.patch_embed.seq.0.c.weight" in state:
            return replace(VARIANTS["mobile-sam"], **decoder)
        patch = state["image_encoder.patch_embed.proj.weight"]
        grid = int(state["image_encoder.pos_embed"].shape[1])
        depth = _count(state, "image_encoder.blocks.")
        windows = [int(state[f"image_encoder.blocks.{i}.attn.rel_pos_h"].shape[0] + 1) // 2 for i in range(depth)]
        head_dim = int(state["image_encoder.blocks.0.attn.rel_pos_h"].shape[1])
        local = [w for w in windows if w != grid]
        return SamConfig(
            img_size=grid * int(patch.shape[-1]), patch_size=int(patch.shape[-1]), embed_dim=int(patch.shape[0]),
            depth=depth, num_heads=int(patch.shape[0]) // head_dim,
            mlp_ratio=int(state["image_encoder.blocks.0.mlp.lin1.weight"].shape[0]) / int(patch.shape[0]),
            window_size=local[0] if local else 14, global_attn=tuple(i for i, w in enumerate(windows) if w == grid),
            **decoder)
    except (KeyError, IndexError) as exc:
        raise InputError(f"{source}: a Segment Anything checkpoint without {exc}: incomplete or of an "
                         "unknown variant") from None


def load_sam(state: Mapping[str, torch.Tensor], expect: str | None = None, source: str = "the checkpoint") -> Sam:
    """Build the SAM that ``state`` is the weights of and load them (every key, every shape).

    ``expect`` (a :data:`VARIANTS` name) refuses a checkpoint of another variant, naming it.
    """
    config = sam_config(state, source)
    check_variant(config.variant, expect, source)
    return load_every_key(Sam(config), state, config.variant, source)


def check_variant(variant: str, expect: str | None, source: str) -> None:
    """Refuse a checkpoint of ``variant`` where ``expect`` was asked for, naming both."""
    if expect and variant != expect:
        raise InputError(f"{source}: is a {variant} checkpoint, not {expect}; "
                         f"give model={variant} or the {expect} file")


def load_every_key(model: nn.Module, state: Mapping[str, torch.Tensor], variant: str, source: str) -> nn.Module:
    """``model`` with ``state`` loaded, every key and every shape (an error names the first
    mismatch, or the missing and unexpected keys), in eval mode."""
    try:
        result = model.load_state_dict(dict(state), strict=False)
    except RuntimeError as exc:  # a tensor of another shape
        detail = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line), str(exc)[:200])
        raise InputError(f"{source}: does not fit {variant}: {detail[:200]}") from None
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        raise InputError(f"{source}: does not fit {variant}: "
                         f"{len(missing)} missing ({', '.join(missing[:3])}), "
                         f"{len(unexpected)} unexpected ({', '.join(unexpected[:3])})")
    return model.eval()
