"""Point-cloud tokenizers.

* :class:`PointGroupTokenizer` -- Point-MAE (Pang et al. 2022, https://arxiv.org/abs/2203.06604): ``G`` centres by
  farthest point sampling, the ``k`` nearest points around each expressed relative to it, each group embedded by a
  small PointNet (shared MLP, max-pool, concatenated global feature, MLP, max-pool); positions are the centres.
* :class:`VoxelPatchTokenizer` -- voxel MAE (Hess et al. 2022, https://arxiv.org/abs/2207.00531; NeRF-MAE, Irshad et
  al. 2024, https://arxiv.org/abs/2404.01300): points binned into a dense occupancy grid whose 3-D patches are the
  tokens, on an integer grid like a video's.
"""

from collections.abc import Mapping

import torch
from pydantic import PositiveInt
from torch import Tensor, nn

from anymae import ConfigError, GridLayout, LayoutSpec, PointLayout, TokenBatch, Tokenizer, validated

from .ops import farthest_point_sample, gather_points, knn

__all__ = ["PointGroupTokenizer", "VoxelPatchTokenizer"]


class MiniPointNet(nn.Module):
    """Point-MAE's group encoder: per point ``3 -> 128 -> 256``, max-pool, concatenate the pooled feature to every
    point, ``512 -> 512 -> dim``, max-pool (1x1 convolutions written as linear layers)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.first = nn.Sequential(nn.Linear(3, 128), nn.BatchNorm1d(128), nn.ReLU(inplace=True), nn.Linear(128, 256))
        self.second = nn.Sequential(
            nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True), nn.Linear(512, dim)
        )

    @staticmethod
    def _pointwise(layers: nn.Sequential, x: Tensor) -> Tensor:
        """Apply ``layers`` to every point of ``x`` ``[S, k, C]`` (BatchNorm over all points)."""
        s, k, _ = x.shape
        return layers(x.reshape(s * k, -1)).reshape(s, k, -1)

    def forward(self, groups: Tensor) -> Tensor:
        """``[B, G, k, 3]`` -> ``[B, G, dim]``."""
        b, g, k, _ = groups.shape
        x = self._pointwise(self.first, groups.reshape(b * g, k, 3))
        x = torch.cat([x.max(dim=1, keepdim=True).values.expand(-1, k, -1), x], dim=-1)
        return self._pointwise(self.second, x).max(dim=1).values.reshape(b, g, -1)


class PointGroupTokenizer(Tokenizer):
    """Point-MAE's grouping and embedding.

    The tokens are PointNet features (learned: ``channels`` is ``None``); ``aux["neighborhoods"]`` holds each
    group's points relative to its centre ``[B, G, k, 3]`` and ``aux["neighbor_index"]`` their indices in the cloud,
    for the targets.

    Args:
        num_groups: ``G`` centres (64 in Point-MAE).
        group_size: ``k`` points per group (32).
        dim: size of each group's embedding (384, Point-MAE's ``encoder_dims``).
        key: the batch entry holding points ``[B, N, 3]`` (1024 points in Point-MAE).
    """

    @validated
    def __init__(
        self, num_groups: PositiveInt = 64, group_size: PositiveInt = 32, dim: PositiveInt = 384, key: str = "points"
    ) -> None:
        super().__init__()
        self.num_groups, self.group_size, self.key = num_groups, group_size, key
        self.token_dim = dim
        self.layout = LayoutSpec(kind="points", rank=3)
        self.embed = MiniPointNet(dim)

    def group(self, points: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Centres ``[B, G, 3]``, neighbourhoods relative to them ``[B, G, k, 3]`` and their indices ``[B, G, k]``."""
        if points.shape[1] < max(self.num_groups, self.group_size):
            raise ValueError(f"{points.shape[1]} points cannot make {self.num_groups} groups of {self.group_size}")
        with torch.no_grad():
            centres = gather_points(points, farthest_point_sample(points, self.num_groups))
            index = knn(centres, points, self.group_size)
        neighbourhoods = gather_points(points, index) - centres.unsqueeze(2)
        return centres, neighbourhoods, index

    def forward(self, batch: Mapping[str, Tensor]) -> TokenBatch:
        points = batch[self.key].float()
        centres, neighbourhoods, index = self.group(points)
        aux = {"neighborhoods": neighbourhoods, "neighbor_index": index}
        return TokenBatch(self.embed(neighbourhoods), PointLayout(centres), aux=aux)


class VoxelPatchTokenizer(Tokenizer):
    """Points in ``[-1, 1]^3`` binned into a ``grid_size^3`` occupancy grid, cut into ``patch_size^3`` patches.

    Each token is its patch's occupancy (1 where a voxel holds a point), or ``log(1 + count)`` of points with
    ``counts=True``; raw values with one channel, so :class:`OccupancyTarget` (or ``PatchTarget``) can predict them.

    Args:
        grid_size: voxels per axis (a multiple of ``patch_size``).
        patch_size: voxels per patch and axis.
        counts: ``log(1 + points per voxel)`` instead of occupancy.
        key: the batch entry holding points ``[B, N, 3]``, normalised to the unit sphere.
    """

    @validated
    def __init__(
        self, grid_size: PositiveInt = 16, patch_size: PositiveInt = 4, counts: bool = False, key: str = "points"
    ) -> None:
        super().__init__()
        if grid_size % patch_size:
            raise ConfigError(f"VoxelPatchTokenizer.grid_size {grid_size} is not a multiple of patch_size {patch_size}")
        self.grid_size, self.patch_size, self.counts, self.key = grid_size, patch_size, counts, key
        self.channels = 1
        self.token_dim = patch_size**3
        side = grid_size // patch_size
        self.layout = LayoutSpec(kind="grid", rank=3, shape=(side, side, side))

    def voxelize(self, points: Tensor) -> Tensor:
        """Point counts per voxel ``[B, S, S, S]`` (points outside ``[-1, 1]^3`` go to the border voxels)."""
        b, n, _ = points.shape
        s = self.grid_size
        cell = ((points.float() + 1) / 2 * s).floor().long().clamp(0, s - 1)  # [B, N, 3]
        flat = (cell[..., 0] * s + cell[..., 1]) * s + cell[..., 2]
        grid = torch.zeros(b, s**3, device=points.device)
        grid.scatter_add_(1, flat, torch.ones(b, n, device=points.device))
        return grid.view(b, s, s, s)

    def forward(self, batch: Mapping[str, Tensor]) -> TokenBatch:
        grid = self.voxelize(batch[self.key])
        values = grid.log1p() if self.counts else (grid > 0).float()
        b, s, p = values.shape[0], self.grid_size // self.patch_size, self.patch_size
        tokens = values.view(b, s, p, s, p, s, p).permute(0, 1, 3, 5, 2, 4, 6).reshape(b, s**3, p**3)
        return TokenBatch(tokens, GridLayout((s, s, s)))

    def to_grid(self, tokens: TokenBatch) -> Tensor:
        """Tokens back to the voxel grid ``[B, S, S, S]`` (the raw input is points, so this is no ``inverse``)."""
        b, s, p = tokens.tokens.shape[0], self.grid_size // self.patch_size, self.patch_size
        grid = tokens.tokens.view(b, s, s, s, p, p, p).permute(0, 1, 4, 2, 5, 3, 6)
        return grid.reshape(b, self.grid_size, self.grid_size, self.grid_size)
