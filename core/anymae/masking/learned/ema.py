"""Running (exponential moving average) copies of a module, which HPM and AttMask score with."""

import copy
from typing import TypeVar

import torch
from torch import Tensor, nn

__all__ = ["ema_update", "frozen_copy"]

M = TypeVar("M", bound=nn.Module)


def frozen_copy(module: M) -> M:
    """A deep copy of ``module`` that takes no gradients (a running average of it, updated by :func:`ema_update`)."""
    twin = copy.deepcopy(module)
    twin.requires_grad_(False)
    twin.eval()
    return twin


@torch.no_grad()
def ema_update(twin: nn.Module, online: nn.Module, momentum: float) -> None:
    """``twin = momentum * twin + (1 - momentum) * online`` for every parameter (one fused call over the parameter
    lists); buffers of the same shape are copied (position tables, not learned)."""
    ours: list[Tensor] = list(twin.parameters())
    theirs = list(online.parameters())
    if len(ours) != len(theirs):
        raise RuntimeError(f"the running copy has {len(ours)} parameters, the online module {len(theirs)}")
    if ours:
        torch._foreach_lerp_(ours, [p.detach().to(q.dtype) for p, q in zip(theirs, ours, strict=True)], 1 - momentum)
    for mine, theirs_buffer in zip(twin.buffers(), online.buffers(), strict=False):
        if mine.shape == theirs_buffer.shape:
            mine.copy_(theirs_buffer)
