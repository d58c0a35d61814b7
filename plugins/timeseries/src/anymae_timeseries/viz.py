"""Series to PNG: each sample's input, its hidden patches shaded, and the reconstruction of the hidden ones
(dashed), channel by channel, with matplotlib."""

from pathlib import Path

import lightning.pytorch as pl
import torch
from pydantic import NonNegativeInt, PositiveInt
from torch import Tensor

from anymae import MaskedAutoencoder, validated

__all__ = ["SeriesPlot", "save_series_plot"]


def save_series_plot(images: dict[str, Tensor], path: str | Path, lengths: Tensor | None = None) -> Path:
    """``images`` as :meth:`anymae.MaskedAutoencoder.reconstruct` returns them for series (``[B, C, T]``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    source, hidden, recon = images["input"].cpu(), images["hidden"].cpu() > 0.5, images["reconstruction"].cpu()
    b, c, t = source.shape
    figure, axes = plt.subplots(b, 1, figsize=(9, 1.8 * b), squeeze=False)
    steps = torch.arange(t)
    for i in range(b):
        axis = axes[i, 0]
        end = int(lengths[i]) if lengths is not None else t
        for ch in range(c):
            line = axis.plot(steps[:end], source[i, ch, :end], lw=1)[0]
            gap = torch.where(hidden[i, ch, :end], recon[i, ch, :end], torch.nan)
            axis.plot(steps[:end], gap, lw=1.2, ls="--", color=line.get_color())
        shaded = hidden[i].any(dim=0)[:end]
        for start in torch.nonzero(shaded & ~torch.cat([torch.tensor([False]), shaded[:-1]])).flatten().tolist():
            stop = start
            while stop + 1 < end and shaded[stop + 1]:
                stop += 1
            axis.axvspan(start - 0.5, stop + 0.5, color="0.85", zorder=0)
        axis.set_xlim(0, t)
    axes[0, 0].set_title("input (solid), hidden patches (grey), reconstruction (dashed)", fontsize=9)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path


class SeriesPlot(pl.Callback):
    """Writes ``series/epoch=NNNN.png`` every ``every_n_epochs`` and ``series/final.png`` at the end of fit, from a
    fixed validation batch and masking seed.

    Args:
        every_n_epochs: period (0: only at the end).
        num_series: samples drawn.
        seed: masking seed.
    """

    @validated
    def __init__(self, every_n_epochs: NonNegativeInt = 5, num_series: PositiveInt = 4, seed: int = 0) -> None:
        super().__init__()
        self.every_n_epochs, self.num_series, self.seed = every_n_epochs, num_series, seed
        self._batch: dict[str, Tensor] | None = None

    def write(self, trainer: pl.Trainer, module: MaskedAutoencoder, name: str) -> Path | None:
        if not trainer.is_global_zero:
            return None
        if self._batch is None:
            data = trainer.datamodule
            batch = data.on_before_batch_transfer(next(iter(data.val_dataloader())), 0)
            self._batch = {k: v[: self.num_series] for k, v in batch.items() if isinstance(v, Tensor)}
        batch = {k: v.to(module.device) for k, v in self._batch.items()}
        was_training = module.training
        module.eval()
        try:
            images = module.reconstruct(batch, generator=torch.Generator(device=module.device).manual_seed(self.seed))
        finally:
            module.train(was_training)
        folder = Path(trainer.log_dir or trainer.default_root_dir) / "series"
        return save_series_plot(images, folder / name, batch.get("length"))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: MaskedAutoencoder) -> None:
        if self.every_n_epochs and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self.write(trainer, pl_module, f"epoch={trainer.current_epoch:04d}.png")

    def on_fit_end(self, trainer: pl.Trainer, pl_module: MaskedAutoencoder) -> None:
        path = self.write(trainer, pl_module, "final.png")
        if path is not None:
            print(f"series plot: {path}")
