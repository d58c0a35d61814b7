"""Axis-structured masking for spectrograms (Audio-MAE, Huang et al. 2022, https://arxiv.org/abs/2207.06405;
``random_masking`` and ``random_masking_2d`` in facebookresearch/AudioMAE ``models_mae.py``).

A spectrogram grid is ``(time, frequency)`` (Audio-MAE: 64 x 8 for 1024 frames x 128 mel bins in 16 x 16 patches).
Audio-MAE pretrains with unstructured masking at ratio 0.8; its structured variants drop whole time rows, whole
frequency columns, or both, and a token stays visible only if both its time row and its frequency column are kept.
"""

from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import Tensor

from ..config import ConfigError, validated
from ..model.specs import LayoutSpec
from ..model.types import TokenBatch
from .base import Masker, dense_grid_shape, real_token_count, uniform

__all__ = ["SpectrogramMasker"]

Ratio = Annotated[float, Field(ge=0, lt=1)]


class SpectrogramMasker(Masker):
    """Audio-MAE's spectrogram masking.

    Args:
        mode: ``"unstructured"`` -- random tokens at ``mask_ratio`` (Audio-MAE's pretraining default);
            ``"time"`` -- whole time steps at ``time_ratio``; ``"frequency"`` -- whole frequency bands at
            ``frequency_ratio``; ``"time_frequency"`` -- both, a token being visible only if its time step and its
            band are both kept.
        mask_ratio: fraction hidden in unstructured mode (0.8 in Audio-MAE pretraining).
        time_ratio: fraction of time steps hidden (Audio-MAE's ``mask_t_prob``, 0.7 in ``main_pretrain.py``).
        frequency_ratio: fraction of frequency bands hidden (``mask_f_prob``, 0.3 in ``main_pretrain.py``).
        time_axis: which grid axis is time (0 in Audio-MAE: the spectrogram is ``[time, mel]``).
    """

    supported_layouts = frozenset({"grid"})
    grid_ranks = frozenset({2})

    @validated
    def __init__(
        self,
        mode: Literal["unstructured", "time", "frequency", "time_frequency"] = "unstructured",
        mask_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.8,
        time_ratio: Ratio = 0.7,
        frequency_ratio: Ratio = 0.3,
        time_axis: Literal[0, 1] = 0,
    ) -> None:
        super().__init__()
        if (mode == "time" and time_ratio == 0) or (mode == "frequency" and frequency_ratio == 0):
            raise ConfigError(f"SpectrogramMasker: mode {mode!r} needs a positive {mode}_ratio")
        if mode == "time_frequency" and time_ratio == frequency_ratio == 0:
            raise ConfigError("SpectrogramMasker: mode 'time_frequency' needs time_ratio or frequency_ratio above 0")
        self.mode = mode
        self.mask_ratio = mask_ratio
        self.time_ratio = time_ratio if mode in ("time", "time_frequency") else 0.0
        self.frequency_ratio = frequency_ratio if mode in ("frequency", "time_frequency") else 0.0
        self.time_axis = time_axis

    def check_layout(self, layout: LayoutSpec) -> None:
        super().check_layout(layout)
        if layout.variable_length and self.mode != "unstructured" and self.time_axis != 0:
            raise ConfigError("SpectrogramMasker: padded spectrograms must have time on axis 0")

    def _axes(self, tokens: TokenBatch) -> tuple[int, int, int]:
        """Time steps of the shortest sample, all time steps, and frequency bands."""
        shape = dense_grid_shape(tokens, type(self).__name__)
        steps, bands = (shape[0], shape[1]) if self.time_axis == 0 else (shape[1], shape[0])
        return real_token_count(tokens) // bands, steps, bands

    def num_visible(self, tokens: TokenBatch) -> int:
        if self.mode == "unstructured":
            return int(real_token_count(tokens) * (1 - self.mask_ratio))
        real_steps, _, bands = self._axes(tokens)
        return int(real_steps * (1 - self.time_ratio)) * int(bands * (1 - self.frequency_ratio))

    def _kept(self, noise: Tensor, keep: int, padding: Tensor | None) -> Tensor:
        """Per row, the ``keep`` entries with the lowest noise (padding never kept) -> bool ``[B, L]``."""
        if padding is not None:
            noise = noise.masked_fill(padding, 2.0)
        rank = noise.argsort(dim=1).argsort(dim=1)
        return rank < keep

    def noise(self, tokens: TokenBatch, generator: torch.Generator | None) -> Tensor:
        b = tokens.batch_size
        if self.mode == "unstructured":
            return uniform((b, tokens.num_tokens), tokens, generator)
        real_steps, steps, bands = self._axes(tokens)
        padded_steps = None
        if tokens.padding_mask is not None:  # padding is whole time steps at the end (time on axis 0)
            padded_steps = tokens.padding_mask.view(b, steps, bands).all(dim=2)
        keep_steps = self._kept(
            uniform((b, steps), tokens, generator), int(real_steps * (1 - self.time_ratio)), padded_steps
        )
        keep_bands = self._kept(uniform((b, bands), tokens, generator), int(bands * (1 - self.frequency_ratio)), None)
        kept = keep_steps[:, :, None] & keep_bands[:, None, :]  # [B, time, frequency]
        if self.time_axis == 1:
            kept = kept.transpose(1, 2)
        # Kept tokens score in [0, 0.5), the rest in [0.5, 1): exactly the kept set stays visible.
        return ((~kept).float() + uniform((b, tokens.num_tokens), tokens, generator).view_as(kept)).flatten(1) / 2
