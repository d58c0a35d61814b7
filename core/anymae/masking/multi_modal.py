"""Masking across modalities (a :class:`~anymae.MultiModalTokenizer`'s joint sequence).

Each modality is masked by a masker of its own -- any fixed masker of the library (not AdaMAE's or HPM's, which learn
from each step's loss), which sees only that modality's tokens and layout -- and the joint mask keeps, for every
sample, a number of each modality's tokens:

* **per-modality ratios** (CAV-MAE: 0.75 for audio and for video): each masker's own visible set, so each
  modality's count is exact and the same in every sample;
* **a visible budget split by a Dirichlet draw** (MultiMAE, Bachmann et al. 2022, https://arxiv.org/abs/2204.01678,
  section 3.2): ``visible`` tokens in all, shared out per sample by proportions drawn from ``Dirichlet(alpha)``;
  each modality keeps its masker's first choices up to its share;
* **whole-modality dropout**: each modality of each sample hidden entirely with probability ``drop_modality`` (never
  all of them), its share given to the others.

The total visible count is the same in every sample, so the encoder still runs on a dense ``[B, K, D]``.
"""

from typing import Annotated, cast

import torch
from pydantic import Field, PositiveFloat, PositiveInt
from torch import Tensor, nn

from ..config import ConfigError, validated
from ..model.specs import BuildContext
from ..model.types import MaskSpec, TokenBatch
from .base import Masker
from .random import RandomMasker

__all__ = ["MultiModalMasker", "split_budget"]


def split_budget(weights: Tensor, total: int) -> Tensor:
    """``[B, M]`` integer shares of ``total`` proportional to ``weights`` ``[B, M]`` (rows summing to 1), each row
    summing to ``total`` exactly (largest remainders get the units rounding left over)."""
    exact = weights * total
    shares = exact.floor().long()
    left = total - shares.sum(dim=1, keepdim=True)  # [B, 1] units still to give
    order = torch.argsort(torch.argsort(exact - shares, dim=1, descending=True), dim=1)  # rank of each remainder
    return shares + (order < left).long()


class MultiModalMasker(Masker):
    """Masks each modality with its own masker and joins the masks (see the module docstring).

    Args:
        maskers: a masker per modality by name; a modality not named gets ``RandomMasker(mask_ratio)``.
        mask_ratio: the ratio of the default random maskers (CAV-MAE: 0.75).
        visible: MultiMAE's budget: tokens kept visible in all, split per sample by a Dirichlet draw (MultiMAE: 98
            of 3 x 196); ``None``: each masker's own count.
        alpha: the Dirichlet concentration, one for every modality (MultiMAE: 1.0; small values give samples that
            keep mostly one modality).
        drop_modality: probability that a modality of a sample is hidden entirely.
    """

    @validated
    def __init__(
        self,
        maskers: dict[str, Masker] | None = None,
        mask_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.75,
        visible: PositiveInt | None = None,
        alpha: PositiveFloat = 1.0,
        drop_modality: Annotated[float, Field(ge=0, lt=1)] = 0.0,
    ) -> None:
        super().__init__()
        self.given = dict(maskers or {})
        self.mask_ratio, self.visible, self.alpha, self.drop_modality = mask_ratio, visible, alpha, drop_modality
        self.maskers = nn.ModuleDict(self.given)

    def build(self, ctx: BuildContext) -> None:
        specs = ctx.tokens.modality_specs("MultiModalMasker.maskers", self.given)
        learning = sorted(m for m, masker in self.given.items() if type(masker).feedback is not Masker.feedback)
        if learning:
            raise ConfigError(
                f"MultiModalMasker.maskers: the maskers of {learning} learn from each step's loss (AdaMAE, HPM), "
                "which a multi-modal step does not hand to one modality's masker; give a fixed masker"
            )
        self.maskers = nn.ModuleDict({m: self.given.get(m) or RandomMasker(self.mask_ratio) for m in specs})
        for name, spec in specs.items():
            try:
                self._masker(name).build(BuildContext(spec, ctx.encoder, ctx.target_dim, ctx.predicts, ctx.progress))
            except ConfigError as error:
                raise ConfigError(f"MultiModalMasker, modality {name!r}: {error}") from None

    def _masker(self, name: str) -> Masker:
        return cast(Masker, self.maskers[name])

    def num_visible(self, tokens: TokenBatch) -> int:
        if self.visible is not None:
            return self.visible
        return sum(self._masker(m).num_visible(part) for m, part in tokens.parts.items())

    def noise(self, tokens: TokenBatch, generator: torch.Generator | None) -> Tensor:
        return self._keys(tokens, generator, None)[0] / 2

    def forward(
        self, tokens: TokenBatch, generator: torch.Generator | None = None, noise: Tensor | None = None
    ) -> MaskSpec:
        if not tokens.parts:
            raise ConfigError(
                "MultiModalMasker masks a multi-modal tokenizer's tokens (MultiModalTokenizer) and got one modality's; "
                "give that modality's own masker (`anymae masks --checkpoint` draws a multi-modal model's masks)"
            )
        if noise is not None and noise.shape != tokens.tokens.shape[:2]:
            raise ValueError(f"noise must have shape {tuple(tokens.tokens.shape[:2])}, got {tuple(noise.shape)}")
        keys, total = self._keys(tokens, generator, noise)
        if not 0 < total < tokens.num_tokens:
            raise ValueError(f"MultiModalMasker keeps {total} of {tokens.num_tokens} tokens visible")
        return MaskSpec.from_noise(keys, total, tokens.padding_mask)

    def _keys(self, tokens: TokenBatch, generator: torch.Generator | None, noise: Tensor | None) -> tuple[Tensor, int]:
        """``[B, N]`` sort keys in ``[0, 2)`` (the lowest ``total`` stay visible) and ``total``: a modality's token
        ranked ``r`` by its masker is keyed ``r / N_m`` inside the modality's share and ``1 + r / N_m`` past it, so
        the shares are kept exactly and a share larger than a modality's tokens spills to the others' next choices."""
        bounds = tokens.segments()
        ranks, own = [], []
        for name, part in tokens.parts.items():
            start, stop = bounds[name]
            part_noise = None if noise is None else noise[:, start:stop]
            spec = self._masker(name)(part, generator, part_noise)
            ranks.append(spec.ids_restore)  # each token's place in the masker's order: its visible ones first
            own.append(spec.num_visible)
        device, b = tokens.tokens.device, tokens.batch_size
        total = self.visible if self.visible is not None else sum(own)
        shares = self.shares(torch.tensor(own, device=device, dtype=torch.float), b, total, generator)
        keys = []
        for m, rank in enumerate(ranks):
            relative = rank.float() / rank.shape[1]
            keys.append(torch.where(rank < shares[:, m : m + 1], relative, 1.0 + relative))
        return torch.cat(keys, dim=1), total

    def shares(self, own: Tensor, batch_size: int, total: int, generator: torch.Generator | None) -> Tensor:
        """``[B, M]`` visible tokens of each modality per sample: each masker's own count, or the Dirichlet split of
        the budget; dropped modalities get none."""
        device = own.device
        if self.visible is None:
            weights = (own / own.sum()).expand(batch_size, -1)
        else:
            weights = self._dirichlet(batch_size, len(own), device, generator)
        if self.drop_modality > 0:
            draw = torch.rand(weights.shape, device=device, generator=generator)
            dropped = draw < self.drop_modality
            # never every modality: the one drawn highest stays
            dropped &= draw < draw.max(dim=1, keepdim=True).values
            weights = torch.where(dropped, 0.0, weights)
            weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-12)
            if self.visible is None and not bool(dropped.any()):
                return own.long().expand(batch_size, -1)
        elif self.visible is None:
            return own.long().expand(batch_size, -1)
        return split_budget(weights, total)

    def _dirichlet(self, b: int, m: int, device: torch.device, generator: torch.Generator | None) -> Tensor:
        """``[B, M]`` proportions from ``Dirichlet(alpha)``, drawn from ``generator``'s stream (torch's Gamma
        sampler takes no generator: it runs under a CPU random state seeded from it)."""
        seed = int(torch.randint(2**62, (1,), device=device, generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            concentration = torch.full((m,), float(self.alpha))
            draw = torch.distributions.Dirichlet(concentration).sample((b,))
        return torch.nan_to_num(draw, nan=1.0 / m).to(device)  # a tiny alpha can underflow every share
