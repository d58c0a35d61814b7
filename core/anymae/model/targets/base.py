"""The target interface: what the decoder predicts for each decoded token, and the loss (MAE's ``forward_loss``).

A target is computed only at ``mask.ids_decode``, so no full-size ``[B, N, D]`` target or loss is ever materialised.
"""

import functools
import inspect
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..specs import BuildContext
from ..types import MaskSpec, Step, TokenBatch

__all__ = ["Target", "masked_mean"]


def masked_mean(values: Tensor, valid: Tensor | None) -> Tensor:
    """Mean of ``values`` ``[B, M]`` over the entries where ``valid`` is True (all when ``valid`` is None)."""
    if valid is None:
        return values.mean()
    # where(), not a product with 0/1 weights: a NaN in a padded entry must not reach the loss.
    return torch.where(valid, values, 0.0).sum() / valid.sum().clamp_min(1)


class Target(nn.Module, ABC):
    """Per-token regression targets and their loss.

    A target declares what it :attr:`needs` from the tokenizer; the model checks that the tokenizer provides it and
    has the tokenizer compute it (it arrives in ``TokenBatch.provided``). :meth:`build` is called once with the
    :class:`~anymae.BuildContext`, so a target derives its geometry (patch size, channels, group size) from the
    tokenizer's spec instead of repeating it in the config.

    Attributes:
        dim_per_token: size of each target vector (the decoder's output size), set by :meth:`build` (required).
        needs: names the tokenizer must provide: ``"raw_values"`` (tokens are raw values, channel last),
            ``"inverse"``, or per-token data in its ``provides`` (``"neighborhoods"``, ``"displacements"``...).
        predicts: what a prediction is, for figures: ``"raw_values"`` when :meth:`to_tokens` maps predictions back to
            token values, the name of a provided quantity (``"neighborhoods"``), or ``None``.
        predicted_by: ``"decoder"``: the decoder predicts it at ``mask.ids_decode`` (every reconstruction target);
            ``"encoder"``: the encoder's latents of the visible tokens regress it through a head of the target's own,
            in :meth:`loss` (feature mimicking, MR-MAE); such a target goes in a :class:`~anymae.WeightedTarget`
            beside one the decoder predicts.
        modality_dims: for a target over several modalities (:class:`~anymae.MultiModalTarget`), each modality's
            width per token, set by :meth:`build` (the decoder sizes a head per modality from it); empty otherwise.
    """

    dim_per_token: int
    modality_dims: Mapping[str, int] = {}
    needs: frozenset[str] = frozenset()
    predicts: str | None = None
    predicted_by: Literal["decoder", "encoder"] = "decoder"

    @abstractmethod
    def build(self, ctx: BuildContext) -> None:
        """Set :attr:`dim_per_token` from the context (the tokenizer's spec: its needs are already checked), create
        what depends on the encoder's width; raise :class:`~anymae.ConfigError` naming both sides when the target
        cannot work with the tokenizer."""

    @abstractmethod
    def forward(self, batch: Mapping[str, Tensor], tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        """Targets ``[B, M', dim_per_token]`` for the tokens at ``mask.ids_decode``."""

    def token_loss(self, pred: Tensor, target: Tensor, mask: MaskSpec, tokens: TokenBatch | None = None) -> Tensor:
        """``[B, M']``: the loss of each decoded token (mean squared error); what a loss-aware masker learns from.

        ``tokens`` is the step's :class:`~anymae.TokenBatch` (``None`` where a caller scores predictions of its own):
        what the tokenizer provided for the target (``tokens.provided``) is there, so a target whose tokens hold
        slots that must not count (unknown bases, padded points) masks them here, gathered at ``mask.ids_decode``,
        with no state kept from :meth:`forward`. An override may leave ``tokens`` out (as before anymae 0.3.1)."""
        return (pred.float() - target.float()).pow(2).mean(dim=-1)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A ``token_loss`` written without the ``tokens`` parameter (plugins for anymae 0.3.0) is called without it."""
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("token_loss")
        if own is None or "tokens" in inspect.signature(own).parameters:
            return

        @functools.wraps(own)
        def token_loss(self: Target, pred: Tensor, target: Tensor, mask: MaskSpec, tokens: Any = None) -> Tensor:
            return own(self, pred, target, mask)

        cls.token_loss = token_loss  # type: ignore[method-assign]  # the subclass's own, wrapped once at its creation

    def loss(self, step: Step) -> tuple[Tensor, dict[str, Tensor]]:
        """The step's loss and its named parts (none for a single loss; a weighted target names each of its
        targets' losses, which the model logs separately): by default the step's per-token loss averaged over the
        decoded tokens that count (hidden, not padding)."""
        return masked_mean(step.token_loss, step.mask.decode_valid), {}

    def to_tokens(self, pred: Tensor, tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        """Map predictions back to token values (for showing reconstructions; targets that predict
        ``"raw_values"``)."""
        raise NotImplementedError(f"{type(self).__name__} predictions cannot be mapped back to tokens")
