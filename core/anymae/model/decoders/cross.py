"""CrossMAE's decoder (Fu et al. 2024, https://arxiv.org/abs/2401.14391): the mask tokens only cross-attend to the
encoder's tokens, so each hidden token is predicted on its own."""

from contextlib import nullcontext
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from timm.layers import Mlp
from torch import Tensor, nn

from ...config import ConfigError, validated
from ..layers import Attention, key_padding_mask
from ..specs import BuildContext
from ..types import EncoderOutput, MaskSpec, TokenBatch
from .base import StemDecoder

__all__ = ["CrossAttention", "CrossAttentionBlock", "CrossMAEDecoder"]


class CrossMAEDecoder(StemDecoder):
    """CrossMAE's decoder (Fu et al. 2024, "Rethinking Patch Dependence for Masked Autoencoders",
    https://arxiv.org/abs/2401.14391): the queries are the decoded tokens only -- a learned mask token plus the
    decoder's position embedding of each decoded position -- and each block lets them cross-attend to the encoder's
    tokens (the latents projected to the decoder width plus their position embeddings; the class token included)
    instead of running self-attention over ``[visible | mask tokens]`` as :class:`~anymae.MAEDecoder` does. Without
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
        self_attention: self-attention among the queries before each cross-attention (off in CrossMAE, where a
            hidden token's prediction depends on the visible tokens only).
        weight_fm: feature mixing (above); needs an encoder that exposes its layers (``ViTEncoder``).
        embed_dim, depth, num_heads, mlp_ratio, qkv_bias, out_dim, pos_embed, norm_eps, grad_checkpointing,
            embed_bias: the transformer decoder's (:class:`~anymae.model.decoders.base.StemDecoder`); CrossMAE's
            ViT-B setting is its defaults (width 512, 8 blocks, 16 heads).
    """

    @validated
    def __init__(self, self_attention: bool = False, weight_fm: bool = False, **kwargs: Any) -> None:
        self.self_attention = self_attention  # before the blocks are made (block() reads it)
        super().__init__(**kwargs)
        self.reads_layers = weight_fm
        self.feature_mix: nn.Linear | None = None
        self.feature_norms: nn.ModuleList | None = None

    def block(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, norm_eps: float) -> nn.Module:
        return CrossAttentionBlock(dim, num_heads, mlp_ratio, qkv_bias, norm_eps, self.self_attention)

    def build(self, ctx: BuildContext) -> None:
        self.out_dim = self.stem.build(ctx, self)
        if not self.reads_layers:
            return
        encoder = ctx.encoder
        if encoder.num_layers < 1:
            raise ConfigError(
                f"CrossMAEDecoder.weight_fm needs an encoder with layers; {type(encoder).__name__} has none"
            )
        depth = len(self.blocks)
        self.feature_mix = nn.Linear(encoder.num_layers + 1, depth, bias=False)
        nn.init.xavier_uniform_(self.feature_mix.weight)  # what CrossMAE's weights end up with (its _init_weights)
        eps = self.stem.norm.eps
        self.feature_norms = nn.ModuleList(nn.LayerNorm(encoder.embed_dim, eps=eps) for _ in range(depth))

    def forward(self, encoded: EncoderOutput, tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        stem, ids, p = self.stem, encoded.ids, encoded.num_prefix
        if self.reads_layers:
            if encoded.layers is None:
                raise ValueError("CrossMAEDecoder(weight_fm=True) needs the encoder's layers (EncoderOutput.layers)")
            if self.feature_mix is None or self.feature_norms is None:
                raise RuntimeError("CrossMAEDecoder(weight_fm=True) is not built (the model builds its parts)")
            # The last layer enters after the encoder's final norm (CrossMAE skips that norm): the norm then trains
            # with the rest, so every parameter takes part in the loss (DDP needs it) and evaluation reads a trained
            # norm.
            stacked = torch.stack([*encoded.layers[:-1], encoded.latent], dim=-1)
            mixed = self.feature_mix(stacked).unbind(-1)  # one [B, P + K, D_enc] per block
            contexts = [
                stem.context(norm(m), tokens, ids, p) for norm, m in zip(self.feature_norms, mixed, strict=True)
            ]
        else:
            contexts = [stem.context(encoded.latent, tokens, ids, p)] * len(self.blocks)
        queries = stem.queries(tokens, mask.ids_decode, contexts[0].dtype).expand(contexts[0].shape[0], -1, -1)
        cross_mask = self_mask = None
        if tokens.padding_mask is not None:  # padded keys must not leak into real tokens through attention
            cross_mask = key_padding_mask(torch.gather(tokens.padding_mask, 1, ids), p)
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
        return stem.predict(queries)


class CrossAttention(nn.Module):
    """Multi-head attention of ``x`` ``[B, M, D]`` (queries) to ``context`` ``[B, K, D]`` (keys and values) through
    SDPA, with :class:`~anymae.model.layers.Attention`'s CPU precision rule (low-precision inputs attended in
    float32)."""

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
        if self.self_attn is not None and self.norm0 is not None:  # both or neither: self_attention
            x = x + self.self_attn(self.norm0(x), attn_mask=self_mask)
        x = x + self.cross_attn(self.norm1(x), context, cross_mask)
        return x + self.mlp(self.norm2(x))
