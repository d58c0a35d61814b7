"""Tube masking (VideoMAE, Tong et al. 2022, https://arxiv.org/abs/2203.12602): one 2-D mask shared by every time
step, so a hidden patch is hidden in all frames and cannot be copied from a neighbouring frame; ratio 0.9."""

from typing import Annotated

import torch
from pydantic import Field, NonNegativeInt
from torch import Tensor

from ..config import ConfigError, validated
from ..model.specs import LayoutSpec
from ..model.types import TokenBatch
from .base import Masker, dense_grid_shape, uniform

__all__ = ["TubeMasker"]


class TubeMasker(Masker):
    """VideoMAE's tube masking: ``int(mask_ratio * P)`` of the ``P`` positions of each time step are hidden, the
    same positions at every time step (VideoMAE's ``TubeMaskingGenerator``).

    Args:
        mask_ratio: fraction hidden (0.9 in VideoMAE).
        axis: the grid axis the mask is shared along (0: time in a ``(T, H, W)`` video grid).
    """

    supported_layouts = frozenset({"grid"})
    grid_ranks = frozenset({2, 3})

    @validated
    def __init__(self, mask_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.9, axis: NonNegativeInt = 0) -> None:
        super().__init__()
        self.mask_ratio = mask_ratio
        self.axis = axis

    def check_layout(self, layout: LayoutSpec) -> None:
        super().check_layout(layout)
        if self.axis >= layout.rank:
            raise ConfigError(f"TubeMasker.axis {self.axis} does not exist in a rank-{layout.rank} grid")
        if layout.variable_length:
            raise ConfigError("TubeMasker cannot mask variable-length grids: tubes need every sample's full length")

    def _split(self, tokens: TokenBatch) -> tuple[tuple[int, ...], int, int]:
        shape = dense_grid_shape(tokens, type(self).__name__)
        if tokens.padding_mask is not None:
            raise ValueError("TubeMasker cannot mask padded batches")
        positions = tokens.num_tokens // shape[self.axis]
        return shape, shape[self.axis], positions

    def num_visible(self, tokens: TokenBatch) -> int:
        _, length, positions = self._split(tokens)
        return length * (positions - int(self.mask_ratio * positions))

    def noise(self, tokens: TokenBatch, generator: torch.Generator | None) -> Tensor:
        shape, _, _ = self._split(tokens)
        other = shape[: self.axis] + shape[self.axis + 1 :]
        scores = uniform((tokens.batch_size, *other), tokens, generator)
        return scores.unsqueeze(self.axis + 1).expand(tokens.batch_size, *shape).flatten(1)
