"""Trajectory target (Traj-MAE, Chen et al. 2023, https://arxiv.org/abs/2303.06697; Forecast-MAE, Cheng et al. 2023,
https://arxiv.org/abs/2308.09882): for each hidden segment of an agent's track, its positions and its per-step
displacements, each scored by mean squared error. Series values themselves use the core's ``PatchTarget``."""

from collections.abc import Mapping
from typing import Annotated

import torch
from pydantic import Field
from torch import Tensor

from anymae import RAW_VALUES, BuildContext, MaskSpec, Target, TokenBatch, gather_tokens, validated

__all__ = ["TrajectoryTarget"]


class TrajectoryTarget(Target):
    """Positions and displacements of hidden trajectory segments.

    The prediction per token is ``[positions | displacements]``, each ``patch_len * dims`` values; the loss is
    ``MSE(positions) + displacement_weight * MSE(displacements)``. Needs raw-value tokens (positions, step by step)
    and the tokenizer's ``"displacements"`` (``SeriesPatchTokenizer``: in ``"mixed"`` mode each token holds the
    ``(x, y[, z])`` of its steps; in channel-independent mode each coordinate is its own sequence).

    Args:
        displacement_weight: weight of the displacement error (displacements are smaller than positions, and make
            the model get the motion right, not only the place).
    """

    needs = frozenset({RAW_VALUES, "displacements"})
    predicts = RAW_VALUES

    @validated
    def __init__(self, displacement_weight: Annotated[float, Field(ge=0)] = 1.0) -> None:
        super().__init__()
        self.displacement_weight = displacement_weight

    def build(self, ctx: BuildContext) -> None:
        self.dim_per_token = 2 * ctx.tokens.token_dim  # positions, then displacements

    def forward(self, batch: Mapping[str, Tensor], tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        positions = gather_tokens(tokens.tokens, mask.ids_decode)
        displacements = gather_tokens(tokens.provided["displacements"], mask.ids_decode)
        return torch.cat([positions, displacements], dim=-1)

    def token_loss(self, pred: Tensor, target: Tensor, mask: MaskSpec, tokens: TokenBatch | None = None) -> Tensor:
        error = (pred.float() - target.float()).pow(2)
        per_token = error[..., : self.dim_per_token // 2].mean(dim=-1) + self.displacement_weight * error[
            ..., self.dim_per_token // 2 :
        ].mean(dim=-1)
        return per_token

    def to_tokens(self, pred: Tensor, tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        return pred[..., : self.dim_per_token // 2]
