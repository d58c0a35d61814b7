"""A base for callbacks that draw what the model does: a fixed validation batch, a fixed masking seed, a PNG every
``every_n_epochs`` epochs and one when fit ends, under the trainer's log directory. Each modality's plugin
subclasses it with its own drawing (image grids, point clouds, series plots).

A figure declares what it can draw (:attr:`PeriodicFigure.drawings`: for each kind of prediction a target makes,
the names the tokenizer must offer) and is checked against the model when fit starts, so a figure that cannot draw
a model fails with one line before training instead of at the end of it.
"""

import warnings
from abc import abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import lightning.pytorch as pl
import torch
from torch import Tensor

from ..config import ConfigError
from ..data.samples import SKIPPED_KEY
from .module import MaskedAutoencoder

__all__ = ["PeriodicFigure", "save_matplotlib"]


def save_matplotlib(draw: Any, path: str | Path, **figure_kwargs: Any) -> Path:
    """Make a matplotlib figure (``Agg``, no screen), let ``draw(figure)`` fill it, and save it as ``path``.

    matplotlib is imported here, so only the plugins that draw with it need it installed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = plt.figure(**figure_kwargs)
    try:
        draw(figure)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.tight_layout()
        figure.savefig(path, dpi=80)
    finally:
        plt.close(figure)
    return path


class PeriodicFigure(pl.Callback):
    """Writes ``<folder>/epoch=NNNN.png`` every ``every_n_epochs`` epochs and ``<folder>/final.png`` at the end of
    fit (rank zero only), and prints the final path.

    Subclasses set :attr:`folder`, :attr:`label` and :attr:`drawings`, and implement :meth:`draw`.

    Attributes:
        drawings: what the figure can draw: for each kind of prediction (a target's ``predicts``), the names the
            tokenizer must offer (``{"raw_values": {"inverse"}}`` for a figure that shows reconstructions through
            the tokenizer's inverse). The names it needs that the tokenizer computes are passed to the model's
            forward when drawing (:attr:`needs`).

    Args:
        every_n_epochs: period in epochs (0: only at the end of fit).
        count: samples drawn from the first validation batch (the training batch when there is no validation).
        seed: masking seed, so successive figures show the same masks.
    """

    folder: ClassVar[str]
    label: ClassVar[str]
    drawings: ClassVar[Mapping[str, frozenset[str]]]

    def __init__(self, every_n_epochs: int, count: int, seed: int) -> None:
        super().__init__()
        self.every_n_epochs, self.count, self.seed = every_n_epochs, count, seed
        self._batch: dict[str, Tensor] | None = None
        self.last_path: Path | None = None
        self.needs: frozenset[str] = frozenset()

    @abstractmethod
    def draw(
        self, module: MaskedAutoencoder, batch: Mapping[str, Tensor], generator: torch.Generator, path: Path
    ) -> Path:
        """Run ``module`` on ``batch`` (in eval mode, masking from ``generator``; pass ``needs=self.needs``) and
        save the figure to ``path``."""

    def check(self, module: MaskedAutoencoder) -> None:
        """Raise :class:`~anymae.ConfigError` naming this figure, the target and the tokenizer when the figure cannot
        draw the model; otherwise note which of the tokenizer's data to ask for."""
        name, target, spec = type(self).__name__, module.target, module.tokenizer.spec
        predicts = target.predicts
        if predicts is None or predicts not in self.drawings:
            raise ConfigError(
                f"trainer.callbacks: {name} draws predictions of {', '.join(sorted(self.drawings))}; "
                f"{type(target).__name__} predicts {predicts or 'nothing a figure can draw'}"
            )
        self.needs = spec.to_compute(self.drawings[predicts], "trainer.callbacks", name, f" to draw {predicts}")

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.check(_drawn(pl_module, type(self).__name__))

    def sample_batch(self, trainer: pl.Trainer) -> dict[str, Tensor] | None:
        """The first batch (of the validation loader, else the training loader) with a readable sample, cut to
        :attr:`count` samples; ``None`` when no batch has one."""
        if self._batch is None:
            data = trainer.datamodule  # type: ignore[attr-defined]  # Lightning sets it, undeclared
            loader = data.val_dataloader() if data is not None else trainer.val_dataloaders
            if not loader:
                loader = data.train_dataloader() if data is not None else trainer.train_dataloader
            if loader is None:
                raise ConfigError(f"trainer.callbacks: {type(self).__name__} found no data to draw")
            for raw in loader:  # a batch of unreadable files only holds nothing to draw: the next one may
                batch = {k: v for k, v in raw.items() if k != SKIPPED_KEY}  # counted by the epochs, not here
                if data is not None:
                    batch = data.on_before_batch_transfer(batch, 0)
                batch = {
                    k: v[: self.count] for k, v in batch.items() if isinstance(v, Tensor) and not k.startswith("_")
                }
                if batch:
                    self._batch = batch
                    break
        return self._batch

    def write(self, trainer: pl.Trainer, module: MaskedAutoencoder, name: str) -> Path | None:
        """Draw on rank zero; every rank calls this (``trainer.log_dir`` is a collective under DDP: asked on one rank
        only, it waits forever for the others)."""
        folder = Path(trainer.log_dir or trainer.default_root_dir) / self.folder
        if not trainer.is_global_zero:
            return None
        sample = self.sample_batch(trainer)
        if sample is None:
            warnings.warn(
                f"{type(self).__name__}: no readable sample to draw; no figure written", RuntimeWarning, stacklevel=2
            )
            return None
        batch = {k: v.to(module.device) for k, v in sample.items()}
        was_training = module.training
        module.eval()
        try:
            generator = torch.Generator(device=module.device).manual_seed(self.seed)
            with torch.no_grad(), module.float32():  # figures in fp32, also from a bf16-true model
                self.last_path = self.draw(module, batch, generator, folder / name)
        finally:
            module.train(was_training)
        return self.last_path

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.every_n_epochs and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self.write(trainer, _drawn(pl_module, type(self).__name__), f"epoch={trainer.current_epoch:04d}.png")

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        path = self.write(trainer, _drawn(pl_module, type(self).__name__), "final.png")
        if path is not None:
            print(f"{self.label}: {path}")


def _drawn(module: pl.LightningModule, figure: str) -> MaskedAutoencoder:
    """The model a figure draws: a :class:`~anymae.MaskedAutoencoder` (Lightning's hooks pass any module)."""
    if not isinstance(module, MaskedAutoencoder):
        raise ConfigError(f"trainer.callbacks: {figure} draws a MaskedAutoencoder, not a {type(module).__name__}")
    return module
