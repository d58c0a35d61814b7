"""Evaluation protocols of the MAE papers, for any modality's encoder.

* :class:`LinearProbe` -- MAE's linear probing (https://arxiv.org/abs/2111.06377, appendix A.2): frozen encoder,
  class-token (or mean) features, ``BatchNorm1d(affine=False)`` then a linear head, LARS with ``blr = 0.1``.
* :class:`KNNClassifier` -- weighted k-NN on frozen, L2-normalised features (cosine similarity, ``k = 20``, votes
  ``exp(sim / 0.07)``, as in InstDisc/DINO).
* :class:`FineTune` -- MAE's end-to-end fine-tuning (appendix A.1): mean pooling and a LayerNorm, layer-wise lr decay
  (MAE's recipes: 0.65 for ViT-B, 0.75 for ViT-L/H; 0.75 by default), drop path 0.1, label smoothing 0.1, AdamW
  (0.9, 0.999) with weight decay 0.05.

Each takes an :class:`~anymae.evaluation.EncoderSource` (a checkpoint, or the same shapes at random init) and works
for classification (``label`` holds class indices; accuracy) or regression (``label`` holds values; MSE and MAE).
"""

import warnings
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import OptimizerCallable
from pydantic import Field, NonNegativeFloat, PositiveInt
from timm.optim import Lars
from torch import Tensor, nn

from ..model.position import LearnedPositionEmbedding, SinCosPositionEmbedding
from ..model.pretrained import EncoderSource, Pool, load_encoder, resolve_checkpoint
from ..training.optim import WarmupCosine, fusable
from .data import CACHED

__all__ = ["FineTune", "FineTuneAdamW", "KNNClassifier", "LinearProbe", "ProbeLARS", "knn_predict"]

Task = Literal["classification", "regression"]


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


class FineTuneAdamW(torch.optim.AdamW):
    """AdamW with MAE's fine-tuning defaults.

    Args:
        params: parameter groups (with ``lr_scale`` for layer-wise decay).
        lr: learning rate; MAE uses ``5e-4 * batch / 256`` for ViT-B (``1e-3`` for ViT-L).
        betas: (0.9, 0.999).
        weight_decay: 0.05.
    """

    def __init__(
        self,
        params: Any,
        lr: Annotated[float, Field(gt=0)] = 5e-4,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: NonNegativeFloat = 0.05,
        fused: bool | None = None,
    ) -> None:
        params = list(params)
        super().__init__(params, lr=lr, betas=betas, weight_decay=weight_decay, fused=fusable(params, fused))


def _targets(batch: Mapping[str, Tensor], key: str, task: Task) -> Tensor:
    """Class indices, or class probabilities ``[B, C]`` (MixUp/CutMix), or regression values ``[B, D]``."""
    labels = batch[key]
    if task == "regression":
        return labels.float().view(len(labels), -1)
    return labels.float() if labels.is_floating_point() and labels.dim() == 2 else labels.long()


class _Protocol(pl.LightningModule):
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


class _HeadProtocol(_Protocol):
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
        target = _targets(batch, self.label_key, self.task)
        loss = self.loss(self(batch), target)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(target))
        return loss

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        target = _targets(batch, self.label_key, self.task)
        output = self(batch)
        self.log("val/loss", self.loss(output, target), batch_size=len(target), sync_dist=True)
        self.log_dict(
            self.metrics(output.float(), target, "val"), prog_bar=True, batch_size=len(target), sync_dist=True
        )

    def _schedule(self, optimizer: torch.optim.Optimizer, schedule: WarmupCosine) -> dict[str, Any]:
        total = int(self.trainer.estimated_stepping_batches)
        batches = self.trainer.num_training_batches
        steps_per_epoch = batches / self.trainer.accumulate_grad_batches if batches != float("inf") else None
        scheduler = schedule.scheduler(optimizer, total, steps_per_epoch)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class LinearProbe(_HeadProtocol):
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

    def configure_optimizers(self) -> dict[str, Any]:
        return self._schedule(self.optimizer_factory(list(self.head.parameters())), self.lr_schedule)


class FineTune(_HeadProtocol):
    """MAE's end-to-end fine-tuning.

    With mean pooling the encoder's last LayerNorm is replaced by one after pooling (MAE's ``global_pool`` with
    ``fc_norm``). Mixup and CutMix, also in MAE's recipe, are left to the data module.

    Args:
        encoder: where the encoder comes from.
        num_outputs: classes or values per label.
        task: ``"classification"`` or ``"regression"``.
        pool: ``"mean"`` (MAE's fine-tuning default) or ``"cls"``.
        layer_decay: layer-wise lr decay (MAE's fine-tuning recipes: 0.65 for ViT-B, 0.75 for ViT-L and ViT-H; 1
            turns it off).
        drop_path: stochastic depth rate (0.1 for ViT-B).
        label_smoothing: label smoothing of the cross-entropy (0.1).
        learn_pos_embed: make a fixed sin-cos position table learnable, starting from its values (MAE fine-tunes
            timm's learnable ``pos_embed`` loaded with the pretraining table); it is interpolated for other grids.
        optimizer: the optimizer, given parameter groups with ``lr_scale`` applied (MAE: AdamW, betas (0.9, 0.999),
            weight decay 0.05, ``lr = 5e-4 * batch / 256`` for ViT-B).
        lr_schedule: warm-up + cosine (MAE: 5 of 100 epochs, min lr 1e-6).
        label_key: the batch entry holding labels.
    """

    protocol = "finetune"

    def __init__(
        self,
        encoder: EncoderSource,
        num_outputs: PositiveInt,
        task: Task = "classification",
        pool: Literal["mean", "cls"] = "mean",
        layer_decay: Annotated[float, Field(gt=0, le=1)] = 0.75,
        drop_path: Annotated[float, Field(ge=0, lt=1)] = 0.1,
        label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.1,
        learn_pos_embed: bool = True,
        optimizer: OptimizerCallable = FineTuneAdamW,
        lr_schedule: WarmupCosine = WarmupCosine(warmup_epochs=5, min_lr=1e-6),
        label_key: str = "label",
    ) -> None:
        super().__init__(encoder, num_outputs, task, pool, label_key)
        self.save_hyperparameters()
        self.backbone.train()  # load_encoder returns it in eval mode; fine-tuning trains it (drop path on)
        vit = self.backbone.encoder
        vit.set_drop_path_rate(drop_path)
        pos = getattr(vit, "pos_embed", None)
        if learn_pos_embed and isinstance(pos, SinCosPositionEmbedding) and pos.grid_shape is not None:
            vit.pos_embed = LearnedPositionEmbedding.from_table(pos.table, pos.grid_shape)
        dim = self.backbone.embed_dim
        self.fc_norm: nn.Module = nn.Identity()
        if pool == "mean" and isinstance(getattr(self.backbone.encoder, "norm", None), nn.LayerNorm):
            eps = self.backbone.encoder.norm.eps
            self.backbone.encoder.norm = nn.Identity()
            self.fc_norm = nn.LayerNorm(dim, eps=eps)
        self.head = nn.Linear(dim, num_outputs)
        nn.init.trunc_normal_(self.head.weight, std=2e-5)  # MAE's fine-tuning head init
        nn.init.zeros_(self.head.bias)
        self.layer_decay = layer_decay
        self.label_smoothing = label_smoothing if task == "classification" else 0.0
        self.optimizer_factory = optimizer
        self.lr_schedule = lr_schedule

    def features(self, batch: Mapping[str, Tensor]) -> Tensor:
        return self.fc_norm(self.backbone(batch).pooled)

    def param_groups(self, base_lr: float | None = None) -> list[dict[str, Any]]:
        """MAE's ``param_groups_lrd``: per layer, decayed and not-decayed parameters, lr scaled by
        ``layer_decay ** (num_layers + 1 - layer)``."""
        encoder = self.backbone.encoder
        top = encoder.num_layers + 1
        groups: dict[tuple[int, bool], dict[str, Any]] = {}
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            layer = (
                encoder.layer_id(name.removeprefix("backbone.encoder."))
                if name.startswith("backbone.encoder.")
                else top
            )
            if name.startswith("backbone.tokenizer."):
                layer = 0
            no_decay = param.ndim <= 1 or name.endswith(".bias") or "cls_token" in name or ".pos_embed." in name
            group = groups.setdefault((layer, no_decay), {"params": [], "lr_scale": self.layer_decay ** (top - layer)})
            if no_decay:
                group["weight_decay"] = 0.0
            group["params"].append(param)
        return list(groups.values())

    def configure_optimizers(self) -> dict[str, Any]:
        groups = self.param_groups()
        optimizer = self.optimizer_factory(groups)
        for group in optimizer.param_groups:  # the scale applies to whatever lr the optimizer was given
            group["lr"] = group["lr"] * group.get("lr_scale", 1.0)
        return self._schedule(optimizer, self.lr_schedule)


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


class KNNClassifier(_Protocol):
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
        datamodule = self.trainer.datamodule
        features, targets = [], []
        # FewLabels gives every training example, in order; a plain data module its training loader.
        loader = (
            datamodule.bank_dataloader() if hasattr(datamodule, "bank_dataloader") else datamodule.train_dataloader()
        )
        for batch in loader:
            batch = datamodule.on_before_batch_transfer(batch, 0) if datamodule is not None else batch
            batch = {k: v.to(self.device) if isinstance(v, Tensor) else v for k, v in batch.items()}
            features.append(self(batch))
            targets.append(_targets(batch, self.label_key, self.task))
        self.bank, self.bank_targets = torch.cat(features), torch.cat(targets)
        if self.k > len(self.bank) and self.trainer.is_global_zero:
            warnings.warn(
                f"k-NN: k = {self.k} is larger than the label bank ({len(self.bank)} labelled examples): every "
                f"example votes, weighted by similarity; set k to at most {len(self.bank)} (model.k)",
                stacklevel=1,
            )

    @torch.no_grad()
    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        target = _targets(batch, self.label_key, self.task)
        output = knn_predict(
            self(batch), self.bank, self.bank_targets, self.k, self.temperature, self.task, self.num_outputs
        )
        self.log_dict(self.metrics(output, target, "val"), prog_bar=True, batch_size=len(target), sync_dist=True)

    def configure_optimizers(self) -> None:
        return None
