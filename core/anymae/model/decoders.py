"""Decoders: predict a target vector for each hidden token the masker chose to decode (MAE's ``forward_decoder``).

:class:`MAEDecoder` is MAE's lightweight decoder (He et al. 2021, https://arxiv.org/abs/2111.06377, section 3):
project the encoder's latents to the decoder width, add a learned mask token at every decoded position, add the
decoder's own (fixed sin-cos) position embedding, run a few transformer blocks, and map each decoded token to the
target size with a linear head. Defaults are the paper's: 8 blocks of width 512 with 16 heads.

Unlike MAE's code, the decoder does not un-shuffle the sequence back into grid order: the blocks are permutation
equivariant once every token carries its position embedding, so ``[class | visible | decoded]`` gives the same
outputs, costs no gather, and lets decoder masking (VideoMAE V2) decode only a subset of the hidden tokens.

:class:`CrossMAEDecoder` is CrossMAE's decoder (Fu et al. 2024, https://arxiv.org/abs/2401.14391): the mask tokens
only cross-attend to the encoder's tokens, so each hidden token is predicted on its own.
"""

import math
from abc import ABC, abstractmethod
from contextlib import nullcontext
from functools import partial
from typing import ClassVar

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from pydantic import NonNegativeInt, PositiveFloat, PositiveInt
from timm.layers import Mlp
from torch import Tensor, nn

from ..config import ConfigError, validated
from .encoder import Encoder, all_ids, init_mae_weights, key_padding_mask
from .layers import Attention, run_blocks, transformer_block
from .position import PositionEmbedding, default_position_embedding
from .types import LayoutSpec, MaskSpec, TokenBatch, gather_tokens

__all__ = ["CrossMAEDecoder", "Decoder", "LinearDecoder", "MAEDecoder", "WindowDecoder", "window_partition"]


class Decoder(nn.Module, ABC):
    """Maps encoder latents and a :class:`~anymae.model.types.MaskSpec` to predictions ``[B, M', out_dim]``, one per
    index in ``mask.ids_decode``, in that order.

    The latents are those of the visible tokens ``[B, P + K, D]`` (MAE's encoder), or of every token
    ``[B, P + N, D]`` when the encoder sees all tokens with hidden ones replaced by a mask token (SimMIM's); a decoder
    says which it reads in :attr:`reads`, and the model checks it against the encoder when it is built.

    Attributes:
        out_dim: size of each prediction (the target's ``dim_per_token``), set by :meth:`build`.
        reads: ``"visible"`` and/or ``"all"``: the latents this decoder can decode from.
        encoder_layers: the decoder reads every encoder layer, not only the last: the model then calls it with
            ``layers=`` (the list :meth:`~anymae.model.encoder.Encoder.forward_layers` returns).
    """

    out_dim: int
    reads: ClassVar[frozenset[str]] = frozenset({"visible", "all"})
    encoder_layers: bool = False

    def attach(self, encoder: Encoder) -> None:
        """Called once after :meth:`build` with the model's encoder, for what depends on more than its width (its
        depth, for feature mixing)."""

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
        pos_every_block: add the position embedding to every block's input instead of once (Point-MAE's decoder:
            ``x = block(x + pos)``).
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
        pos_every_block: bool = False,
    ) -> None:
        super().__init__()
        self.pos_every_block = pos_every_block
        if embed_dim % num_heads:
            raise ConfigError(
                f"{type(self).__name__}.embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})"
            )
        self.embed_dim = embed_dim
        self.requested_out_dim = out_dim
        self.pos_embed = pos_embed
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.blocks = nn.ModuleList(
            self.block(embed_dim, num_heads, mlp_ratio, qkv_bias, norm_eps) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.grad_checkpointing = grad_checkpointing
        self.embed_bias = embed_bias
        self.embed: nn.Linear | None = None
        self.head: nn.Linear | None = None

    def block(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, norm_eps: float) -> nn.Module:
        """One decoder block: timm's pre-norm transformer block."""
        return transformer_block(dim, num_heads, mlp_ratio, qkv_bias, norm_eps)

    def build(self, encoder_dim: int, out_dim: int, layout: LayoutSpec) -> None:
        if self.requested_out_dim is not None and self.requested_out_dim != out_dim:
            raise ConfigError(
                f"{type(self).__name__}.out_dim is {self.requested_out_dim} but the target predicts {out_dim} values "
                f"per token; set out_dim to {out_dim} or leave it unset"
            )
        self.out_dim = out_dim
        self.embed = nn.Linear(encoder_dim, self.embed_dim, bias=self.embed_bias)
        self.head = nn.Linear(self.embed_dim, out_dim)
        if self.pos_embed is None:
            self.pos_embed = default_position_embedding(layout)
        self.pos_embed.build(self.embed_dim, layout)
        self.apply(init_mae_weights)
        nn.init.normal_(self.mask_token, std=0.02)

    def attach(self, encoder: Encoder) -> None:
        """Under an encoder with mask tokens the decoder has none of its own to add: its mask token is frozen, so
        that no trainable parameter is left out of the loss (DDP refuses those)."""
        if encoder.sees_all_tokens:
            self.mask_token.requires_grad_(False)

    def forward(self, latent: Tensor, tokens: TokenBatch, mask: MaskSpec, num_prefix_tokens: int) -> Tensor:
        if self.pos_every_block:
            return self._forward_pos_every_block(latent, tokens, mask, num_prefix_tokens)
        if reads_all_tokens(latent, tokens, num_prefix_tokens):  # an encoder with mask tokens: no decoder ones
            x = self.embed(latent)
            ids = torch.arange(tokens.num_tokens, device=x.device).expand(x.shape[0], -1)
            x = torch.cat(
                [x[:, :num_prefix_tokens], x[:, num_prefix_tokens:] + self.pos_embed(tokens, ids).to(x.dtype)], 1
            )
            attn_mask = key_padding_mask(tokens.padding_mask, num_prefix_tokens)
            x = run_blocks(self.blocks, x, attn_mask, self.grad_checkpointing and self.training)
            return self.head(self.norm(gather_tokens(x[:, num_prefix_tokens:], mask.ids_decode)))
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

    def _forward_pos_every_block(
        self, latent: Tensor, tokens: TokenBatch, mask: MaskSpec, num_prefix_tokens: int
    ) -> Tensor:
        """:meth:`forward` with the positions added to every block's input (Point-MAE's decoder)."""
        x = self.embed(latent)
        b, p = x.shape[0], num_prefix_tokens
        if reads_all_tokens(latent, tokens, p):
            ids, body, padding = all_ids(tokens), x[:, p:], tokens.padding_mask
        else:
            decoded = self.mask_token.to(x.dtype).expand(b, mask.ids_decode.shape[1], -1)
            ids, body = torch.cat([mask.ids_keep, mask.ids_decode], 1), torch.cat([x[:, p:], decoded], 1)
            padding = None if tokens.padding_mask is None else torch.gather(tokens.padding_mask, 1, ids)
        pos = self.pos_embed(tokens, ids).to(x.dtype).expand(b, -1, -1)
        pos = torch.cat([pos.new_zeros(b, p, pos.shape[2]), pos], dim=1)
        x = torch.cat([x[:, :p], body], dim=1)
        x = run_blocks(self.blocks, x, key_padding_mask(padding, p), self.grad_checkpointing and self.training, pos)
        out = x[:, p:]
        if reads_all_tokens(latent, tokens, p):
            return self.head(self.norm(gather_tokens(out, mask.ids_decode)))
        return self.head(self.norm(out[:, mask.num_visible :]))


def reads_all_tokens(latent: Tensor, tokens: TokenBatch, num_prefix_tokens: int) -> bool:
    """Whether ``latent`` holds every token (an encoder with mask tokens) rather than the visible ones: a masker
    always hides at least one token, so the two never have the same length."""
    return latent.shape[1] - num_prefix_tokens == tokens.num_tokens


class LinearDecoder(Decoder):
    """SimMIM's prediction head (Xie et al. 2022, https://arxiv.org/abs/2111.09886): one linear layer from each hidden
    token's own latent to its target (SimMIM's 1x1 convolution to a patch's pixels), for an encoder that sees every
    token with the hidden ones replaced by a mask token (``ViTEncoder(mask_token=True)``). The class token is not
    used. SimMIM's point is that the head can be this light once the encoder does all the work.

    Args:
        out_dim: size of each prediction; ``None`` takes the target's size. When given, it must equal the target's.
    """

    reads = frozenset({"all"})

    @validated
    def __init__(self, out_dim: PositiveInt | None = None) -> None:
        super().__init__()
        self.requested_out_dim = out_dim
        self.head: nn.Linear | None = None

    def build(self, encoder_dim: int, out_dim: int, layout: LayoutSpec) -> None:
        if self.requested_out_dim is not None and self.requested_out_dim != out_dim:
            raise ConfigError(
                f"LinearDecoder.out_dim is {self.requested_out_dim} but the target predicts {out_dim} values per "
                f"token; set out_dim to {out_dim} or leave it unset"
            )
        self.out_dim = out_dim
        self.head = nn.Linear(encoder_dim, out_dim)
        self.apply(init_mae_weights)

    def forward(self, latent: Tensor, tokens: TokenBatch, mask: MaskSpec, num_prefix_tokens: int) -> Tensor:
        if not reads_all_tokens(latent, tokens, num_prefix_tokens):
            raise ConfigError(
                "LinearDecoder reads the hidden tokens' own latents: it needs an encoder that sees every token "
                "(ViTEncoder mask_token: true)"
            )
        return self.head(gather_tokens(latent[:, num_prefix_tokens:], mask.ids_decode))


def window_partition(
    x: Tensor, valid: Tensor, window: tuple[int, ...], offset: tuple[int, ...]
) -> tuple[Tensor, Tensor]:
    """Cut a grid ``x`` ``[B, *S, D]`` (and its ``valid`` cells ``[B, *S]``) into windows of ``window`` cells after
    padding ``offset`` empty cells in front of each axis (and enough behind it to fill the last window), so window
    borders sit at cells ``k * window - offset``: ``[B * nW, prod(window), D]`` and ``[B * nW, prod(window)]`` (added
    cells are not valid). Windows shifted by ``s`` cells (Swin's cyclic shift by ``-s`` with its attention mask, whose
    edge windows are cut short) are ``offset = (window - s) % window``."""
    b, *sizes, _ = x.shape
    rank = len(sizes)
    pads = [(o, (-(n + o)) % w) for n, w, o in zip(sizes, window, offset, strict=True)]
    flat = [p for before, after in reversed(pads) for p in (before, after)]  # F.pad lists the last axis first
    x = F.pad(x, (0, 0, *flat))
    valid = F.pad(valid, flat, value=False)
    split = [
        d for n, w, (before, after) in zip(sizes, window, pads, strict=True) for d in ((n + before + after) // w, w)
    ]
    order = [0, *range(1, 2 * rank, 2), *range(2, 2 * rank + 1, 2)]  # batch, window indices, cells in a window
    x = x.reshape(b, *split, -1).permute(*order, 2 * rank + 1).reshape(-1, math.prod(window), x.shape[-1])
    valid = valid.reshape(b, *split).permute(*order).reshape(-1, math.prod(window))
    return x, valid


def window_merge(windows: Tensor, sizes: tuple[int, ...], window: tuple[int, ...], offset: tuple[int, ...]) -> Tensor:
    """The inverse of :func:`window_partition`: windows ``[B * nW, prod(window), D]`` -> the grid ``[B, *S, D]``."""
    rank = len(sizes)
    padded = [n + o + (-(n + o)) % w for n, w, o in zip(sizes, window, offset, strict=True)]
    counts = [p // w for p, w in zip(padded, window, strict=True)]
    d = windows.shape[-1]
    x = windows.reshape(-1, *counts, *window, d)
    order = [0, *(a for i in range(rank) for a in (1 + i, 1 + rank + i)), 1 + 2 * rank]
    x = x.permute(*order).reshape(-1, *padded, d)
    for axis, (n, o) in enumerate(zip(sizes, offset, strict=True)):
        x = x.narrow(1 + axis, o, n)
    return x


class WindowDecoder(MAEDecoder):
    """A decoder whose blocks attend within local windows of the token grid, every other block's windows shifted by
    half a window (Swin, Liu et al. 2021, https://arxiv.org/abs/2103.14030), as Audio-MAE's local decoder (Huang et
    al. 2022, https://arxiv.org/abs/2207.06405): spectrogram structure is local in time and frequency. For grids of
    rank 1 to 3 (series, spectrograms and images, video); the grid, the window per axis and the depth come from the
    configuration and the tokenizer, never fixed.

    The decoder rebuilds the grid: visible latents and mask tokens (each with the decoder's position embedding) at
    their cells; cells that are neither (decoder masking) or padding are left out of attention. The class token, which
    has no cell, is dropped, as Audio-MAE's local decoder does. A window costs ``prod(window)^2`` per head instead of
    the global decoder's ``N^2``.

    Args:
        window: cells per window along each grid axis (an int: the same on every axis; Audio-MAE: 4 x 4).
        shift: how far every other block's windows are shifted: ``True``, half a window along every axis (Swin);
            cells per axis (Audio-MAE shifts ``(2, 0)``: along time only); ``False``, never.
        embed_dim, depth, num_heads, mlp_ratio, qkv_bias, out_dim, pos_embed, norm_eps, grad_checkpointing,
            embed_bias: as :class:`MAEDecoder`.
    """

    @validated
    def __init__(
        self,
        window: PositiveInt | tuple[PositiveInt, ...] = 4,
        shift: bool | tuple[NonNegativeInt, ...] = True,
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
        super().__init__(
            embed_dim,
            depth,
            num_heads,
            mlp_ratio,
            qkv_bias,
            out_dim,
            pos_embed,
            norm_eps,
            grad_checkpointing,
            embed_bias,
        )
        self.window_arg, self.shift = window, shift
        self.window: tuple[int, ...] = ()

    def build(self, encoder_dim: int, out_dim: int, layout: LayoutSpec) -> None:
        if layout.kind != "grid" or layout.rank not in (1, 2, 3):
            raise ConfigError(f"WindowDecoder needs a grid of rank 1 to 3, got a {layout.describe()} layout")
        window = self.window_arg
        self.window = (window,) * layout.rank if isinstance(window, int) else tuple(window)
        if len(self.window) != layout.rank:
            raise ConfigError(
                f"WindowDecoder.window {window} has {len(self.window)} sizes for a rank-{layout.rank} grid"
            )
        shift = self.shift
        if not isinstance(shift, bool) and (
            len(shift) != layout.rank or any(s >= w for s, w in zip(shift, self.window, strict=True))
        ):
            raise ConfigError(
                f"WindowDecoder.shift {shift} needs one shift per grid axis ({layout.rank}), each below its window "
                f"{self.window}"
            )
        super().build(encoder_dim, out_dim, layout)

    def shifts(self, block: int, sizes: tuple[int, ...]) -> tuple[int, ...]:
        """How far block ``block``'s windows are shifted along each axis: 0 on even blocks, ``shift`` on odd ones
        (never past a short axis, so a window as large as the axis is not shifted off it)."""
        if self.shift is False or block % 2 == 0:
            return (0,) * len(sizes)
        shift = tuple(w // 2 for w in self.window) if self.shift is True else tuple(self.shift)
        return tuple(s if n > s else 0 for n, s in zip(sizes, shift, strict=True))

    def offsets(self, block: int, sizes: tuple[int, ...]) -> tuple[int, ...]:
        """The front padding that puts block ``block``'s window borders at ``shift + k * window``."""
        return tuple((w - s) % w for w, s in zip(self.window, self.shifts(block, sizes), strict=True))

    def forward(self, latent: Tensor, tokens: TokenBatch, mask: MaskSpec, num_prefix_tokens: int) -> Tensor:
        layout = tokens.layout
        if layout.kind != "grid" or layout.coords is not None:
            raise ValueError("WindowDecoder needs tokens on a dense grid")
        sizes = tuple(layout.shape)
        x = self.embed(latent[:, num_prefix_tokens:])
        b, n, d = x.shape[0], tokens.num_tokens, x.shape[-1]
        if reads_all_tokens(latent, tokens, num_prefix_tokens):  # an encoder with mask tokens: every cell is a latent
            ids = torch.arange(n, device=x.device).expand(b, -1)
            grid = x + self.pos_embed(tokens, ids).to(x.dtype)
            valid = torch.ones(b, n, dtype=torch.bool, device=x.device)
        else:
            visible = x + self.pos_embed(tokens, mask.ids_keep).to(x.dtype)
            decoded = (self.mask_token + self.pos_embed(tokens, mask.ids_decode)).to(x.dtype)
            grid = x.new_zeros(b, n, d)
            grid = grid.scatter(1, mask.ids_keep[..., None].expand(-1, -1, d), visible)
            grid = grid.scatter(1, mask.ids_decode[..., None].expand(-1, -1, d), decoded)
            valid = torch.zeros(b, n, dtype=torch.bool, device=x.device)
            valid = valid.scatter(1, mask.ids_keep, True).scatter(1, mask.ids_decode, True)
        if tokens.padding_mask is not None:
            valid = valid & ~tokens.padding_mask
        grid, valid = grid.view(b, *sizes, d), valid.view(b, *sizes)
        checkpoint = self.grad_checkpointing and self.training
        for i, block in enumerate(self.blocks):
            offset = self.offsets(i, sizes)
            windows, keys = window_partition(grid, valid, self.window, offset)
            keys = keys | ~keys.any(dim=1, keepdim=True)  # a window with no token: let it attend (its output is unused)
            windows = run_blocks(nn.ModuleList([block]), windows, keys[:, None, None, :], checkpoint)
            grid = window_merge(windows, sizes, self.window, offset)
            grid = torch.where(valid[..., None], grid, 0.0)  # left-out cells stay empty
        out = torch.gather(grid.reshape(b, n, d), 1, mask.ids_decode[..., None].expand(-1, -1, d))
        return self.head(self.norm(out))


class CrossAttention(nn.Module):
    """Multi-head attention of ``x`` ``[B, M, D]`` (queries) to ``context`` ``[B, K, D]`` (keys and values) through
    SDPA, with :class:`~anymae.model.layers.Attention`'s CPU precision rule (low-precision inputs attended in float32)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, context: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        (b, m, d), k_len = x.shape, context.shape[1]
        q, kv = self.q(x), self.kv(context)
        dtype = q.dtype
        upcast = q.device.type == "cpu" and dtype in (torch.bfloat16, torch.float16)
        with torch.autocast("cpu", enabled=False) if upcast else nullcontext():
            if upcast:
                q, kv = q.float(), kv.float()
            q = q.view(b, m, self.num_heads, self.head_dim).transpose(1, 2)
            k, v = (t.transpose(1, 2) for t in kv.view(b, k_len, 2, self.num_heads, self.head_dim).unbind(2))
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
            out = out.transpose(1, 2).reshape(b, m, d)
        return self.proj(out.to(dtype))


class CrossAttentionBlock(nn.Module):
    """CrossMAE's pre-norm decoder block: optional self-attention among the queries, cross-attention from the queries
    to the encoder's tokens, then an MLP, each with a residual."""

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, norm_eps: float, self_attention: bool
    ) -> None:
        super().__init__()
        norm = partial(nn.LayerNorm, eps=norm_eps)
        self.norm0 = norm(dim) if self_attention else None
        self.self_attn = Attention(dim, num_heads, qkv_bias=qkv_bias) if self_attention else None
        self.norm1 = norm(dim)
        self.cross_attn = CrossAttention(dim, num_heads, qkv_bias)
        self.norm2 = norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU)

    def forward(
        self, x: Tensor, context: Tensor, cross_mask: Tensor | None = None, self_mask: Tensor | None = None
    ) -> Tensor:
        if self.self_attn is not None:
            x = x + self.self_attn(self.norm0(x), attn_mask=self_mask)
        x = x + self.cross_attn(self.norm1(x), context, cross_mask)
        return x + self.mlp(self.norm2(x))


class CrossMAEDecoder(MAEDecoder):
    """CrossMAE's decoder (Fu et al. 2024, "Rethinking Patch Dependence for Masked Autoencoders",
    https://arxiv.org/abs/2401.14391): the queries are the decoded tokens only -- a learned mask token plus the
    decoder's position embedding of each decoded position -- and each block lets them cross-attend to the encoder's
    tokens (the latents projected to the decoder width plus their position embeddings; the class token included)
    instead of running self-attention over ``[visible | mask tokens]`` as :class:`MAEDecoder` does. Without
    self-attention among the queries (CrossMAE's default) every hidden token is predicted independently of the
    others, so decoding a subset of them gives the same predictions for that subset, and the decoder's cost grows
    with ``decoded x visible`` instead of ``(visible + decoded)^2``.

    Partial reconstruction (CrossMAE's ``kept_mask_ratio``: predict only some of the hidden tokens) is decoder
    masking: wrap the masker in :class:`~anymae.DualMasker` with ``strategy="random"``; ``decoder_ratio`` is the share
    of all positions *not* decoded, so CrossMAE's 0.25 of the tokens decoded at mask ratio 0.75 is
    ``DualMasker(RandomMasker(mask_ratio=0.75), decoder_ratio=0.75, strategy="random")``. Unlike CrossMAE, which picks
    the decoded tokens among the hidden ones, DualMasker picks them among all positions: decoded tokens the encoder
    saw are predicted but not in the loss, so about 0.19 of the tokens (not 0.25) count in it.

    Feature mixing (CrossMAE's ``weight_fm``): each decoder block cross-attends to its own learned mix of the encoder's
    layers -- the first block's input and every block's output -- instead of the final latents: a
    ``[depth, encoder depth + 1]`` weight matrix (no softmax, as CrossMAE's ``WeightedFeatureMaps``), then a LayerNorm
    per decoder block, then the projection to the decoder's width. One difference: the last block's output enters
    after the encoder's final norm (CrossMAE leaves that norm out of the mix, so it never trains), so that every
    parameter takes part in the loss, as DDP requires.

    Args:
        embed_dim: decoder width (512 in CrossMAE's ViT-B setting).
        depth: number of blocks (8).
        num_heads: attention heads (16).
        mlp_ratio: hidden width of each block's MLP relative to ``embed_dim``.
        self_attention: self-attention among the queries before each cross-attention (off in CrossMAE, where a
            hidden token's prediction depends on the visible tokens only).
        weight_fm: feature mixing (above); needs an encoder that exposes its layers (``ViTEncoder``).
        qkv_bias, out_dim, pos_embed, norm_eps, grad_checkpointing, embed_bias: as :class:`MAEDecoder`.
    """

    @validated
    def __init__(
        self,
        embed_dim: PositiveInt = 512,
        depth: PositiveInt = 8,
        num_heads: PositiveInt = 16,
        mlp_ratio: PositiveFloat = 4.0,
        self_attention: bool = False,
        weight_fm: bool = False,
        qkv_bias: bool = True,
        out_dim: PositiveInt | None = None,
        pos_embed: PositionEmbedding | None = None,
        norm_eps: PositiveFloat = 1e-6,
        grad_checkpointing: bool = False,
        embed_bias: bool = True,
    ) -> None:
        self.self_attention = self_attention  # read by block(), which MAEDecoder's constructor calls
        super().__init__(
            embed_dim,
            depth,
            num_heads,
            mlp_ratio,
            qkv_bias,
            out_dim,
            pos_embed,
            norm_eps,
            grad_checkpointing,
            embed_bias,
        )

        self.encoder_layers = weight_fm
        self.norm_eps = norm_eps
        self.feature_mix: nn.Linear | None = None
        self.feature_norms: nn.ModuleList | None = None

    def block(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, norm_eps: float) -> nn.Module:
        return CrossAttentionBlock(dim, num_heads, mlp_ratio, qkv_bias, norm_eps, self.self_attention)

    def attach(self, encoder: Encoder) -> None:
        if not self.encoder_layers:
            return
        if encoder.num_layers < 1:
            raise ConfigError(
                f"CrossMAEDecoder.weight_fm needs an encoder with layers; {type(encoder).__name__} has none"
            )
        depth = len(self.blocks)
        self.feature_mix = nn.Linear(encoder.num_layers + 1, depth, bias=False)
        nn.init.xavier_uniform_(self.feature_mix.weight)  # what CrossMAE's weights end up with (its _init_weights)
        self.feature_norms = nn.ModuleList(nn.LayerNorm(encoder.embed_dim, eps=self.norm_eps) for _ in range(depth))

    def _context(self, latent: Tensor, tokens: TokenBatch, ids_keep: Tensor, num_prefix_tokens: int) -> Tensor:
        """Keys and values: the latents at the decoder's width, the visible ones with their position embedding."""
        x = self.embed(latent)
        prefix, visible = x[:, :num_prefix_tokens], x[:, num_prefix_tokens:]
        return torch.cat([prefix, visible + self.pos_embed(tokens, ids_keep).to(x.dtype)], dim=1)

    def forward(
        self,
        latent: Tensor,
        tokens: TokenBatch,
        mask: MaskSpec,
        num_prefix_tokens: int,
        layers: list[Tensor] | None = None,
    ) -> Tensor:
        ids_keep = mask.ids_keep
        if reads_all_tokens(latent, tokens, num_prefix_tokens):  # an encoder with mask tokens: attend to all
            ids_keep = torch.arange(tokens.num_tokens, device=latent.device).expand(latent.shape[0], -1)
        if self.encoder_layers:
            if layers is None:
                raise ValueError("CrossMAEDecoder(weight_fm=True) needs the encoder's layers (layers=...)")
            # The last layer enters after the encoder's final norm (CrossMAE skips that norm): the norm then trains
            # with the rest, so every parameter takes part in the loss (DDP needs it) and evaluation reads a trained
            # norm.
            stacked = torch.stack([*layers[:-1], latent], dim=-1)
            mixed = self.feature_mix(stacked).unbind(-1)  # one [B, P + K, D_enc] per block
            contexts = [
                self._context(norm(m), tokens, ids_keep, num_prefix_tokens)
                for norm, m in zip(self.feature_norms, mixed, strict=True)
            ]
        else:
            contexts = [self._context(latent, tokens, ids_keep, num_prefix_tokens)] * len(self.blocks)
        x = contexts[0]
        queries = (self.mask_token + self.pos_embed(tokens, mask.ids_decode)).to(x.dtype)
        queries = queries.expand(x.shape[0], -1, -1)
        cross_mask = self_mask = None
        if tokens.padding_mask is not None:  # padded keys must not leak into real tokens through attention
            cross_mask = key_padding_mask(torch.gather(tokens.padding_mask, 1, ids_keep), num_prefix_tokens)
            if self.self_attention:
                keep = ~torch.gather(tokens.padding_mask, 1, mask.ids_decode)
                keep = keep | ~keep.any(dim=1, keepdim=True)  # a row decoding only padding: its output is unused
                self_mask = keep[:, None, None, :]
        checkpoint = self.grad_checkpointing and self.training
        for block, context in zip(self.blocks, contexts, strict=True):
            if checkpoint:
                queries = torch.utils.checkpoint.checkpoint(
                    block, queries, context, cross_mask, self_mask, use_reentrant=False
                )
            else:
                queries = block(queries, context, cross_mask, self_mask)
        return self.head(self.norm(queries))
