"""Masker interface: a :class:`~anymae.TokenBatch` in, a :class:`~anymae.MaskSpec` out (MAE's ``random_masking``).

Every masker here works the same way: it draws a **noise** value in ``[0, 1)`` for each token, batched on the
tokens' device, and the ``num_visible`` tokens with the lowest noise stay visible (padding is forced to the hidden
side). Structure lives in the noise: one value per tube makes tubes, one per coarse cell makes large patches, values
that are low far from a block make blocks. The count is therefore exact and equal for every sample by construction.

The fixed maskers look only at the layout and padding of the tokens, never at their values. Learned and data-aware
maskers (``learned/``: AdaMAE, HPM, AttMask) use the same interface and its two hooks: :meth:`Masker.build` gives
them the model's encoder and training progress (they may own parameters, created there), and :meth:`Masker.feedback`
gives them each step after the target's loss, from which they return auxiliary losses. Both do nothing by default.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..config import ConfigError
from ..model.specs import BuildContext, LayoutSpec
from ..model.types import GridLayout, MaskSpec, Step, TokenBatch

__all__ = ["Masker", "dense_grid_shape", "real_token_count", "uniform"]


def uniform(shape: tuple[int, ...], tokens: TokenBatch, generator: torch.Generator | None) -> Tensor:
    """Uniform ``[0, 1)`` samples on the tokens' device."""
    return torch.rand(shape, device=tokens.tokens.device, generator=generator)


def real_token_count(tokens: TokenBatch) -> int:
    """Tokens of the shortest sample (all of them when there is no padding)."""
    if tokens.padding_mask is None:
        return tokens.num_tokens
    return int((~tokens.padding_mask).sum(dim=1).min())


def dense_grid_shape(tokens: TokenBatch, masker: str) -> tuple[int, ...]:
    """The grid shape of a dense grid layout; a clear error for anything else."""
    layout = tokens.layout
    if not isinstance(layout, GridLayout) or not layout.dense:
        raise ValueError(f"{masker} needs tokens on a dense grid, got {layout.kind} tokens")
    return tuple(layout.shape)


class Masker(nn.Module, ABC):
    """Chooses, per sample, the visible and the hidden tokens; every sample keeps the same number visible.

    Subclasses implement :meth:`noise` and :meth:`num_visible` (or override :meth:`forward` entirely).

    Attributes:
        supported_layouts: the layout kinds (``"grid"``, ``"points"``) this masker can serve; checked at build time.
        grid_ranks: for grids, the ranks it can serve (``None``: any).
    """

    supported_layouts: ClassVar[frozenset[str]] = frozenset({"grid", "points"})
    grid_ranks: ClassVar[frozenset[int] | None] = None

    def build(self, ctx: BuildContext) -> None:
        """Called once by the model, after the encoder is built: check that this masker can serve the tokenizer's
        layout; a learned masker also creates what depends on the model here (a scoring network, a running copy of
        the encoder)."""
        self.check_layout(ctx.tokens.layout)

    def check_layout(self, layout: LayoutSpec) -> None:
        """Raise :class:`~anymae.ConfigError` if this masker cannot serve ``layout``."""
        name = type(self).__name__
        if layout.kind not in self.supported_layouts:
            allowed = ", ".join(sorted(self.supported_layouts))
            raise ConfigError(f"{name} cannot mask a {layout.describe()} layout; it supports: {allowed}")
        if layout.kind == "grid" and self.grid_ranks is not None and layout.rank not in self.grid_ranks:
            ranks = ", ".join(map(str, sorted(self.grid_ranks)))
            raise ConfigError(f"{name} cannot mask a {layout.describe()} layout; it needs a grid of rank {ranks}")

    def feedback(self, step: Step) -> dict[str, Tensor]:
        """Losses of the masker's own parameters for this step, by name, added to the training loss and logged as
        ``train/loss_<name>``. Fixed maskers have none."""
        return {}

    @abstractmethod
    def noise(self, tokens: TokenBatch, generator: torch.Generator | None) -> Tensor:
        """``[B, N]`` noise in ``[0, 1)``; the lowest :meth:`num_visible` of each row stay visible."""

    @abstractmethod
    def num_visible(self, tokens: TokenBatch) -> int:
        """How many tokens every sample keeps visible."""

    def forward(
        self, tokens: TokenBatch, generator: torch.Generator | None = None, noise: Tensor | None = None
    ) -> MaskSpec:
        """Sample a mask for ``tokens`` (only their shape, layout, padding and device are used).

        Args:
            tokens: the tokenized batch.
            generator: random source on the tokens' device, for reproducible masks.
            noise: ``[B, N]`` values in ``[0, 1)`` that replace :meth:`noise` (the lowest stay visible), e.g. the
                noise given to HF's ViTMAE.
        """
        b, n = tokens.tokens.shape[:2]
        if noise is None:
            noise = self.noise(tokens, generator)
        elif noise.shape != (b, n):
            raise ValueError(f"noise must have shape {(b, n)}, got {tuple(noise.shape)}")
        keep = self.num_visible(tokens)
        if not 0 < keep < n:
            raise ValueError(
                f"{type(self).__name__} keeps {keep} of {n} tokens visible; it must keep between 1 and {n - 1}"
            )
        return MaskSpec.from_noise(noise, keep, tokens.padding_mask)
