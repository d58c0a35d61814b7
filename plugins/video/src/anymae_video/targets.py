"""Video targets: pixels of a subset of frames (MAE-ST's ``pred_t_dim``) and motion trajectories (MME).

The pixel target of VideoMAE and of MAE-ST without ``pred_t_dim`` is the core's :class:`anymae.PatchTarget`
(``normalize: channel`` with ``input_mean``/``input_std`` is VideoMAE's, ``normalize: patch`` MAE-ST's); HOG is
``anymae_image.HOGTarget``, which serves tubelets too.
"""

import functools
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import PositiveInt
from torch import Tensor

from anymae import (
    RAW_VALUES,
    BuildContext,
    ConfigError,
    MaskSpec,
    PatchTarget,
    Target,
    TokenBatch,
    TokenizerSpec,
    unpatchify,
    validated,
)

__all__ = ["MotionTarget", "VideoPixelTarget", "block_matching_flow", "frame_offsets"]


def _tubelets(tokens: TokenizerSpec, who: str) -> tuple[int, int, int]:
    patch = tokens.patch
    if patch is None or len(patch) != 3 or tokens.layout.rank != 3 or tokens.channels is None:
        raise ConfigError(f"{who} needs video tubelets of raw values (a 3-D `patch`); {tokens.name} has {patch}")
    return patch


def frame_offsets(steps: int, tubelet: int, pred_t_dim: int) -> Tensor:
    """MAE-ST's frame choice as offsets inside each tubelet: the clip's ``steps x tubelet`` frames sampled at
    ``linspace(0, T - 1, pred_t_dim)``, ``u = tubelet x pred_t_dim / T`` of them per tubelet -> ``[steps, u]``."""
    return _frame_offsets(steps, tubelet, pred_t_dim).clone()


@functools.lru_cache(maxsize=16)
def _frame_offsets(steps: int, tubelet: int, pred_t_dim: int) -> Tensor:
    frames = steps * tubelet
    if (tubelet * pred_t_dim) % frames:
        raise ConfigError(
            f"VideoPixelTarget.pred_t_dim {pred_t_dim}: {frames} frames in tubelets of {tubelet} give a whole number "
            f"of predicted frames per tubelet only when pred_t_dim x {tubelet} is a multiple of {frames}"
        )
    per = tubelet * pred_t_dim // frames
    chosen = torch.linspace(0, frames - 1, pred_t_dim).long().view(steps, per)
    offsets = chosen - torch.arange(steps)[:, None] * tubelet
    if bool(((offsets < 0) | (offsets >= tubelet)).any()):
        raise ConfigError(f"VideoPixelTarget.pred_t_dim {pred_t_dim} picks frames outside their tubelets")
    return offsets


class VideoPixelTarget(PatchTarget):
    """Pixels of each decoded tubelet, of all its frames or, with ``pred_t_dim``, of the frames MAE-ST predicts.

    MAE-ST (Feichtenhofer et al. 2022, https://arxiv.org/abs/2205.09113) predicts ``pred_t_dim`` of the ``T`` input
    frames (8 of 16: ``linspace(0, T - 1, 8)``), ``u = t x pred_t_dim / T`` per tubelet (1 for tubelets of 2), so the
    decoder's head is ``u / t`` as wide. Frames and tubelet come from the tokenizer, never from this config.

    Args:
        pred_t_dim: frames of the clip to predict; unset: every frame (VideoMAE, MAE).
        normalize, eps, loss, input_mean, input_std: as :class:`anymae.PatchTarget`.
    """

    @validated
    def __init__(self, pred_t_dim: PositiveInt | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pred_t_dim = pred_t_dim
        self.tubelet = 1

    def build(self, ctx: BuildContext) -> None:
        super().build(ctx)
        tokens = ctx.tokens
        if self.pred_t_dim is None:
            return
        t, ph, pw = _tubelets(tokens, "VideoPixelTarget(pred_t_dim)")
        self.tubelet = t
        per = frame_offsets(tokens.layout.shape[0], t, self.pred_t_dim).shape[1]
        self.dim_per_token = per * ph * pw * tokens.channels

    def values(self, tokens: TokenBatch, ids: Tensor) -> Tensor:
        values = super().values(tokens, ids)
        if self.pred_t_dim is None:
            return values
        steps, cells = tokens.layout.shape[0], tokens.layout.shape[1] * tokens.layout.shape[2]
        offsets = frame_offsets(steps, self.tubelet, self.pred_t_dim).to(ids.device)[ids // cells]  # [B, M, u]
        frames = values.unflatten(-1, (self.tubelet, -1))  # [B, M, t, p*p*C]
        chosen = torch.take_along_dim(frames, offsets[..., None], dim=2)
        return chosen.flatten(-2)

    def to_tokens(self, pred: Tensor, tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        """Predictions as token values; a frame of a tubelet that was not predicted shows the nearest one that was."""
        pred = super().to_tokens(pred, tokens, mask)
        if self.pred_t_dim is None:
            return pred
        steps, cells = tokens.layout.shape[0], tokens.layout.shape[1] * tokens.layout.shape[2]
        offsets = frame_offsets(steps, self.tubelet, self.pred_t_dim).to(pred.device)  # [T', u]
        nearest = (offsets[:, None, :] - torch.arange(self.tubelet, device=pred.device)[None, :, None]).abs()
        source = nearest.argmin(dim=-1)[mask.ids_decode // cells]  # [B, M, t]: which predicted frame each shows
        frames = pred.unflatten(-1, (offsets.shape[1], -1))
        return torch.take_along_dim(frames, source[..., None], dim=2).flatten(-2)


def block_matching_flow(current: Tensor, following: Tensor, radius: int, block: int) -> Tensor:
    """Integer optical flow by exhaustive block matching: for every pixel of ``current`` ``[N, H, W]``, the shift
    ``(dy, dx)`` within ``radius`` whose ``block x block`` window in ``following`` differs least (sum of squared
    differences); ties go to the smaller shift. -> ``[N, H, W, 2]``.

    Written here because no dependency we carry computes optical flow without downloaded weights (torchvision's
    RAFT needs them); one pass per shift over the whole batch, shifts nearest first.
    """
    n, h, w = current.shape
    padded = F.pad(following[:, None], (radius, radius, radius, radius), mode="replicate")[:, 0]
    best = torch.full_like(current, float("inf"))
    choice = torch.zeros(n, h, w, dtype=torch.long, device=current.device)
    shifts = sorted(
        ((dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)),
        key=lambda s: (s[0] ** 2 + s[1] ** 2, s),
    )
    for k, (dy, dx) in enumerate(shifts):  # a loop over shifts, each batched over every frame pair
        moved = padded[:, radius + dy : radius + dy + h, radius + dx : radius + dx + w]
        cost = F.avg_pool2d((current - moved).square()[:, None], block, 1, block // 2, count_include_pad=False)[:, 0]
        better = cost < best
        best = torch.where(better, cost, best)
        choice = torch.where(better, k, choice)
    return torch.tensor(shifts, dtype=current.dtype, device=current.device)[choice]


class MotionTarget(Target):
    """Motion trajectories of each decoded tubelet (after MME, Sun et al. 2023, https://arxiv.org/abs/2210.06096).

    Points at the centres of the tubelet's ``cell x cell`` cells are tracked from its first frame through ``steps``
    frame-to-frame displacements; the target is each step's ``(dy, dx)`` per point, divided by the largest
    displacement the search allows (so in [-1, 1]): ``steps x cells x 2`` values per token (4 x 4 x 2 = 32 for
    16-pixel patches with 8-pixel cells, as MME). A step past the clip's last frame is zero.

    MME tracks its points in optical flow precomputed offline (dense TV-L1); here the flow is block matching computed
    on the fly on the model's device, on the clip averaged over channels and downscaled by ``scale``, so it needs
    no weights and no preprocessing, and it sees the same augmented clip as the model. Integer displacements, to
    ``scale`` pixels.

    Args:
        steps: frame-to-frame displacements per trajectory (MME: 4).
        cell: spacing of the tracked points in pixels (MME: 8); must divide the patch.
        radius: search radius per frame, in downscaled pixels.
        scale: downscaling (average pooling) before matching.
        block: side of the matched window, in downscaled pixels (odd).
    """

    needs = frozenset({RAW_VALUES})

    @validated
    def __init__(
        self,
        steps: PositiveInt = 4,
        cell: PositiveInt = 8,
        radius: PositiveInt = 4,
        scale: PositiveInt = 4,
        block: PositiveInt = 5,
    ) -> None:
        super().__init__()
        if block % 2 == 0:
            raise ConfigError(f"MotionTarget.block must be odd (a window centred on its pixel), got {block}")
        self.steps, self.cell, self.radius, self.scale, self.block = steps, cell, radius, scale, block
        self.patch: tuple[int, int, int] = (1, 1, 1)
        self.channels = 0

    def build(self, ctx: BuildContext) -> None:
        tokens = ctx.tokens
        t, ph, pw = _tubelets(tokens, "MotionTarget")
        if ph % self.cell or pw % self.cell or self.cell % self.scale:
            raise ConfigError(
                f"MotionTarget.cell {self.cell} must divide {tokens.name}'s patch {ph} x {pw} and be a multiple of "
                f"scale {self.scale}"
            )
        self.patch, self.channels = (t, ph, pw), tokens.channels
        self.dim_per_token = self.steps * (ph // self.cell) * (pw // self.cell) * 2

    def forward(self, batch: Mapping[str, Tensor], tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        (t, ph, pw), (gt, gh, gw) = self.patch, tokens.layout.shape
        clip = unpatchify(tokens.tokens.float(), (gt, gh, gw), self.patch, self.channels).mean(dim=1)  # [B, T, H, W]
        b, frames = clip.shape[:2]
        if frames < 2:
            raise ValueError(f"MotionTarget needs clips of at least 2 frames, got {frames}")
        if self.scale > 1:
            clip = F.avg_pool2d(clip, self.scale)
        hs, ws = clip.shape[-2:]
        flow = block_matching_flow(clip[:, :-1].flatten(0, 1), clip[:, 1:].flatten(0, 1), self.radius, self.block)
        flow = flow.view(b, frames - 1, hs, ws, 2)
        # the tracked points of each decoded token: [B, M, Q, 2] in downscaled pixels, and its first frame
        ids = mask.ids_decode
        ti, yi, xi = ids // (gh * gw), (ids // gw) % gh, ids % gw
        cy, cx = torch.meshgrid(
            torch.arange(ph // self.cell, device=ids.device),
            torch.arange(pw // self.cell, device=ids.device),
            indexing="ij",
        )
        y = (yi[..., None] * ph + cy.flatten() * self.cell + self.cell // 2) // self.scale
        x = (xi[..., None] * pw + cx.flatten() * self.cell + self.cell // 2) // self.scale
        position = torch.stack([y, x], dim=-1).float()  # [B, M, Q, 2]
        sample = torch.arange(b, device=ids.device)[:, None, None]
        out = []
        for step in range(self.steps):  # a trajectory's few steps, each batched over every token and point
            frame = (ti * t + step)[..., None].expand_as(y)
            inside = frame < frames - 1
            row = position[..., 0].round().long().clamp(0, hs - 1)
            col = position[..., 1].round().long().clamp(0, ws - 1)
            move = flow[sample, frame.clamp(max=frames - 2), row, col] * inside[..., None]
            out.append(move)
            position = position + move
        return (torch.stack(out, dim=2) / self.radius).flatten(2)
