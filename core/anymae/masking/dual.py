"""Decoder masking (VideoMAE V2, Wang et al. 2023, https://arxiv.org/abs/2303.16727, "dual masking"): the encoder
sees the tokens another masker leaves visible; the decoder, too, predicts only part of the grid, so it processes
fewer tokens, and the loss covers the tokens hidden from the encoder among those the decoder predicts.

VideoMAE V2's "running cell" keeps a fixed share of every 2 x 2 cell of positions for the decoder, a pattern that
shifts by one position at every time step (``RunningCellMaskingGenerator``). As in VideoMAE V2 the decoder gets a
mask token at every position the pattern keeps, the ones the encoder saw included; those are predicted but never
in the loss.
"""

from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import Tensor

from ..config import ConfigError, validated
from ..model.specs import BuildContext, LayoutSpec
from ..model.types import MaskSpec, Step, TokenBatch, grid_coords
from .base import Masker, dense_grid_shape, uniform

__all__ = ["DualMasker"]


class DualMasker(Masker):
    """Encoder masking by ``masker``, plus decoder masking.

    Args:
        masker: the encoder's masker (VideoMAE V2: ``TubeMasker(mask_ratio=0.9)``).
        decoder_ratio: share of all positions the decoder does not predict (0.5 in VideoMAE V2's scripts; 0 turns
            decoder masking off, which is plain MAE).
        strategy: ``"running_cell"`` (VideoMAE V2; grids of rank 2 or 3 with even last two sizes; ratios 0.25, 0.5,
            0.75) or ``"random"`` (a random share per sample, any layout; VideoMAE V2 names it but does not
            implement it).
    """

    @validated
    def __init__(
        self,
        masker: Masker,
        decoder_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.5,
        strategy: Literal["running_cell", "random"] = "running_cell",
    ) -> None:
        super().__init__()
        if strategy == "running_cell" and decoder_ratio not in (0.0, 0.25, 0.5, 0.75):
            raise ConfigError(
                f"DualMasker.decoder_ratio {decoder_ratio} does not fit a 2 x 2 running cell; allowed: 0.25, 0.5, 0.75"
            )
        self.masker = masker
        self.decoder_ratio = decoder_ratio
        self.strategy = strategy

    @property  # the base's is a class constant; a wrapper's follows the masker it wraps
    def supported_layouts(self) -> frozenset[str]:  # type: ignore[override]
        inner = self.masker.supported_layouts
        return inner & {"grid"} if self.strategy == "running_cell" and self.decoder_ratio else inner

    def check_layout(self, layout: LayoutSpec) -> None:
        self.masker.check_layout(layout)
        if self.strategy == "running_cell" and self.decoder_ratio:
            if layout.kind != "grid" or layout.rank not in (2, 3):
                raise ConfigError(f"DualMasker's running cell needs a grid of rank 2 or 3, got a {layout.describe()}")
            if layout.shape is not None and (layout.shape[-1] % 2 or layout.shape[-2] % 2):
                raise ConfigError(f"DualMasker's 2 x 2 running cell needs even grid sizes, got {layout.shape}")

    def build(self, ctx: BuildContext) -> None:
        self.masker.build(ctx)
        self.check_layout(ctx.tokens.layout)

    def feedback(self, step: Step) -> dict[str, Tensor]:
        return self.masker.feedback(step)

    def num_visible(self, tokens: TokenBatch) -> int:
        return self.masker.num_visible(tokens)

    def noise(self, tokens: TokenBatch, generator: torch.Generator | None) -> Tensor:
        return self.masker.noise(tokens, generator)

    def decoded(self, tokens: TokenBatch, generator: torch.Generator | None) -> Tensor:
        """``[B, N]`` bool: the positions the decoder predicts."""
        b, n = tokens.batch_size, tokens.num_tokens
        if self.strategy == "random":
            keep = n - int(self.decoder_ratio * n)
            return uniform((b, n), tokens, generator).argsort(dim=1).argsort(dim=1) < keep
        shape = dense_grid_shape(tokens, type(self).__name__)
        if len(shape) not in (2, 3) or shape[-1] % 2 or shape[-2] % 2:
            raise ValueError(f"DualMasker's 2 x 2 running cell needs a rank-2 or 3 grid of even sizes, got {shape}")
        coords = grid_coords(shape, tokens.tokens.device)  # [N, rank]
        cell = (coords[:, -2] % 2) * 2 + coords[:, -1] % 2  # position in its 2 x 2 cell, row-major
        time = coords[:, 0] if len(shape) == 3 else torch.zeros_like(cell)
        start = (uniform((b, 1), tokens, generator) * 4).long()  # one of the 4 phases per sample
        dropped = int(4 * self.decoder_ratio)
        return (cell + time + start) % 4 >= dropped  # the queue [1]*m + [0]*(4-m), shifted one step per frame

    def forward(
        self, tokens: TokenBatch, generator: torch.Generator | None = None, noise: Tensor | None = None
    ) -> MaskSpec:
        spec = self.masker(tokens, generator, noise)
        if not self.decoder_ratio:
            return spec
        decoded = self.decoded(tokens, generator)
        count = decoded.sum(dim=1)
        if bool((count != count[0]).any()):
            raise ValueError("the decoder pattern keeps different numbers of positions per sample")
        ids_decode = torch.argsort((~decoded).to(torch.int8), dim=1, stable=True)[:, : int(count[0])]
        return spec.with_decode(ids_decode, tokens.padding_mask)
