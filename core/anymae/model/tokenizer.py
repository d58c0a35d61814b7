"""Tokenizer interface: a raw batch in, a :class:`~anymae.model.types.TokenBatch` out (MAE's ``patchify``).

A tokenizer is the only component that knows a modality's raw format. Plugins subclass :class:`Tokenizer`; the other
parts see only its :attr:`~Tokenizer.spec` (a :class:`~anymae.model.specs.TokenizerSpec`), never its class. Grid
tokenizers cut their raw grids with :func:`~anymae.patchify`.
"""

from abc import ABC, abstractmethod
from collections.abc import Mapping

from torch import Tensor, nn

from .specs import INVERSE, RAW_VALUES, LayoutSpec, TokenizerSpec
from .types import TokenBatch

__all__ = ["Tokenizer"]


class Tokenizer(nn.Module, ABC):
    """Turns a raw batch (a dict of tensors) into tokens with positions.

    Subclasses set :attr:`token_dim` and :attr:`layout` in ``__init__`` (and :attr:`channels`, :attr:`provides`
    where they apply) and implement :meth:`forward` and :meth:`example_batch`; grid tokenizers whose tokens are raw
    values also implement :meth:`inverse` (for figures).

    Attributes:
        token_dim: size ``D`` of each token vector (required).
        layout: the static :class:`~anymae.model.specs.LayoutSpec` of the output (required).
        channels: when tokens are raw values laid out channel-last (``(..., C)`` flattened, as MAE's ``patchify``),
            the number of channels ``C``; ``None`` when tokens are learned features (e.g. a PointNet embedding).
            Targets that predict the token values themselves need it (they declare ``raw_values``).
        streams_per_sample: token sequences per raw sample (1; a channel-independent series tokenizer makes one per
            channel, folded into the batch dimension). Features pooled per sample average the streams.
        patch: for tokens that are raw-value patches of a dense grid, each patch's extent along every grid axis
            (``(p_h, p_w)`` for images, ``(t, p, p)`` for video tubelets), so that a target can rebuild the raw signal
            from the tokens with :func:`~anymae.unpatchify` (HOG, motion); ``None`` otherwise.
        provides: per-token data this tokenizer can compute besides the tokens, by name, with each value's shape
            per token (``{"neighborhoods": (group_size, 3)}``), or ``None`` for a property that carries no data.
            A target or figure lists the names it needs in its ``needs``; :meth:`forward` computes only those.
    """

    token_dim: int
    layout: LayoutSpec
    channels: int | None = None
    streams_per_sample: int = 1
    patch: tuple[int, ...] | None = None
    provides: Mapping[str, tuple[int, ...] | None] = {}

    @abstractmethod
    def forward(self, batch: Mapping[str, Tensor], needs: frozenset[str] = frozenset()) -> TokenBatch:
        """Tokenize ``batch``: tokens ``[B, N, token_dim]``, their layout and padding mask, and in
        ``TokenBatch.provided`` the names in ``needs`` (each ``[B, N, *provides[name]]``), and nothing else."""

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
        """What the other parts may know of this tokenizer: its ``provides`` plus ``raw_values`` (when ``channels``
        is set) and ``inverse`` (when it defines one)."""
        provides = dict(self.provides)
        if self.channels is not None:
            provides[RAW_VALUES] = None
        if type(self).inverse is not Tokenizer.inverse:
            provides[INVERSE] = None
        return TokenizerSpec(type(self).__name__, self.token_dim, self.layout, self.channels, provides, self.patch)
