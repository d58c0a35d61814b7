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

    The tokens are PointNet features (learned: ``channels`` is ``None``). It provides, when asked:

    * ``"neighborhoods"`` ``[B, G, k, 3]``: each group's points relative to its centre (Point-MAE's target);
    * ``"neighbor_normals"`` ``[B, G, k, 4]``: the unit normal and surface variation of each of those points,
      gathered from the batch entry ``normals_key`` (``[B, N, 4]``, computed once per cloud by the data module:
      ``ShapesDataModule(normals=true)``, ``PointCloudFolderDataModule(normals=true)``).

    Args:
        num_groups: ``G`` centres (64 in Point-MAE).
        group_size: ``k`` points per group (32).
        dim: size of each group's embedding (384, Point-MAE's ``encoder_dims``).
        key: the batch entry holding points ``[B, N, 3]`` (1024 points in Point-MAE).
        normals_key: the batch entry holding per-point normals and surface variation ``[B, N, 4]``.
    """

    @validated
    def __init__(
        self,
        num_groups: PositiveInt = 64,
        group_size: PositiveInt = 32,
        dim: PositiveInt = 384,
        key: str = "points",
        normals_key: str = "normals",
    ) -> None:
        super().__init__()
        self.num_groups, self.group_size, self.key, self.normals_key = num_groups, group_size, key, normals_key
        self.token_dim = dim
        self.layout = LayoutSpec(kind="points", rank=3)
        self.provides = {"neighborhoods": (group_size, 3), "neighbor_normals": (group_size, 4)}
        self.embed = MiniPointNet(dim)

    def example_batch(self, batch_size: int = 2) -> dict[str, Tensor]:
        """Random clouds in the unit sphere, twice as many points as groups need, with random unit normals."""
        g = torch.Generator().manual_seed(0)
        n = 2 * max(self.num_groups, self.group_size)
        points = torch.randn(batch_size, n, 3, generator=g)
        normals = torch.nn.functional.normalize(torch.randn(batch_size, n, 3, generator=g), dim=-1)
        variation = torch.rand(batch_size, n, 1, generator=g) / 3
        return {
            self.key: points / points.norm(dim=-1).amax(dim=1)[:, None, None],
            self.normals_key: torch.cat([normals, variation], dim=-1),
        }

    def group(self, points: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Centres ``[B, G, 3]``, neighbourhoods relative to them ``[B, G, k, 3]`` and their indices ``[B, G, k]``."""
        if points.shape[1] < max(self.num_groups, self.group_size):
            raise ConfigError(
                f"{points.shape[1]} points cannot make {self.num_groups} groups of {self.group_size}: raise the data's "
                "num_points or lower model.tokenizer.num_groups"
            )
        with torch.no_grad():
            centres = gather_points(points, farthest_point_sample(points, self.num_groups))
            index = knn(centres, points, self.group_size)
        neighbourhoods = gather_points(points, index) - centres.unsqueeze(2)
        return centres, neighbourhoods, index

    def forward(self, batch: Mapping[str, Tensor], needs: frozenset[str] = frozenset()) -> TokenBatch:
        points = batch[self.key].float()
        centres, neighbourhoods, index = self.group(points)
        computed = {}
        if "neighborhoods" in needs:
            computed["neighborhoods"] = neighbourhoods
        if "neighbor_normals" in needs:
            if self.normals_key not in batch:
                raise ConfigError(
                    f"PointGroupTokenizer: neighbor_normals needs the batch entry {self.normals_key!r} [B, N, 4] "
                    "(normal and surface variation per point); turn normals on in the data module "
                    "(ShapesDataModule or PointCloudFolderDataModule: normals: true)"
                )
            computed["neighbor_normals"] = gather_points(batch[self.normals_key].float(), index)
        return TokenBatch(self.embed(neighbourhoods), PointLayout(centres), provided=computed)


class VoxelPatchTokenizer(Tokenizer):
    """Points in ``[-1, 1]^3`` binned into a ``grid_size^3`` occupancy grid, cut into ``patch_size^3`` patches.

    Each token is its patch's occupancy (1 where a voxel holds a point), or ``log(1 + count)`` of points with
    ``counts=True``; raw values with one channel, so :class:`OccupancyTarget` (or ``PatchTarget``) can predict them.
    It provides ``"voxel_centers"`` ``[B, N, p^3, 3]`` (each voxel's centre in ``[-1, 1]^3``, to draw tokens as
    points) and, with ``counts=True``, the property ``"counts"``.

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
        self.provides = {"voxel_centers": (patch_size**3, 3), **({"counts": None} if counts else {})}

    def example_batch(self, batch_size: int = 2) -> dict[str, Tensor]:
        """Random clouds of 256 points in the unit sphere."""
        points = torch.randn(batch_size, 256, 3, generator=torch.Generator().manual_seed(0))
        return {self.key: points / points.norm(dim=-1).amax(dim=1)[:, None, None]}

    def voxelize(self, points: Tensor) -> Tensor:
        """Point counts per voxel ``[B, S, S, S]`` (points outside ``[-1, 1]^3`` go to the border voxels)."""
        b, n, _ = points.shape
        s = self.grid_size
        cell = ((points.float() + 1) / 2 * s).floor().long().clamp(0, s - 1)  # [B, N, 3]
        flat = (cell[..., 0] * s + cell[..., 1]) * s + cell[..., 2]
        grid = torch.zeros(b, s**3, device=points.device)
        grid.scatter_add_(1, flat, torch.ones(b, n, device=points.device))
        return grid.view(b, s, s, s)

    def _patches(self, grid: Tensor) -> Tensor:
        """``[..., S, S, S, C]`` voxels -> ``[..., (S/p)^3, p^3, C]``: patches row-major, voxels row-major within."""
        s, p = self.grid_size // self.patch_size, self.patch_size
        lead = grid.shape[:-4]
        x = grid.reshape(*lead, s, p, s, p, s, p, grid.shape[-1])
        x = x.movedim((-6, -4, -2), (-4, -3, -2))  # [..., s, s, s, p, p, p, C]
        return x.reshape(*lead, s**3, p**3, grid.shape[-1])

    def forward(self, batch: Mapping[str, Tensor], needs: frozenset[str] = frozenset()) -> TokenBatch:
        grid = self.voxelize(batch[self.key])
        values = grid.log1p() if self.counts else (grid > 0).float()
        tokens = self._patches(values.unsqueeze(-1)).squeeze(-1)
        computed = {}
        if "voxel_centers" in needs:
            axis = (torch.arange(self.grid_size, device=tokens.device) + 0.5) / self.grid_size * 2 - 1
            centres = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1)  # [S, S, S, 3]
            computed["voxel_centers"] = self._patches(centres).expand(tokens.shape[0], -1, -1, -1)
        s = self.grid_size // self.patch_size
        return TokenBatch(tokens, GridLayout((s, s, s)), provided=computed)
