"""Weighted k-NN on frozen, L2-normalised features (cosine similarity, ``k = 20``, votes ``exp(sim / 0.07)``, as in
InstDisc/DINO)."""

import warnings
from collections.abc import Mapping
from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from torch import Tensor

from ..model.pretrained import Pool
from .protocol import EncoderSource, Protocol, Task, targets_of

__all__ = ["KNNClassifier", "knn_predict"]


def knn_predict(
    query: Tensor, bank: Tensor, bank_targets: Tensor, k: int, temperature: float, task: Task, num_outputs: int
) -> Tensor:
    """Weighted k-NN on L2-normalised features: class scores ``[Q, C]`` (classification) or values (regression)."""
    similarity = F.normalize(query.float(), dim=-1) @ F.normalize(bank.float(), dim=-1).T  # cosine, [Q, M]
    top, index = similarity.topk(min(k, bank.shape[0]), dim=-1)
    weights = (top / temperature).exp()
    if task == "classification":
        votes = F.one_hot(bank_targets[index], num_outputs).float()  # [Q, k, C]
        return (weights.unsqueeze(-1) * votes).sum(dim=1)
    values = bank_targets[index].float()  # [Q, k, D]
    return (weights.unsqueeze(-1) * values).sum(dim=1) / weights.sum(dim=1, keepdim=True)


class KNNClassifier(Protocol):
    """k-NN on frozen features: the training split is the memory bank, the validation split is scored.

    Wrap the data in :class:`~anymae.evaluation.FewLabels` (``labels_per_class`` unset for all labels): the bank
    then holds every training example once, in order; a plain data module's training loader may drop or augment.

    Args:
        encoder: where the encoder comes from.
        num_outputs: classes or values per label.
        task: ``"classification"`` or ``"regression"`` (the weighted mean of the neighbours' values).
        k: neighbours (20).
        temperature: of the vote weights ``exp(similarity / temperature)`` (0.07).
        pool: feature pooling.
        label_key: the batch entry holding labels.
        layers: average the last ``layers`` blocks' outputs (1: the last block).
    """

    protocol = "knn"

    def __init__(
        self,
        encoder: EncoderSource,
        num_outputs: PositiveInt,
        task: Task = "classification",
        k: PositiveInt = 20,
        temperature: Annotated[float, Field(gt=0)] = 0.07,
        pool: Pool = "auto",
        label_key: str = "label",
        layers: PositiveInt = 1,
    ) -> None:
        super().__init__(encoder, num_outputs, task, pool, label_key, layers)
        self.save_hyperparameters()
        self.backbone.requires_grad_(False)
        self.k, self.temperature = k, temperature

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        return self.backbone(batch).pooled

    @torch.no_grad()
    def on_validation_epoch_start(self) -> None:
        """Embed the training split: the memory bank."""
        datamodule = self.trainer.datamodule  # type: ignore[attr-defined]  # Lightning sets it, undeclared
        features, targets = [], []
        # FewLabels gives every training example, in order; a plain data module its training loader.
        loader = (
            datamodule.bank_dataloader() if hasattr(datamodule, "bank_dataloader") else datamodule.train_dataloader()
        )
        for batch in loader:
            batch = datamodule.on_before_batch_transfer(batch, 0) if datamodule is not None else batch
            batch = {k: v.to(self.device) if isinstance(v, Tensor) else v for k, v in batch.items()}
            features.append(self(batch))
            targets.append(targets_of(batch, self.label_key, self.task))
        self.bank, self.bank_targets = torch.cat(features), torch.cat(targets)
        if self.k > len(self.bank) and self.trainer.is_global_zero:
            warnings.warn(
                f"k-NN: k = {self.k} is larger than the label bank ({len(self.bank)} labelled examples): every "
                f"example votes, weighted by similarity; set k to at most {len(self.bank)} (model.k)",
                stacklevel=1,
            )

    @torch.no_grad()
    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        target = targets_of(batch, self.label_key, self.task)
        output = knn_predict(
            self(batch), self.bank, self.bank_targets, self.k, self.temperature, self.task, self.num_outputs
        )
        self.log_dict(self.metrics(output, target, "val"), prog_bar=True, batch_size=len(target), sync_dist=True)

    def configure_optimizers(self) -> None:
        return None
