"""Histograms of oriented gradients as a masked-prediction target (MaskFeat, Wei et al. 2022,
https://arxiv.org/abs/2112.09133), for images and video on any grid.

HOG (Dalal & Triggs 2005): per channel, the image gradient at every pixel (Sobel, as MaskFeat's ``HOGLayerC``, or
central differences, as scikit-image's ``hog``), each pixel's magnitude voted into one of ``bins`` unsigned orientation
bins (0-180 degrees), summed over ``cell x cell`` cells, and each cell's histogram L2-normalised. A 16 x 16 RGB patch
holds 2 x 2 cells: 2 x 2 x 3 x 9 = 108 values, MaskFeat's target. Written here rather than taken from scikit-image
because it runs batched on the model's device, every image and frame of a batch in a few tensor operations;
``tests/image/test_hog.py`` checks its per-cell histograms against scikit-image's.

The target reads the raw pixels back from the tokens (:func:`anymae.unpatchify` with the tokenizer's ``patch``), so it
serves any patch size, image size and channel count; on video tubelets it takes, as MaskFeat does, the HOG of each
tubelet's first frame (``frames="all"``: of every frame).
"""

import math
from collections.abc import Mapping
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from torch import Tensor

from anymae import (
    RAW_VALUES,
    BuildContext,
    ConfigError,
    MaskSpec,
    Target,
    TokenBatch,
    gather_tokens,
    unpatchify,
    validated,
)

__all__ = ["HOGTarget", "hog_cells", "image_gradients"]


def image_gradients(images: Tensor, gradient: Literal["sobel", "central"] = "sobel") -> tuple[Tensor, Tensor]:
    """Per-channel gradients ``(d/dcol, d/drow)`` of ``images`` ``[N, C, H, W]``, borders reflected.

    Separable, difference first and then (Sobel) the ``[1, 2, 1]`` smoothing across it, as SciPy's ``sobel``: a
    gradient that vanishes (a reflected border, a flat region) is exactly zero, not a rounding error whose sign would
    flip its orientation between the first and the last bin.
    """
    padded = F.pad(images, (1, 1, 1, 1), mode="reflect")
    dx = padded[..., :, 2:] - padded[..., :, :-2]  # [N, C, H + 2, W]
    dy = padded[..., 2:, :] - padded[..., :-2, :]  # [N, C, H, W + 2]
    if gradient == "central":
        return dx[..., 1:-1, :], dy[..., :, 1:-1]
    return dx[..., :-2, :] + 2 * dx[..., 1:-1, :] + dx[..., 2:, :], dy[..., :-2] + 2 * dy[..., 1:-1] + dy[..., 2:]


def hog_cells(
    images: Tensor, bins: int = 9, cell: int = 8, gradient: Literal["sobel", "central"] = "sobel", eps: float = 1e-12
) -> Tensor:
    """Per-channel HOG of ``images`` ``[N, C, H, W]`` (``H``, ``W`` multiples of ``cell``): ``[N, C, bins, H / cell,
    W / cell]``, each cell's histogram of unit L2 norm (zero for a flat cell).

    Orientation is ``atan2(d/drow, d/dcol)`` folded to [0, 180) degrees, scikit-image's convention (MaskFeat's
    ``atan2(gx, gy)`` orders the bins differently, which a regression target does not notice); borders are
    reflected, so a border pixel's central difference is zero, as scikit-image's.
    """
    n, c, h, w = images.shape
    if h % cell or w % cell:
        raise ValueError(f"HOG cells of {cell} px need sizes divisible by {cell}, got {h} x {w}")
    gx, gy = image_gradients(images, gradient)
    magnitude = torch.hypot(gx, gy)
    orientation = torch.remainder(torch.atan2(gy, gx), math.pi)
    index = (orientation * (bins / math.pi)).long().clamp_(max=bins - 1)
    votes = magnitude.new_zeros(n, c, bins, h, w).scatter_add_(2, index[:, :, None], magnitude[:, :, None])
    hist = votes.unflatten(3, (h // cell, cell)).unflatten(5, (w // cell, cell)).sum(dim=(4, 6))
    return F.normalize(hist, p=2, dim=2, eps=eps)


class HOGTarget(Target):
    """Predict the HOG of each decoded patch or tubelet (MaskFeat): per token, ``C x bins`` values for each of its
    ``(p_h / cell) x (p_w / cell)`` cells (and for each of its frames with ``frames="all"``).

    Args:
        bins: orientation bins over 0-180 degrees (9 in MaskFeat).
        cell: cell side in pixels (8 in MaskFeat); must divide the patch.
        gradient: ``"sobel"`` (MaskFeat) or ``"central"`` (Dalal & Triggs, scikit-image).
        frames: on video tubelets, ``"first"``: the HOG of each tubelet's first frame (MaskFeat's video target);
            ``"all"``: of each of its frames.
        eps: floor of the L2 norm of a cell's histogram.
    """

    needs = frozenset({RAW_VALUES})

    @validated
    def __init__(
        self,
        bins: PositiveInt = 9,
        cell: PositiveInt = 8,
        gradient: Literal["sobel", "central"] = "sobel",
        frames: Literal["first", "all"] = "first",
        eps: Annotated[float, Field(gt=0)] = 1e-12,
    ) -> None:
        super().__init__()
        self.bins, self.cell, self.gradient, self.frames, self.eps = bins, cell, gradient, frames, eps
        self.patch: tuple[int, ...] = ()
        self.channels = 0

    def build(self, ctx: BuildContext) -> None:
        tokens = ctx.tokens
        patch = tokens.patch
        if patch is None or len(patch) not in (2, 3) or tokens.layout.rank != len(patch):
            raise ConfigError(
                f"HOGTarget needs image patches or video tubelets (a tokenizer with a 2-D or 3-D `patch`); "
                f"{tokens.name} has patch {patch}"
            )
        if patch[-1] % self.cell or patch[-2] % self.cell:
            raise ConfigError(f"HOGTarget.cell {self.cell} must divide {tokens.name}'s patch {patch[-2:]}")
        self.patch, self.channels = tuple(patch), tokens.channels
        frames = patch[0] if len(patch) == 3 and self.frames == "all" else 1
        cells = (patch[-2] // self.cell) * (patch[-1] // self.cell)
        self.dim_per_token = frames * cells * self.channels * self.bins

    def forward(self, batch: Mapping[str, Tensor], tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        grid, c = tokens.layout.shape, self.channels
        pixels = unpatchify(tokens.tokens.float(), grid, self.patch, c)  # [B, C, (T,) H, W]
        b = pixels.shape[0]
        if len(self.patch) == 3:
            t = self.patch[0]
            clip = pixels if self.frames == "all" else pixels[:, :, ::t]
            frames = clip.shape[2]
            hist = hog_cells(clip.transpose(1, 2).flatten(0, 1), self.bins, self.cell, self.gradient, self.eps)
            per = frames // grid[0]  # frames per token: t or 1
            # [B, T'*per, C, bins, H/cell, W/cell] -> tokens (T', H', W') x (per, cy, cx, C, bins)
            hist = hist.unflatten(0, (b, grid[0], per)).unflatten(5, (grid[1], -1)).unflatten(7, (grid[2], -1))
            values = hist.permute(0, 1, 5, 7, 2, 6, 8, 3, 4)  # B, T', H', W', per, cy, cx, C, bins
        else:
            hist = hog_cells(pixels, self.bins, self.cell, self.gradient, self.eps)
            hist = hist.unflatten(3, (grid[0], -1)).unflatten(5, (grid[1], -1))  # B, C, bins, H', cy, W', cx
            values = hist.permute(0, 3, 5, 4, 6, 1, 2)  # B, H', W', cy, cx, C, bins
        values = values.reshape(b, math.prod(grid), self.dim_per_token)
        return gather_tokens(values, mask.ids_decode)
