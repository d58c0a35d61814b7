"""Block-wise masking (BEiT, Bao et al. 2021, https://arxiv.org/abs/2106.08254, appendix / ``masking_generator.py``):
random rectangles are added to the mask until the ratio is reached. Generalised here to boxes on grids of rank 1 to
3, drawn for the whole batch at once."""

import math
from typing import Annotated

import torch
from pydantic import Field, PositiveInt
from torch import Tensor

from ..config import ConfigError, validated
from ..model.types import TokenBatch, grid_coords
from .base import Masker, dense_grid_shape, real_token_count, uniform

__all__ = ["BlockMasker"]


class BlockMasker(Masker):
    """BEiT's block-wise masking.

    Each round, every sample that still needs hidden tokens draws a block: an area uniform in
    ``[min_block, min(remaining, max_block)]``, an aspect ratio log-uniform in ``[min_aspect, max_aspect]`` (per pair
    of axes on a 3-D grid), and a uniform position. As in BEiT, a block must be smaller than the grid along each axis,
    and a block that would hide more new tokens than remain is rejected. A sample stops when it has its count or after
    10 rejected blocks in a row (as BEiT), all after ``max_rounds``; any shortfall is then made up with random tokens
    (BEiT stops short instead), so the count is exact for every sample.

    BEiT and MaskFeat state their masks as a count of patches (75 and 78 of 196); ``num_masked`` takes it as stated,
    where a ratio would round to another count (0.4 of 196 hides 79).

    Args:
        mask_ratio: fraction of tokens hidden (0.4 unless ``num_masked`` is given).
        num_masked: number of tokens hidden in every sample (BEiT: 75 of a 14 x 14 grid; MaskFeat: 78), instead of
            ``mask_ratio``.
        min_block: smallest block area in tokens (16 in BEiT).
        max_block: largest block area (unset: whatever remains, as BEiT).
        min_aspect: smallest aspect ratio (0.3 in BEiT); the largest is ``1 / min_aspect`` unless ``max_aspect``.
        max_aspect: largest aspect ratio.
        max_rounds: upper bound on block rounds.
    """

    supported_layouts = frozenset({"grid"})

    @validated
    def __init__(
        self,
        mask_ratio: Annotated[float, Field(gt=0, lt=1)] | None = None,
        num_masked: PositiveInt | None = None,
        min_block: PositiveInt = 16,
        max_block: PositiveInt | None = None,
        min_aspect: Annotated[float, Field(gt=0, le=1)] = 0.3,
        max_aspect: Annotated[float, Field(ge=1)] | None = None,
        max_rounds: PositiveInt = 64,
    ) -> None:
        super().__init__()
        if mask_ratio is not None and num_masked is not None:
            raise ConfigError("BlockMasker: give mask_ratio or num_masked, not both")
        if max_block is not None and max_block < min_block:
            raise ConfigError(f"BlockMasker.max_block ({max_block}) must be at least min_block ({min_block})")
        self.mask_ratio = 0.4 if mask_ratio is None and num_masked is None else mask_ratio
        self.num_masked = num_masked
        self.min_block, self.max_block = min_block, max_block
        self.min_aspect, self.max_aspect = min_aspect, max_aspect or 1 / min_aspect
        self.max_rounds = max_rounds

    def num_visible(self, tokens: TokenBatch) -> int:
        real = real_token_count(tokens)
        if self.num_masked is None:
            if self.mask_ratio is None:  # only when both were unset after construction
                raise ConfigError("BlockMasker: set mask_ratio or num_masked")
            return int(real * (1 - self.mask_ratio))
        if self.num_masked >= real:
            raise ConfigError(f"BlockMasker.num_masked ({self.num_masked}) must be less than a sample's {real} tokens")
        return real - self.num_masked

    def noise(self, tokens: TokenBatch, generator: torch.Generator | None) -> Tensor:
        hidden = self.blocks(tokens, generator)
        # Blocks score in [0.5, 1), the rest in [0, 0.5): the lowest stay visible, ties broken at random.
        return (hidden.float() + uniform(hidden.shape, tokens, generator)) / 2

    def blocks(self, tokens: TokenBatch, generator: torch.Generator | None) -> Tensor:
        """``[B, N]`` bool: the union of the accepted blocks, before the count is made exact."""
        shape = dense_grid_shape(tokens, type(self).__name__)
        b, n, rank = tokens.batch_size, tokens.num_tokens, len(shape)
        device = tokens.tokens.device
        coords = grid_coords(shape, device)[None]  # [1, N, r]
        dims = torch.tensor(shape, device=device)
        real = torch.ones(b, n, dtype=torch.bool, device=device)
        if tokens.padding_mask is not None:
            real = ~tokens.padding_mask
        goal = real.sum(dim=1) - self.num_visible(tokens)  # hidden tokens each sample needs
        hidden = torch.zeros(b, n, dtype=torch.bool, device=device)
        log_lo, log_hi = math.log(self.min_aspect), math.log(self.max_aspect)
        # BEiT gives a sample up after 10 tries in a row that add nothing; so do we, batched.
        failures = torch.zeros(b, dtype=torch.long, device=device)
        check_every = 1 if device.type == "cpu" else 8  # on a GPU each check is a sync: check rarely
        for round_ in range(self.max_rounds):  # rounds, each over the whole batch
            remaining = goal - hidden.sum(dim=1)
            active = (remaining > 0) & (failures < 10)
            if round_ % check_every == 0 and not bool(active.any()):
                break
            upper = remaining.clamp(max=self.max_block or n).clamp(min=self.min_block).float()
            area = self.min_block + uniform((b,), tokens, generator) * (upper - self.min_block)
            # Log-aspects of rank-1 axes against the last; halved so that in 2-D h / w = exp(U(log lo, log hi)).
            logs = (log_lo + uniform((b, rank - 1), tokens, generator) * (log_hi - log_lo)) / 2
            logs = torch.cat([logs, -logs.sum(dim=1, keepdim=True)], dim=1)
            sides = (area[:, None] ** (1 / rank) * logs.exp()).round().clamp(min=1)
            sides = torch.minimum(sides, dims.float()).long()
            start = (uniform((b, rank), tokens, generator) * (dims - sides + 1)).long()
            block = ((coords >= start[:, None]) & (coords < (start + sides)[:, None])).all(dim=-1) & real
            added = (block & ~hidden).sum(dim=1)
            fits = ((sides < dims) | (dims == 1)).all(dim=1)  # BEiT: a block is strictly smaller than the grid
            accept = active & (added <= remaining) & (added > 0) & fits
            failures = torch.where(accept, 0, failures + 1)
            hidden |= block & accept[:, None]
        return hidden
