"""Masker interface: a :class:`~anymae.types.TokenBatch` in, a :class:`~anymae.types.MaskSpec` out (MAE's
``random_masking``). Maskers look only at the layout and padding of the tokens, never at their values."""

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..config import ConfigError
from ..types import LayoutSpec, MaskSpec, TokenBatch

__all__ = ["Masker"]


class Masker(nn.Module, ABC):
    """Chooses, per sample, the visible and the hidden tokens; every sample keeps the same number visible.

    Attributes:
        supported_layouts: the layout kinds (``"grid"``, ``"points"``) this masker can serve; checked at build time.
    """

    supported_layouts: ClassVar[frozenset[str]] = frozenset({"grid", "points"})

    def check_layout(self, layout: LayoutSpec) -> None:
        """Raise :class:`~anymae.ConfigError` if this masker cannot serve ``layout`` (called when a model is built)."""
        if layout.kind not in self.supported_layouts:
            allowed = ", ".join(sorted(self.supported_layouts))
            raise ConfigError(f"{type(self).__name__} cannot mask a {layout.describe()} layout; it supports: {allowed}")

    @abstractmethod
    def forward(
        self, tokens: TokenBatch, generator: torch.Generator | None = None, noise: Tensor | None = None
    ) -> MaskSpec:
        """Sample a mask for ``tokens``.

        Args:
            tokens: the tokenized batch (only its shape, layout, padding and device are used).
            generator: random source on the tokens' device, for reproducible masks.
            noise: ``[B, N]`` values in ``[0, 1)`` that replace the random draw, for maskers built on noise.
        """
