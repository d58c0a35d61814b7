"""Predict the bases of each hidden k-mer: ``k`` four-way classifications per token, cross-entropy loss over the bases
that were read (an N has no answer to learn)."""

from collections.abc import Mapping

import torch
from torch import Tensor

import anymae


class BaseClassTarget(anymae.Target):
    """The decoder predicts ``k * 4`` logits per hidden token; the loss is the cross-entropy of each base."""

    needs = frozenset({anymae.RAW_VALUES, "known"})  # the one-hot bases channel-last, and which were read
    predicts = anymae.RAW_VALUES  # to_tokens maps logits back to one-hot tokens (for figures)

    @anymae.validated
    def __init__(self) -> None:
        super().__init__()
        self.bases = 4

    def build(self, ctx: anymae.BuildContext) -> None:
        tokens = ctx.tokens
        if tokens.channels != self.bases:
            raise anymae.ConfigError(
                f"BaseClassTarget needs one-hot bases (4 channels); {tokens.name} has {tokens.channels}"
            )
        self.dim_per_token = tokens.token_dim

    def forward(self, batch: Mapping[str, Tensor], tokens: anymae.TokenBatch, mask: anymae.MaskSpec) -> Tensor:
        return anymae.gather_tokens(tokens.tokens, mask.ids_decode)  # one-hot bases of the decoded tokens

    def token_loss(
        self, pred: Tensor, target: Tensor, mask: anymae.MaskSpec, tokens: anymae.TokenBatch | None = None
    ) -> Tensor:
        logits = pred.float().unflatten(-1, (-1, self.bases))  # [B, M, k, 4]
        labels = target.unflatten(-1, (-1, self.bases)).argmax(dim=-1)  # [B, M, k]
        per_base = torch.nn.functional.cross_entropy(logits.flatten(0, 2), labels.flatten(), reduction="none")
        per_base = per_base.view(labels.shape)
        if tokens is None:  # predictions scored on their own: every base counts
            return per_base.mean(dim=-1)
        known = anymae.gather_tokens(tokens.provided["known"], mask.ids_decode)  # [B, M, k]: the bases that were read
        return torch.where(known, per_base, 0.0).sum(dim=-1) / known.sum(dim=-1).clamp_min(1)

    def to_tokens(self, pred: Tensor, tokens: anymae.TokenBatch, mask: anymae.MaskSpec) -> Tensor:
        best = pred.unflatten(-1, (-1, self.bases)).argmax(dim=-1)
        return torch.nn.functional.one_hot(best, self.bases).flatten(-2).to(pred.dtype)
