"""The data types that flow between anymae's components.

One batch goes ``Tokenizer -> Masker -> Encoder -> Decoder -> Target`` (see docs/architecture.md). Between these
steps only three things travel:

* :class:`TokenBatch` -- tokens ``[B, N, D]``, where they sit (a :class:`GridLayout` or a :class:`PointLayout`) and
  an optional padding mask for variable-length samples.
* :class:`MaskSpec` -- which tokens each sample keeps visible, which it hides and which hidden ones the decoder
  predicts. Every sample keeps the same number of visible tokens, so the encoder runs on a dense ``[B, K, D]``.
* :class:`LayoutSpec` -- the static description of a tokenizer's output (layout kind, rank, nominal grid shape)
  that components use at build time to size themselves and to check that they fit together.
* :class:`TokenizerSpec` -- everything the other parts may know of a tokenizer before any data is seen: its token
  width, layout, channels, and what else it can compute (its ``provides``). Targets and figures bind to this, never to
  the tokenizer's class.

Conventions, fixed once for the whole library:

* ``mask`` is boolean and **True means hidden** (MAE's "1 is remove"; VideoMAE and lightly differ, we do not).
* ``padding_mask`` is boolean and **True means padding** (a token that does not exist in this sample).
* Grid tokens are ordered row-major over the grid shape, last axis fastest (a ``(H, W)`` image grid is read
  row by row, as MAE's ``patchify``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "INVERSE",
    "RAW_VALUES",
    "Extras",
    "GridLayout",
    "Layout",
    "LayoutSpec",
    "MaskSpec",
    "PointLayout",
    "TokenBatch",
    "TokenizerSpec",
    "gather_tokens",
    "grid_coords",
]


def grid_coords(shape: tuple[int, ...], device: torch.device | str | None = None) -> Tensor:
    """Integer coordinates ``[prod(shape), len(shape)]`` of every cell of a grid, row-major (last axis fastest)."""
    axes = [torch.arange(n, device=device) for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(shape))


@dataclass(frozen=True)
class GridLayout:
    """Tokens on an integer grid of any rank: ``(L,)`` series, ``(H, W)`` images/spectrograms, ``(T, H, W)`` video.

    Args:
        shape: the grid's shape in tokens. For a variable-length batch this is the padded (largest) shape.
        coords: ``[B, N, rank]`` integer coordinates when the tokens are a *subset* of the grid (sparse voxels);
            ``None`` when every cell is a token, in row-major order (then ``N == prod(shape)``).
    """

    shape: tuple[int, ...]
    coords: Tensor | None = None
    kind: Literal["grid"] = field(default="grid", init=False)

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def dense(self) -> bool:
        return self.coords is None

    @property
    def num_cells(self) -> int:
        return math.prod(self.shape)

    def positions(self, batch_size: int, device: torch.device | str | None = None) -> Tensor:
        """Integer coordinates ``[B, N, rank]`` of the tokens."""
        if self.coords is not None:
            return self.coords
        return grid_coords(self.shape, device).unsqueeze(0).expand(batch_size, -1, -1)


@dataclass(frozen=True)
class PointLayout:
    """Tokens at continuous coordinates (point-cloud group centres): ``coords`` is ``[B, N, C]`` float."""

    coords: Tensor
    kind: Literal["points"] = field(default="points", init=False)

    @property
    def rank(self) -> int:
        return self.coords.shape[-1]

    def positions(self, batch_size: int, device: torch.device | str | None = None) -> Tensor:
        return self.coords


Layout = GridLayout | PointLayout


@dataclass(frozen=True)
class LayoutSpec:
    """What a tokenizer promises about its output, known before any data is seen.

    Args:
        kind: ``"grid"`` (integer coordinates) or ``"points"`` (continuous coordinates).
        rank: number of coordinates per token (grid rank, or 3 for points in space).
        shape: the nominal grid shape for a grid tokenizer (inputs of another size give another shape at run time);
            ``None`` for points.
        variable_length: whether batches may carry a padding mask.
    """

    kind: Literal["grid", "points"]
    rank: int
    shape: tuple[int, ...] | None = None
    variable_length: bool = False

    def describe(self) -> str:
        if self.kind == "grid":
            return f"grid {'x'.join(map(str, self.shape or ()))}" + (
                " (variable length)" if self.variable_length else ""
            )
        return f"points in {self.rank}-D" + (" (variable count)" if self.variable_length else "")


#: Names a tokenizer offers without computing anything: tokens that are raw values laid out channel-last (its
#: ``channels`` is set), and an ``inverse`` back to the raw format.
RAW_VALUES = "raw_values"
INVERSE = "inverse"


@dataclass(frozen=True)
class TokenizerSpec:
    """What a tokenizer promises, known before any data is seen (``Tokenizer.spec``).

    Args:
        name: the tokenizer's class name (for messages).
        token_dim: size ``D`` of each token vector (sizes the encoder's input).
        layout: the :class:`LayoutSpec` of its tokens.
        channels: channels of raw-value tokens laid out channel-last, or ``None`` for learned features.
        provides: per-token data it can compute besides the tokens, by name, with each value's shape per token
            (``{"neighborhoods": (32, 3)}``); ``None`` for a property without data (``{"counts": None}``).
        invertible: whether it maps tokens back to the raw format (``Tokenizer.inverse``).
        patch: each raw-value token's extent along every grid axis (``Tokenizer.patch``), or ``None``.
    """

    name: str
    token_dim: int
    layout: LayoutSpec
    channels: int | None = None
    provides: Mapping[str, tuple[int, ...] | None] = field(default_factory=dict)
    invertible: bool = False
    patch: tuple[int, ...] | None = None

    @property
    def offers(self) -> frozenset[str]:
        """Every name a target or figure may ask for: ``provides``, plus ``raw_values`` and ``inverse`` when they
        hold."""
        implied = {RAW_VALUES} if self.channels is not None else set()
        if self.invertible:
            implied.add(INVERSE)
        return frozenset(self.provides) | implied

    def require(self, needs: frozenset[str] | set[str], part: str, who: str, purpose: str = "") -> frozenset[str]:
        """Check that this tokenizer offers every name in ``needs`` and return those it must compute (provided
        data, not properties); else raise :class:`~anymae.ConfigError` naming the config ``part``
        (``"model.target"``), ``who`` needs them (``"ChamferTarget"``), what for, and what the tokenizer offers."""
        from ..config import ConfigError

        missing = sorted(set(needs) - self.offers)
        if missing:
            offers = ", ".join(sorted(self.offers)) or "nothing beyond its tokens"
            raise ConfigError(
                f"{part}: {who} needs {', '.join(missing)} from the tokenizer{purpose}, which {self.name} does not "
                f"provide (it offers: {offers})"
            )
        return frozenset(name for name in needs if self.provides.get(name) is not None)


class Extras(dict):
    """The per-token data a tokenizer computed because a part asked for it (``TokenBatch.extras``)."""

    def __missing__(self, name: str) -> Tensor:
        have = ", ".join(sorted(self)) or "none"
        raise KeyError(
            f"the tokens carry no {name!r} (computed: {have}); a part that reads it must list it in its `needs`"
        )


@dataclass(frozen=True)
class TokenBatch:
    """A batch of tokens and where they are.

    Args:
        tokens: ``[B, N, D]`` token vectors.
        layout: where the tokens sit (:class:`GridLayout` or :class:`PointLayout`).
        padding_mask: ``[B, N]`` bool, True where a token is padding (variable-length batches); ``None`` if none is.
        extras: per-token data the tokenizer computed because a part of the model asked for it by name, each
            ``[B, N, *shape]`` with the shape the tokenizer declares in its ``provides`` (a point tokenizer's
            neighbourhoods, so a Chamfer target does not group the cloud again).
    """

    tokens: Tensor
    layout: Layout
    padding_mask: Tensor | None = None
    extras: Mapping[str, Tensor] = field(default_factory=Extras)

    def __post_init__(self) -> None:
        if not isinstance(self.extras, Extras):
            object.__setattr__(self, "extras", Extras(self.extras))

    @property
    def batch_size(self) -> int:
        return self.tokens.shape[0]

    @property
    def num_tokens(self) -> int:
        return self.tokens.shape[1]

    def positions(self) -> Tensor:
        """Coordinates ``[B, N, rank]`` of the tokens (integer for grids, float for points)."""
        return self.layout.positions(self.batch_size, self.tokens.device)

    def with_tokens(self, tokens: Tensor) -> TokenBatch:
        """The same layout and padding with other token values (e.g. reconstructions, for :meth:`inverse`)."""
        return replace(self, tokens=tokens)


def gather_tokens(x: Tensor, ids: Tensor) -> Tensor:
    """``x[b, ids[b, i]]`` for ``x`` of shape ``[B, N, ...]`` and ``ids`` of shape ``[B, K]`` -> ``[B, K, ...]``."""
    index = ids.reshape(*ids.shape, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:])
    return torch.gather(x, 1, index)


@dataclass(frozen=True)
class MaskSpec:
    """Which tokens are visible, hidden and decoded, per sample.

    Shapes (``N`` tokens, ``K`` visible, ``M = N - K`` hidden, ``M' <= M`` decoded):

    * ``ids_keep`` ``[B, K]``: indices of the visible tokens (what the encoder sees).
    * ``ids_masked`` ``[B, M]``: indices of the hidden tokens.
    * ``ids_restore`` ``[B, N]``: inverse permutation of ``cat([ids_keep, ids_masked], 1)``.
    * ``mask`` ``[B, N]`` bool: **True = hidden**.
    * ``ids_decode`` ``[B, M']``: the tokens the decoder predicts (a mask token goes to each). Equal to
      ``ids_masked`` unless a decoder-masking strategy chooses others: VideoMAE V2's running cell decodes a fixed
      pattern of positions, some of which the encoder saw.
    * ``decode_valid`` ``[B, M']`` bool or ``None``: which decoded tokens count in the loss -- hidden and not
      padding; ``None`` when all do.
    """

    ids_keep: Tensor
    ids_masked: Tensor
    ids_restore: Tensor
    mask: Tensor
    ids_decode: Tensor
    decode_valid: Tensor | None = None

    @property
    def num_visible(self) -> int:
        return self.ids_keep.shape[1]

    @classmethod
    def from_noise(cls, noise: Tensor, num_keep: int, padding_mask: Tensor | None = None) -> MaskSpec:
        """Keep the ``num_keep`` tokens with the smallest noise in each row (MAE's ``random_masking``).

        Padding tokens are forced to the hidden side, so they are never visible.
        """
        if padding_mask is not None:
            # Noise lives in [0, 1) for every masker; 2 sorts padding after every real token.
            noise = noise.masked_fill(padding_mask, 2.0)
        ids_shuffle = torch.argsort(noise, dim=1)
        return cls.from_order(ids_shuffle, num_keep, padding_mask)

    @classmethod
    def from_order(cls, ids_shuffle: Tensor, num_keep: int, padding_mask: Tensor | None = None) -> MaskSpec:
        """Build from a per-sample permutation whose first ``num_keep`` entries are the visible tokens."""
        n = ids_shuffle.shape[1]
        if not 0 < num_keep < n:
            raise ValueError(f"num_keep must be in (0, {n}), got {num_keep}")
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :num_keep]
        ids_masked = ids_shuffle[:, num_keep:]
        mask = ids_restore >= num_keep
        decode_valid = None
        if padding_mask is not None:
            if bool(torch.gather(padding_mask, 1, ids_keep).any()):
                raise ValueError(
                    "a padding token was chosen as visible; keep fewer tokens than the shortest sample has"
                )
            decode_valid = ~torch.gather(padding_mask, 1, ids_masked)
        return cls(ids_keep, ids_masked, ids_restore, mask, ids_masked, decode_valid)

    @classmethod
    def from_mask(cls, mask: Tensor, padding_mask: Tensor | None = None) -> MaskSpec:
        """Build from an explicit boolean mask ``[B, N]`` (True = hidden), e.g. "hide the last H patches".

        Every row must hide the same number of tokens. Visible and hidden tokens keep their grid order.
        """
        mask = mask.bool()
        if padding_mask is not None:
            mask = mask | padding_mask
        hidden = mask.sum(dim=1)
        if bool((hidden != hidden[0]).any()):
            raise ValueError(f"every sample must hide the same number of tokens, got {hidden.tolist()}")
        num_keep = mask.shape[1] - int(hidden[0])
        # A stable sort of the 0/1 mask lists visible tokens first, each group in its original order.
        ids_shuffle = torch.argsort(mask.to(torch.int8), dim=1, stable=True)
        return cls.from_order(ids_shuffle, num_keep, padding_mask)

    def with_decode(self, ids_decode: Tensor, padding_mask: Tensor | None = None) -> MaskSpec:
        """The same visible set, decoding ``ids_decode`` instead; the loss counts the decoded tokens that are hidden
        and not padding."""
        valid = torch.gather(self.mask, 1, ids_decode)
        if padding_mask is not None:
            valid = valid & ~torch.gather(padding_mask, 1, ids_decode)
        return replace(self, ids_decode=ids_decode, decode_valid=None if bool(valid.all()) else valid)
