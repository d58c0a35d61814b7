"""Forecasting as masking (VisionTS, Chen et al. 2024, https://arxiv.org/abs/2408.17253; Ti-MAE): hide the last
patches of every series, so that reconstructing them is forecasting them."""

import torch
from pydantic import PositiveInt
from torch import Tensor

from anymae import ConfigError, LayoutSpec, Masker, MaskSpec, TokenBatch, validated

__all__ = ["ForecastMasker"]


class ForecastMasker(Masker):
    """The last ``horizon`` patches of each sample (of its valid length) are hidden and decoded; the ``context``
    patches just before them stay visible; any earlier patch is hidden but not decoded (not in the loss).

    Args:
        horizon: patches to forecast.
        context: visible patches before them (unset: all the shortest sample has).
    """

    supported_layouts = frozenset({"grid"})
    grid_ranks = frozenset({1})

    @validated
    def __init__(self, horizon: PositiveInt = 1, context: PositiveInt | None = None) -> None:
        super().__init__()
        self.horizon, self.context = horizon, context

    def check_layout(self, layout: LayoutSpec) -> None:
        super().check_layout(layout)
        if layout.shape is not None and layout.shape[0] <= self.horizon:
            raise ConfigError(f"ForecastMasker.horizon {self.horizon} leaves no context in {layout.shape[0]} patches")

    def _lengths(self, tokens: TokenBatch) -> Tensor:
        if tokens.padding_mask is None:
            return torch.full((tokens.batch_size,), tokens.num_tokens, device=tokens.tokens.device)
        # The valid length is one past the last patch that is not padding (missing values inside count as valid).
        index = torch.arange(1, tokens.num_tokens + 1, device=tokens.tokens.device)
        return torch.where(tokens.padding_mask, 0, index).amax(dim=1)

    def num_visible(self, tokens: TokenBatch) -> int:
        shortest = int(self._lengths(tokens).min()) - self.horizon
        if shortest < 1:
            raise ValueError(f"ForecastMasker: a series has {shortest + self.horizon} patches, not more than horizon")
        return shortest if self.context is None else min(self.context, shortest)

    def noise(self, tokens: TokenBatch, generator: torch.Generator | None) -> Tensor:
        """0 for the latest context patch, rising into the past; the horizon above every context patch."""
        lengths = self._lengths(tokens)[:, None]
        position = torch.arange(tokens.num_tokens, device=tokens.tokens.device)[None, :]
        cut = lengths - self.horizon
        past = (cut - 1 - position).clamp_min(0).float() / (2 * tokens.num_tokens)  # [0, 0.5)
        return torch.where(position < cut, past, 0.75)

    def forward(
        self, tokens: TokenBatch, generator: torch.Generator | None = None, noise: Tensor | None = None
    ) -> MaskSpec:
        spec = super().forward(tokens, generator, noise)
        lengths = self._lengths(tokens)
        horizon = (lengths - self.horizon)[:, None] + torch.arange(self.horizon, device=lengths.device)[None, :]
        return spec.with_decode(horizon, tokens.padding_mask)
