"""Uniform random masking (MAE, He et al. 2021, https://arxiv.org/abs/2111.06377; MAE-ST, Feichtenhofer et al. 2022,
https://arxiv.org/abs/2205.09113, uses the same on space-time tokens at ratio 0.9)."""

from typing import Annotated

import torch
from pydantic import Field
from torch import Tensor

from ..config import validated
from ..types import MaskSpec, TokenBatch
from .base import Masker

__all__ = ["RandomMasker"]


class RandomMasker(Masker):
    """Hide a uniformly random ``mask_ratio`` of each sample's tokens (per-sample shuffle by argsort of noise).

    ``int(N * (1 - mask_ratio))`` tokens stay visible, as in MAE. In a padded batch ``N`` is the token count of the
    shortest sample, and padding is never visible.

    Args:
        mask_ratio: fraction of tokens hidden, in (0, 1). MAE: 0.75 (images); MAE-ST/VideoMAE: 0.9 (video).
    """

    @validated
    def __init__(self, mask_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.75) -> None:
        super().__init__()
        self.mask_ratio = mask_ratio

    def num_visible(self, tokens: TokenBatch) -> int:
        n = tokens.num_tokens
        if tokens.padding_mask is not None:
            n = int((~tokens.padding_mask).sum(dim=1).min())
        keep = int(n * (1 - self.mask_ratio))
        if keep < 1:
            raise ValueError(f"mask_ratio={self.mask_ratio} leaves no visible token out of {n}")
        return keep

    def forward(
        self, tokens: TokenBatch, generator: torch.Generator | None = None, noise: Tensor | None = None
    ) -> MaskSpec:
        b, n = tokens.tokens.shape[:2]
        if noise is None:
            noise = torch.rand(b, n, device=tokens.tokens.device, generator=generator)
        elif noise.shape != (b, n):
            raise ValueError(f"noise must have shape {(b, n)}, got {tuple(noise.shape)}")
        return MaskSpec.from_noise(noise, self.num_visible(tokens), tokens.padding_mask)
