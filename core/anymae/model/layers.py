"""Transformer building blocks shared by the encoder, the decoders and the learned maskers: timm's pre-norm
``Block`` with our attention, MAE's weight initialisation, and attention masks for padded batches.

:class:`Attention` keeps timm's parameters and names (``qkv``, ``proj``: weights move to and from timm and HF
unchanged) and always attends through ``torch.nn.functional.scaled_dot_product_attention``. One difference, for
speed: on the CPU, SDPA's flash kernel is slower for bfloat16/float16 inputs than for float32 ones (ViT-S/16 shapes,
forward + backward, 2 cores: 12.3 ms in bf16 vs 5.5 ms in fp32 for the encoder's 50 tokens, 59.7 vs 34.2 ms for the
decoder's 197), so low-precision queries, keys and values are attended in float32 there and the result cast back: the
same math, at higher precision, faster. On CUDA nothing changes.
"""

from contextlib import nullcontext
from functools import partial

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from timm.layers import Attention as TimmAttention
from timm.models.vision_transformer import Block
from torch import Tensor, nn

__all__ = ["Attention", "init_mae_weights", "key_padding_mask", "run_blocks", "transformer_block"]


class Attention(TimmAttention):
    """Multi-head self-attention through SDPA (see the module docstring for the CPU precision rule)."""

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False) -> Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(x)
        dtype = qkv.dtype
        upcast = qkv.device.type == "cpu" and dtype in (torch.bfloat16, torch.float16)
        # Cast the contiguous [B, N, 3D] projection, not the strided per-head views: 3-4x cheaper copies.
        with torch.autocast("cpu", enabled=False) if upcast else nullcontext():
            if upcast:
                qkv = qkv.float()
            # Split then transpose each (rather than one 5-D permute): its backward copies far less.
            q, k, v = (t.transpose(1, 2) for t in qkv.view(b, n, 3, self.num_heads, self.head_dim).unbind(2))
            q, k = self.q_norm(q), self.k_norm(k)
            x = F.scaled_dot_product_attention(
                q, k, v, attn_mask=attn_mask, dropout_p=self.attn_drop.p if self.training else 0.0, is_causal=is_causal
            )
            x = x.transpose(1, 2).reshape(b, n, self.attn_dim)
        return self.proj_drop(self.proj(self.norm(x.to(dtype))))


def transformer_block(
    dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, norm_eps: float, drop_path: float = 0.0
) -> Block:
    """timm's pre-norm transformer block (LayerNorm, attention, LayerNorm, GELU MLP) with :class:`Attention`."""
    return Block(
        dim,
        num_heads,
        mlp_ratio=mlp_ratio,
        qkv_bias=qkv_bias,
        drop_path=drop_path,
        norm_layer=partial(nn.LayerNorm, eps=norm_eps),  # type: ignore[arg-type]  # timm says type[Module]; it calls it
        attn_layer=Attention,
    )


def run_blocks(
    blocks: nn.ModuleList, x: Tensor, attn_mask: Tensor | None, checkpoint: bool, pos: Tensor | None = None
) -> Tensor:
    """Apply the blocks in turn, with activation checkpointing when asked; ``pos`` is added to every block's input
    (Point-MAE's transformers: ``x = block(x + pos)``)."""
    for block in blocks:
        if pos is not None:
            x = x + pos
        if checkpoint:
            x = torch.utils.checkpoint.checkpoint(block, x, attn_mask, use_reentrant=False)
        else:
            x = block(x, attn_mask=attn_mask)
    return x


def init_mae_weights(module: nn.Module) -> None:
    """MAE's ``_init_weights``: xavier-uniform linear weights, zero biases, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def key_padding_mask(padding: Tensor | None, prefix: int) -> Tensor | None:
    """Attention mask ``[B, 1, 1, P + N]`` (True = may attend) that hides padded keys, or ``None``."""
    if padding is None:
        return None
    keep = ~padding
    if prefix:
        keep = torch.cat([keep.new_ones(keep.shape[0], prefix), keep], dim=1)
    return keep[:, None, None, :]
