"""A weighted sum of named targets (pixels + HOG; pixels + a teacher's features, MR-MAE)."""

from collections.abc import Mapping
from dataclasses import replace
from typing import cast

import torch
from pydantic import PositiveFloat
from torch import Tensor, nn

from ...config import ConfigError, validated
from ..specs import RAW_VALUES, BuildContext
from ..types import MaskSpec, Step, TokenBatch
from .base import Target

__all__ = ["WeightedTarget"]


class WeightedTarget(Target):
    """A weighted sum of named targets: pixels + HOG, pixels + a teacher's features (MR-MAE, Gao et al. 2023,
    https://arxiv.org/abs/2303.05475). Each target keeps its own geometry and loss; the model logs each one's loss as
    ``train/loss_<name>`` (unweighted) beside the weighted total ``train/loss``.

    The decoder predicts the decoded targets side by side (its output is their widths concatenated, in the order
    given); targets the encoder predicts score the encoder's latents of the visible tokens themselves. Figures draw
    the first target whose predictions map back to token values (pixels).

    Args:
        targets: the targets by name (the names appear in the logs).
        weights: weight of each target's loss by name (1 where unset).
    """

    @validated
    def __init__(self, targets: dict[str, Target], weights: dict[str, PositiveFloat] | None = None) -> None:
        super().__init__()
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(targets))
        if unknown:
            raise ConfigError(f"WeightedTarget.weights names {unknown}, which are not targets ({sorted(targets)})")
        if not targets:
            raise ConfigError("WeightedTarget.targets is empty; give at least one target")
        self.parts = nn.ModuleDict(targets)
        self.weights = {name: float(weights.get(name, 1.0)) for name in targets}
        self.decoded = [name for name, part in targets.items() if part.predicted_by == "decoder"]
        if not self.decoded:
            raise ConfigError(
                "WeightedTarget needs at least one target the decoder predicts; every one of "
                f"{sorted(targets)} is predicted by the encoder at the visible tokens"
            )
        self.needs = frozenset().union(*(part.needs for part in targets.values()))
        raw = [name for name in self.decoded if targets[name].predicts == RAW_VALUES]
        self.drawn = raw[0] if raw else None
        self.predicts = RAW_VALUES if raw else None
        self.widths: list[int] = []

    def _part(self, name: str) -> Target:
        return cast(Target, self.parts[name])  # a ModuleDict's items type as Module

    def build(self, ctx: BuildContext) -> None:
        for name in self.parts:
            self._part(name).build(ctx)
        self.widths = [self._part(name).dim_per_token for name in self.decoded]
        self.dim_per_token = sum(self.widths)

    def _split(self, values: Tensor) -> dict[str, Tensor]:
        return dict(zip(self.decoded, values.split(self.widths, dim=-1), strict=True))

    def forward(self, batch: Mapping[str, Tensor], tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        return torch.cat([self._part(name)(batch, tokens, mask).float() for name in self.decoded], dim=-1)

    def token_loss(self, pred: Tensor, target: Tensor, mask: MaskSpec, tokens: TokenBatch | None = None) -> Tensor:
        preds, targets = self._split(pred), self._split(target)
        # self.decoded is never empty: the sum is a tensor (never sum's start, 0)
        return cast(
            Tensor,
            sum(
                self.weights[name] * self._part(name).token_loss(preds[name], targets[name], mask, tokens)
                for name in self.decoded
            ),
        )

    def loss(self, step: Step) -> tuple[Tensor, dict[str, Tensor]]:
        preds, targets = self._split(step.pred), self._split(step.target)
        terms: dict[str, Tensor] = {}
        for name in self.parts:
            part = self._part(name)
            if name in preds:  # each decoded target scores its own slice of the predictions
                p, t = preds[name], targets[name]
                own = replace(step, pred=p, target=t, token_loss=part.token_loss(p, t, step.mask, step.tokens))
            else:  # predicted by the encoder: it reads the step's latents
                own = replace(step, pred=step.pred[..., :0], target=step.target[..., :0])
            terms[name] = part.loss(own)[0]
        total = cast(Tensor, sum(self.weights[name] * term for name, term in terms.items()))  # at least one term
        return total, terms

    def to_tokens(self, pred: Tensor, tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        if self.drawn is None:
            raise NotImplementedError("none of the WeightedTarget's targets maps predictions back to tokens")
        return self._part(self.drawn).to_tokens(self._split(pred)[self.drawn], tokens, mask)
