"""Figures of a multi-modal model: each modality drawn by its own plugin's figure, from one joint masking."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from pydantic import NonNegativeInt, PositiveInt
from torch import Tensor

from ..config import ConfigError, validated
from ..model.multimodal.tokenizer import MultiModalTokenizer, modality_batch
from ..model.multimodal.views import modality_parts
from .callbacks import PeriodicFigure
from .module import MaskedAutoencoder

__all__ = ["ModalityFigures"]


class _OneModality:
    """A multi-modal model as one modality's figure sees it: that modality's tokenizer and target, and
    ``reconstruct`` of that modality from the whole batch (every modality is encoded, as in training)."""

    def __init__(self, model: MaskedAutoencoder, name: str, batch: Mapping[str, Tensor] | None = None) -> None:
        self.model, self.name, self.batch = model, name, batch
        self.tokenizer, self.target = modality_parts(model.tokenizer, model.target, name)

    def reconstruct(self, batch: Mapping[str, Tensor], **kwargs: Any) -> dict[str, Tensor]:
        return self.model.reconstruct(self.batch if self.batch is not None else batch, modality=self.name, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


class ModalityFigures(PeriodicFigure):
    """Draws every modality of a multi-modal model with the figure of its plugin (``ReconstructionGrid`` for
    images, ``FrameStrips`` for video, ``SpectrogramGrid`` for audio...), under ``<folder>/<modality>/``, from one
    validation batch and one joint mask, so the figures show what each modality was asked to rebuild from the
    others.

    Args:
        figures: a figure per modality, by the modality's name (modalities not named are not drawn).
        every_n_epochs: period in epochs (0: only at the end of fit); it replaces each figure's own.
        num_images: samples drawn.
        seed: masking seed.
    """

    folder, label = "reconstructions", "reconstructions"
    drawings: ClassVar[Mapping[str, frozenset[str]]] = {}

    @validated
    def __init__(
        self,
        figures: dict[str, PeriodicFigure],
        every_n_epochs: NonNegativeInt = 5,
        num_images: PositiveInt = 8,
        seed: int = 0,
    ) -> None:
        super().__init__(every_n_epochs, num_images, seed)
        if not figures:
            raise ConfigError("ModalityFigures.figures is empty; give a figure per modality")
        self.figures = dict(figures)

    def check(self, module: MaskedAutoencoder) -> None:
        if not isinstance(module.tokenizer, MultiModalTokenizer):
            raise ConfigError(
                f"trainer.callbacks: ModalityFigures draws a multi-modal model; the tokenizer is "
                f"{type(module.tokenizer).__name__} (use the modality's own figure)"
            )
        unknown = sorted(set(self.figures) - set(module.tokenizer.modalities))
        if unknown:
            raise ConfigError(
                f"trainer.callbacks: ModalityFigures has figures for {unknown}, which are not modalities "
                f"({list(module.tokenizer.modalities)})"
            )
        for name, figure in self.figures.items():
            try:
                figure.check(_OneModality(module, name))  # type: ignore[arg-type]  # duck-typed: tokenizer, target
            except ConfigError as error:
                raise ConfigError(f"{error} (modality {name!r} of ModalityFigures)") from None

    def draw(
        self, module: MaskedAutoencoder, batch: Mapping[str, Tensor], generator: torch.Generator, path: Path
    ) -> Path:
        for name, figure in self.figures.items():
            own = torch.Generator(device=generator.device).manual_seed(self.seed)  # the same joint mask for each
            view = _OneModality(module, name, batch)
            figure.draw(view, modality_batch(batch, name), own, path.parent / name / path.name)  # type: ignore[arg-type]
        return path.parent
