"""MAE's linear probing (https://arxiv.org/abs/2111.06377, appendix A.2): frozen encoder, class-token (or mean)
features, ``BatchNorm1d(affine=False)`` then a linear head, LARS with ``blr = 0.1``."""

from collections.abc import Mapping
from typing import Any

import torch
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from pydantic import NonNegativeFloat, PositiveInt
from timm.optim import Lars
from torch import Tensor, nn

from ..model.pretrained import Pool
from ..training.optim import WarmupCosine
from .data import CACHED
from .protocol import EncoderSource, HeadProtocol, Task

__all__ = ["LinearProbe", "ProbeLARS"]


class ProbeLARS(Lars):
    """MAE's LARS for linear probing: momentum 0.9, no weight decay, the trust ratio on weights (not biases).

    Args:
        params: parameter groups (1-D parameters are not adapted, as in MAE's ``LARS``).
        lr: learning rate; MAE uses ``0.1 * batch / 256``.
        momentum: SGD momentum.
        weight_decay: weight decay (0 in MAE's linear probe).
    """

    def __init__(
        self, params: Any, lr: float = 0.1, momentum: float = 0.9, weight_decay: NonNegativeFloat = 0.0
    ) -> None:
        params = list(params)
        groups = params if params and isinstance(params[0], dict) else [{"params": params}]
        split = []
        for group in groups:
            rest = {k: v for k, v in group.items() if k != "params"}
            tensors = list(group["params"])
            split.append({**rest, "params": [p for p in tensors if p.ndim > 1], "always_adapt": True})
            split.append(
                {**rest, "params": [p for p in tensors if p.ndim <= 1], "always_adapt": False, "weight_decay": 0.0}
            )
        super().__init__([g for g in split if g["params"]], lr=lr, momentum=momentum, weight_decay=weight_decay)


class LinearProbe(HeadProtocol):
    """MAE's linear probe on a frozen encoder.

    Args:
        encoder: where the encoder comes from (checkpoint, or random init of the same shapes).
        num_outputs: classes (classification) or values per label (regression).
        task: ``"classification"`` or ``"regression"``.
        pool: feature pooling (``"auto"``: the class token if there is one, else the mean).
        layers: average the last ``layers`` blocks' outputs (1: the last block, MAE's probe; see
            :class:`~anymae.evaluation.PretrainedEncoder`).
        batch_norm: MAE's ``BatchNorm1d(affine=False)`` before the linear head (standardises every feature); ``False``:
            the linear head on the raw features, which keeps the features' own scale (a feature of little spread
            stays small, as it does for k-NN's cosine similarity).
        optimizer: the head's optimizer (MAE: LARS, ``lr = 0.1 * batch / 256``).
        lr_schedule: warm-up + cosine (MAE: 10 of 90 epochs).
        label_key: the batch entry holding labels.
        cache_features: compute the frozen encoder's features once, for the training samples without their random
            augmentation and for the validation split, and train the head on them (``anymae probe`` does it before
            fitting): every epoch then costs the head only. ``False``: the encoder runs on every batch, with the
            training split's augmentation (MAE's probe on ImageNet).
    """

    protocol = "linear_probe"

    def __init__(
        self,
        encoder: EncoderSource,
        num_outputs: PositiveInt,
        task: Task = "classification",
        pool: Pool = "auto",
        optimizer: OptimizerCallable = ProbeLARS,
        lr_schedule: WarmupCosine = WarmupCosine(warmup_epochs=10),
        label_key: str = "label",
        cache_features: bool = True,
        layers: PositiveInt = 1,
        batch_norm: bool = True,
    ) -> None:
        super().__init__(encoder, num_outputs, task, pool, label_key, layers)
        self.save_hyperparameters()
        self.cache_features = cache_features
        self.backbone.requires_grad_(False)
        linear = nn.Linear(self.backbone.embed_dim, num_outputs)
        nn.init.trunc_normal_(linear.weight, std=0.01)  # MAE's linear-probe head init
        nn.init.zeros_(linear.bias)
        norm = nn.BatchNorm1d(self.backbone.embed_dim, affine=False, eps=1e-6) if batch_norm else nn.Identity()
        self.head = nn.Sequential(norm, linear)
        self.optimizer_factory = optimizer
        self.lr_schedule = lr_schedule

    def train(self, mode: bool = True) -> "LinearProbe":
        super().train(mode)
        self.backbone.eval()  # frozen: no dropout or stochastic depth in the features
        return self

    @torch.no_grad()
    def _frozen(self, batch: Mapping[str, Tensor]) -> Tensor:
        return self.backbone(batch).pooled

    def features(self, batch: Mapping[str, Tensor]) -> Tensor:
        """The frozen features of a raw batch, or the cached ones a :class:`~anymae.evaluation.data.CachedFeatures`
        batch carries."""
        if CACHED in batch:
            return batch[CACHED].float()
        return self._frozen(batch).float()

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        return self._schedule(self.optimizer_factory(list(self.head.parameters())), self.lr_schedule)
