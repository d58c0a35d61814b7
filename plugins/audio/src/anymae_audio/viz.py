"""Spectrogram figures: one row per clip, ``input | masked input | reconstruction``, time on x and frequency on y in
a colour map, written as PNG into the run's log directory every ``every_n_epochs`` epochs and at the end of fit."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from pydantic import NonNegativeInt, PositiveInt
from torch import Tensor

from anymae import INVERSE, RAW_VALUES, MaskedAutoencoder, PeriodicFigure, save_matplotlib, validated

__all__ = ["SpectrogramFigure", "save_spectrograms"]


def save_spectrograms(images: dict[str, Tensor], path: str | Path, cmap: str = "magma") -> Path:
    """Write ``images["input" | "masked" | "reconstruction" | "hidden"]`` (``[B, 1, T, F]``, as
    :meth:`anymae.MaskedAutoencoder.reconstruct` returns them) as rows of three spectrograms sharing each row's
    colour scale; hidden patches of the masked input are blank."""
    import numpy as np

    rows = images["input"].shape[0]
    titles = ("input", "masked", "reconstruction")

    def draw(figure: Any) -> None:
        axes = figure.subplots(rows, 3, squeeze=False)
        for r in range(rows):  # a figure's panels, not a batch computation
            original = images["input"][r, 0].float()
            low, high = float(original.min()), float(original.max())
            masked = images["masked"][r, 0].float().masked_fill(images["hidden"][r, 0] > 0.5, float("nan"))
            for c, panel in enumerate((original, masked, images["reconstruction"][r, 0].float())):
                ax = axes[r, c]
                ax.imshow(np.asarray(panel.T), origin="lower", aspect="auto", cmap=cmap, vmin=low, vmax=high)
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(titles[c], fontsize=9)
        axes[-1, 0].set_xlabel("time")
        axes[-1, 0].set_ylabel("mel")

    return save_matplotlib(draw, path, figsize=(9, 1.6 * rows + 0.4))


class SpectrogramFigure(PeriodicFigure):
    """Writes ``spectrograms/epoch=NNNN.png`` every ``every_n_epochs`` epochs and ``spectrograms/final.png`` at the
    end of fit, from a fixed validation batch and a fixed masking seed.

    Args:
        every_n_epochs: period in epochs (0: only at the end of fit).
        num_clips: rows in the figure.
        cmap: matplotlib colour map.
        seed: masking seed, so successive figures show the same masks.
    """

    folder, label = "spectrograms", "spectrograms"
    drawings: ClassVar[Mapping[str, frozenset[str]]] = {RAW_VALUES: frozenset({INVERSE})}

    @validated
    def __init__(
        self, every_n_epochs: NonNegativeInt = 5, num_clips: PositiveInt = 4, cmap: str = "magma", seed: int = 0
    ) -> None:
        super().__init__(every_n_epochs, num_clips, seed)
        self.cmap = cmap

    def draw(self, module: MaskedAutoencoder, batch: dict[str, Tensor], generator: torch.Generator, path: Path) -> Path:
        images = module.reconstruct(batch, generator=generator)
        return save_spectrograms({k: v.cpu() for k, v in images.items()}, path, self.cmap)
