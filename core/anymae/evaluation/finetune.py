"""MAE's end-to-end fine-tuning (https://arxiv.org/abs/2111.06377, appendix A.1): mean pooling and a LayerNorm,
layer-wise lr decay (MAE's recipes: 0.65 for ViT-B, 0.75 for ViT-L/H; 0.75 by default), drop path 0.1, label
smoothing 0.1, AdamW (0.9, 0.999) with weight decay 0.05."""

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import torch
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from pydantic import Field, NonNegativeFloat, PositiveInt
from torch import Tensor, nn

from ..model.position import LearnedPositionEmbedding, SinCosPositionEmbedding
from ..training.optim import WarmupCosine, fusable
from .protocol import EncoderSource, HeadProtocol, Task

__all__ = ["FineTune", "FineTuneAdamW"]


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


class FineTune(HeadProtocol):
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
        norm = getattr(self.backbone.encoder, "norm", None)
        if pool == "mean" and isinstance(norm, nn.LayerNorm):
            eps = norm.eps
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

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        groups = self.param_groups()
        optimizer = self.optimizer_factory(groups)
        for group in optimizer.param_groups:  # the scale applies to whatever lr the optimizer was given
            group["lr"] = group["lr"] * group.get("lr_scale", 1.0)
        return self._schedule(optimizer, self.lr_schedule)
