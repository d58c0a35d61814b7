"""Tube masking whose tubes move with the clip's content (after MGMAE, Huang et al. 2023,
https://arxiv.org/abs/2308.10794).

VideoMAE's tubes hide the same positions in every frame; content that moves passes through positions left visible in
other frames, so a hidden part can be rebuilt by following it there, and the model learns the motion rather than
what moves (docs/recipes.md, "Video"). MGMAE warps the mask along dense optical flow so a hidden part stays hidden
wherever it goes. :class:`MotionTubeMasker` is the part of that idea our tokens allow without flow weights: one
translation per clip and time step, in whole tokens, found by matching each time step's map of token means with the
one before it (every shift within ``radius`` tokens, batched over the clips), and the tube mask rolled by it. It
follows content that moves as one (an object on a plain background, a camera pan); MGMAE's per-pixel flow also
follows several objects moving apart.
"""

from typing import Annotated

import torch
from pydantic import Field, PositiveInt
from torch import Tensor

from anymae import ConfigError, LayoutSpec, TokenBatch, TubeMasker, validated

__all__ = ["MotionTubeMasker", "token_shifts"]


def token_shifts(maps: Tensor, radius: int) -> Tensor:
    """Per clip, the translation of each time step's map from the first, in tokens: ``maps`` ``[B, T, H, W]`` ->
    ``[B, T, 2]`` (``(dy, dx)``, 0 at the first step). Each step is matched with the one before it over every shift
    within ``radius`` (circular, least mean absolute difference; ties go to the smaller shift), and the steps add up.
    """
    b = maps.shape[0]
    shifts = sorted(
        ((dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)),
        key=lambda s: (s[0] ** 2 + s[1] ** 2, s),
    )
    candidates = torch.tensor(shifts, device=maps.device)
    previous, current = maps[:, :-1], maps[:, 1:]
    # one pass per candidate shift, batched over every clip and step
    costs = torch.stack(
        [(torch.roll(previous, s, dims=(2, 3)) - current).abs().mean(dim=(2, 3)) for s in shifts], dim=-1
    )
    steps = candidates[costs.argmin(dim=-1)]  # [B, T-1, 2]; argmin keeps the first (smallest) of equal costs
    return torch.cat([torch.zeros(b, 1, 2, dtype=steps.dtype, device=maps.device), steps.cumsum(dim=1)], dim=1)


class MotionTubeMasker(TubeMasker):
    """Tube masking (VideoMAE's ratio, ``int(mask_ratio * P)`` of the ``P`` positions hidden at each time step) with
    the tubes moved along each clip's motion (:func:`token_shifts` on the tokens' means), so a part that is hidden at
    the first time step stays hidden as it moves. Every time step keeps the same number visible.

    Args:
        mask_ratio: fraction hidden (0.9 in VideoMAE and MGMAE).
        radius: the largest motion, in tokens, between two time steps that is followed.
    """

    grid_ranks = frozenset({3})

    @validated
    def __init__(self, mask_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.9, radius: PositiveInt = 2) -> None:
        super().__init__(mask_ratio=mask_ratio, axis=0)
        self.radius = radius

    def check_layout(self, layout: LayoutSpec) -> None:
        super().check_layout(layout)
        if layout.shape is not None and min(layout.shape[1:]) <= self.radius:
            raise ConfigError(
                f"MotionTubeMasker.radius {self.radius} must be below the token grid's height and width {layout.shape}"
            )

    def noise(self, tokens: TokenBatch, generator: torch.Generator | None) -> Tensor:
        shape, _, _ = self._split(tokens)
        b, (t, h, w) = tokens.batch_size, shape
        base = torch.rand((b, h, w), device=tokens.tokens.device, generator=generator)
        maps = tokens.tokens.detach().float().mean(dim=-1).view(b, t, h, w)
        shift = token_shifts(maps, self.radius)  # [B, T, 2]
        # step s's noise is the first step's rolled by the clip's shift: the same values, so the same count visible
        rows = (torch.arange(h, device=base.device)[None, None, :] - shift[..., 0:1]) % h  # [B, T, H]
        cols = (torch.arange(w, device=base.device)[None, None, :] - shift[..., 1:2]) % w  # [B, T, W]
        clip = torch.arange(b, device=base.device)[:, None, None, None]
        return base[clip, rows[..., :, None], cols[..., None, :]].flatten(1)
