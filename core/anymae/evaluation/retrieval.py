"""Cross-modal retrieval with a multi-modal encoder's frozen features (CAV-MAE's audio-visual retrieval, Gong et al.
2023, https://arxiv.org/abs/2210.07839, section 4.3): every validation sample is embedded from one modality alone
and from the other alone (the mean of its tokens' latents); each query of one modality ranks every sample of the
other by cosine similarity, and recall@k is the share of queries whose own partner ranks in the top ``k``. Chance
recall@k is ``k / samples``.
"""

from collections.abc import Mapping
from typing import cast

import torch
import torch.nn.functional as F
from pydantic import PositiveInt
from torch import Tensor

from ..config import ConfigError
from .protocol import EncoderSource, Protocol

__all__ = ["CrossModalRetrieval", "recall_at"]


def recall_at(query: Tensor, gallery: Tensor, ks: tuple[int, ...]) -> dict[int, Tensor]:
    """Recall@k of each query ``[N, D]`` retrieving its own row of ``gallery`` ``[N, D]`` by cosine similarity:
    ties are counted against the query (a tie with the partner ranks it behind)."""
    similarity = F.normalize(query.float(), dim=-1) @ F.normalize(gallery.float(), dim=-1).T
    own = similarity.diagonal()[:, None]
    rank = (similarity >= own).sum(dim=1) - 1  # how many others score at least as high: 0 = first
    return {k: (rank < k).float().mean() for k in ks}


class CrossModalRetrieval(Protocol):
    """Retrieval between two modalities of a multi-modal encoder, in both directions, on the validation split.

    Logs ``val/R@k <a>-><b>`` and ``val/R@k <b>-><a>`` for each ``k``; the headline metric (``metric_name``) is
    recall@1 from the first modality to the second. Gathered over every rank before ranking, so under DDP every
    sample is a candidate.

    Args:
        encoder: where the encoder comes from (its ``modalities`` is set by this protocol).
        modalities: the two modalities, query first (``None``: the tokenizer's first two).
        ks: the recall cut-offs (CAV-MAE: 1, 5, 10).
    """

    protocol = "retrieval"

    def __init__(
        self,
        encoder: EncoderSource,
        modalities: tuple[str, str] | None = None,
        ks: tuple[PositiveInt, ...] = (1, 5, 10),
        label_key: str = "label",
    ) -> None:
        super().__init__(encoder, 1, "classification", "mean", label_key)
        self.save_hyperparameters()
        self.backbone.requires_grad_(False)
        names = list(getattr(self.backbone.tokenizer, "modalities", {}) or [])
        if len(names) < 2:
            raise ConfigError(
                f"retrieval needs an encoder of two or more modalities; {type(self.backbone.tokenizer).__name__} "
                "has one"
            )
        pair = tuple(modalities) if modalities is not None else tuple(names[:2])
        unknown = sorted(set(pair) - set(names))
        if unknown or len(set(pair)) != 2:
            raise ConfigError(f"retrieval: modalities {list(pair)} must be two of the encoder's {names}")
        self.pair, self.ks = pair, tuple(ks)
        self._features: dict[str, list[Tensor]] = {}

    def embed(self, batch: Mapping[str, Tensor], modality: str) -> Tensor:
        """``[B, D]``: the samples' features from ``modality`` alone."""
        self.backbone.use_modalities([modality])
        try:
            return self.backbone(batch).pooled
        finally:
            self.backbone.use_modalities(None)

    def on_validation_epoch_start(self) -> None:
        self._features = {name: [] for name in self.pair}

    @torch.no_grad()
    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        for name in self.pair:
            self._features[name].append(self.embed(batch, name))

    def on_validation_epoch_end(self) -> None:
        a, b = self.pair
        features = {}
        for name in self.pair:
            local = torch.cat(self._features[name])
            gathered = cast(Tensor, self.all_gather(local))  # [world, N, D] under DDP, [N, D] alone
            features[name] = gathered.flatten(0, 1) if gathered.dim() == 3 else gathered
        metrics = {}
        for query, gallery in ((a, b), (b, a)):
            for k, value in recall_at(features[query], features[gallery], self.ks).items():
                metrics[f"val/R@{k} {query}->{gallery}"] = value
        self.log_dict(metrics)  # every rank ranked the same gathered features: the same values
        self._features = {}

    @property
    def metric_name(self) -> str:
        return f"val/R@{self.ks[0]} {self.pair[0]}->{self.pair[1]}"

    @property
    def metric_names(self) -> list[str]:
        """Every metric logged, for one result row each."""
        names = [f"val/R@{k} {q}->{g}" for q, g in (self.pair, self.pair[::-1]) for k in self.ks]
        return names

    def configure_optimizers(self) -> None:
        return None
