"""Block masking by nearest centres (Point-MAE, Pang et al. 2022, https://arxiv.org/abs/2203.06604, "block" mask):
pick one token at random and hide the tokens nearest to it. Works on point groups (continuous centres) and on grids
(integer coordinates), batched: no loop over samples."""

from typing import Annotated

import torch
from pydantic import Field
from torch import Tensor

from ..config import validated
from ..model.types import TokenBatch
from .base import Masker, real_token_count, uniform

__all__ = ["NearestBlockMasker"]


class NearestBlockMasker(Masker):
    """Point-MAE's block masking: the ``int(mask_ratio * G)`` tokens nearest (Euclidean) to a random token are
    hidden; the chosen token is among them.

    Args:
        mask_ratio: fraction hidden (0.6 in Point-MAE).
    """

    @validated
    def __init__(self, mask_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.6) -> None:
        super().__init__()
        self.mask_ratio = mask_ratio

    def num_visible(self, tokens: TokenBatch) -> int:
        n = real_token_count(tokens)
        return n - int(self.mask_ratio * n)

    def noise(self, tokens: TokenBatch, generator: torch.Generator | None) -> Tensor:
        b, n = tokens.tokens.shape[:2]
        positions = tokens.positions().float()
        pick = uniform((b, n), tokens, generator)
        if tokens.padding_mask is not None:
            pick = pick.masked_fill(tokens.padding_mask, 2.0)  # the centre is a real token
        centre = torch.gather(positions, 1, pick.argmin(dim=1)[:, None, None].expand(-1, 1, positions.shape[-1]))
        distance = (positions - centre).norm(dim=-1)
        if tokens.padding_mask is not None:
            distance = distance.masked_fill(tokens.padding_mask, float("inf"))
        rank = distance.argsort(dim=1).argsort(dim=1)  # 0 for the centre
        return 1.0 - (rank.float() + 0.5) / n  # nearest score highest: hidden first
