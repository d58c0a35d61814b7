"""Position embeddings, chosen by the token layout.

* :class:`SinCosPositionEmbedding`: fixed sine-cosine embedding of integer grid coordinates of any rank. For a 2-D grid
  it equals MAE's ``get_2d_sincos_pos_embed`` (https://github.com/facebookresearch/mae, ``util/pos_embed.py``): the
  feature dimension is split evenly between the axes, each axis gets ``[sin | cos]`` of its coordinate at
  ``dim / (2 * rank)`` frequencies, and the axes are laid out last axis first (MAE's 2-D table is ``[w | h]``).
  With ``axes="flat"`` it is instead the original Transformer's 1-D table over each token's row-major index, sines
  and cosines interleaved, which is what VideoMAE (``get_sinusoid_encoding_table``) uses for its video grid.
* :class:`LearnedPositionEmbedding`: a learned vector per grid cell (ViT); :class:`SeparablePositionEmbedding`: a
  learned table along the first axis plus one over the others, summed (MAE-ST's ``sep_pos_embed``: time + space).
* :class:`MLPPositionEmbedding`: a learned MLP on continuous coordinates (Point-MAE, Pang et al. 2022,
  https://arxiv.org/abs/2203.06604: ``Linear(3, 128) -> GELU -> Linear(128, dim)``).

Both answer the same question: "the embedding of the tokens at indices ``ids`` of this batch", so the encoder and
decoder never look at the layout themselves.
"""

import math
from abc import ABC, abstractmethod
from typing import Annotated, Any, Literal, cast

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from torch import Tensor, nn

from ..config import ConfigError, validated
from .specs import LayoutSpec
from .types import TokenBatch, gather_tokens, grid_coords

__all__ = [
    "LearnedPositionEmbedding",
    "MLPPositionEmbedding",
    "PositionEmbedding",
    "SeparablePositionEmbedding",
    "SinCosPositionEmbedding",
    "default_position_embedding",
    "resample_grid_table",
    "sincos_embedding",
]


def sincos_embedding(coords: Tensor, dim: int, temperature: float = 10000.0) -> Tensor:
    """Sine-cosine embedding ``[..., dim]`` of coordinates ``[..., rank]`` (computed in float64, as MAE's numpy)."""
    rank = coords.shape[-1]
    if dim % (2 * rank):
        raise ValueError(f"a sin-cos embedding of a rank-{rank} grid needs dim divisible by {2 * rank}, got {dim}")
    per_axis = dim // (2 * rank)
    dtype = torch.float32 if coords.device.type == "mps" else torch.float64
    omega = 1.0 / temperature ** (torch.arange(per_axis, dtype=dtype, device=coords.device) / per_axis)
    parts = []
    for axis in reversed(range(rank)):  # rank <= 3: a loop over axes, not over samples
        angles = coords[..., axis, None].to(dtype) * omega
        parts += [angles.sin(), angles.cos()]
    return torch.cat(parts, dim=-1).float()


def flat_sincos_embedding(index: Tensor, dim: int, temperature: float = 10000.0) -> Tensor:
    """The Transformer's 1-D table ``[..., dim]`` of integer positions ``index`` ``[...]``: dimension ``2i`` is
    ``sin(pos / T^(2i / dim))`` and ``2i + 1`` its cosine (VideoMAE's ``get_sinusoid_encoding_table``, float64)."""
    if dim % 2:
        raise ValueError(f"a sin-cos embedding needs an even dim, got {dim}")
    dtype = torch.float32 if index.device.type == "mps" else torch.float64
    omega = 1.0 / temperature ** (torch.arange(0, dim, 2, dtype=dtype, device=index.device) / dim)
    angles = index[..., None].to(dtype) * omega
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2).float()


class PositionEmbedding(nn.Module, ABC):
    """Embeds token positions: ``forward(tokens, ids) -> [B, K, dim]`` for the tokens at ``ids`` ``[B, K]``."""

    dim: int

    def build(self, dim: int, layout: LayoutSpec) -> None:
        """Size the embedding for ``dim`` features and check that it can serve ``layout``."""
        self.dim = dim

    @abstractmethod
    def forward(self, tokens: TokenBatch, ids: Tensor) -> Tensor: ...


class SinCosPositionEmbedding(PositionEmbedding):
    """Fixed sine-cosine embedding of integer grid coordinates, for grids of rank 1, 2 or 3 (no parameters).

    The table for the tokenizer's grid is built once and kept as a (non-persistent) buffer; a batch whose grid has
    another shape (variable-length audio or series) gets its own table, cached until the shape changes again.

    Args:
        temperature: base of the frequency decay (10000 in MAE).
        axes: ``"grid"``: each grid axis gets its share of the features (MAE's 2-D table, a joint 3-D table for
            video); ``"flat"``: one 1-D table over the tokens' row-major index, sines and cosines interleaved
            (VideoMAE's table for its ``(T/t) x (H/p) x (W/p)`` grid).
    """

    @validated
    def __init__(
        self, temperature: Annotated[float, Field(gt=1)] = 10000.0, axes: Literal["grid", "flat"] = "grid"
    ) -> None:
        super().__init__()
        self.temperature = temperature
        self.axes = axes
        self.grid_shape: tuple[int, ...] | None = None
        self.register_buffer("table", torch.empty(0), persistent=False)

    def build(self, dim: int, layout: LayoutSpec) -> None:
        super().build(dim, layout)
        if layout.kind != "grid":
            raise ConfigError(f"SinCosPositionEmbedding needs integer grid positions, got a {layout.describe()} layout")
        if self.axes == "flat" and dim % 2:
            raise ConfigError(f"SinCosPositionEmbedding(axes='flat'): embedding size {dim} must be even")
        if self.axes == "grid" and dim % (2 * layout.rank):
            raise ConfigError(
                f"SinCosPositionEmbedding: embedding size {dim} must be divisible by {2 * layout.rank} "
                f"(2 x grid rank {layout.rank})"
            )
        if layout.shape is not None:
            self._set_table(layout.shape, torch.device("cpu"))

    def _set_table(self, shape: tuple[int, ...], device: torch.device) -> None:
        if self.axes == "flat":
            self.table = flat_sincos_embedding(
                torch.arange(math.prod(shape), device=device), self.dim, self.temperature
            )
        else:
            self.table = sincos_embedding(grid_coords(shape, device), self.dim, self.temperature)
        self.grid_shape = tuple(shape)

    def forward(self, tokens: TokenBatch, ids: Tensor) -> Tensor:
        layout = tokens.layout
        if layout.kind != "grid":
            raise ValueError("SinCosPositionEmbedding got tokens without a grid layout")
        if layout.coords is not None:  # sparse grid (voxels): embed the coordinates of the chosen tokens
            if self.axes == "flat":
                raise ValueError("SinCosPositionEmbedding(axes='flat') needs a dense grid, got sparse coordinates")
            return sincos_embedding(gather_tokens(layout.coords, ids), self.dim, self.temperature)
        if layout.shape != self.grid_shape or self.table.device != ids.device:
            self._set_table(layout.shape, ids.device)
        return self.table[ids]


def resample_grid_table(table: Tensor, old_shape: tuple[int, ...], new_shape: tuple[int, ...]) -> Tensor:
    """Interpolate a per-cell table ``[prod(old_shape), D]`` to another grid (linear, bicubic or trilinear by rank;
    antialiased when a 2-D grid shrinks), as ViT fine-tuning at another resolution does."""
    if tuple(old_shape) == tuple(new_shape):
        return table
    mode = {1: "linear", 2: "bicubic", 3: "trilinear"}[len(old_shape)]
    grid = table.T.reshape(1, table.shape[1], *old_shape).float()
    shrink = mode == "bicubic" and any(n < o for n, o in zip(new_shape, old_shape, strict=True))
    out = F.interpolate(grid, size=tuple(new_shape), mode=mode, align_corners=False, antialias=shrink)
    return out.reshape(table.shape[1], -1).T.to(table.dtype)


class LearnedPositionEmbedding(PositionEmbedding):
    """A learned vector per grid cell (ViT's ``pos_embed``), initialised with the sin-cos table (as MAE's fine-tuning
    starts from the frozen pretraining table) or truncated-normal (std 0.02).

    Another grid at run time (another image size or sequence length) gets the table interpolated, and a state dict
    saved for another grid is interpolated on load: fine-tuning at another resolution just works.

    Args:
        init: ``"sincos"`` or ``"trunc_normal"``.
        temperature: of the sin-cos initialisation.
    """

    table: nn.Parameter  # [prod(grid), dim], created by build (or from_table)

    @validated
    def __init__(self, init: Literal["sincos", "trunc_normal"] = "sincos", temperature: float = 10000.0) -> None:
        super().__init__()
        self.init = init
        self.temperature = temperature
        self.register_buffer("grid", torch.zeros(0, dtype=torch.long))  # the table's grid shape, saved with it
        self.shape: tuple[int, ...] = ()  # the same on the host: forward reads it without a device sync

    def build(self, dim: int, layout: LayoutSpec) -> None:
        super().build(dim, layout)
        if layout.kind != "grid" or layout.shape is None:
            raise ConfigError(f"LearnedPositionEmbedding needs a grid of known shape, got a {layout.describe()} layout")
        shape = tuple(layout.shape)
        if self.init == "sincos":
            table = sincos_embedding(grid_coords(shape), dim, self.temperature)
        else:
            table = nn.init.trunc_normal_(torch.empty(math.prod(shape), dim), std=0.02)
        self.table = nn.Parameter(table)
        self.grid, self.shape = torch.tensor(shape), shape

    @classmethod
    def from_table(cls, table: Tensor, shape: tuple[int, ...]) -> "LearnedPositionEmbedding":
        """A learnable copy of an existing table (e.g. the frozen sin-cos one, to fine-tune it)."""
        embed = cls()
        embed.dim = table.shape[1]
        embed.table = nn.Parameter(table.detach().clone())
        embed.grid, embed.shape = torch.tensor(shape), tuple(shape)
        return embed

    def forward(self, tokens: TokenBatch, ids: Tensor) -> Tensor:
        layout = tokens.layout
        if layout.kind != "grid" or layout.coords is not None:
            raise ValueError("LearnedPositionEmbedding needs tokens on a dense grid")
        table = resample_grid_table(self.table, self.shape, tuple(layout.shape))
        return table[ids]

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        table, grid = state_dict.get(prefix + "table"), state_dict.get(prefix + "grid")
        if table is not None and grid is not None and "table" in self._parameters:  # built
            state_dict[prefix + "table"] = resample_grid_table(table, tuple(grid.tolist()), self.shape)
            state_dict[prefix + "grid"] = self.grid.clone()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class SeparablePositionEmbedding(PositionEmbedding):
    """A learned table along the grid's first axis plus a learned table over its other axes, summed (MAE-ST's
    ``sep_pos_embed``, Feichtenhofer et al. 2022, https://arxiv.org/abs/2205.09113: ``pos_embed_temporal`` over the
    ``T/t`` time steps, ``pos_embed_spatial`` over the ``H/p x W/p`` positions). ``T + HW`` vectors instead of
    ``T x HW``. Both start truncated-normal (std 0.02), as MAE-ST's; another grid at run time, or a state dict saved
    for another grid, gets each table interpolated.
    """

    # Created by build:
    first: nn.Parameter  # [shape[0], dim]: time
    rest: nn.Parameter  # [prod(shape[1:]), dim]: space

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("grid", torch.zeros(0, dtype=torch.long))
        self.shape: tuple[int, ...] = ()

    def build(self, dim: int, layout: LayoutSpec) -> None:
        super().build(dim, layout)
        if layout.kind != "grid" or layout.shape is None or layout.rank < 2:
            raise ConfigError(
                f"SeparablePositionEmbedding needs a grid of rank 2 or more of known shape, got a {layout.describe()}"
            )
        shape = tuple(layout.shape)
        self.first = nn.Parameter(nn.init.trunc_normal_(torch.empty(shape[0], dim), std=0.02))
        self.rest = nn.Parameter(nn.init.trunc_normal_(torch.empty(math.prod(shape[1:]), dim), std=0.02))
        self.grid = torch.tensor(shape)
        self.shape = shape  # the grid as Python ints: reading the buffer would wait for the GPU at every step

    def tables(self, shape: tuple[int, ...]) -> tuple[Tensor, Tensor]:
        """The two tables for a grid of ``shape`` (interpolated from the built grid when it differs)."""
        own = self.shape
        return (
            resample_grid_table(self.first, own[:1], shape[:1]),
            resample_grid_table(self.rest, own[1:], shape[1:]),
        )

    def forward(self, tokens: TokenBatch, ids: Tensor) -> Tensor:
        layout = tokens.layout
        if layout.kind != "grid" or layout.coords is not None:
            raise ValueError("SeparablePositionEmbedding needs tokens on a dense grid")
        first, rest = self.tables(tuple(layout.shape))
        cells = rest.shape[0]
        return first[ids // cells] + rest[ids % cells]

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        grid = state_dict.get(prefix + "grid")
        if grid is not None and "first" in self._parameters and prefix + "first" in state_dict:  # built
            saved, own = tuple(grid.tolist()), self.shape
            state_dict[prefix + "first"] = resample_grid_table(state_dict[prefix + "first"], saved[:1], own[:1])
            state_dict[prefix + "rest"] = resample_grid_table(state_dict[prefix + "rest"], saved[1:], own[1:])
            state_dict[prefix + "grid"] = self.grid.clone()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class MLPPositionEmbedding(PositionEmbedding):
    """Learned MLP on continuous coordinates (Point-MAE's ``pos_embed``): ``Linear(rank, hidden) -> GELU ->
    Linear(hidden, dim)``. Also accepts grid layouts (their integer coordinates are used as they are).

    Args:
        hidden_dim: width of the hidden layer (128 in Point-MAE).
    """

    mlp: nn.Sequential  # created by build

    @validated
    def __init__(self, hidden_dim: PositiveInt = 128) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim

    def build(self, dim: int, layout: LayoutSpec) -> None:
        super().build(dim, layout)
        self.mlp = nn.Sequential(nn.Linear(layout.rank, self.hidden_dim), nn.GELU(), nn.Linear(self.hidden_dim, dim))

    def forward(self, tokens: TokenBatch, ids: Tensor) -> Tensor:
        coords = gather_tokens(tokens.positions(), ids)
        return self.mlp(coords.to(cast(nn.Linear, self.mlp[0]).weight.dtype))


def default_position_embedding(layout: LayoutSpec) -> PositionEmbedding:
    """Fixed sin-cos for grids, the learned MLP for points."""
    return SinCosPositionEmbedding() if layout.kind == "grid" else MLPPositionEmbedding()
