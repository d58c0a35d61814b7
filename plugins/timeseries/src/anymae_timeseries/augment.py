"""Batched augmentation of series ``[B, C, L]`` (each sample's valid length in ``length``): the three of Um et al.
2017 ("Data Augmentation of Wearable Sensor Data", https://arxiv.org/abs/1706.00527) and Le Guennec et al. 2016
("Data Augmentation for Time Series Classification using Convolutional Neural Networks") that keep a series' class
on most UCR sets -- jitter, magnitude scaling, and window slicing (a random crop stretched back to full length).

tsaug and similar libraries transform NumPy arrays one series at a time on the CPU; these are a few tensor ops on the
whole batch, on the batch's device, inside a padded batch (so they run in the data module's ``on_after_batch_transfer``
at no loader cost).
"""

import torch
from torch import Tensor

__all__ = ["augment_series"]


def augment_series(
    series: Tensor,
    length: Tensor | None = None,
    *,
    jitter: float = 0.0,
    scaling: float = 0.0,
    crop: float = 0.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """A randomly augmented copy of ``series`` ``[B, C, L]``.

    Args:
        series: the batch, zero-padded past each sample's ``length``.
        length: valid steps per sample ``[B]`` (unset: all ``L``); padding stays zero.
        jitter: Gaussian noise, its standard deviation in units of each series channel's own standard deviation (over
            its observed steps; a missing value, NaN, stays missing under every transform but the crop, which may
            spread it to a neighbouring step).
        scaling: each sample's channels multiplied by ``1 + scaling * N(0, 1)`` (one factor per channel).
        crop: window slicing: a random window of between ``1 - crop`` and all of each sample's valid steps, linearly
            stretched back to them.
        generator: random source (on ``series``' device); unset: torch's global one.
    """
    if not (jitter or scaling or crop):
        return series
    b, c, steps = series.shape
    device, dtype = series.device, series.dtype
    lengths = torch.full((b,), steps, device=device) if length is None else length.to(device)
    valid = torch.arange(steps, device=device) < lengths[:, None]  # [B, L]
    out = series
    if crop:
        # window length in [1 - crop, 1] of the valid span and a start inside it, per sample
        keep = 1 - crop * torch.rand(b, device=device, generator=generator)
        span = (lengths - 1).to(dtype)
        start = (1 - keep) * span * torch.rand(b, device=device, generator=generator)
        step = torch.arange(steps, device=device, dtype=dtype)[None] / span.clamp_min(1)[:, None]  # 0..1 on valid
        where = (start[:, None] + step * keep[:, None] * span[:, None]).clamp(max=span[:, None].clamp_min(0))
        left = where.floor().long().clamp(0, steps - 1)
        right = (left + 1).clamp(max=(lengths - 1).clamp_min(0)[:, None])
        frac = (where - left.to(dtype))[:, None]
        gather = lambda index: out.gather(2, index[:, None].expand(b, c, steps))  # noqa: E731
        out = gather(left) * (1 - frac) + gather(right) * frac
    if scaling:
        out = out * (1 + scaling * torch.randn(b, c, 1, device=device, dtype=dtype, generator=generator))
    if jitter:
        mask = (valid[:, None] & ~out.isnan()).to(dtype)  # the spread of the observed steps
        count = mask.sum(-1, keepdim=True).clamp_min(1)
        mean = (out.nan_to_num() * mask).sum(-1, keepdim=True) / count
        std = (((out.nan_to_num() - mean) * mask) ** 2).sum(-1, keepdim=True).div(count).sqrt()
        out = out + jitter * std * torch.randn(out.shape, device=device, dtype=dtype, generator=generator)
    return torch.where(valid[:, None], out, torch.zeros((), device=device, dtype=dtype))
