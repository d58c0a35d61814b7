"""Series to PNG: each sample's input, its hidden patches shaded, and the reconstruction of the hidden ones
(dashed), channel by channel, with matplotlib."""

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import torch
from pydantic import NonNegativeInt, PositiveInt
from torch import Tensor

from anymae import INVERSE, RAW_VALUES, MaskedAutoencoder, PeriodicFigure, save_matplotlib, validated

__all__ = ["SeriesPlot", "save_series_plot"]


def save_series_plot(images: dict[str, Tensor], path: str | Path, lengths: Tensor | None = None) -> Path:
    """``images`` as :meth:`anymae.MaskedAutoencoder.reconstruct` returns them for series (``[B, C, T]``)."""
    source, hidden, recon = images["input"].cpu(), images["hidden"].cpu() > 0.5, images["reconstruction"].cpu()
    b, c, t = source.shape
    steps = torch.arange(t)

    def draw(figure) -> None:
        axes = figure.subplots(b, 1, squeeze=False)
        for i in range(b):  # a handful of plotted samples: drawing, not tensor work
            axis = axes[i, 0]
            end = int(lengths[i]) if lengths is not None else t
            for ch in range(c):
                line = axis.plot(steps[:end], source[i, ch, :end], lw=1)[0]
                gap = torch.where(hidden[i, ch, :end], recon[i, ch, :end], torch.nan)
                axis.plot(steps[:end], gap, lw=1.2, ls="--", color=line.get_color())
            shaded = hidden[i].any(dim=0)[:end]
            starts = torch.nonzero(shaded & ~torch.cat([torch.tensor([False]), shaded[:-1]])).flatten().tolist()
            for start in starts:
                stop = start
                while stop + 1 < end and shaded[stop + 1]:
                    stop += 1
                axis.axvspan(start - 0.5, stop + 0.5, color="0.85", zorder=0)
            axis.set_xlim(0, t)
        axes[0, 0].set_title("input (solid), hidden patches (grey), reconstruction (dashed)", fontsize=9)

    return save_matplotlib(draw, path, figsize=(9, 1.8 * b))


class SeriesPlot(PeriodicFigure):
    """Writes ``series/epoch=NNNN.png`` every ``every_n_epochs`` and ``series/final.png`` at the end of fit, from a
    fixed validation batch and masking seed.

    Args:
        every_n_epochs: period (0: only at the end).
        num_series: samples drawn.
        seed: masking seed.
    """

    folder, label = "series", "series plot"
    drawings: ClassVar[Mapping[str, frozenset[str]]] = {RAW_VALUES: frozenset({INVERSE})}

    @validated
    def __init__(self, every_n_epochs: NonNegativeInt = 5, num_series: PositiveInt = 4, seed: int = 0) -> None:
        super().__init__(every_n_epochs, num_series, seed)

    def draw(self, module: MaskedAutoencoder, batch: dict[str, Tensor], generator: torch.Generator, path: Path) -> Path:
        return save_series_plot(module.reconstruct(batch, generator=generator), path, batch.get("length"))
