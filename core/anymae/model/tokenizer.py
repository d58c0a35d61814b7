"""Tokenizer interface: a raw batch in, a :class:`~anymae.model.types.TokenBatch` out (MAE's ``patchify``).

A tokenizer is the only component that knows a modality's raw format. Plugins subclass :class:`Tokenizer`; the other
parts see only its :attr:`~Tokenizer.spec` (a :class:`~anymae.model.types.TokenizerSpec`), never its class.
"""

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from .types import LayoutSpec, TokenBatch, TokenizerSpec

__all__ = ["Tokenizer", "patchify", "unpatchify"]


def patchify(x: Tensor, patch: Sequence[int]) -> Tensor:
    """Cut ``x`` ``[B, C, *sizes]`` into non-overlapping patches: ``[B, N, prod(patch) * C]``, patches row-major over
    the grid ``sizes / patch``, each flattened as ``(*patch, C)`` (channel last, as MAE's ``patchify`` and VideoMAE's
    ``b c (t p0) (h p1) (w p2) -> b (t h w) (p0 p1 p2 c)``). One reshape and one permute, for any rank."""
    b, c, *sizes = x.shape
    rank = len(patch)
    if len(sizes) != rank or any(n % p for n, p in zip(sizes, patch, strict=True)):
        raise ValueError(f"cannot cut {tuple(x.shape)} into {tuple(patch)} patches (sizes must be divisible)")
    split = [d for n, p in zip(sizes, patch, strict=True) for d in (n // p, p)]
    x = x.reshape(b, c, *split)
    order = [0, *range(2, 2 + 2 * rank, 2), *range(3, 3 + 2 * rank, 2), 1]  # grid axes, patch axes, channel
    return x.permute(order).reshape(b, math.prod(split[0::2]), math.prod(patch) * c)


def unpatchify(tokens: Tensor, grid: Sequence[int], patch: Sequence[int], channels: int) -> Tensor:
    """The inverse of :func:`patchify`: tokens ``[B, prod(grid), prod(patch) * C]`` -> ``[B, C, *(grid * patch)]``."""
    b, rank = tokens.shape[0], len(grid)
    x = tokens.reshape(b, *grid, *patch, channels)
    order = [0, 1 + 2 * rank, *(d for i in range(rank) for d in (1 + i, 1 + rank + i))]
    return x.permute(order).reshape(b, channels, *(g * p for g, p in zip(grid, patch, strict=True)))


class Tokenizer(nn.Module, ABC):
    """Turns a raw batch (a dict of tensors) into tokens with positions.

    Subclasses set :attr:`token_dim` and :attr:`layout` in ``__init__`` (and :attr:`channels`, :attr:`provides`
    where they apply) and implement :meth:`forward` and :meth:`example_batch`; grid tokenizers whose tokens are raw
    values also implement :meth:`inverse` (for figures).

    Attributes:
        token_dim: size ``D`` of each token vector (required).
        layout: the static :class:`~anymae.model.types.LayoutSpec` of the output (required).
        channels: when tokens are raw values laid out channel-last (``(..., C)`` flattened, as MAE's ``patchify``),
            the number of channels ``C``; ``None`` when tokens are learned features (e.g. a PointNet embedding).
            Targets that predict the token values themselves need it (they declare ``raw_values``).
        streams_per_sample: token sequences per raw sample (1; a channel-independent series tokenizer makes one per
            channel, folded into the batch dimension). Features pooled per sample average the streams.
        patch: for tokens that are raw-value patches of a dense grid, each patch's extent along every grid axis
            (``(p_h, p_w)`` for images, ``(t, p, p)`` for video tubelets), so that a target can rebuild the raw signal
            from the tokens with :func:`unpatchify` (HOG, motion); ``None`` otherwise.
        provides: per-token data this tokenizer can compute besides the tokens, by name, with each value's shape
            per token (``{"neighborhoods": (group_size, 3)}``), or ``None`` for a property that carries no data.
            A target or figure asks for names in its ``needs``; :meth:`forward` computes only those asked for.
    """

    token_dim: int
    layout: LayoutSpec
    channels: int | None = None
    streams_per_sample: int = 1
    patch: tuple[int, ...] | None = None
    provides: Mapping[str, tuple[int, ...] | None] = {}

    @abstractmethod
    def forward(self, batch: Mapping[str, Tensor], extras: frozenset[str] = frozenset()) -> TokenBatch:
        """Tokenize ``batch``: tokens ``[B, N, token_dim]``, their layout and padding mask, and in
        ``TokenBatch.extras`` the names of ``extras`` (each ``[B, N, *provides[name]]``), and nothing else."""

    @abstractmethod
    def example_batch(self, batch_size: int = 2) -> dict[str, Tensor]:
        """A small raw batch of this tokenizer's nominal shape (random values from a fixed seed, on the CPU).

        The model runs every part once on it when it is built, so a part that emits another width than it declares
        fails before training; the contract tests use it as their sample data.
        """

    def inverse(self, tokens: TokenBatch) -> Tensor:
        """Map tokens back to the raw format (grid modalities; used to show reconstructions)."""
        raise NotImplementedError(f"{type(self).__name__} does not define an inverse")

    @property
    def spec(self) -> TokenizerSpec:
        """What the other parts may know of this tokenizer (see :class:`~anymae.model.types.TokenizerSpec`)."""
        return TokenizerSpec(
            name=type(self).__name__,
            token_dim=self.token_dim,
            layout=self.layout,
            channels=self.channels,
            patch=self.patch,
            provides=dict(self.provides),
            invertible=type(self).inverse is not Tokenizer.inverse,
        )
