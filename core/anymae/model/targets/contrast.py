"""Contrastive terms: InfoNCE between paired features, and a term that asks the same features of a sample shifted in
space (:class:`ShiftContrastTarget`).

Pixel reconstruction alone leaves the encoder's pooled features tied to where things stand: an image MAE on the
moving digits' frames learns nothing of the digit while it stands anywhere on the canvas, and 20 points of it when it
always stands in one place (``benchmarks/frame_digits.py``, docs/recipes.md "Video"). The shift term closes that gap
the way CMAE does (Huang et al. 2022, https://arxiv.org/abs/2207.13532: MAE plus a contrastive branch on pixel-shifted
views): two copies of each sample, each rolled by its own random shift, must pool to features that find each other
among the batch.
"""

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, cast

import torch
import torch.nn.functional as F
from pydantic import NonNegativeInt, PositiveFloat, PositiveInt
from torch import Tensor, nn

from ...config import ConfigError, validated
from ..specs import BuildContext
from ..types import GridLayout, MaskSpec, Step, TokenBatch, gather_tokens, grid_coords
from .base import Target

if TYPE_CHECKING:
    from ..encoder import Encoder

__all__ = ["ShiftContrastTarget", "info_nce", "roll_tokens"]


def info_nce(a: Tensor, b: Tensor, temperature: float, valid: Tensor | None = None, center: bool = False) -> Tensor:
    """Contrastive loss between paired features ``a`` and ``b`` ``[B, D]`` (CAV-MAE's eq. 2, CMAE's): L2-normalised,
    similarities ``a @ b.T / temperature``, cross-entropy towards the diagonal from ``a`` to ``b`` and back, averaged.
    ``valid`` ``[B]`` leaves out the samples (as anchors and as negatives) where either side has no feature;
    ``center`` subtracts each side's mean over the batch first."""
    if valid is not None:
        a, b = a[valid], b[valid]
    if a.shape[0] < 2:
        return a.sum() * 0.0 + b.sum() * 0.0  # no pair to contrast
    if center:
        a, b = a - a.mean(dim=0, keepdim=True), b - b.mean(dim=0, keepdim=True)
    a, b = F.normalize(a.float(), dim=-1), F.normalize(b.float(), dim=-1)
    logits = a @ b.T / temperature
    labels = torch.arange(a.shape[0], device=a.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def roll_tokens(tokens: TokenBatch, shifts: Tensor) -> TokenBatch:
    """The tokens of a whole grid, each sample's content rolled by its own ``shifts`` ``[B, rank]`` (in tokens, along
    every grid axis, wrapping around): the token at grid cell ``c`` takes the one at ``c - shift``, and so does the
    padding mask. Positions stay, so the content moves against them. One gather for the whole batch, any grid rank."""
    layout = tokens.layout
    if not isinstance(layout, GridLayout) or not layout.dense:
        raise ValueError("roll_tokens needs the tokens of a whole grid (every cell a token, no sparse coordinates)")
    shape, device = layout.shape, tokens.tokens.device
    source = (grid_coords(shape, device)[None] - shifts[:, None, :]) % torch.tensor(shape, device=device)  # [B, N, r]
    strides = torch.tensor([math.prod(shape[axis + 1 :]) for axis in range(len(shape))], device=device)
    index = (source * strides).sum(-1)
    padding = None if tokens.padding_mask is None else torch.gather(tokens.padding_mask, 1, index)
    return replace(tokens, tokens=gather_tokens(tokens.tokens, index), padding_mask=padding)


class ShiftContrastTarget(Target):
    """Shift invariance for the encoder's pooled features (after CMAE's pixel-shifted views, Huang et al. 2022).

    Each step makes two copies of every sample's tokens, each rolled by its own random shift along the grid
    (:func:`roll_tokens`; wrapping around, so no content is lost; padding moves with its tokens), runs the model's
    encoder on both whole copies (no mask), pools each copy's latents (their mean over the tokens that are not
    padding), maps them through a 2-layer projection of its own and scores
    :func:`info_nce` between the copies over the batch. It is predicted by the encoder, so it goes in a
    :class:`~anymae.WeightedTarget` beside a target the decoder predicts (pixels); the two encoder passes see every
    token, so a step costs about two unmasked forward and backward passes more.

    Args:
        shift: the largest shift, in tokens, along each grid axis, one entry per axis (a copy moves by a random whole
            number of tokens in ``[-shift, shift]`` on each): ``[0, 2, 2]`` for a video's ``(T, H, W)`` grid (time
            does not move), ``[2, 2]`` for an image, ``[4]`` for a series. Given, not guessed: which axes are space
            is the modality's to say.
        temperature: of the InfoNCE similarities (CMAE's 0.07 for 4,096-sample batches; 0.1 suits small ones).
        projection_dim: size of the projected features the term compares.
        hidden_dim: width of the projection's hidden layer.
    """

    predicted_by = "encoder"
    dim_per_token = 0

    @validated
    def __init__(
        self,
        shift: list[NonNegativeInt],
        temperature: PositiveFloat = 0.1,
        projection_dim: PositiveInt = 64,
        hidden_dim: PositiveInt = 256,
    ) -> None:
        super().__init__()
        self.requested_shift, self.temperature = shift, temperature
        self.projection_dim, self.hidden_dim = projection_dim, hidden_dim
        self.shift: tuple[int, ...] = ()
        self.ctx: BuildContext | None = None  # the model's encoder, once built

    def build(self, ctx: BuildContext) -> None:
        layout = ctx.tokens.layout
        if layout.kind != "grid" or layout.shape is None or ctx.tokens.modalities:
            raise ConfigError(
                f"ShiftContrastTarget shifts a whole grid of tokens; {ctx.tokens.name} gives {layout.describe()}"
            )
        shape = layout.shape
        if len(self.requested_shift) != len(shape):
            raise ConfigError(
                f"ShiftContrastTarget.shift has {len(self.requested_shift)} entries; {ctx.tokens.name}'s grid "
                f"{tuple(shape)} has {len(shape)} axes (give one per axis, 0 for an axis that must not move)"
            )
        else:
            self.shift = tuple(self.requested_shift)
        if not any(self.shift):
            raise ConfigError("ShiftContrastTarget.shift moves nothing; give a shift above 0 along some axis")
        width = ctx.encoder.embed_dim
        self.projection = nn.Sequential(
            nn.Linear(width, self.hidden_dim), nn.GELU(), nn.Linear(self.hidden_dim, self.projection_dim)
        )
        self.ctx = ctx

    def forward(self, batch: Mapping[str, Tensor], tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        return tokens.tokens.new_zeros(*mask.ids_decode.shape, 0)  # nothing for the decoder to predict

    def pooled(self, tokens: TokenBatch) -> Tensor:
        """The projected mean of the encoder's latents of every token that is not padding ``[B, projection_dim]``."""
        if self.ctx is None:
            raise RuntimeError("ShiftContrastTarget is used before the model built it")
        encoder = cast("Encoder", self.ctx.encoder)  # the model's own encoder, not only its sizes
        latents = encoder(tokens).body
        if tokens.padding_mask is None:
            return self.projection(latents.mean(dim=1))
        real = (~tokens.padding_mask)[..., None].to(latents.dtype)
        return self.projection((latents * real).sum(dim=1) / real.sum(dim=1).clamp_min(1))

    def loss(self, step: Step) -> tuple[Tensor, dict[str, Tensor]]:
        tokens = step.tokens
        device = tokens.tokens.device
        limit = torch.tensor(self.shift, device=device)
        views = []
        for _ in range(2):
            draw = torch.rand(tokens.batch_size, len(self.shift), device=device)
            shifts = (draw * (2 * limit + 1)).floor().long() - limit  # uniform whole shifts in [-shift, shift]
            views.append(self.pooled(roll_tokens(tokens, shifts)))
        return info_nce(views[0], views[1], self.temperature), {}
