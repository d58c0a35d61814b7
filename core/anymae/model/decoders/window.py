"""A decoder whose blocks attend within local windows of the token grid (Swin-style), as Audio-MAE's local decoder."""

import math
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import NonNegativeInt, PositiveInt
from torch import Tensor, nn

from ...config import ConfigError, validated
from ..layers import run_blocks
from ..specs import BuildContext
from ..types import EncoderOutput, MaskSpec, TokenBatch
from .base import StemDecoder

__all__ = ["WindowDecoder", "window_merge", "window_partition"]


class WindowDecoder(StemDecoder):
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
            embed_bias: the transformer decoder's (:class:`~anymae.model.decoders.base.StemDecoder`).
    """

    @validated
    def __init__(
        self,
        window: PositiveInt | tuple[PositiveInt, ...] = 4,
        shift: bool | tuple[NonNegativeInt, ...] = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.window_arg, self.shift = window, shift
        self.window: tuple[int, ...] = ()

    def build(self, ctx: BuildContext) -> None:
        layout = ctx.tokens.layout
        if layout.kind != "grid" or layout.rank not in (1, 2, 3):
            raise ConfigError(f"WindowDecoder needs a grid of rank 1 to 3, got a {layout.describe()} layout")
        window = self.window_arg
        self.window = (window,) * layout.rank if isinstance(window, int) else tuple(window)
        if len(self.window) != layout.rank:
            raise ConfigError(
                f"WindowDecoder.window {window} has {len(self.window)} sizes for a rank-{layout.rank} grid"
            )
        grid = tuple(layout.shape or ())
        if grid and not layout.variable_length and any(w > n for w, n in zip(self.window, grid, strict=True)):
            raise ConfigError(
                f"WindowDecoder.window {list(self.window)} is larger than the token grid {'x'.join(map(str, grid))}: "
                f"a window takes at most the grid's size along each axis ({list(grid)}); a window as large as the "
                "grid is global attention (MAEDecoder)"
            )
        shift = self.shift
        if not isinstance(shift, bool) and (
            len(shift) != layout.rank or any(s >= w for s, w in zip(shift, self.window, strict=True))
        ):
            raise ConfigError(
                f"WindowDecoder.shift {shift} needs one shift per grid axis ({layout.rank}), each below its window "
                f"{self.window}"
            )
        self.out_dim = self.stem.build(ctx, self, mask_token=not ctx.encoder.sees_all_tokens)

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

    def forward(self, encoded: EncoderOutput, tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        layout = tokens.layout
        if layout.kind != "grid" or layout.coords is not None:
            raise ValueError("WindowDecoder needs tokens on a dense grid")
        sizes, stem = tuple(layout.shape), self.stem
        # the class token has no cell: dropped, as Audio-MAE's local decoder does
        x = stem.context(encoded.body, tokens, encoded.ids, 0)
        b, n, d = x.shape[0], tokens.num_tokens, x.shape[-1]
        if encoded.every_token:  # an encoder with mask tokens: every cell is a latent
            grid, valid = x, torch.ones(b, n, dtype=torch.bool, device=x.device)
        else:
            grid = x.new_zeros(b, n, d).scatter(1, encoded.ids[..., None].expand(-1, -1, d), x)
            decoded = stem.queries(tokens, mask.ids_decode, x.dtype)
            grid = grid.scatter(1, mask.ids_decode[..., None].expand(-1, -1, d), decoded)
            valid = torch.zeros(b, n, dtype=torch.bool, device=x.device)
            valid = valid.scatter(1, encoded.ids, True).scatter(1, mask.ids_decode, True)
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
        return stem.predict(out)


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
