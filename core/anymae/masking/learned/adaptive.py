"""AdaMAE's adaptive masking (Bandara et al. CVPR 2023, https://arxiv.org/abs/2211.09120): a small sampling network
scores every token; the visible tokens are drawn from its softmax, and the network learns by REINFORCE to draw the
tokens the model reconstructs worst (high-information regions) more often. Keeps the library's masking rules
(:mod:`anymae.masking.base`); before :meth:`~AdaptiveMasker.build` it masks uniformly at random.
"""

from typing import Annotated

import torch
from pydantic import Field, PositiveInt
from torch import Tensor, nn

from ...config import ConfigError, validated
from ...model.layers import init_mae_weights, key_padding_mask, transformer_block
from ...model.position import PositionEmbedding, default_position_embedding
from ...model.specs import BuildContext
from ...model.types import MaskSpec, Step, TokenBatch
from ..random import RandomMasker

__all__ = ["AdaptiveMasker"]


class AdaptiveMasker(RandomMasker):
    """AdaMAE's adaptive masking: a sampling network turns the tokens into a categorical distribution over them, and
    the visible tokens are a draw of ``K`` tokens from it without replacement.

    The sampling network (created in :meth:`build`) is a linear embedding of the tokens, a position embedding, one
    pre-norm transformer block (no qkv bias, LayerNorm eps 1e-6, MLP ratio 4, as AdaMAE's) and a linear head to one
    logit per token; padding gets probability 0. It learns from each step's per-token loss by REINFORCE (AdaMAE's
    sampling loss): ``-mean(log p[i] * loss[i])`` over the hidden, decoded, non-padding tokens, times
    ``loss_weight``: the hidden tokens that were hard to reconstruct become likelier to be drawn visible next time, and,
    since the probabilities sum to one, the easy ones less likely (AdaMAE's visible tokens gather in high-information
    regions). It is returned as the auxiliary loss ``"sampling"``.

    Differences from AdaMAE: the sampling network has its own token embedding (AdaMAE shares the encoder's patch
    embedding) and takes the layout's default position embedding (fixed sin-cos on grids; AdaMAE learns a
    zero-initialised table), so it serves any layout. Once built, the mask comes from the network (it needs only the
    tokens); before :meth:`build` it is uniform random.
    With ``noise`` given, the noise chooses the visible tokens (the network's log-probabilities still feed the
    sampling loss).

    Args:
        mask_ratio: fraction of tokens hidden, in (0, 1); ``int(N * (1 - mask_ratio))`` stay visible, as MAE. AdaMAE:
            0.95 (video, its default here).
        dim: width of the sampling network (``None``: the encoder's ``embed_dim``, as AdaMAE).
        num_heads: attention heads of its block (8 in AdaMAE); must divide ``dim``.
        loss_weight: weight of the sampling loss (AdaMAE's lambda: 1e-4).
    """

    @validated
    def __init__(
        self,
        mask_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.95,
        dim: PositiveInt | None = None,
        num_heads: PositiveInt = 8,
        loss_weight: Annotated[float, Field(ge=0)] = 1e-4,
    ) -> None:
        super().__init__(mask_ratio)
        if dim is not None and dim % num_heads:
            raise ConfigError(f"AdaptiveMasker.dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.dim, self.num_heads = dim, num_heads
        self.loss_weight = loss_weight
        # the sampling network, once built (before, the masker is random)
        self.embed: nn.Linear | None = None
        self.pos_embed: PositionEmbedding | None = None
        self.block: nn.Module | None = None
        self.head: nn.Linear | None = None
        self._log_probs: Tensor | None = None  # this step's log-probabilities, for feedback

    def build(self, ctx: BuildContext) -> None:
        super().build(ctx)
        tokens, dim = ctx.tokens, self.dim or ctx.encoder.embed_dim
        if dim % self.num_heads:
            raise ConfigError(
                f"AdaptiveMasker: the sampling network's width {dim} (the encoder's embed_dim unless dim is set) must "
                f"be divisible by num_heads ({self.num_heads})"
            )
        self.embed = nn.Linear(tokens.token_dim, dim)
        self.pos_embed = default_position_embedding(tokens.layout)
        self.pos_embed.build(dim, tokens.layout)
        self.block = transformer_block(dim, self.num_heads, 4.0, qkv_bias=False, norm_eps=1e-6)
        self.head = nn.Linear(dim, 1)
        for part in (self.embed, self.block, self.head):
            part.apply(init_mae_weights)

    def log_probs(self, tokens: TokenBatch) -> Tensor:
        """``[B, N]`` float32 log-probabilities of the sampling network (``-inf`` at padding)."""
        embed, pos_embed, block, head = self.embed, self.pos_embed, self.block, self.head
        if embed is None or pos_embed is None or block is None or head is None:
            raise RuntimeError("AdaptiveMasker.log_probs needs the sampling network: build the masker first")
        x = embed(tokens.tokens)
        x = x + pos_embed(tokens, tokens.all_ids()).to(x.dtype)
        x = block(x, attn_mask=key_padding_mask(tokens.padding_mask, 0))
        logits = torch.nan_to_num(head(x).squeeze(-1).float())  # AdaMAE's nan_to_num
        if tokens.padding_mask is not None:
            logits = logits.masked_fill(tokens.padding_mask, float("-inf"))
        return logits.log_softmax(dim=-1)

    def forward(
        self, tokens: TokenBatch, generator: torch.Generator | None = None, noise: Tensor | None = None
    ) -> MaskSpec:
        self._log_probs = None
        if self.head is None:  # not built: no network yet
            return super().forward(tokens, generator, noise)
        log_probs = self._log_probs = self.log_probs(tokens)
        if noise is not None:
            return super().forward(tokens, generator, noise)
        b, n = log_probs.shape
        keep = self.num_visible(tokens)
        if not 0 < keep < n:
            raise ValueError(f"AdaptiveMasker keeps {keep} of {n} tokens visible; it must keep between 1 and {n - 1}")
        drawn = torch.multinomial(log_probs.detach().exp(), keep, replacement=False, generator=generator)
        hidden = torch.ones(b, n, dtype=torch.int8, device=log_probs.device).scatter(1, drawn, 0)
        if tokens.padding_mask is not None:  # padding after every real hidden token (it has probability 0 anyway)
            hidden = hidden + tokens.padding_mask.to(torch.int8)
        # visible first, then hidden, each in grid order (a stable sort, as MaskSpec.from_mask)
        order = torch.argsort(hidden, dim=1, stable=True)
        return MaskSpec.from_order(order, keep, tokens.padding_mask)

    def feedback(self, step: Step) -> dict[str, Tensor]:
        log_probs, self._log_probs = self._log_probs, None
        if log_probs is None:
            return {}
        mask = step.mask
        counted = mask.counted.float()
        chosen = torch.gather(log_probs, 1, mask.ids_decode).masked_fill(counted == 0, 0.0)
        reward = step.token_loss.detach().float()
        loss = -(chosen * reward * counted).sum() / counted.sum().clamp(min=1)
        return {"sampling": loss * self.loss_weight}
