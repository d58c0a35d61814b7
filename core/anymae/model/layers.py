"""Transformer building blocks shared by the encoder, the decoders and the learned maskers: timm's pre-norm
``Block`` with our attention, MAE's weight initialisation, and attention masks for padded batches.

:class:`Attention` keeps timm's parameters and names (``qkv``, ``proj``: weights move to and from timm and HF
unchanged) and always attends through ``torch.nn.functional.scaled_dot_product_attention``. One difference, for
speed: on the CPU, SDPA's flash kernel is often slower for bfloat16/float16 inputs than for float32 ones, so
low-precision queries, keys and values are attended in float32 there and the result cast back (the same math, at
higher precision) wherever that is faster. Which is faster depends on the CPU and the sequence length (forward +
backward, 2 cores; an Intel Xeon without fast bf16: 12.3 ms in bf16 vs 5.5 ms in fp32 for ViT-S/16's 50 encoder
tokens, 59.7 vs 34.2 ms for its decoder's 197; an AMD EPYC with AVX512-BF16: 13.6 vs 5.0 ms for 50 tokens but 54.5 vs
73.0 ms for a VideoMAE decoder's 1,568), so :func:`cpu_attends_in_float32` times both once per process for each
dtype, head size and power-of-two length, as ``torch.backends.cudnn.benchmark`` picks a kernel. On CUDA nothing
changes.
"""

import time
from contextlib import nullcontext
from functools import partial

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from timm.layers import Attention as TimmAttention
from timm.layers import DropPath
from timm.models.vision_transformer import Block
from torch import Tensor, nn

__all__ = [
    "Attention",
    "cpu_attends_in_float32",
    "init_mae_weights",
    "set_drop_path",
    "key_padding_mask",
    "run_blocks",
    "transformer_block",
]

#: (dtype, head size, power-of-two length) -> whether the CPU attends faster on float32 copies (timed once each)
_FLOAT32_IS_FASTER: dict[tuple[torch.dtype, int, int], bool] = {}


def cpu_attends_in_float32(dtype: torch.dtype, length: int, heads: int, head_dim: int) -> bool:
    """Whether SDPA on the CPU runs faster on float32 copies of ``dtype`` queries, keys and values than on them as they
    are, for ``length`` tokens: timed once per process for each dtype, head size and length rounded up to a power of
    two, up to 2,048 (one sample of ``heads`` heads, forward and backward, best of 2 after a warm-up; longer
    sequences take the 2,048 tokens' answer, as the cost of timing grows with the square of the length). Inside
    ``torch.compile`` nothing is timed: an untimed case attends in float32."""
    bucket = min(2048, 1 << max(0, length - 1).bit_length())
    key = (dtype, head_dim, bucket)
    if key not in _FLOAT32_IS_FASTER:
        if torch.compiler.is_compiling():
            return True
        _FLOAT32_IS_FASTER[key] = _float32_is_faster(dtype, bucket, heads, head_dim)
    return _FLOAT32_IS_FASTER[key]


def _float32_is_faster(dtype: torch.dtype, length: int, heads: int, head_dim: int) -> bool:
    generator = torch.Generator().manual_seed(0)
    with torch.autocast("cpu", enabled=False), torch.enable_grad():
        q, k, v = (torch.randn(1, heads, length, head_dim, generator=generator).to(dtype) for _ in range(3))

        def seconds(upcast: bool) -> float:
            times = []
            for _ in range(3):
                leaves = [t.clone().requires_grad_() for t in (q, k, v)]
                start = time.perf_counter()
                a, b, c = (t.float() for t in leaves) if upcast else leaves
                F.scaled_dot_product_attention(a, b, c).to(dtype).sum().backward()
                times.append(time.perf_counter() - start)
            return min(times[1:])  # the first is a warm-up

        return seconds(True) < seconds(False)


class Attention(TimmAttention):
    """Multi-head self-attention through SDPA (see the module docstring for the CPU precision rule)."""

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False) -> Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(x)
        dtype = qkv.dtype
        upcast = (
            qkv.device.type == "cpu"
            and dtype in (torch.bfloat16, torch.float16)
            and cpu_attends_in_float32(dtype, n, self.num_heads, self.head_dim)
        )
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


def set_drop_path(blocks: nn.ModuleList, rate: float) -> None:
    """Stochastic depth rising linearly from 0 to ``rate`` over ``blocks`` (timm blocks: ``drop_path1`` after
    attention, ``drop_path2`` after the MLP), as MAE fine-tunes and Point-MAE pretrains."""
    for block, block_rate in zip(blocks, torch.linspace(0, rate, len(blocks)).tolist(), strict=True):
        if not isinstance(block, Block):
            raise TypeError(f"{type(block).__name__} has no stochastic depth: set_drop_path takes timm blocks")
        block.drop_path1 = DropPath(block_rate) if block_rate > 0 else nn.Identity()
        block.drop_path2 = DropPath(block_rate) if block_rate > 0 else nn.Identity()


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
