"""One modality's share of a multi-modal step, in that modality's own terms (for its figures)."""

import torch
from torch import Tensor

from ...config import ConfigError
from ..specs import RAW_VALUES
from ..targets.base import Target
from ..tokenizer import Tokenizer
from ..types import MAEOutput, MaskSpec, TokenBatch

__all__ = ["drawn_parts", "modality_parts", "modality_view"]


def modality_parts(tokenizer: Tokenizer, target: Target, name: str) -> tuple[Tokenizer, Target]:
    """Modality ``name``'s own tokenizer and target in a multi-modal model (a :class:`~anymae.MultiModalTokenizer`
    and a :class:`~anymae.MultiModalTarget`)."""
    tokenizers, targets = getattr(tokenizer, "modalities", None), getattr(target, "parts", None)
    if tokenizers is None or targets is None or name not in tokenizers or name not in targets:
        have = list(tokenizers) if tokenizers is not None else f"none ({type(tokenizer).__name__} has one)"
        raise ConfigError(f"no modality {name!r} in this model; its modalities: {have}")
    own_tokenizer, own_target = tokenizers[name], targets[name]
    assert isinstance(own_tokenizer, Tokenizer) and isinstance(own_target, Target)
    return own_tokenizer, own_target


def drawn_parts(tokenizer: Tokenizer, target: Target, modality: str | None) -> tuple[Tokenizer, Target]:
    """The tokenizer and target whose predictions a reconstruction shows (``modality``'s own in a multi-modal
    model); a :class:`~anymae.ConfigError` when the target's predictions or the tokens cannot be mapped back to the
    raw format."""
    if modality is not None:
        tokenizer, target = modality_parts(tokenizer, target, modality)
    if target.predicts != RAW_VALUES:
        raise ConfigError(
            f"reconstruct: {type(target).__name__} predictions cannot be mapped back to token values "
            f"(it predicts {target.predicts or 'nothing a figure can draw'})"
        )
    if not tokenizer.spec.invertible:
        raise ConfigError(f"reconstruct: {type(tokenizer).__name__} has no inverse back to the raw format")
    return tokenizer, target


def modality_view(out: MAEOutput, name: str) -> tuple[TokenBatch, MaskSpec, Tensor]:
    """Modality ``name``'s token batch, a mask over its tokens that decodes every one of them (hidden as in the
    joint mask), and its predictions ``[B, N_m, D]`` at each token (zero where nothing was predicted)."""
    if name not in out.tokens.parts:
        have = list(out.tokens.parts) or "none (one modality)"
        raise ValueError(f"no modality {name!r} in this step; it has {have}")
    start, stop = out.tokens.segments()[name]
    n, ids = stop - start, out.mask.ids_decode
    member = (ids >= start) & (ids < stop)
    slot = torch.where(member, ids - start, n)  # other modalities' predictions land in a spare row, dropped
    pred = out.pred.new_zeros(out.pred.shape[0], n + 1, out.pred.shape[-1])
    pred = pred.scatter(1, slot[..., None].expand(-1, -1, pred.shape[-1]), out.pred)[:, :n]
    every = torch.arange(n, device=ids.device).expand(ids.shape[0], -1)
    return out.tokens.parts[name], MaskSpec(every[:, :0], every, every, out.mask.mask[:, start:stop], every), pred
