"""Point-cloud targets.

* :class:`ChamferTarget` -- Point-MAE: the coordinates of each hidden group's ``k`` points (relative to its centre),
  scored by Chamfer distance (L2 as Point-MAE; L1 as an option).
* :class:`NormalCurvatureTarget` -- the "3D feature prediction" of MaskFeat3D (Yan et al. 2023,
  https://arxiv.org/abs/2304.06911): surface normal and surface variation of each point of a hidden group, estimated by
  local PCA over the cloud once per cloud in the data pipeline (never at a training step); the normal loss
  ``1 - |cos|`` ignores the sign a normal estimate cannot know.
* :class:`OccupancyTarget` -- voxel MAE: occupancy of each voxel of a hidden patch (binary cross-entropy), or its
  point count (``log(1 + count)``, squared error).
"""

import math
from collections.abc import Mapping
from typing import Annotated, Literal

import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from anymae import (
    RAW_VALUES,
    BuildContext,
    MaskSpec,
    ProvidedTarget,
    Target,
    TokenBatch,
    gather_tokens,
    validated,
)

from .ops import chamfer_distance

__all__ = ["ChamferTarget", "NormalCurvatureTarget", "OccupancyTarget"]


class ChamferTarget(ProvidedTarget):
    """Point-MAE's reconstruction of hidden groups.

    Needs the tokenizer's ``"neighborhoods"`` (each group's points relative to its centre, ``(k, 3)`` per token) and
    predicts them.

    Args:
        norm: ``"l2"`` (Point-MAE: squared distances) or ``"l1"``.
    """

    @validated
    def __init__(self, norm: Literal["l2", "l1"] = "l2") -> None:
        super().__init__("neighborhoods")
        self.norm = norm

    def token_loss(self, pred: Tensor, target: Tensor, mask: MaskSpec, tokens: TokenBatch | None = None) -> Tensor:
        per_group = chamfer_distance(
            pred.float().unflatten(-1, (-1, 3)), target.float().unflatten(-1, (-1, 3)), self.norm
        )
        return per_group

    def to_tokens(self, pred: Tensor, tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        raise NotImplementedError("point groups are shown by PointCloudGrid, not through token values")


class NormalCurvatureTarget(ProvidedTarget):
    """Normal and surface variation of each point of a hidden group, in the group's nearest-first order.

    Needs the tokenizer's ``"neighbor_normals"`` (``(k, 4)`` per token), which it gathers from per-point normals the
    data module computes once per cloud (``normals: true``; the PCA neighbourhood size is the data module's
    ``normal_neighbors``, 16 by default).

    Args:
        curvature_weight: weight of the surface-variation error (its scale, ``[0, 1/3]``, is set by the data).
    """

    @validated
    def __init__(self, curvature_weight: Annotated[float, Field(ge=0)] = 1.0) -> None:
        super().__init__("neighbor_normals")
        self.curvature_weight = curvature_weight

    def token_loss(self, pred: Tensor, target: Tensor, mask: MaskSpec, tokens: TokenBatch | None = None) -> Tensor:
        pred, target = pred.float().unflatten(-1, (-1, 4)), target.float().unflatten(-1, (-1, 4))
        cosine = F.cosine_similarity(pred[..., :3], target[..., :3], dim=-1, eps=1e-6)
        per_group = (1 - cosine.abs()).mean(dim=-1)
        per_group = per_group + self.curvature_weight * (pred[..., 3] - target[..., 3]).pow(2).mean(dim=-1)
        return per_group


class OccupancyTarget(Target):
    """Voxel occupancy (or counts) of hidden patches.

    Needs raw token values (occupancy or ``log(1 + count)`` per voxel, as ``VoxelPatchTokenizer`` gives), and with
    ``mode="counts"`` a tokenizer that provides ``"counts"`` (``VoxelPatchTokenizer(counts=True)``).

    Args:
        mode: ``"occupancy"`` -- logits of occupied/empty per voxel, binary cross-entropy; ``"counts"`` --
            ``log(1 + count)`` per voxel, squared error.
    """

    predicts = RAW_VALUES

    @validated
    def __init__(self, mode: Literal["occupancy", "counts"] = "occupancy") -> None:
        super().__init__()
        self.mode = mode
        self.needs = frozenset({RAW_VALUES, "counts"} if mode == "counts" else {RAW_VALUES})
        self.counts_in = False

    def build(self, ctx: BuildContext) -> None:
        self.counts_in = "counts" in ctx.tokens.provides
        self.dim_per_token = ctx.tokens.token_dim

    def forward(self, batch: Mapping[str, Tensor], tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        values = gather_tokens(tokens.tokens, mask.ids_decode)
        return (values > 0).float() if self.mode == "occupancy" else values

    def token_loss(self, pred: Tensor, target: Tensor, mask: MaskSpec, tokens: TokenBatch | None = None) -> Tensor:
        if self.mode == "occupancy":
            per_token = F.binary_cross_entropy_with_logits(pred.float(), target, reduction="none").mean(dim=-1)
        else:
            per_token = (pred.float() - target).pow(2).mean(dim=-1)
        return per_token

    def to_tokens(self, pred: Tensor, tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        if self.mode == "counts":
            return pred
        occupied = (pred > 0).float()
        return occupied if not self.counts_in else occupied * math.log(2.0)  # log(1 + one point)
