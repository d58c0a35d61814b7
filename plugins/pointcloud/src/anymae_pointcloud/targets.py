"""Point-cloud targets.

* :class:`ChamferTarget` -- Point-MAE: the coordinates of each hidden group's ``k`` points (relative to its centre),
  scored by Chamfer distance (L2 as Point-MAE; L1 as an option).
* :class:`NormalCurvatureTarget` -- the "3D feature prediction" of MaskFeat3D (Yan et al. 2023,
  https://arxiv.org/abs/2304.06911): surface normal and surface variation of each point of a hidden group, estimated by
  local PCA over the cloud; the normal loss ``1 - |cos|`` ignores the sign a normal estimate cannot know.
* :class:`OccupancyTarget` -- voxel MAE: occupancy of each voxel of a hidden patch (binary cross-entropy), or its
  point count (``log(1 + count)``, squared error).
"""

from collections.abc import Mapping
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from torch import Tensor

from anymae import ConfigError, MaskSpec, Target, TokenBatch, Tokenizer, gather_tokens, masked_mean, validated

from .ops import chamfer_distance, estimate_normals, gather_points
from .tokenizers import PointGroupTokenizer, VoxelPatchTokenizer

__all__ = ["ChamferTarget", "NormalCurvatureTarget", "OccupancyTarget"]


def _group_tokenizer(target: str, tokenizer: Tokenizer) -> PointGroupTokenizer:
    if not isinstance(tokenizer, PointGroupTokenizer):
        raise ConfigError(f"{target} needs a PointGroupTokenizer's groups, got {type(tokenizer).__name__}")
    return tokenizer


class ChamferTarget(Target):
    """Point-MAE's reconstruction of hidden groups.

    Args:
        norm: ``"l2"`` (Point-MAE: squared distances) or ``"l1"``.
    """

    @validated
    def __init__(self, norm: Literal["l2", "l1"] = "l2") -> None:
        super().__init__()
        self.norm = norm
        self.group_size = 1

    def bind(self, tokenizer: Tokenizer) -> None:
        self.group_size = _group_tokenizer("ChamferTarget", tokenizer).group_size
        self.dim_per_token = 3 * self.group_size

    def forward(self, batch: Mapping[str, Tensor], tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        return gather_tokens(tokens.aux["neighborhoods"].flatten(2), mask.ids_decode)

    def loss(self, pred: Tensor, target: Tensor, mask: MaskSpec) -> Tensor:
        per_group = chamfer_distance(
            pred.float().unflatten(-1, (-1, 3)), target.float().unflatten(-1, (-1, 3)), self.norm
        )
        return masked_mean(per_group, mask.decode_valid)

    def to_tokens(self, pred: Tensor, tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        raise NotImplementedError("point groups are shown by PointCloudGrid, not through token values")


class NormalCurvatureTarget(Target):
    """Normal and surface variation of each point of a hidden group, in the group's nearest-first order.

    Args:
        neighbors: points in the local PCA (16).
        curvature_weight: weight of the surface-variation error (its scale, ``[0, 1/3]``, is set by the data).
    """

    @validated
    def __init__(self, neighbors: PositiveInt = 16, curvature_weight: Annotated[float, Field(ge=0)] = 1.0) -> None:
        super().__init__()
        self.neighbors = neighbors
        self.curvature_weight = curvature_weight
        self.key = "points"

    def bind(self, tokenizer: Tokenizer) -> None:
        group = _group_tokenizer("NormalCurvatureTarget", tokenizer)
        self.key = group.key
        self.dim_per_token = 4 * group.group_size

    def forward(self, batch: Mapping[str, Tensor], tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        points = batch[self.key].float()
        index = gather_tokens(tokens.aux["neighbor_index"], mask.ids_decode)  # [B, M, k]
        normals, variation = estimate_normals(points, gather_points(points, index).flatten(1, 2), self.neighbors)
        values = torch.cat([normals, variation.unsqueeze(-1)], dim=-1)  # [B, M*k, 4]
        return values.view(*index.shape, 4).flatten(2)

    def loss(self, pred: Tensor, target: Tensor, mask: MaskSpec) -> Tensor:
        pred, target = pred.float().unflatten(-1, (-1, 4)), target.float().unflatten(-1, (-1, 4))
        cosine = F.cosine_similarity(pred[..., :3], target[..., :3], dim=-1, eps=1e-6)
        per_group = (1 - cosine.abs()).mean(dim=-1)
        per_group = per_group + self.curvature_weight * (pred[..., 3] - target[..., 3]).pow(2).mean(dim=-1)
        return masked_mean(per_group, mask.decode_valid)


class OccupancyTarget(Target):
    """Voxel occupancy (or counts) of hidden patches.

    Args:
        mode: ``"occupancy"`` -- logits of occupied/empty per voxel, binary cross-entropy; ``"counts"`` --
            ``log(1 + count)`` per voxel, squared error (needs ``VoxelPatchTokenizer(counts=True)``).
    """

    @validated
    def __init__(self, mode: Literal["occupancy", "counts"] = "occupancy") -> None:
        super().__init__()
        self.mode = mode

    def bind(self, tokenizer: Tokenizer) -> None:
        if not isinstance(tokenizer, VoxelPatchTokenizer):
            raise ConfigError(f"OccupancyTarget needs a VoxelPatchTokenizer, got {type(tokenizer).__name__}")
        if self.mode == "counts" and not tokenizer.counts:
            raise ConfigError("OccupancyTarget(mode='counts') needs VoxelPatchTokenizer(counts=True)")
        self.counts_in = tokenizer.counts
        self.dim_per_token = tokenizer.token_dim

    def forward(self, batch: Mapping[str, Tensor], tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        values = gather_tokens(tokens.tokens, mask.ids_decode)
        return (values > 0).float() if self.mode == "occupancy" else values

    def loss(self, pred: Tensor, target: Tensor, mask: MaskSpec) -> Tensor:
        if self.mode == "occupancy":
            per_token = F.binary_cross_entropy_with_logits(pred.float(), target, reduction="none").mean(dim=-1)
        else:
            per_token = (pred.float() - target).pow(2).mean(dim=-1)
        return masked_mean(per_token, mask.decode_valid)

    def to_tokens(self, pred: Tensor, tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        if self.mode == "counts":
            return pred
        occupied = (pred > 0).float()
        return occupied if not self.counts_in else occupied * torch.log(torch.tensor(2.0))
