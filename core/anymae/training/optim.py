"""MAE's optimisation recipe (He et al. 2021, https://arxiv.org/abs/2111.06377, appendix A.1).

AdamW with ``betas=(0.9, 0.95)`` and weight decay 0.05 (not on biases and norms), learning rate
``base_lr * batch / 256`` with ``base_lr = 1.5e-4``, linear warm-up for 40 epochs, then a half-cycle cosine to
``min_lr``, updated every step.

``MAEAdamW(master_weights=True)`` is the optimiser for a model trained in low precision throughout (Lightning's
``precision: bf16-true``): the model's parameters are the bf16 working copy the forward and backward use as they are,
and the optimiser keeps fp32 master weights (and fp32 moments) that it updates and copies back after each step.
"""

import math
from collections.abc import Callable, Iterable
from functools import partial
from typing import Annotated, Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt

from ..config import ConfigError

__all__ = ["MAEAdamW", "WarmupCosine", "configure_mae_optimizer", "decay_groups", "fusable"]

LOW_PRECISION = (torch.bfloat16, torch.float16)


class MAEAdamW(torch.optim.AdamW):
    """``torch.optim.AdamW`` with MAE's defaults.

    Args:
        params: parameters or parameter groups (the model passes groups that exempt biases and norms from decay).
        lr: learning rate. MAE uses ``1.5e-4 * batch_size / 256``; the default is that for a batch of 256.
        betas: Adam's moment coefficients (0.9, 0.95) in MAE.
        weight_decay: decoupled weight decay (0.05 in MAE).
        fused: torch's fused kernel (one pass per tensor); unset: on when every parameter is a float tensor on the
            CPU or a CUDA device, where it is 3.5x faster than the default loop (ViT-S, 2 CPU cores: 9 vs 33 ms).
        master_weights: for bf16/fp16 parameters (a model trained with ``precision: bf16-true``), keep fp32 master
            weights and moments in the optimiser state: each step updates the masters with the gradients in fp32 and
            writes the rounded result into the parameters, so updates smaller than the working copy's resolution
            still add up, and forward and backward cast no weight. fp32 parameters are updated as usual.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: Annotated[float, Field(gt=0)] = 1.5e-4,
        betas: tuple[float, float] = (0.9, 0.95),
        weight_decay: NonNegativeFloat = 0.05,
        fused: bool | None = None,
        master_weights: bool = False,
    ) -> None:
        params = list(params)
        super().__init__(params, lr=lr, betas=betas, weight_decay=weight_decay, fused=fusable(params, fused))
        self.master_weights = master_weights

    def _low_precision(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"] if p.dtype in LOW_PRECISION]

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        if not self.master_weights:
            return super().step(closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # The update runs on the masters: each low-precision parameter briefly holds its fp32 master (and an fp32
        # gradient), so torch's own AdamW (fused kernel included) makes fp32 moments and an fp32 update.
        swapped = []
        for p in self._low_precision():
            master = self.state[p].get("master")
            swapped.append((p, p.data, p.grad, p.detach().float() if master is None else master))
            p.data = swapped[-1][3]
            p.grad = None if p.grad is None else p.grad.float()
        try:
            super().step()
        finally:
            for p, data, grad, master in swapped:
                p.data, p.grad = data, grad
                if "exp_avg" in self.state[p]:  # AdamW made its state (it skips parameters without a gradient)
                    self.state[p]["master"] = master
            if swapped:  # one batched cast of the updated masters into the working copy
                torch._foreach_copy_([s[1] for s in swapped], [s[3] for s in swapped])
        return loss

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As torch's, except that master weights and moments stay fp32 (torch casts saved state to the dtype of
        its parameter, which would round them to the working copy's precision)."""
        if not self.master_weights:
            return super().load_state_dict(state_dict)
        low = [(p, p.data) for p in self._low_precision()]
        for p, data in low:
            p.data = data.float()
        try:
            super().load_state_dict(state_dict)
        finally:
            for p, data in low:
                p.data = data
        return None


def fusable(params: list[Any], fused: bool | None) -> bool | None:
    """``fused`` as given, or whether torch's fused AdamW supports every parameter."""
    if fused is not None:
        return fused
    tensors = [p for group in params for p in (group["params"] if isinstance(group, dict) else [group])]
    return bool(tensors) and all(t.is_floating_point() and t.device.type in ("cpu", "cuda") for t in tensors)


class WarmupCosine(BaseModel):
    """Per-step learning-rate schedule: linear warm-up from 0, then half-cycle cosine down to ``min_lr``.

    Args:
        warmup_epochs: epochs of linear warm-up (40 of 800 in MAE); fractional values are allowed.
        warmup_steps: optimizer steps of warm-up, instead of ``warmup_epochs`` (needed when an epoch has no known
            length, e.g. an iterable data set).
        warmup_fraction: warm-up as a share of the whole schedule, instead of ``warmup_epochs`` (0.05 is MAE's 40 of
            800 epochs); for schedules set in steps or derived from the data's size. ``warmup_steps`` wins over it.
        min_lr: learning rate at the end of the cosine (0 in MAE).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    warmup_epochs: NonNegativeFloat = 40.0
    warmup_steps: NonNegativeInt | None = None
    warmup_fraction: Annotated[float, Field(ge=0, lt=1)] | None = None
    min_lr: NonNegativeFloat = 0.0

    def factor(self, step: int, warmup_steps: int, total_steps: int, base_lr: float) -> float:
        """Multiplier of the optimizer's learning rate at ``step``."""
        if step < warmup_steps:
            return step / warmup_steps
        floor = min(self.min_lr / base_lr, 1.0) if base_lr > 0 else 0.0
        progress = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def scheduler(
        self, optimizer: torch.optim.Optimizer, total_steps: int, steps_per_epoch: float | None
    ) -> torch.optim.lr_scheduler.LambdaLR:
        """A per-step ``LambdaLR``; ``steps_per_epoch`` is ``None`` when the data has no length."""
        if self.warmup_steps is not None:
            warmup = self.warmup_steps
        elif self.warmup_fraction is not None:
            warmup = round(self.warmup_fraction * total_steps)
        elif steps_per_epoch is None:
            if self.warmup_epochs:
                raise ConfigError(
                    "lr_schedule.warmup_epochs needs data whose epoch length is known; set lr_schedule.warmup_steps"
                )
            warmup = 0
        else:
            warmup = round(self.warmup_epochs * steps_per_epoch)
        warmup = min(warmup, total_steps)
        # A group's lr_scale (layer-wise decay) scales its whole schedule, min_lr included, as MAE's
        # adjust_learning_rate does: the floor is computed on the unscaled lr.
        bases = [group["lr"] / group.get("lr_scale", 1.0) for group in optimizer.param_groups]
        lambdas: list[Callable[[int], float]] = [
            partial(self.factor, warmup_steps=warmup, total_steps=total_steps, base_lr=b) for b in bases
        ]
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)


def decay_groups(named_parameters: Iterable[tuple[str, torch.nn.Parameter]]) -> list[dict[str, Any]]:
    """MAE's rule (timm's ``add_weight_decay``): no decay on 1-D parameters (norms) and biases. The other group takes
    the optimizer's own ``weight_decay``, so the YAML value stays the one that counts (timm's
    ``param_groups_weight_decay`` would hard-code the value into the group)."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, param in named_parameters:
        if param.requires_grad:
            (no_decay if param.ndim <= 1 or name.endswith(".bias") else decay).append(param)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay}]


def configure_mae_optimizer(
    module: pl.LightningModule, optimizer: torch.optim.Optimizer, schedule: WarmupCosine, blr: float | None
) -> OptimizerLRSchedulerConfig:
    """``configure_optimizers``' answer for MAE's recipe: with ``blr``, MAE's linear scaling rule ``lr = blr x
    effective batch / 256`` (ranks x batch per rank x gradient accumulation), and the per-step warm-up + cosine
    ``schedule``."""
    trainer = module.trainer
    total = int(trainer.estimated_stepping_batches)  # also sets up the data, so the loader below is known
    if blr is not None:
        loader = trainer.train_dataloader
        batch = getattr(loader, "batch_size", 0) or getattr(getattr(loader, "batch_sampler", None), "batch_size", 1)
        effective = trainer.world_size * int(batch) * trainer.accumulate_grad_batches
        for group in optimizer.param_groups:
            group["lr"] = blr * effective / 256
        if trainer.is_global_zero:
            print(f"lr = blr {blr:g} x effective batch {effective} / 256 = {blr * effective / 256:g}")
    batches = trainer.num_training_batches
    steps_per_epoch = batches / trainer.accumulate_grad_batches if math.isfinite(batches) else None
    scheduler = schedule.scheduler(optimizer, total, steps_per_epoch)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
