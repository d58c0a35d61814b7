"""The decoder interface, and the stem the transformer decoders share (MAE's ``forward_decoder``, around its blocks).

A decoder predicts a target vector for each token the masker chose to decode (``MaskSpec.ids_decode``), from the
encoder's output. :class:`DecoderStem` holds what :class:`~anymae.MAEDecoder`, :class:`~anymae.WindowDecoder` and
:class:`~anymae.CrossMAEDecoder` have in common: the projection of the encoder's latents to the decoder's width, the
learned mask token, the decoder's own position embedding, and the final norm and prediction head. Each decoder owns
a stem and its own blocks.
"""

from abc import ABC, abstractmethod
from typing import Annotated, Any, ClassVar

import torch
from pydantic import Field, PositiveFloat, PositiveInt
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from ...config import ConfigError, validated
from ..layers import init_mae_weights, set_drop_path, transformer_block
from ..position import PositionEmbedding, default_position_embedding
from ..specs import BuildContext
from ..types import EncoderOutput, MaskSpec, TokenBatch

__all__ = ["Decoder", "DecoderStem", "StemDecoder", "TransformerDecoder", "prediction_width"]


class Decoder(nn.Module, ABC):
    """Maps the encoder's output and a :class:`~anymae.MaskSpec` to predictions ``[B, M', out_dim]``, one per index in
    ``mask.ids_decode``, in that order.

    Attributes:
        out_dim: size of each prediction (the target's ``dim_per_token``), set by :meth:`build`.
        reads: ``"visible"`` and/or ``"all"``: the encoder outputs it can decode from -- latents of the visible tokens
            (MAE's encoder), or of every token, the hidden ones seen as a mask token (SimMIM's); the model checks it
            against the encoder when it is built.
        reads_layers: the decoder reads every encoder layer (``EncoderOutput.layers``), not only the last.
    """

    out_dim: int
    reads: ClassVar[frozenset[str]] = frozenset({"visible", "all"})
    reads_layers: bool = False

    @abstractmethod
    def build(self, ctx: BuildContext) -> None:
        """Create the layers that depend on the encoder's width, the target's size and the layout."""

    @abstractmethod
    def forward(self, encoded: EncoderOutput, tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        """Predict the tokens at ``mask.ids_decode``."""


def prediction_width(owner: str, requested: int | None, ctx: BuildContext) -> int:
    """The target's width per token, which a decoder's ``out_dim``, when given, must equal."""
    if requested is not None and requested != ctx.target_dim:
        raise ConfigError(
            f"{owner}.out_dim is {requested} but the target predicts {ctx.target_dim} values per token; set out_dim "
            f"to {ctx.target_dim} or leave it unset"
        )
    return ctx.target_dim


class DecoderStem(nn.Module):
    """What a transformer decoder has around its blocks.

    Args:
        dim: the decoder's width.
        norm_eps: epsilon of the final LayerNorm.
        embed_bias: a bias on the projection from the encoder's width (MAE's ``decoder_embed`` has one; VideoMAE's
            ``encoder_to_decoder`` has none).
        pos_embed: the decoder's position embedding; ``None`` picks fixed sin-cos for grids, a learned MLP for points.
        out_dim: the requested prediction width (``None``: the target's).
    """

    # Created by build (from the encoder's width and the target's); pos_embed from __init__ when given.
    embed: nn.Linear
    head: nn.Linear
    pos_embed: PositionEmbedding

    def __init__(
        self, dim: int, norm_eps: float, embed_bias: bool, pos_embed: PositionEmbedding | None, out_dim: int | None
    ) -> None:
        super().__init__()
        self.dim, self.embed_bias, self.requested_out_dim = dim, embed_bias, out_dim
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        if pos_embed is not None:  # else build picks the layout's default
            self.pos_embed = pos_embed
        self.norm = nn.LayerNorm(dim, eps=norm_eps)

    def build(self, ctx: BuildContext, owner: nn.Module, mask_token: bool = True) -> int:
        """Size the projection and the head, build the position embedding, and initialise the decoder that owns the
        stem (its blocks included) as MAE does; returns the prediction width. ``mask_token=False`` (a decoder under an
        encoder that sees every token adds no mask token of its own) freezes the mask token, so that no trainable
        parameter is left out of the loss (DDP refuses those)."""
        out_dim = prediction_width(type(owner).__name__, self.requested_out_dim, ctx)
        self.embed = nn.Linear(ctx.encoder.embed_dim, self.dim, bias=self.embed_bias)
        self.head = nn.Linear(self.dim, out_dim)
        if "pos_embed" not in self._modules:
            self.pos_embed = default_position_embedding(ctx.tokens.layout)
        self.pos_embed.build(self.dim, ctx.tokens.layout)
        owner.apply(init_mae_weights)
        nn.init.normal_(self.mask_token, std=0.02)
        self.mask_token.requires_grad_(mask_token)
        return out_dim

    def context(self, latent: Tensor, tokens: TokenBatch, ids: Tensor, num_prefix: int) -> Tensor:
        """The encoder's latents ``[B, P + L, D_enc]`` at the decoder's width, the tokens' (at ``ids``) with the
        decoder's position embedding."""
        x = self.embed(latent)
        body = x[:, num_prefix:] + self.pos_embed(tokens, ids).to(x.dtype)
        return torch.cat([x[:, :num_prefix], body], dim=1)

    def queries(self, tokens: TokenBatch, ids: Tensor, dtype: torch.dtype) -> Tensor:
        """A mask token for each index in ``ids``, with its position embedding."""
        return (self.mask_token + self.pos_embed(tokens, ids)).to(dtype)

    def predict(self, x: Tensor) -> Tensor:
        return self.head(self.norm(x))


class TransformerDecoder(Decoder):
    """A decoder of transformer blocks: the sizes every such decoder takes, checked and kept here. Subclasses build
    their blocks from them and take these arguments through ``**kwargs``.

    Args:
        embed_dim: decoder width (512 in MAE).
        depth: number of blocks (8 in MAE).
        num_heads: attention heads (16 in MAE).
        mlp_ratio: hidden width of each block's MLP relative to ``embed_dim``.
        qkv_bias: bias on the query/key/value projection.
        norm_eps: LayerNorm epsilon (1e-6 in MAE).
        grad_checkpointing: recompute each block's activations in the backward pass instead of storing them
            (activation checkpointing: less memory for large models, about a third more compute).
    """

    @validated
    def __init__(
        self,
        embed_dim: PositiveInt = 512,
        depth: PositiveInt = 8,
        num_heads: PositiveInt = 16,
        mlp_ratio: PositiveFloat = 4.0,
        qkv_bias: bool = True,
        norm_eps: PositiveFloat = 1e-6,
        grad_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if embed_dim % num_heads:
            name = type(self).__name__
            raise ConfigError(f"{name}.embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        self.embed_dim, self.depth, self.num_heads, self.mlp_ratio = embed_dim, depth, num_heads, mlp_ratio
        self.qkv_bias, self.norm_eps, self.grad_checkpointing = qkv_bias, norm_eps, grad_checkpointing


class StemDecoder(TransformerDecoder):
    """A transformer decoder: its blocks around a :class:`DecoderStem` (its ``stem``, whose parts keep the names MAE's
    decoder gives them). Subclasses take these arguments through ``**kwargs`` and add their own.

    Args:
        out_dim: size of each prediction; ``None`` takes the target's. When given, it must equal the target's.
        pos_embed: position embedding; ``None`` picks fixed sin-cos for grids and a learned MLP for points.
        embed_bias: a bias on the projection from the encoder's width to the decoder's (MAE's ``decoder_embed`` has
            one; VideoMAE's ``encoder_to_decoder`` has none).
        drop_path_rate: stochastic depth rising linearly over the blocks (0 in MAE; Point-MAE's decoder: 0.1).
        embed_dim, depth, num_heads, mlp_ratio, qkv_bias, norm_eps, grad_checkpointing: the blocks'
            (:class:`TransformerDecoder`); MAE's defaults.
    """

    stem: DecoderStem

    @validated
    def __init__(
        self,
        *,
        out_dim: PositiveInt | None = None,
        pos_embed: PositionEmbedding | None = None,
        embed_bias: bool = True,
        drop_path_rate: Annotated[float, Field(ge=0, lt=1)] = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        sizes = (self.embed_dim, self.num_heads, self.mlp_ratio, self.qkv_bias, self.norm_eps)
        self.blocks = nn.ModuleList(self.block(*sizes) for _ in range(self.depth))
        if drop_path_rate:
            if not all(isinstance(block, Block) for block in self.blocks):
                raise ConfigError(f"{type(self).__name__}.drop_path_rate: its blocks have no stochastic depth")
            set_drop_path(self.blocks, drop_path_rate)
        self.stem = DecoderStem(self.embed_dim, self.norm_eps, embed_bias, pos_embed, out_dim)

    def block(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, norm_eps: float) -> nn.Module:
        """One of the decoder's blocks: a ViT block (pre-norm self-attention and MLP)."""
        return transformer_block(dim, num_heads, mlp_ratio, qkv_bias, norm_eps)

    @property
    def embed(self) -> nn.Linear:
        return self.stem.embed

    @property
    def mask_token(self) -> nn.Parameter:
        return self.stem.mask_token

    @property
    def pos_embed(self) -> PositionEmbedding:
        return self.stem.pos_embed

    @property
    def norm(self) -> nn.LayerNorm:
        return self.stem.norm

    @property
    def head(self) -> nn.Linear:
        return self.stem.head
