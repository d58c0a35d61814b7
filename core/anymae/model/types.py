"""What flows between the parts at every step: ``Tokenizer -> Masker -> Encoder -> Decoder -> Target``.

* :class:`TokenBatch` -- tokens ``[B, N, D]``, where they sit (a :class:`GridLayout` or a :class:`PointLayout`), an
  optional padding mask for variable-length samples, and the per-token data the tokenizer provided because a part
  needs it.
* :class:`MaskSpec` -- which tokens each sample keeps visible, which it hides and which hidden ones the decoder
  predicts. Every sample keeps the same number of visible tokens, so the encoder runs on a dense ``[B, K, D]``.
* :class:`EncoderOutput` -- the encoder's latents and which tokens they belong to.
* :class:`Step` -- all of the above for one batch, with the decoder's predictions and the targets: what a target
  scores and what a learned masker learns from. :class:`MAEOutput` is a step with its loss.

What the parts know of each other before any data is seen is in :mod:`anymae.model.specs`.

Conventions, fixed once for the whole library:

* ``mask`` is boolean and **True means hidden** (MAE's "1 is remove"; VideoMAE and lightly differ, we do not).
* ``padding_mask`` is boolean and **True means padding** (a token that does not exist in this sample).
* Grid tokens are ordered row-major over the grid shape, last axis fastest, each raw-value token flattened channel
  last (:func:`patchify`, as MAE's ``patchify`` and VideoMAE's ``b c (t p0) (h p1) (w p2) -> b (t h w) (p0 p1 p2 c)``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "EncoderOutput",
    "GridLayout",
    "Layout",
    "MAEOutput",
    "MaskSpec",
    "PointLayout",
    "Provided",
    "Step",
    "TokenBatch",
    "gather_tokens",
    "grid_coords",
    "patchify",
    "unpatchify",
]


def grid_coords(shape: tuple[int, ...], device: torch.device | str | None = None) -> Tensor:
    """Integer coordinates ``[prod(shape), len(shape)]`` of every cell of a grid, row-major (last axis fastest)."""
    axes = [torch.arange(n, device=device) for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(shape))


def patchify(x: Tensor, patch: Sequence[int]) -> Tensor:
    """Cut ``x`` ``[B, C, *sizes]`` into non-overlapping patches: ``[B, N, prod(patch) * C]``, patches row-major over
    the grid ``sizes / patch``, each flattened as ``(*patch, C)``. One reshape and one permute, for any rank."""
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


class Provided(dict):
    """The per-token data a tokenizer computed because a part needs it (``TokenBatch.provided``)."""

    def __missing__(self, name: str) -> Tensor:
        have = ", ".join(sorted(self)) or "none"
        raise KeyError(f"the tokens carry no {name!r} (provided: {have}); a part that reads it must list it in `needs`")


@dataclass(frozen=True)
class TokenBatch:
    """A batch of tokens and where they are.

    Args:
        tokens: ``[B, N, D]`` token vectors.
        layout: where the tokens sit (:class:`GridLayout` or :class:`PointLayout`).
        padding_mask: ``[B, N]`` bool, True where a token is padding (variable-length batches); ``None`` if none is.
        provided: per-token data the tokenizer computed because a part needs it, each ``[B, N, *shape]`` with the
            shape its ``provides`` declares (a point tokenizer's neighbourhoods, so a Chamfer target does not group
            the cloud again).
        parts: for a multi-modal batch (:class:`~anymae.MultiModalTokenizer`), each modality's own token batch by
            name, in sequence order: the joint ``tokens`` are their tokens one modality after the other (each
            zero-padded to the widest ``D``), so modality ``m`` holds a fixed slice of the sequence
            (:meth:`segments`); empty for one modality.
    """

    tokens: Tensor
    layout: Layout
    padding_mask: Tensor | None = None
    provided: Mapping[str, Tensor] = field(default_factory=Provided)
    parts: Mapping[str, TokenBatch] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.provided, Provided):
            object.__setattr__(self, "provided", Provided(self.provided))

    @property
    def batch_size(self) -> int:
        return self.tokens.shape[0]

    @property
    def num_tokens(self) -> int:
        return self.tokens.shape[1]

    def positions(self) -> Tensor:
        """Coordinates ``[B, N, rank]`` of the tokens (integer for grids, float for points)."""
        return self.layout.positions(self.batch_size, self.tokens.device)

    def all_ids(self) -> Tensor:
        """``[B, N]``: every token's index."""
        return torch.arange(self.num_tokens, device=self.tokens.device).expand(self.batch_size, -1)

    def segments(self) -> dict[str, tuple[int, int]]:
        """Each modality's ``(start, stop)`` in the joint sequence (a multi-modal batch; empty otherwise)."""
        bounds, start = {}, 0
        for name, part in self.parts.items():
            bounds[name] = (start, start + part.num_tokens)
            start += part.num_tokens
        return bounds

    def with_tokens(self, tokens: Tensor) -> TokenBatch:
        """The same layout and padding with other token values (e.g. reconstructions, for an inverse)."""
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
    * ``ids_decode`` ``[B, M']``: the tokens the decoder predicts. Equal to ``ids_masked`` unless a decoder-masking
      strategy chooses others: VideoMAE V2's running cell decodes a fixed pattern, some of which the encoder saw.
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

    @property
    def counted(self) -> Tensor:
        """``[B, M']`` bool: the decoded tokens that count in a loss (hidden and not padding)."""
        counted = torch.gather(self.mask, 1, self.ids_decode)
        return counted if self.decode_valid is None else counted & self.decode_valid

    @classmethod
    def from_noise(cls, noise: Tensor, num_keep: int, padding_mask: Tensor | None = None) -> MaskSpec:
        """Keep the ``num_keep`` tokens with the smallest noise in each row (MAE's ``random_masking``); padding is
        forced to the hidden side, so it is never visible."""
        if padding_mask is not None:
            # Noise lives in [0, 1) for every masker; 2 sorts padding after every real token.
            noise = noise.masked_fill(padding_mask, 2.0)
        return cls.from_order(torch.argsort(noise, dim=1), num_keep, padding_mask)

    @classmethod
    def from_order(cls, ids_shuffle: Tensor, num_keep: int, padding_mask: Tensor | None = None) -> MaskSpec:
        """Build from a per-sample permutation whose first ``num_keep`` entries are the visible tokens."""
        n = ids_shuffle.shape[1]
        if not 0 < num_keep < n:
            raise ValueError(f"num_keep must be in (0, {n}), got {num_keep}")
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep, ids_masked = ids_shuffle[:, :num_keep], ids_shuffle[:, num_keep:]
        decode_valid = None
        if padding_mask is not None:
            if bool(torch.gather(padding_mask, 1, ids_keep).any()):
                raise ValueError(
                    "a padding token was chosen as visible; keep fewer tokens than the shortest sample has"
                )
            decode_valid = ~torch.gather(padding_mask, 1, ids_masked)
        return cls(ids_keep, ids_masked, ids_restore, ids_restore >= num_keep, ids_masked, decode_valid)

    @classmethod
    def from_mask(cls, mask: Tensor, padding_mask: Tensor | None = None) -> MaskSpec:
        """Build from an explicit boolean mask ``[B, N]`` (True = hidden), e.g. "hide the last H patches". Every row
        must hide the same number of tokens; visible and hidden tokens keep their grid order."""
        mask = mask.bool()
        if padding_mask is not None:
            mask = mask | padding_mask
        hidden = mask.sum(dim=1)
        if bool((hidden != hidden[0]).any()):
            raise ValueError(f"every sample must hide the same number of tokens, got {hidden.tolist()}")
        # A stable sort of the 0/1 mask lists visible tokens first, each group in its original order.
        ids_shuffle = torch.argsort(mask.to(torch.int8), dim=1, stable=True)
        return cls.from_order(ids_shuffle, mask.shape[1] - int(hidden[0]), padding_mask)

    def with_decode(self, ids_decode: Tensor, padding_mask: Tensor | None = None) -> MaskSpec:
        """The same visible set, decoding ``ids_decode`` instead; the loss counts the decoded tokens that are hidden
        and not padding."""
        valid = torch.gather(self.mask, 1, ids_decode)
        if padding_mask is not None:
            valid = valid & ~torch.gather(padding_mask, 1, ids_decode)
        return replace(self, ids_decode=ids_decode, decode_valid=None if bool(valid.all()) else valid)


@dataclass(frozen=True)
class EncoderOutput:
    """What an encoder returns.

    Attributes:
        latent: ``[B, P + L, D]``: ``P`` prefix tokens (a class token), then one latent per index in ``ids``.
        ids: ``[B, L]``: the token each latent belongs to (``MaskSpec.ids_keep`` for MAE's encoder).
        num_prefix: ``P``.
        every_token: the latents cover every token in grid order (``ids`` is every index): an encoder that sees
            the hidden tokens as a mask token (SimMIM's), or one run without a mask; a decoder then reads each hidden
            token's own latent instead of adding a mask token.
        layers: when asked for, the first block's input and every block's output ``[B, P + L, D]`` (before the
            final norm): what feature mixing (CrossMAE's ``weight_fm``) and layer-averaged read-outs use.
        pooled: a multi-modal encoder's pooled feature ``[B, D]`` of each modality (the mean of its tokens'
            latents; zero where a sample has none visible): what a contrastive term between modalities compares.
    """

    latent: Tensor
    ids: Tensor
    num_prefix: int
    every_token: bool = False
    layers: tuple[Tensor, ...] | None = None
    pooled: Mapping[str, Tensor] | None = None

    @property
    def body(self) -> Tensor:
        """``[B, L, D]``: the latents of the tokens (prefix tokens left out)."""
        return self.latent[:, self.num_prefix :]

    def visible(self, mask: MaskSpec) -> Tensor:
        """``[B, K, D]``: the latents of the visible tokens of ``mask``."""
        return gather_tokens(self.body, mask.ids_keep) if self.every_token else self.body


@dataclass(frozen=True)
class Step:
    """One batch from tokens to targets: what a target scores (``Target.loss``) and what a learned masker learns from
    (``Masker.feedback``).

    Attributes:
        batch: the raw batch.
        tokens: the tokenized batch.
        mask: the mask used.
        encoded: the encoder's output.
        pred: ``[B, M', D_out]`` predictions for ``mask.ids_decode``.
        target: ``[B, M', D_out]`` targets for the same tokens.
        token_loss: ``[B, M']`` the target's loss of each decoded token.
    """

    batch: Mapping[str, Tensor]
    tokens: TokenBatch
    mask: MaskSpec
    encoded: EncoderOutput
    pred: Tensor
    target: Tensor
    token_loss: Tensor

    @property
    def latent(self) -> Tensor:
        return self.encoded.latent

    def scored(self, loss: Tensor, terms: Mapping[str, Tensor], auxiliary: Mapping[str, Tensor]) -> MAEOutput:
        """The step with its loss: the target's, plus a learned masker's auxiliary losses (each named in the terms,
        the target's own as ``"target"``)."""
        if auxiliary:
            terms = {**terms, **auxiliary, "target": terms.get("target", loss)}
            loss = loss + sum(auxiliary.values())
        return MAEOutput(**{f.name: getattr(self, f.name) for f in fields(self)}, loss=loss, terms=dict(terms))


@dataclass(frozen=True)
class MAEOutput(Step):
    """A :class:`Step` with its loss.

    Attributes:
        loss: scalar training loss: the target's loss plus the masker's auxiliary losses.
        terms: the named parts of ``loss`` when there are several (each target of a weighted target, unweighted;
            each auxiliary loss of the masker), logged separately.
    """

    loss: Tensor
    terms: Mapping[str, Tensor] = field(default_factory=dict)
