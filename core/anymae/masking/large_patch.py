"""Large-patch masking (SimMIM, Xie et al. 2022, https://arxiv.org/abs/2111.09886): mask a coarser grid, then
upsample, so that each hidden region spans several tokens (SimMIM: 32x32-pixel mask patches over 16x16 ViT patches,
``scale = 2``; 4x4 Swin patches, ``scale = 8``; ratio 0.6)."""

import math
from typing import Annotated

import torch
from pydantic import Field, PositiveInt
from torch import Tensor

from ..config import ConfigError, validated
from ..model.specs import LayoutSpec
from ..model.types import TokenBatch
from .base import Masker, dense_grid_shape, uniform

__all__ = ["LargePatchMasker"]


class LargePatchMasker(Masker):
    """SimMIM's masking: ``ceil(mask_ratio * cells)`` cells of a grid ``scale`` times coarser are hidden, each cell
    hiding all its tokens.

    Args:
        mask_ratio: fraction of coarse cells hidden (0.6 in SimMIM).
        scale: coarse cell size in tokens, one value for every axis or one per axis (SimMIM with ViT/16: 2).
    """

    supported_layouts = frozenset({"grid"})

    @validated
    def __init__(
        self,
        mask_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.6,
        scale: PositiveInt | tuple[PositiveInt, ...] = 2,
    ) -> None:
        super().__init__()
        self.mask_ratio = mask_ratio
        self.scale = scale

    def _scales(self, rank: int) -> tuple[int, ...]:
        if isinstance(self.scale, int):
            return (self.scale,) * rank
        if len(self.scale) != rank:
            raise ConfigError(
                f"LargePatchMasker.scale {self.scale} has {len(self.scale)} values for a rank-{rank} grid"
            )
        return tuple(self.scale)

    def _coarse(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        scales = self._scales(len(shape))
        if any(size % s for size, s in zip(shape, scales, strict=True)):
            raise ConfigError(f"LargePatchMasker.scale {scales} does not divide the token grid {shape}")
        return tuple(size // s for size, s in zip(shape, scales, strict=True))

    def check_layout(self, layout: LayoutSpec) -> None:
        super().check_layout(layout)
        if layout.variable_length:
            raise ConfigError(
                "LargePatchMasker cannot mask variable-length grids (coarse cells would straddle padding)"
            )
        if layout.shape is not None:
            self._coarse(tuple(layout.shape))

    def num_visible(self, tokens: TokenBatch) -> int:
        shape = dense_grid_shape(tokens, type(self).__name__)
        cells = math.prod(self._coarse(shape))
        return (cells - math.ceil(cells * self.mask_ratio)) * math.prod(self._scales(len(shape)))

    def noise(self, tokens: TokenBatch, generator: torch.Generator | None) -> Tensor:
        if tokens.padding_mask is not None:
            raise ValueError("LargePatchMasker cannot mask padded batches")
        shape = dense_grid_shape(tokens, type(self).__name__)
        scores = uniform((tokens.batch_size, *self._coarse(shape)), tokens, generator)
        for axis, s in enumerate(self._scales(len(shape))):
            scores = scores.repeat_interleave(s, dim=axis + 1)  # every token of a cell shares its cell's score
        return scores.flatten(1)
