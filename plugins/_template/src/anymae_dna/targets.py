"""Predict the bases of each hidden k-mer: ``k`` four-way classifications per token, cross-entropy loss."""

from collections.abc import Mapping

import torch
from torch import Tensor

import anymae


class BaseClassTarget(anymae.Target):
    """The decoder predicts ``k * 4`` logits per hidden token; the loss is the cross-entropy of each base."""

    needs = frozenset({anymae.RAW_VALUES})  # the tokens themselves, one-hot bases channel-last
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

    def token_loss(self, pred: Tensor, target: Tensor, mask: anymae.MaskSpec) -> Tensor:
        logits = pred.float().unflatten(-1, (-1, self.bases))  # [B, M, k, 4]
        labels = target.unflatten(-1, (-1, self.bases)).argmax(dim=-1)  # [B, M, k]
        per_base = torch.nn.functional.cross_entropy(logits.flatten(0, 2), labels.flatten(), reduction="none")
        return per_base.view(labels.shape).mean(dim=-1)

    def to_tokens(self, pred: Tensor, tokens: anymae.TokenBatch, mask: anymae.MaskSpec) -> Tensor:
        best = pred.unflatten(-1, (-1, self.bases)).argmax(dim=-1)
        return torch.nn.functional.one_hot(best, self.bases).flatten(-2).to(pred.dtype)
