"""Uniform random masking (MAE, He et al. 2021, https://arxiv.org/abs/2111.06377; MAE-ST, Feichtenhofer et al. 2022,
https://arxiv.org/abs/2205.09113, uses the same on space-time tokens at ratio 0.9; Point-MAE's "rand" masking of
point groups, Pang et al. 2022, https://arxiv.org/abs/2203.06604)."""

from typing import Annotated

import torch
from pydantic import Field
from torch import Tensor

from ..config import validated
from ..model.types import TokenBatch
from .base import Masker, real_token_count, uniform

__all__ = ["RandomMasker"]


class RandomMasker(Masker):
    """Hide a uniformly random ``mask_ratio`` of each sample's tokens (per-sample shuffle by argsort of noise).

    ``int(N * (1 - mask_ratio))`` tokens stay visible, as in MAE. In a padded batch ``N`` is the token count of the
    shortest sample, and padding is never visible. Serves every layout.

    Args:
        mask_ratio: fraction of tokens hidden, in (0, 1). MAE: 0.75 (images); MAE-ST/VideoMAE: 0.9 (video).
    """

    @validated
    def __init__(self, mask_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.75) -> None:
        super().__init__()
        self.mask_ratio = mask_ratio

    def num_visible(self, tokens: TokenBatch) -> int:
        return int(real_token_count(tokens) * (1 - self.mask_ratio))

    def noise(self, tokens: TokenBatch, generator: torch.Generator | None) -> Tensor:
        return uniform(tokens.tokens.shape[:2], tokens, generator)
