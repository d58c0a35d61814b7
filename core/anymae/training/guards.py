"""What a run does when things go wrong, as callbacks every :class:`~anymae.MaskedAutoencoder` brings with it
(``configure_callbacks``): a loss that diverges, and samples that cannot be read.

* :class:`DivergenceGuard` checks the gradients after they are reduced across ranks, so every rank takes the same
  decision: stop before the weights change (:class:`~anymae.TrainingDiverged`, naming the step and the last good
  checkpoint: no NaN checkpoint is ever written) or skip the step.
* :class:`SkippedSamplesReport` prints each epoch's unreadable samples (summed over ranks) and stops when no training
  sample of an epoch could be read.
"""

from typing import Literal, Protocol, cast

import lightning.pytorch as pl
import torch

from ..config import ConfigError
from ..errors import TrainingDiverged

__all__ = ["DivergenceGuard", "SkippedSamplesReport"]


class _CountsSkippedSteps(Protocol):
    skipped_steps: int


class DivergenceGuard(pl.Callback):
    """Stops training, or skips the step, when a gradient is not finite.

    Args:
        on_nonfinite: ``"stop"`` ends training with :class:`~anymae.TrainingDiverged` before the weights are
            touched; ``"skip"`` drops the step (no update, no optimiser state change) and counts it in the module's
            ``skipped_steps``. Under float16 mixed precision the GradScaler, which skips overflowing steps itself,
            takes the guard's place.
        max_skipped_steps: with ``"skip"``, this many skipped steps in a row stop training as ``"stop"`` does.
    """

    def __init__(self, on_nonfinite: Literal["stop", "skip"], max_skipped_steps: int) -> None:
        self.on_nonfinite, self.max_skipped_steps = on_nonfinite, max_skipped_steps
        self.in_a_row = 0

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if getattr(trainer.precision_plugin, "scaler", None) is not None:
            return  # float16's GradScaler skips overflowing steps itself, and lowers its scale: they are routine
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        if not grads:
            return
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))
        if bool(torch.isfinite(norm)):  # one scalar read per step
            self.in_a_row = 0
            return
        if self.on_nonfinite == "skip" and self.in_a_row < self.max_skipped_steps:
            counter = cast(_CountsSkippedSteps, pl_module)  # the module that brings this guard (MAEModule)
            counter.skipped_steps += 1
            self.in_a_row += 1
            for param in pl_module.parameters():  # AdamW leaves parameters without a gradient untouched
                param.grad = None
            pl_module.log("train/skipped_steps", float(counter.skipped_steps), batch_size=1)
            return
        callback = trainer.checkpoint_callback
        last = (getattr(callback, "last_model_path", "") or getattr(callback, "best_model_path", "")) or "none yet"
        loss = float(getattr(pl_module, "last_loss", float("nan")))
        in_a_row = f" after {self.in_a_row} skipped steps in a row" if self.in_a_row else ""
        raise TrainingDiverged(
            f"training diverged at step {trainer.global_step} (epoch {trainer.current_epoch}): non-finite gradients "
            f"(loss {loss:g}){in_a_row}; the weights were not updated, and the last good checkpoint is {last}"
        )


class SkippedSamplesReport(pl.Callback):
    """Reports the unreadable samples the data module skipped (``epoch_report``/``num_skipped`` of the data kit's
    modules), summed over ranks, and stops when no training sample of an epoch could be read."""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        report = getattr(trainer.datamodule, "epoch_report", None)  # type: ignore[attr-defined]  # Lightning sets it, undeclared
        if report is None:
            return
        counts = torch.tensor(report(), dtype=torch.float64, device=pl_module.device)
        skipped, read = (int(v) for v in trainer.strategy.reduce(counts, reduce_op="sum"))
        if not skipped:
            return
        pl_module.log("data/skipped", float(skipped), batch_size=1, rank_zero_only=True)
        if not read:
            raise ConfigError(
                f"data: every training sample of epoch {trainer.current_epoch} was unreadable ({skipped} skipped); "
                "the warnings above name the files"
            )
        if trainer.is_global_zero:
            print(f"epoch {trainer.current_epoch}: {skipped} unreadable samples skipped, {read} read")

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The run's total: the unreadable files (over every rank), and how many reads skipped them."""
        module = trainer.datamodule  # type: ignore[attr-defined]  # Lightning sets it, undeclared
        skipped = getattr(module, "num_skipped", 0)
        total = int(trainer.strategy.reduce(torch.tensor(float(skipped), device=pl_module.device), reduce_op="sum"))
        if not total:
            return
        sources = set(getattr(module, "unreadable_sources", ()))
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[set[str] | None] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, sources)
            sources = set().union(*(s for s in gathered if s))
        if trainer.is_global_zero:
            files = f"{len(sources)} unreadable file{'s' * (len(sources) != 1)}" if sources else "unreadable samples"
            print(f"{files} skipped in all ({total} reads: each epoch and each validation reads a file again)")
