"""Tokenizer interface: a raw batch in, a :class:`~anymae.types.TokenBatch` out (MAE's ``patchify``).

A tokenizer is the only component that knows a modality's raw format. Plugins subclass :class:`Tokenizer`; the core
uses only what this class declares.
"""

from abc import ABC, abstractmethod
from collections.abc import Mapping

from torch import Tensor, nn

from .types import LayoutSpec, TokenBatch

__all__ = ["Tokenizer"]


class Tokenizer(nn.Module, ABC):
    """Turns a raw batch (a dict of tensors) into tokens with positions.

    Subclasses set :attr:`token_dim` and :attr:`layout` in ``__init__`` and implement :meth:`forward`. Grid tokenizers
    whose tokens are raw values also implement :meth:`inverse` (for visualisation) and set :attr:`channels`.

    Attributes:
        token_dim: size ``D`` of each token vector.
        layout: the static :class:`~anymae.types.LayoutSpec` of the output.
        channels: when tokens are raw values laid out channel-last (``(..., C)`` flattened, as MAE's ``patchify``),
            the number of channels ``C``; ``None`` when tokens are learned features (e.g. a PointNet embedding).
            Targets that predict the token values themselves require it.
        streams_per_sample: token sequences per raw sample (1; a channel-independent series tokenizer makes one per
            channel, folded into the batch dimension). Features pooled per sample average the streams.
    """

    token_dim: int
    layout: LayoutSpec
    channels: int | None = None
    streams_per_sample: int = 1

    @abstractmethod
    def forward(self, batch: Mapping[str, Tensor]) -> TokenBatch:
        """Tokenize ``batch``: tokens ``[B, N, token_dim]`` plus their layout and padding mask."""

    def inverse(self, tokens: TokenBatch) -> Tensor:
        """Map tokens back to the raw format (grid modalities; used to show reconstructions)."""
        raise NotImplementedError(f"{type(self).__name__} does not define an inverse")
