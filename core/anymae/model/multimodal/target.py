"""A target per modality, and CAV-MAE's contrastive term between modalities.

Each modality's target (pixels for images and video, fbank patches for audio, Chamfer for points, values for
series: any target of the library or a plugin) is computed on that modality's own token batch, exactly as in a
model of that modality alone; the loss is the weighted sum of the modalities' losses, each the mean over that
modality's hidden tokens, and each is logged by name (``train/loss_audio``). With ``contrastive_weight``, CAV-MAE's
InfoNCE term between the pooled features of every pair of modalities is added (Gong et al. 2023,
https://arxiv.org/abs/2210.07839, eq. 2: symmetric cross-entropy of the cosine similarities over the batch divided
by the temperature).
"""

from collections.abc import Mapping
from dataclasses import replace
from itertools import combinations
from typing import Annotated, cast

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveFloat
from torch import Tensor, nn

from ...config import ConfigError, validated
from ..specs import RAW_VALUES, BuildContext
from ..targets.base import Target, masked_mean
from ..types import MaskSpec, Step, TokenBatch
from .groups import Group, modality_of

__all__ = ["MultiModalTarget", "info_nce"]


def info_nce(a: Tensor, b: Tensor, temperature: float, valid: Tensor | None = None, center: bool = False) -> Tensor:
    """CAV-MAE's contrastive loss between paired features ``a`` and ``b`` ``[B, D]``: L2-normalised, similarities
    ``a @ b.T / temperature``, cross-entropy towards the diagonal from ``a`` to ``b`` and back, averaged. ``valid``
    ``[B]`` leaves out the samples (as anchors and as negatives) where either side has no feature; ``center``
    subtracts each side's mean over the batch first."""
    if valid is not None:
        a, b = a[valid], b[valid]
    if a.shape[0] < 2:
        return a.sum() * 0.0 + b.sum() * 0.0  # no pair to contrast
    if center:
        a, b = a - a.mean(dim=0, keepdim=True), b - b.mean(dim=0, keepdim=True)
    a, b = F.normalize(a.float(), dim=-1), F.normalize(b.float(), dim=-1)
    logits = a @ b.T / temperature
    labels = torch.arange(a.shape[0], device=a.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def _local(mask: MaskSpec, group: Group, start: int, stop: int) -> MaskSpec:
    """A modality's view of a joint mask: its decoded tokens (``group``, indices among its own tokens) and its
    hidden tokens, from the joint mask."""
    n, b = stop - start, group.local.shape[0]
    every = torch.arange(n, device=group.local.device).expand(b, -1)
    return MaskSpec(every[:, :0], every, every, mask.mask[:, start:stop], group.local)


class MultiModalTarget(Target):
    """A target per modality (see the module docstring).

    Args:
        targets: the target of each modality, by the modality's name (every modality of the tokenizer).
        weights: weight of each modality's loss (1 where unset; CAV-MAE weighs audio and video equally).
        contrastive_weight: weight of the InfoNCE term between the modalities' pooled features (CAV-MAE: 0.01;
            0: none). Its features come from the encoder (``EncoderOutput.pooled``).
        temperature: the InfoNCE temperature (CAV-MAE: 0.05).
        center: subtract each modality's mean pooled feature over the batch before the InfoNCE term (not in
            CAV-MAE, which starts from ImageNet MAE weights). From random weights an MAE encoder's mean-pooled
            features share a large common part (cosine similarity about 0.99 between any two samples after a few
            steps), which holds the term at chance, ``ln B``, and its gradient near zero; centred, it learns (on
            the embedded audio-visual digits: ``ln 32`` = 3.47 for 20 epochs uncentred).
    """

    @validated
    def __init__(
        self,
        targets: dict[str, Target],
        weights: dict[str, PositiveFloat] | None = None,
        contrastive_weight: Annotated[float, Field(ge=0)] = 0.0,
        temperature: PositiveFloat = 0.05,
        center: bool = False,
    ) -> None:
        super().__init__()
        if not targets:
            raise ConfigError("MultiModalTarget.targets is empty; give a target per modality")
        unknown = sorted(set(weights or {}) - set(targets))
        if unknown:
            raise ConfigError(f"MultiModalTarget.weights names {unknown}, which are not targets ({sorted(targets)})")
        encoded = [name for name, t in targets.items() if t.predicted_by != "decoder"]
        if encoded:
            raise ConfigError(
                f"MultiModalTarget: the targets of {encoded} are predicted by the encoder; give targets "
                "the decoder predicts"
            )
        self.parts = nn.ModuleDict(targets)
        self.weights = {name: float((weights or {}).get(name, 1.0)) for name in targets}
        self.contrastive_weight, self.temperature, self.center = contrastive_weight, temperature, center
        self.needs = frozenset(f"{m}/{need}" for m, t in targets.items() for need in t.needs)
        self.predicts = RAW_VALUES if all(t.predicts == RAW_VALUES for t in targets.values()) else None
        self.modality_dims: dict[str, int] = {}

    def _part(self, name: str) -> Target:
        return cast(Target, self.parts[name])

    def build(self, ctx: BuildContext) -> None:
        specs = ctx.tokens.modalities
        if set(specs) != set(self.parts):
            raise ConfigError(
                f"MultiModalTarget has targets for {sorted(self.parts)} but the tokenizer's modalities are "
                f"{sorted(specs) or f'none ({ctx.tokens.name} has one modality)'}"
            )
        for name, spec in specs.items():
            try:
                self._part(name).build(replace(ctx, tokens=spec))
            except ConfigError as error:
                raise ConfigError(f"MultiModalTarget, modality {name!r}: {error}") from None
        self.modality_dims = {name: self._part(name).dim_per_token for name in specs}
        self.dim_per_token = max(self.modality_dims.values())

    def _views(self, tokens: TokenBatch, mask: MaskSpec) -> dict[str, tuple[Group, MaskSpec]]:
        """Each modality's decoded tokens among the joint ones, and its own view of the mask."""
        views = {}
        for m, (start, stop) in tokens.segments().items():
            group = Group.of(mask.ids_decode, start, stop)
            views[m] = (group, _local(mask, group, start, stop))
        return views

    def _which(self, tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        """``[B, M']``: the modality (its index) of each decoded token."""
        return modality_of(mask.ids_decode, list(tokens.segments().values()))

    def forward(self, batch: Mapping[str, Tensor], tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        from .tokenizer import modality_batch

        out = tokens.tokens.new_zeros(*mask.ids_decode.shape, self.dim_per_token, dtype=torch.float)
        for m, (group, view) in self._views(tokens, mask).items():  # each target on its own decoded tokens only
            values = self._part(m)(modality_batch(batch, m), tokens.parts[m], view).float()
            out = group.scatter(out, F.pad(values, (0, self.dim_per_token - values.shape[-1])))
        return out

    def token_loss(self, pred: Tensor, target: Tensor, mask: MaskSpec, tokens: TokenBatch | None = None) -> Tensor:
        if tokens is None:
            raise ValueError("MultiModalTarget.token_loss needs the step's tokens (which modality each token is)")
        out = pred.new_zeros(mask.ids_decode.shape, dtype=torch.float)
        for m, (group, view) in self._views(tokens, mask).items():
            width = self.modality_dims[m]
            own_pred, own_target = group.gather(pred)[..., :width], group.gather(target)[..., :width]
            out = group.scatter(out, self._part(m).token_loss(own_pred, own_target, view, tokens.parts[m]).float())
        return out

    def loss(self, step: Step) -> tuple[Tensor, dict[str, Tensor]]:
        which, counted = self._which(step.tokens, step.mask), step.mask.counted
        terms = {
            m: masked_mean(step.token_loss, counted & (which == index)) for index, m in enumerate(step.tokens.parts)
        }
        total = sum(self.weights[m] * term for m, term in terms.items())
        pooled = step.encoded.pooled
        if self.contrastive_weight > 0 and pooled is not None and len(pooled) > 1:
            contrastive = self.contrastive(step.tokens, step.mask, pooled)
            terms["contrastive"] = contrastive
            total = total + self.contrastive_weight * contrastive
        return cast(Tensor, total), terms

    def contrastive(self, tokens: TokenBatch, mask: MaskSpec, pooled: Mapping[str, Tensor]) -> Tensor:
        """The InfoNCE term averaged over every pair of modalities, each over the samples that keep both visible."""
        seen = {m: (~mask.mask[:, start:stop]).any(dim=1) for m, (start, stop) in tokens.segments().items()}
        pairs = [
            info_nce(pooled[a], pooled[b], self.temperature, seen[a] & seen[b], self.center)
            for a, b in combinations(pooled, 2)
        ]
        return torch.stack(pairs).mean()

    def to_tokens(self, pred: Tensor, tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        raise NotImplementedError("map one modality's predictions back: MaskedAutoencoder.reconstruct(modality=...)")
