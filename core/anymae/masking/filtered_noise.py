"""Filtered-noise masking (ColorMAE, Hinojosa et al. 2024, https://arxiv.org/abs/2407.13036).

Data-independent masks made by thresholding coloured noise: white noise ``W`` filtered by Gaussians ``G_s`` gives
*red* noise (low-pass, ``G_s * W``: large blobs), *blue* (high-pass, ``W - G_s * W``: fine speckle), *green*
(band-pass, a difference of Gaussians ``G_s1 * W - G_s2 * W``: blobs of a middle size, the paper's best) and
*purple* (band-stop, ``W - green``). As in the paper, a bank of patterns larger than the token grid is made once;
each sample takes a random pattern with a random crop and random flips (ColorMAE shares one crop across a batch; we
draw one per sample), and the tokens with the highest values stay visible (``len_keep = int(N * (1 - ratio))``,
ColorMAE's ``masking_generator.py``).

ColorMAE ships its patterns as downloads without the code or the filter widths that made them, so the Gaussian
widths here (in tokens) are ours; the filtering is done exactly, as a product in the Fourier domain (a circular
Gaussian convolution), on the device, for grids of rank 1 to 3.
"""

import math
from typing import Annotated, Literal

import torch
from pydantic import Field, PositiveInt
from torch import Tensor

from ..config import ConfigError, validated
from ..model.types import TokenBatch
from .base import Masker, dense_grid_shape, real_token_count, uniform

__all__ = ["FilteredNoiseMasker", "filtered_noise"]

Color = Literal["white", "red", "blue", "green", "purple"]
Sigma = Annotated[float, Field(gt=0)]


def filtered_noise(
    shape: tuple[int, ...], count: int, color: Color, sigma_low: float, sigma_high: float, generator: torch.Generator
) -> Tensor:
    """``count`` noise patterns of ``shape`` with the given spectrum, each standardised to mean 0 and std 1."""
    white = torch.randn((count, *shape), generator=generator)
    if color != "white":
        axes = list(range(1, len(shape) + 1))
        freq2 = sum(
            torch.fft.fftfreq(n).reshape([n if i == axis else 1 for i in range(len(shape))]) ** 2
            for axis, n in enumerate(shape)
        )
        gauss = lambda sigma: torch.exp(-2 * math.pi**2 * sigma**2 * freq2)  # noqa: E731  (transfer function of G_s)
        band = gauss(sigma_low) - gauss(sigma_high)
        response = {"red": gauss(sigma_high), "blue": 1 - gauss(sigma_low), "green": band, "purple": 1 - band}[color]
        white = torch.fft.ifftn(torch.fft.fftn(white, dim=axes) * response, dim=axes).real
    flat = white.flatten(1)
    return ((flat - flat.mean(dim=1, keepdim=True)) / flat.std(dim=1, keepdim=True)).view_as(white)


class FilteredNoiseMasker(Masker):
    """ColorMAE's masking with noise of one colour.

    Args:
        color: ``"green"`` (band-pass, ColorMAE's best and default), ``"red"`` (low-pass), ``"blue"`` (high-pass),
            ``"purple"`` (band-stop) or ``"white"`` (unfiltered: the same as random masking).
        mask_ratio: fraction hidden (0.75 in ColorMAE).
        sigma_low: width in tokens of the narrow Gaussian: blue keeps what it removes (``W - G_low * W``), and it is
            the upper edge of the green band.
        sigma_high: width in tokens of the wide Gaussian (above ``sigma_low``): red is ``G_high * W``, and it is the
            lower edge of the green band (``G_low * W - G_high * W``).
        bank_size: number of precomputed patterns.
        pattern_scale: each pattern is this many times the token grid along every axis (room for random crops).
        seed: seed of the pattern bank (fixed, so every run and rank shares the bank; crops and flips vary).
    """

    supported_layouts = frozenset({"grid"})
    grid_ranks = frozenset({1, 2, 3})

    @validated
    def __init__(
        self,
        color: Color = "green",
        mask_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.75,
        sigma_low: Sigma = 0.7,
        sigma_high: Sigma = 1.6,
        bank_size: PositiveInt = 64,
        pattern_scale: PositiveInt = 2,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if sigma_high <= sigma_low:
            raise ConfigError(f"FilteredNoiseMasker.sigma_high ({sigma_high}) must exceed sigma_low ({sigma_low})")
        self.color = color
        self.mask_ratio = mask_ratio
        self.sigma_low, self.sigma_high = sigma_low, sigma_high
        self.bank_size, self.pattern_scale, self.seed = bank_size, pattern_scale, seed
        self._banks: dict[tuple[tuple[int, ...], str], Tensor] = {}

    def bank(self, shape: tuple[int, ...], device: torch.device) -> Tensor:
        """The patterns for a token grid of ``shape`` on ``device``, made once (deterministic from ``seed``)."""
        key = (shape, str(device))
        if key not in self._banks:
            pattern = tuple(n * self.pattern_scale for n in shape)
            generator = torch.Generator().manual_seed(self.seed)
            noise = filtered_noise(pattern, self.bank_size, self.color, self.sigma_low, self.sigma_high, generator)
            self._banks[key] = noise.to(device)
        return self._banks[key]

    def num_visible(self, tokens: TokenBatch) -> int:
        return int(real_token_count(tokens) * (1 - self.mask_ratio))

    def noise(self, tokens: TokenBatch, generator: torch.Generator | None) -> Tensor:
        shape = dense_grid_shape(tokens, type(self).__name__)
        bank = self.bank(shape, tokens.tokens.device)
        b, rank = tokens.batch_size, len(shape)
        draws = uniform((b, 1 + 2 * rank), tokens, generator)
        index = [(draws[:, 0] * self.bank_size).long()]  # which pattern
        for axis, n in enumerate(shape):  # a random crop of n along each axis, flipped with probability 1/2
            offset = (draws[:, 1 + axis] * (bank.shape[axis + 1] - n + 1)).long()
            steps = torch.arange(n, device=bank.device)
            steps = torch.where(draws[:, 1 + rank + axis, None] < 0.5, steps.flip(0), steps)
            view = [b] + [n if i == axis else 1 for i in range(rank)]
            index.append((offset[:, None] + steps).view(view))
        index[0] = index[0].view([b] + [1] * rank)
        crops = bank[tuple(index)].flatten(1)  # [B, N]
        return torch.sigmoid(-crops)  # the highest noise values get the lowest scores: they stay visible
