"""AttMask (Kakogeorgiou et al. ECCV 2022, https://arxiv.org/abs/2203.12719): hide the tokens a slow (EMA) copy of the
encoder's class token attends to most, optionally revealing a few of them as hints. Keeps the library's masking rules
(:mod:`anymae.masking.base`); without a model it masks uniformly at random.
"""

from typing import Annotated, Literal, cast

import torch
from pydantic import Field
from torch import Tensor

from ...config import ConfigError, validated
from ...model.encoder import Encoder
from ...model.specs import BuildContext
from ...model.types import MaskSpec, TokenBatch
from ..base import real_token_count, uniform
from ..random import RandomMasker
from .ema import ema_update, frozen_copy

__all__ = ["AttentionMasker"]


class AttentionMasker(RandomMasker):
    """AttMask: hide the tokens that the class token of a running (EMA) copy of the encoder attends to most, in its
    last block, with every token visible (AttMask-High); or reveal some of the most attended as hints (AttMask-Hint).

    ``"hints"``: of the ``int(N * show_max)`` most attended tokens, ``int(N * show_max * r)`` chosen at random are
    visible, with ``r`` drawn per batch from U(0.1, 0.5) (AttMask's hint share); the rest of the visible tokens are
    the least attended, so the count stays ``K``. The attention of padding is ``-inf`` and padding is never visible.

    Differences from AttMask: AttMask (on iBOT) draws the mask ratio per batch from U(0.1, 0.5) and masks only half of
    the images; here every sample hides ``mask_ratio`` of its tokens, the same count in every sample, as every masker
    of the library. The encoder needs a class token (refused at build otherwise). Before :meth:`build` it masks
    uniformly at random. Nothing is learned from feedback.

    Args:
        mask_ratio: fraction of tokens hidden (0.75, MAE's).
        mode: ``"high"`` (AttMask-High, the default) or ``"hints"`` (AttMask-Hint).
        show_max: share of the tokens, the most attended, from which hints are revealed (0.1 in AttMask).
        ema: momentum of the encoder's running copy that gives the attention (0.996, iBOT's teacher); 0 uses the
            online encoder.
    """

    #: AttMask-Hint's share of the ``show_max`` most attended tokens revealed, drawn per batch.
    hint_range: tuple[float, float] = (0.1, 0.5)

    @validated
    def __init__(
        self,
        mask_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.75,
        mode: Literal["high", "hints"] = "high",
        show_max: Annotated[float, Field(gt=0, le=1)] = 0.1,
        ema: Annotated[float, Field(ge=0, lt=1)] = 0.996,
    ) -> None:
        super().__init__(mask_ratio)
        self.mask_ratio, self.mode, self.show_max, self.ema = mask_ratio, mode, show_max, ema
        self.ema_encoder: Encoder | None = None  # with ema > 0, once built
        self.online: Encoder | None = None  # the model's encoder, once built

    def build(self, ctx: BuildContext) -> None:
        super().build(ctx)
        encoder = cast(Encoder, ctx.encoder)  # the model's: this masker scores with it (not only reads its sizes)
        if encoder.num_prefix_tokens == 0:
            raise ConfigError(
                f"AttentionMasker reads the class token's attention, but {type(encoder).__name__} has no class token "
                "(set class_token: true)"
            )
        if self.ema > 0:
            self.ema_encoder = frozen_copy(encoder)
        self.__dict__["online"] = encoder  # the model's own: not a submodule of the masker (not in its state)

    def train(self, mode: bool = True) -> "AttentionMasker":
        super().train(mode)
        if self.ema_encoder is not None:
            self.ema_encoder.eval()
        return self

    @torch.no_grad()
    def attention(self, tokens: TokenBatch) -> Tensor:
        """``[B, N]`` float32 class-token attention of the scoring encoder, ``-inf`` at padding."""
        encoder = self.ema_encoder if self.ema > 0 else self.online
        if encoder is None:
            raise RuntimeError("AttentionMasker.attention needs the model's encoder: build the masker first")
        attention = encoder.class_attention(tokens).float()
        if tokens.padding_mask is not None:
            attention = attention.masked_fill(tokens.padding_mask, float("-inf"))
        return attention

    def forward(
        self, tokens: TokenBatch, generator: torch.Generator | None = None, noise: Tensor | None = None
    ) -> MaskSpec:
        if self.online is None or noise is not None:
            return super().forward(tokens, generator, noise)
        if self.training and torch.is_grad_enabled() and self.ema > 0 and self.ema_encoder is not None:
            ema_update(self.ema_encoder, self.online, self.ema)
        attention = self.attention(tokens)
        b, n = attention.shape
        # rank 0 for the most attended: the lowest scores (the least attended) stay visible
        order = attention.argsort(dim=1, descending=True)
        rank = torch.empty_like(order).scatter_(1, order, tokens.all_ids().contiguous())
        scores = 1 - (rank.float() + 1) / n  # in [0, 1): the most attended highest
        if self.mode == "hints":
            real = real_token_count(tokens)
            top = int(real * self.show_max)
            lo, hi = self.hint_range
            share = lo + (hi - lo) * uniform((1,), tokens, generator)  # per batch; a tensor, so no device sync
            num_hints = (real * self.show_max * share).floor()
            # a random num_hints of each sample's `top` most attended are revealed: those whose random rank is lowest
            rank_among_top = uniform((b, top), tokens, generator).argsort(dim=1).argsort(dim=1)
            ids_top = order[:, :top]
            top_scores = torch.where(rank_among_top < num_hints, -1.0, torch.gather(scores, 1, ids_top))
            scores = scores.scatter(1, ids_top, top_scores)
        return super().forward(tokens, generator, scores)
