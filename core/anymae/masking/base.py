"""Masker interface: a :class:`~anymae.model.types.TokenBatch` in, a :class:`~anymae.model.types.MaskSpec` out (MAE's
``random_masking``). The fixed maskers look only at the layout and padding of the tokens, never at their values.

Learned and data-aware maskers (AdaMAE, HPM, AttMask: ``adaptive.py``, ``hard_patches.py``, ``attention.py``) use
the same interface and may see more: the model hands them a :class:`MaskContext` (the raw batch, the model's
encoder, the training progress), they may own parameters (created in :meth:`Masker.build`, once the encoder is
known), and after the target's loss the model gives them a :class:`MaskFeedback` (the step's per-token loss and the
encoder's latents) from which they return auxiliary losses that are added to the training loss.

Every masker here works the same way: it draws a **score** in ``[0, 1)`` for each token, batched on the tokens'
device, and the ``num_visible`` tokens with the lowest scores stay visible (padding is forced to the hidden side).
Structure lives in the scores: one score per tube makes tubes, one per coarse cell makes large patches, scores that
are low far from a block make blocks. The count is therefore exact and equal for every sample by construction.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import Tensor, nn

from ..config import ConfigError
from ..model.types import GridLayout, LayoutSpec, MaskSpec, TokenBatch, TokenizerSpec

if TYPE_CHECKING:
    from ..model.encoder import Encoder

__all__ = [
    "MaskContext",
    "MaskFeedback",
    "Masker",
    "counted_tokens",
    "dense_grid_shape",
    "ema_update",
    "frozen_copy",
    "real_token_count",
    "uniform",
]


@dataclass(frozen=True)
class MaskContext:
    """What a data-aware masker may look at besides the tokens; the model passes it to every masker call.

    Attributes:
        batch: the raw batch (for a teacher with its own tokenizer).
        encoder: the model's encoder (the online weights; a masker that wants a slower copy keeps its own).
        progress: share of training done, in ``[0, 1]`` (1 outside training: a schedule's final value).
        training: whether this is a training step (a masker updates its running copies only then).
    """

    batch: Mapping[str, Tensor]
    encoder: Encoder
    progress: float = 1.0
    training: bool = False


@dataclass(frozen=True)
class MaskFeedback:
    """What one step gives back to the masker that chose its mask, after the target's loss.

    Attributes:
        mask: the mask of the step.
        tokens: the tokenized batch.
        latent: the encoder's output ``[B, P + K, D]`` (gradients flow: a loss predictor on it trains the encoder).
        num_prefix_tokens: ``P``.
        token_loss: ``[B, M']`` the target's loss of each decoded token, detached.
        progress: share of training done.
    """

    mask: MaskSpec
    tokens: TokenBatch
    latent: Tensor
    num_prefix_tokens: int
    token_loss: Tensor
    progress: float = 1.0


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` that takes no gradients (a running average of it, updated by :func:`ema_update`)."""
    twin = copy.deepcopy(module)
    twin.requires_grad_(False)
    twin.eval()
    return twin


@torch.no_grad()
def ema_update(twin: nn.Module, online: nn.Module, momentum: float) -> None:
    """``twin = momentum * twin + (1 - momentum) * online`` for every parameter (one fused call over the parameter
    lists); buffers of the same shape are copied (position tables, not learned)."""
    ours, theirs = list(twin.parameters()), list(online.parameters())
    if len(ours) != len(theirs):
        raise RuntimeError(f"the running copy has {len(ours)} parameters, the online module {len(theirs)}")
    if ours:
        torch._foreach_lerp_(ours, [p.detach().to(q.dtype) for p, q in zip(theirs, ours, strict=True)], 1 - momentum)
    for mine, theirs_buffer in zip(twin.buffers(), online.buffers(), strict=False):
        if mine.shape == theirs_buffer.shape:
            mine.copy_(theirs_buffer)


def counted_tokens(mask: MaskSpec) -> Tensor:
    """``[B, M']`` bool: the decoded tokens that count in a loss (hidden and not padding)."""
    counted = torch.gather(mask.mask, 1, mask.ids_decode)
    if mask.decode_valid is not None:
        counted = counted & mask.decode_valid
    return counted


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

    Subclasses implement :meth:`scores` and :meth:`num_visible` (or override :meth:`forward` entirely).

    Attributes:
        supported_layouts: the layout kinds (``"grid"``, ``"points"``) this masker can serve; checked at build time.
        grid_ranks: for grids, the ranks it can serve (``None``: any).
        learns: the masker wants each step's :class:`MaskFeedback` (the model then computes the per-token loss and
            calls :meth:`auxiliary_loss`).
    """

    supported_layouts: ClassVar[frozenset[str]] = frozenset({"grid", "points"})
    grid_ranks: ClassVar[frozenset[int] | None] = None
    learns: bool = False

    def build(self, encoder: Encoder, tokens: TokenizerSpec) -> None:
        """Create what depends on the model (a scoring network, a loss predictor, a running copy of the encoder);
        called once by the model after the encoder is built. Fixed maskers need nothing."""

    def auxiliary_loss(self, feedback: MaskFeedback) -> dict[str, Tensor]:
        """Losses of the masker's own parameters for this step, by name, added to the training loss and logged as
        ``train/<name>``. Fixed maskers have none."""
        return {}

    def check_layout(self, layout: LayoutSpec) -> None:
        """Raise :class:`~anymae.ConfigError` if this masker cannot serve ``layout`` (called when a model is built)."""
        name = type(self).__name__
        if layout.kind not in self.supported_layouts:
            allowed = ", ".join(sorted(self.supported_layouts))
            raise ConfigError(f"{name} cannot mask a {layout.describe()} layout; it supports: {allowed}")
        if layout.kind == "grid" and self.grid_ranks is not None and layout.rank not in self.grid_ranks:
            ranks = ", ".join(map(str, sorted(self.grid_ranks)))
            raise ConfigError(f"{name} cannot mask a {layout.describe()} layout; it needs a grid of rank {ranks}")

    @abstractmethod
    def scores(self, tokens: TokenBatch, generator: torch.Generator | None) -> Tensor:
        """``[B, N]`` scores in ``[0, 1)``; the lowest :meth:`num_visible` of each row stay visible."""

    @abstractmethod
    def num_visible(self, tokens: TokenBatch) -> int:
        """How many tokens every sample keeps visible."""

    def forward(
        self,
        tokens: TokenBatch,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
        context: MaskContext | None = None,
    ) -> MaskSpec:
        """Sample a mask for ``tokens``.

        Args:
            tokens: the tokenized batch (only its shape, layout, padding and device are used).
            generator: random source on the tokens' device, for reproducible masks.
            noise: ``[B, N]`` scores in ``[0, 1)`` that replace :meth:`scores` (the lowest stay visible), e.g. the
                noise given to HF's ViTMAE.
            context: what a data-aware masker may look at (fixed maskers ignore it).
        """
        b, n = tokens.tokens.shape[:2]
        if noise is None:
            noise = self.scores(tokens, generator)
        elif noise.shape != (b, n):
            raise ValueError(f"noise must have shape {(b, n)}, got {tuple(noise.shape)}")
        keep = self.num_visible(tokens)
        if not 0 < keep < n:
            raise ValueError(
                f"{type(self).__name__} keeps {keep} of {n} tokens visible; it must keep between 1 and {n - 1}"
            )
        return MaskSpec.from_noise(noise, keep, tokens.padding_mask)
