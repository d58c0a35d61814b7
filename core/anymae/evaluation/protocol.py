"""What the evaluation protocols share: where the encoder comes from (:class:`EncoderSource`), the task (classification
or regression) and its metrics, and the head's training loop.

The protocols of the MAE papers, for any modality's encoder: :class:`~anymae.evaluation.LinearProbe`
(``probe.py``), :class:`~anymae.evaluation.KNNClassifier` (``knn.py``) and :class:`~anymae.evaluation.FineTune`
(``finetune.py``). Each takes an :class:`EncoderSource` (a checkpoint, or the same shapes at random init) and works
for classification (``label`` holds class indices; accuracy) or regression (``label`` holds values; MSE and MAE).
"""

from collections.abc import Mapping
from typing import Literal

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn

from ..model.pretrained import Pool, load_encoder, resolve_checkpoint
from ..training.optim import WarmupCosine

__all__ = ["EncoderSource", "HeadProtocol", "Protocol", "Task"]

Task = Literal["classification", "regression"]


class EncoderSource(BaseModel):
    """Where a protocol's encoder comes from.

    Args:
        checkpoint: an ``anymae fit`` checkpoint, a folder written by ``anymae export``, or ``"latest"`` (the newest
            checkpoint under ``./lightning_logs``).
        random_init: the same shapes with fresh (MAE-initialised) weights instead of the pretrained ones.
        seed: seed of the fresh weights.
        modalities: a multi-modal encoder read from these modalities only (``[audio]``: audio alone at inference,
            the others never tokenized); ``None``: every modality it was pretrained on.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    checkpoint: str
    random_init: bool = False
    seed: int = 0
    modalities: list[str] | None = None


def targets_of(batch: Mapping[str, Tensor], key: str, task: Task) -> Tensor:
    """Class indices, or class probabilities ``[B, C]`` (MixUp/CutMix), or regression values ``[B, D]``."""
    labels = batch[key]
    if task == "regression":
        return labels.float().view(len(labels), -1)
    return labels.float() if labels.is_floating_point() and labels.dim() == 2 else labels.long()


class Protocol(pl.LightningModule):
    """Shared plumbing: the encoder, the task's loss and metrics, validation logging."""

    protocol = "protocol"

    def __init__(
        self, encoder: EncoderSource, num_outputs: int, task: Task, pool: Pool, label_key: str, layers: int = 1
    ) -> None:
        super().__init__()
        self.source = encoder
        self.checkpoint_path = resolve_checkpoint(encoder.checkpoint)  # once: "latest" must not move mid-run
        self.backbone = load_encoder(
            self.checkpoint_path, random_init=encoder.random_init, seed=encoder.seed, pool=pool, layers=layers
        )
        if encoder.modalities is not None:
            self.backbone.use_modalities(encoder.modalities)
        self.num_outputs = num_outputs
        self.task = task
        self.label_key = label_key

    def metrics(self, output: Tensor, target: Tensor, prefix: str) -> dict[str, Tensor]:
        if self.task == "classification":
            classes = target.argmax(dim=-1) if target.dim() == 2 else target
            return {f"{prefix}/acc": (output.argmax(dim=-1) == classes).float().mean()}
        return {f"{prefix}/mse": F.mse_loss(output, target), f"{prefix}/mae": F.l1_loss(output, target)}

    @property
    def metric_name(self) -> str:
        return "val/acc" if self.task == "classification" else "val/mse"


class HeadProtocol(Protocol):
    """A trained head on encoder features (linear probe, fine-tuning)."""

    head: nn.Module
    label_smoothing: float = 0.0

    def features(self, batch: Mapping[str, Tensor]) -> Tensor:
        raise NotImplementedError

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        if self.task == "classification":
            return F.cross_entropy(output.float(), target, label_smoothing=self.label_smoothing)
        return F.mse_loss(output.float(), target)

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        return self.head(self.features(batch))

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        target = targets_of(batch, self.label_key, self.task)
        loss = self.loss(self(batch), target)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(target))
        return loss

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        target = targets_of(batch, self.label_key, self.task)
        output = self(batch)
        self.log("val/loss", self.loss(output, target), batch_size=len(target), sync_dist=True)
        self.log_dict(
            self.metrics(output.float(), target, "val"), prog_bar=True, batch_size=len(target), sync_dist=True
        )

    def _schedule(self, optimizer: torch.optim.Optimizer, schedule: WarmupCosine) -> OptimizerLRSchedulerConfig:
        total = int(self.trainer.estimated_stepping_batches)
        batches = self.trainer.num_training_batches
        steps_per_epoch = batches / self.trainer.accumulate_grad_batches if batches != float("inf") else None
        scheduler = schedule.scheduler(optimizer, total, steps_per_epoch)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
