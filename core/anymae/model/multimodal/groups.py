"""Each modality's tokens out of a joint sequence and back, batched.

A joint sequence holds the tokens at ``ids`` ``[B, K]`` (indices into the joint token sequence: the visible ones
of a mask, or every token). A modality ``m`` owns the indices ``[start, stop)``; how many of its tokens a sample
has among ``ids`` may differ per sample (MultiMAE's Dirichlet split). :class:`Group` gathers them into a dense
``[B, K_m, ...]`` (``K_m`` the most any sample has, the rest marked invalid), so a modality's layers run on its
tokens only, and scatters the results back in place. When every sample has the same count (CAV-MAE's fixed ratios),
nothing is invalid and attention needs no mask.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..position import PositionEmbedding, default_position_embedding
from ..specs import TokenizerSpec
from ..types import gather_tokens

__all__ = ["Group", "modality_of", "modality_positions"]


def modality_positions(
    given: Mapping[str, PositionEmbedding], specs: Mapping[str, TokenizerSpec], dim: int
) -> nn.ModuleDict:
    """A position embedding per modality at width ``dim``: the one ``given`` for it, else its layout's default
    (sin-cos for grids, an MLP for points), each built for its modality's layout."""
    positions = {m: given.get(m) or default_position_embedding(spec.layout) for m, spec in specs.items()}
    for m, spec in specs.items():
        positions[m].build(dim, spec.layout)
    return nn.ModuleDict(positions)


def modality_of(ids: Tensor, bounds: list[tuple[int, int]]) -> Tensor:
    """``[B, K]`` long: which modality (its index in ``bounds``) each joint index in ``ids`` belongs to."""
    starts = torch.tensor([start for start, _ in bounds[1:]], device=ids.device, dtype=ids.dtype)
    return torch.bucketize(ids.contiguous(), starts, right=True)


@dataclass(frozen=True)
class Group:
    """One modality's entries of a joint sequence.

    Attributes:
        slots: ``[B, K_m]`` positions in the joint sequence (``[0, K)``) of the modality's entries, in sequence
            order; past a sample's count they point at other modalities' positions and are invalid.
        valid: ``[B, K_m]`` bool: the slot is one of the modality's entries.
        local: ``[B, K_m]`` each entry's index among the modality's own tokens (``[0, stop - start)``; 0 where
            invalid).
    """

    slots: Tensor
    valid: Tensor
    local: Tensor

    @classmethod
    def of(cls, ids: Tensor, start: int, stop: int) -> Group:
        member = (ids >= start) & (ids < stop)
        counts = member.sum(dim=1)
        width = int(counts.max()) if ids.shape[1] else 0
        # a stable sort puts each sample's members first, in sequence order
        slots = torch.argsort((~member).to(torch.int8), dim=1, stable=True)[:, :width]
        valid = torch.arange(width, device=ids.device) < counts[:, None]
        local = torch.where(valid, torch.gather(ids, 1, slots) - start, 0)
        return cls(slots, valid, local)

    @property
    def full(self) -> bool:
        """Every sample has the same count: no slot is invalid."""
        return bool(self.valid.all())

    def gather(self, x: Tensor) -> Tensor:
        """``x`` ``[B, K, ...]`` -> the modality's entries ``[B, K_m, ...]``."""
        return gather_tokens(x, self.slots)

    def attend(self, padding: Tensor | None = None) -> Tensor | None:
        """Attention mask ``[B, 1, 1, K_m]`` (True = may attend) over the valid entries that are not ``padding``
        (``[B, K_m]``); ``None`` when every entry may be attended. A sample with none keeps its first key, so
        attention stays finite; its outputs are never scattered back."""
        keep = self.valid if padding is None else self.valid & ~padding
        if bool(keep.all()):
            return None
        keep = keep.clone()
        keep[:, 0] |= ~keep.any(dim=1)
        return keep[:, None, None, :]

    def scatter(self, into: Tensor, values: Tensor) -> Tensor:
        """``into`` ``[B, K, ...]`` with the valid entries replaced by ``values`` ``[B, K_m, ...]``."""
        index = self.slots.reshape(*self.slots.shape, *([1] * (into.dim() - 2))).expand(-1, -1, *into.shape[2:])
        if self.full:
            return into.scatter(1, index, values.to(into.dtype))
        valid = self.valid.reshape(*self.valid.shape, *([1] * (into.dim() - 2)))
        kept = torch.where(valid, values.to(into.dtype), torch.gather(into, 1, index))  # invalid slots: unchanged
        return into.scatter(1, index, kept)

    def mean(self, x: Tensor, padding: Tensor | None = None) -> Tensor:
        """``[B, D]``: the mean of the modality's entries of ``x`` ``[B, K_m, D]`` (zero for a sample with none)."""
        keep = self.valid if padding is None else self.valid & ~padding
        weights = keep.to(x.dtype)[..., None]
        return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1)
