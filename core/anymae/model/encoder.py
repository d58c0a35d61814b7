"""Encoders: run on the visible tokens only (MAE's ``forward_encoder``).

:class:`ViTEncoder` is MAE's encoder (He et al. 2021, https://arxiv.org/abs/2111.06377): a linear token embedding,
a position embedding chosen by the layout, an optional class token, timm's pre-norm transformer ``Block``
(attention through ``torch.nn.functional.scaled_dot_product_attention``, :mod:`anymae.model.layers`) and a final
LayerNorm. The token embedding is a linear map of the tokenizer's vectors, which for image patches is exactly MAE's
``Conv2d(kernel=stride=patch)``; it is applied after the visible tokens are gathered, so the hidden 75% are never
embedded.

With ``mask_token=True`` it is SimMIM's encoder instead (Xie et al. 2022, https://arxiv.org/abs/2111.09886): it sees
every token, the hidden ones replaced by a learned mask token after the token embedding (PatchTST's zeroed patches
are the same idea with a zero token).
"""

from abc import ABC, abstractmethod
from typing import Annotated, cast

import torch
from pydantic import Field, PositiveFloat, PositiveInt
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from ..config import ConfigError, validated
from .layers import Attention, init_mae_weights, key_padding_mask, run_blocks, set_drop_path, transformer_block
from .position import PositionEmbedding, default_position_embedding
from .specs import BuildContext
from .types import EncoderOutput, MaskSpec, TokenBatch, gather_tokens

__all__ = ["Encoder", "ViTEncoder"]


class Encoder(nn.Module, ABC):
    """Maps the visible tokens to latents (an :class:`~anymae.model.types.EncoderOutput`).

    Its constructor sets the attributes below; :meth:`build` creates what depends on the tokenizer (called once by
    the model, before the other parts are built).

    Attributes:
        embed_dim: width of the latents.
        num_prefix_tokens: number of extra tokens (class token) in front of the visible ones.
        num_layers: depth, for layer-wise learning-rate decay and feature mixing (0: no layers to tell apart).
        sees_all_tokens: the encoder runs on every token, hidden ones replaced by a mask token (SimMIM); its output
            then covers every token (``every_token``).
        fc_norm: (optional) a norm of the mean-pooled feature instead of one of every token (timm's
            ``global_pool="avg"``), applied by :class:`~anymae.PretrainedEncoder`; unset or ``None``: none.
    """

    embed_dim: int
    num_prefix_tokens: int = 0
    num_layers: int = 0
    sees_all_tokens: bool = False
    fc_norm: nn.Module | None  # no class default: it would hide a submodule of that name (nn.Module.__getattr__)

    @abstractmethod
    def build(self, ctx: BuildContext) -> None:
        """Create the input projection for the tokenizer's tokens and the position embedding for its layout."""

    @abstractmethod
    def forward(self, tokens: TokenBatch, mask: MaskSpec | None = None, layers: bool = False) -> EncoderOutput:
        """Encode the tokens ``mask`` leaves visible (every token when ``mask`` is ``None``); with ``layers``, also
        return every block's output."""

    def layer_id(self, name: str) -> int:
        """Depth of parameter ``name`` for layer-wise lr decay: 0 for embeddings, ``num_layers + 1`` for the top."""
        return self.num_layers + 1

    def set_drop_path_rate(self, rate: float) -> None:
        """Stochastic depth for fine-tuning; encoders without it ignore the call."""

    def class_attention(self, tokens: TokenBatch) -> Tensor:
        """``[B, N]``: how much the class token attends to each token in the last block, averaged over heads, with
        every token visible (AttMask's score)."""
        raise NotImplementedError(f"{type(self).__name__} has no class-token attention to read")


class ViTEncoder(Encoder):
    """MAE's ViT encoder on visible tokens.

    Args:
        embed_dim: token width (ViT-B: 768, ViT-S: 384, ViT-Ti: 192).
        depth: number of transformer blocks (ViT-B/S/Ti: 12).
        num_heads: attention heads (ViT-B: 12, ViT-S: 6, ViT-Ti: 3).
        mlp_ratio: hidden width of each block's MLP relative to ``embed_dim``.
        qkv_bias: bias on the query/key/value projection (True in MAE).
        drop_path_rate: stochastic depth, increasing linearly over the blocks (0 for MAE pretraining).
        class_token: prepend a learned class token (MAE does; its position embedding is zero).
        pos_embed: position embedding; ``None`` picks fixed sin-cos for grids and a learned MLP for points.
        norm_eps: LayerNorm epsilon (1e-6 in MAE).
        grad_checkpointing: recompute each block's activations in the backward pass instead of storing them
            (activation checkpointing: less memory for large models, about a third more compute).
        mask_token: SimMIM's encoder: see every token, the hidden ones' embeddings replaced by a learned mask token
            (initialised as SimMIM's, truncated normal with std 0.02) before the position embedding is added.
        pos_every_block: add the position embedding to the input of every block instead of once after the token
            embedding (Point-MAE's encoder: ``x = block(x + pos)``).
        fc_norm: no norm of every token; a LayerNorm of the mean-pooled feature instead (timm's
            ``global_pool="avg"``; VideoMAE's fine-tuned and distilled encoders): the latents are the last block's
            outputs, and ``PretrainedEncoder`` pools by mean then normalises.
    """

    # Created by build (from the tokenizer's width and layout); pos_embed from __init__ when given.
    token_embed: nn.Linear
    pos_embed: PositionEmbedding

    @validated
    def __init__(
        self,
        embed_dim: PositiveInt = 768,
        depth: PositiveInt = 12,
        num_heads: PositiveInt = 12,
        mlp_ratio: PositiveFloat = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: Annotated[float, Field(ge=0, lt=1)] = 0.0,
        class_token: bool = True,
        pos_embed: PositionEmbedding | None = None,
        norm_eps: PositiveFloat = 1e-6,
        grad_checkpointing: bool = False,
        mask_token: bool = False,
        pos_every_block: bool = False,
        fc_norm: bool = False,
    ) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ConfigError(f"ViTEncoder.embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        self.embed_dim = embed_dim
        self.num_prefix_tokens = int(class_token)
        self.num_layers = depth
        if pos_embed is not None:  # else build picks the layout's default
            self.pos_embed = pos_embed
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if class_token else None
        rates = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList(
            transformer_block(embed_dim, num_heads, mlp_ratio, qkv_bias, norm_eps, drop_path=rate) for rate in rates
        )
        self.norm: nn.Module = nn.Identity() if fc_norm else nn.LayerNorm(embed_dim, eps=norm_eps)
        self.fc_norm = nn.LayerNorm(embed_dim, eps=norm_eps) if fc_norm else None
        self.grad_checkpointing = grad_checkpointing
        self.sees_all_tokens = mask_token
        self.pos_every_block = pos_every_block
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if mask_token else None

    def layer_id(self, name: str) -> int:
        """MAE's ``get_layer_id_for_vit``: embeddings and class token 0, block ``i`` ``i + 1``, the rest on top."""
        if name.startswith(("token_embed", "pos_embed", "cls_token", "mask_token")):
            return 0
        if name.startswith("blocks."):
            return int(name.split(".")[1]) + 1
        return self.num_layers + 1

    def set_drop_path_rate(self, rate: float) -> None:
        """Stochastic depth rising linearly to ``rate`` over the blocks (MAE fine-tunes ViT-B with 0.1)."""
        set_drop_path(self.blocks, rate)

    def build(self, ctx: BuildContext) -> None:
        self.token_embed = nn.Linear(ctx.tokens.token_dim, self.embed_dim)
        if "pos_embed" not in self._modules:
            self.pos_embed = default_position_embedding(ctx.tokens.layout)
        self.pos_embed.build(self.embed_dim, ctx.tokens.layout)
        self.apply(init_mae_weights)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=0.02)
        if self.mask_token is not None:
            nn.init.trunc_normal_(self.mask_token, std=0.02)

    def forward(self, tokens: TokenBatch, mask: MaskSpec | None = None, layers: bool = False) -> EncoderOutput:
        every_token = mask is None or self.mask_token is not None
        ids = tokens.all_ids() if every_token or mask is None else mask.ids_keep
        hidden = mask.mask if mask is not None and self.mask_token is not None else None
        x = self.embed(tokens, None if every_token else ids, hidden)
        pos = self.block_positions(tokens, ids, x)
        # visible tokens are never padding; with every token in, padded keys are left out of attention
        attn_mask = key_padding_mask(tokens.padding_mask if every_token else None, self.num_prefix_tokens)
        checkpoint = self.grad_checkpointing and self.training
        if not layers:
            x = self.norm(run_blocks(self.blocks, x, attn_mask, checkpoint, pos))
            return EncoderOutput(x, ids, self.num_prefix_tokens, every_token)
        outputs = [x]
        for block in self.blocks:
            outputs.append(run_blocks(nn.ModuleList([block]), outputs[-1], attn_mask, checkpoint, pos))
        return EncoderOutput(self.norm(outputs[-1]), ids, self.num_prefix_tokens, every_token, tuple(outputs))

    def embed(self, tokens: TokenBatch, ids: Tensor | None = None, hidden: Tensor | None = None) -> Tensor:
        """The first block's input ``[B, P + K, D]`` for the tokens at ``ids`` (every token when ``None``): token
        embedding (the ``hidden`` ones replaced by the mask token), position embedding (unless it goes to every
        block), class token."""
        x = tokens.tokens if ids is None else gather_tokens(tokens.tokens, ids)
        x = self.token_embed(x)
        if hidden is not None:
            if self.mask_token is None:
                raise ValueError("ViTEncoder.embed: replacing hidden tokens needs mask_token=True")
            x = torch.where(hidden[..., None], self.mask_token.to(x.dtype), x)
        if not self.pos_every_block:
            ids = tokens.all_ids() if ids is None else ids
            x = x + self.pos_embed(tokens, ids).to(x.dtype)  # tables are float32; bf16/fp16 weights stay so
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        return x

    def block_positions(self, tokens: TokenBatch, ids: Tensor, like: Tensor) -> Tensor | None:
        """With ``pos_every_block``, the position embedding every block's input gets ``[B, P + K, D]`` (zero for the
        prefix tokens); otherwise ``None``."""
        if not self.pos_every_block:
            return None
        pos = self.pos_embed(tokens, ids).to(like.dtype).expand(like.shape[0], -1, -1)
        return torch.cat([pos.new_zeros(pos.shape[0], self.num_prefix_tokens, pos.shape[2]), pos], dim=1)

    def class_attention(self, tokens: TokenBatch) -> Tensor:
        if self.cls_token is None:
            raise ConfigError("ViTEncoder.class_attention needs class_token=True")
        attn_mask = key_padding_mask(tokens.padding_mask, self.num_prefix_tokens)
        x = self.embed(tokens)
        pos = self.block_positions(tokens, tokens.all_ids(), x)
        x = run_blocks(self.blocks[:-1], x, attn_mask, False, pos)
        if pos is not None:
            x = x + pos
        # transformer_block's Block and Attention (a ModuleList's items, and a Block's attn, type as Module)
        block = cast(Block, self.blocks[-1])
        last = cast(Attention, block.attn)
        b, n, _ = x.shape
        qkv = last.qkv(block.norm1(x)).float().view(b, n, 3, last.num_heads, last.head_dim)
        q, k = last.q_norm(qkv[:, :1, 0].transpose(1, 2)), last.k_norm(qkv[:, :, 1].transpose(1, 2))
        logits = (q @ k.transpose(-2, -1)) * last.head_dim**-0.5  # [B, heads, 1, P + N]: one query row, no SDPA
        if attn_mask is not None:
            logits = logits.masked_fill(~attn_mask, float("-inf"))
        return logits.softmax(dim=-1).mean(dim=1)[:, 0, self.num_prefix_tokens :]
