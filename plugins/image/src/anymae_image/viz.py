"""Reconstruction grids: one row per image, ``original | masked input | reconstruction``, written as PNG into the
run's log directory every ``every_n_epochs`` epochs and at the end of fit."""

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import torch
from pydantic import NonNegativeInt, PositiveInt
from torch import Tensor

from anymae import INVERSE, RAW_VALUES, MaskedAutoencoder, PeriodicFigure, validated

__all__ = ["ReconstructionGrid", "save_reconstruction_grid"]


def save_reconstruction_grid(images: dict[str, Tensor], path: str | Path) -> Path:
    """Write ``images["input" | "masked" | "reconstruction"]`` (``[B, C, H, W]``, as
    :meth:`anymae.MaskedAutoencoder.reconstruct` returns them) as a PNG grid, three per row.

    Each row is scaled to [0, 1] by its original's range, so the three images of a row are comparable.
    """
    from torchvision.utils import save_image

    original = images["input"].float()
    low = original.amin(dim=(1, 2, 3), keepdim=True)
    span = (original.amax(dim=(1, 2, 3), keepdim=True) - low).clamp_min(1e-6)
    gray = (low + 0.5 * span).expand_as(original)
    masked = torch.where(images["hidden"] > 0.5, gray, images["masked"].float())  # hidden patches show as gray
    rows = torch.stack([original, masked, images["reconstruction"].float()], dim=1)  # [B, 3, C, H, W]
    rows = ((rows - low[:, None]) / span[:, None]).clamp(0, 1)
    if rows.shape[2] not in (1, 3):  # multispectral: show the first three channels
        rows = rows[:, :, :3]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(rows.flatten(0, 1), path, nrow=3, padding=2, pad_value=1.0)
    return path


class ReconstructionGrid(PeriodicFigure):
    """Writes ``reconstructions/epoch=NNNN.png`` every ``every_n_epochs`` epochs and ``reconstructions/final.png``
    when fit ends, under the trainer's log directory, from a fixed validation batch and a fixed masking seed.

    Args:
        every_n_epochs: period in epochs (0: only at the end of fit).
        num_images: rows in the grid.
        seed: masking seed, so successive grids show the same masks.
    """

    folder, label = "reconstructions", "reconstructions"
    drawings: ClassVar[Mapping[str, frozenset[str]]] = {
        RAW_VALUES: frozenset({INVERSE})
    }  # predicted token values, shown through the tokenizer's inverse

    @validated
    def __init__(self, every_n_epochs: NonNegativeInt = 5, num_images: PositiveInt = 8, seed: int = 0) -> None:
        super().__init__(every_n_epochs, num_images, seed)

    def draw(self, module: MaskedAutoencoder, batch: dict[str, Tensor], generator: torch.Generator, path: Path) -> Path:
        images = module.reconstruct(batch, generator=generator)
        return save_reconstruction_grid({k: v.cpu() for k, v in images.items()}, path)
