"""Decoders: predict a target vector for each hidden token the masker chose to decode (MAE's ``forward_decoder``).

:class:`MAEDecoder` is MAE's lightweight decoder (He et al. 2021, https://arxiv.org/abs/2111.06377, section 3):
project the encoder's latents to the decoder width, add a learned mask token at every decoded position, add the
decoder's own (fixed sin-cos) position embedding, run a few transformer blocks, and map each decoded token to the
target size with a linear head. Defaults are the paper's: 8 blocks of width 512 with 16 heads.

Unlike MAE's code, the decoder does not un-shuffle the sequence back into grid order: the blocks are permutation
equivariant once every token carries its position embedding, so ``[class | visible | decoded]`` gives the same
outputs, costs no gather, and lets decoder masking (VideoMAE V2) decode only a subset of the hidden tokens.
"""

from abc import ABC, abstractmethod

import torch
from pydantic import PositiveFloat, PositiveInt
from torch import Tensor, nn

from .config import ConfigError, validated
from .encoders import init_mae_weights, key_padding_mask
from .layers import run_blocks, transformer_block
from .position import PositionEmbedding, default_position_embedding
from .types import LayoutSpec, MaskSpec, TokenBatch

__all__ = ["Decoder", "MAEDecoder"]


class Decoder(nn.Module, ABC):
    """Maps encoder latents and a :class:`~anymae.types.MaskSpec` to predictions ``[B, M', out_dim]``, one per
    index in ``mask.ids_decode``, in that order.

    Attributes:
        out_dim: size of each prediction (the target's ``dim_per_token``), set by :meth:`build`.
    """

    out_dim: int

    @abstractmethod
    def build(self, encoder_dim: int, out_dim: int, layout: LayoutSpec) -> None:
        """Create the layers that depend on the encoder width, the target size and the layout."""

    @abstractmethod
    def forward(self, latent: Tensor, tokens: TokenBatch, mask: MaskSpec, num_prefix_tokens: int) -> Tensor:
        """Predict the tokens at ``mask.ids_decode`` from ``latent`` ``[B, P + K, encoder_dim]``."""


class MAEDecoder(Decoder):
    """MAE's lightweight transformer decoder with a learned mask token.

    Args:
        embed_dim: decoder width (512 in MAE).
        depth: number of transformer blocks (8 in MAE).
        num_heads: attention heads (16 in MAE).
        mlp_ratio: hidden width of each block's MLP relative to ``embed_dim``.
        qkv_bias: bias on the query/key/value projection.
        out_dim: size of each prediction; ``None`` takes the target's size. When given, it must equal the target's.
        pos_embed: position embedding; ``None`` picks fixed sin-cos for grids and a learned MLP for points.
        norm_eps: LayerNorm epsilon (1e-6 in MAE).
        grad_checkpointing: recompute each block's activations in the backward pass instead of storing them
            (activation checkpointing: less memory for large models, about a third more compute).
        embed_bias: a bias on the projection from the encoder's width to the decoder's (MAE's ``decoder_embed`` has
            one; VideoMAE's ``encoder_to_decoder`` has none).
    """

    @validated
    def __init__(
        self,
        embed_dim: PositiveInt = 512,
        depth: PositiveInt = 8,
        num_heads: PositiveInt = 16,
        mlp_ratio: PositiveFloat = 4.0,
        qkv_bias: bool = True,
        out_dim: PositiveInt | None = None,
        pos_embed: PositionEmbedding | None = None,
        norm_eps: PositiveFloat = 1e-6,
        grad_checkpointing: bool = False,
        embed_bias: bool = True,
    ) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ConfigError(f"MAEDecoder.embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        self.embed_dim = embed_dim
        self.requested_out_dim = out_dim
        self.pos_embed = pos_embed
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.blocks = nn.ModuleList(
            transformer_block(embed_dim, num_heads, mlp_ratio, qkv_bias, norm_eps) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.grad_checkpointing = grad_checkpointing
        self.embed_bias = embed_bias
        self.embed: nn.Linear | None = None
        self.head: nn.Linear | None = None

    def build(self, encoder_dim: int, out_dim: int, layout: LayoutSpec) -> None:
        if self.requested_out_dim is not None and self.requested_out_dim != out_dim:
            raise ConfigError(
                f"MAEDecoder.out_dim is {self.requested_out_dim} but the target predicts {out_dim} values per token; "
                f"set out_dim to {out_dim} or leave it unset"
            )
        self.out_dim = out_dim
        self.embed = nn.Linear(encoder_dim, self.embed_dim, bias=self.embed_bias)
        self.head = nn.Linear(self.embed_dim, out_dim)
        if self.pos_embed is None:
            self.pos_embed = default_position_embedding(layout)
        self.pos_embed.build(self.embed_dim, layout)
        self.apply(init_mae_weights)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, latent: Tensor, tokens: TokenBatch, mask: MaskSpec, num_prefix_tokens: int) -> Tensor:
        x = self.embed(latent)
        prefix, visible = x[:, :num_prefix_tokens], x[:, num_prefix_tokens:]
        visible = visible + self.pos_embed(tokens, mask.ids_keep).to(x.dtype)
        decoded = (self.mask_token + self.pos_embed(tokens, mask.ids_decode)).to(x.dtype)
        x = torch.cat([prefix, visible, decoded], dim=1)
        attn_mask = None
        if tokens.padding_mask is not None:  # padded positions must not leak into real ones through attention
            padded = torch.gather(tokens.padding_mask, 1, mask.ids_decode)
            padding = torch.cat([torch.zeros_like(mask.ids_keep, dtype=torch.bool), padded], dim=1)
            attn_mask = key_padding_mask(padding, num_prefix_tokens)
        x = run_blocks(self.blocks, x, attn_mask, self.grad_checkpointing and self.training)
        start = num_prefix_tokens + mask.num_visible
        return self.head(self.norm(x[:, start:]))
