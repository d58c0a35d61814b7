"""Targets: what the decoder predicts for each decoded token, and the loss (MAE's ``forward_loss``).

A target is computed only at ``mask.ids_decode``, so no full-size ``[B, N, D]`` target or loss is ever materialised.

:class:`PatchTarget` is the generic "reconstruct the raw values of the hidden patches" target shared by MAE (pixels,
https://arxiv.org/abs/2111.06377), VideoMAE (https://arxiv.org/abs/2203.12602), Audio-MAE (spectrogram patches) and
patch-based time-series MAEs. It works with any tokenizer whose tokens are raw values laid out channel-last.
"""

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Annotated, Literal

import torch
from pydantic import Field, PositiveFloat
from torch import Tensor, nn

from ..config import ConfigError, validated
from .types import RAW_VALUES, MaskSpec, TokenBatch, TokenizerSpec, gather_tokens

__all__ = ["PatchTarget", "ProvidedTarget", "Target", "WeightedTarget", "masked_mean"]


def masked_mean(values: Tensor, valid: Tensor | None) -> Tensor:
    """Mean of ``values`` ``[B, M]`` over the entries where ``valid`` is True (all when ``valid`` is None)."""
    if valid is None:
        return values.mean()
    # where(), not a product with 0/1 weights: a NaN in a padded entry must not reach the loss.
    return torch.where(valid, values, 0.0).sum() / valid.sum().clamp_min(1)


class Target(nn.Module, ABC):
    """Per-token regression targets and their loss.

    A target declares what it :attr:`needs` from the tokenizer; the model checks that the tokenizer offers it and has
    the tokenizer compute it (it arrives in ``TokenBatch.extras``). :meth:`bind` is then called once with the
    tokenizer's :class:`~anymae.model.types.TokenizerSpec`, so a target derives its geometry (patch size, channels, group
    size) from the spec instead of repeating it in the config.

    Attributes:
        dim_per_token: size of each target vector (the decoder's output size), set by :meth:`bind` (required).
        needs: names the tokenizer must offer: ``"raw_values"`` (tokens are raw values, channel last), ``"inverse"``,
            or per-token data it ``provides`` (``"neighborhoods"``, ``"displacements"``...).
        predicts: what a prediction is, for figures: ``"raw_values"`` when :meth:`to_tokens` maps predictions back to
            token values, the name of a provided quantity (``"neighborhoods"``), or ``None``.
        scores: ``"decoded"``: the decoder's predictions at ``mask.ids_decode`` (every reconstruction target);
            ``"visible"``: the encoder's latents of the visible tokens, through a head of the target's own (feature
            mimicking, MR-MAE), in :meth:`score`; such a target goes in a :class:`WeightedTarget` beside a decoded one.
    """

    dim_per_token: int
    needs: frozenset[str] = frozenset()
    predicts: str | None = None
    scores: Literal["decoded", "visible"] = "decoded"

    @abstractmethod
    def bind(self, tokens: TokenizerSpec) -> None:
        """Set :attr:`dim_per_token` from the tokenizer's spec (its needs are already checked); raise
        :class:`~anymae.ConfigError` naming both when the target still cannot work with it."""

    @abstractmethod
    def forward(self, batch: Mapping[str, Tensor], tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        """Targets ``[B, M', dim_per_token]`` for the tokens at ``mask.ids_decode``."""

    def build(self, encoder_dim: int) -> None:
        """Create what depends on the encoder's width (a ``"visible"`` target's head); called once by the model."""

    def token_loss(self, pred: Tensor, target: Tensor, mask: MaskSpec) -> Tensor:
        """``[B, M']``: the loss of each decoded token (mean squared error); what a loss-aware masker learns from."""
        return (pred.float() - target.float()).pow(2).mean(dim=-1)

    def loss(self, pred: Tensor, target: Tensor, mask: MaskSpec) -> Tensor:
        """:meth:`token_loss` averaged over the decoded tokens that are not padding."""
        return masked_mean(self.token_loss(pred, target, mask), mask.decode_valid)

    def score(
        self,
        batch: Mapping[str, Tensor],
        tokens: TokenBatch,
        mask: MaskSpec,
        pred: Tensor,
        target: Tensor,
        visible: Tensor,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The step's loss and its named parts (empty for a single loss; a :class:`WeightedTarget` names each of its
        targets' losses, which the model logs separately).

        Args:
            batch, tokens, mask: the step's raw batch, tokens and mask.
            pred, target: ``[B, M', dim_per_token]`` the decoder's predictions and this target's values.
            visible: ``[B, K, D]`` the encoder's latents of the visible tokens (prefix tokens left out).
        """
        return self.loss(pred, target, mask), {}

    def to_tokens(self, pred: Tensor, tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        """Map predictions back to token values (for showing reconstructions; targets that predict
        ``"raw_values"``)."""
        raise NotImplementedError(f"{type(self).__name__} predictions cannot be mapped back to tokens")


class PatchTarget(Target):
    """Reconstruct the raw values of each hidden patch, optionally normalised per patch.

    Args:
        normalize: ``"patch"`` -- MAE's ``norm_pix_loss``: each patch's values over all its channels jointly are
            standardised, ``(x - mean) / sqrt(var + eps)``; ``"channel"`` -- VideoMAE's: each channel of each patch
            separately, ``(x - mean) / (std + eps)``; ``"none"`` -- the raw values. Variances are unbiased, as both.
        eps: the epsilon of the normalisation (1e-6 in MAE and VideoMAE).
        loss: ``"mse"`` (MAE, VideoMAE, Audio-MAE) or ``"l1"`` (SimMIM: mean absolute error of the raw pixels).
        input_mean: with ``input_std``, the per-channel normalisation the data module applied, undone before the
            target is computed, so the target is in the data's own scale (VideoMAE's ``unnorm_videos``: its targets
            are pixels in [0, 1], its inputs ImageNet-normalised); unset: the target is the normalised input (MAE).
        input_std: see ``input_mean``.
    """

    needs = frozenset({RAW_VALUES})
    predicts = RAW_VALUES

    @validated
    def __init__(
        self,
        normalize: Literal["none", "patch", "channel"] = "patch",
        eps: Annotated[float, Field(gt=0)] = 1e-6,
        loss: Literal["mse", "l1"] = "mse",
        input_mean: tuple[float, ...] | None = None,
        input_std: tuple[Annotated[float, Field(gt=0)], ...] | None = None,
    ) -> None:
        super().__init__()
        if (input_mean is None) != (input_std is None) or (input_mean and len(input_mean) != len(input_std)):
            raise ConfigError(
                f"{type(self).__name__}.input_mean and input_std go together, one value per channel each; got "
                f"{input_mean} and {input_std}"
            )
        self.normalize = normalize
        self.eps = eps
        self.loss_kind = loss
        self.input_mean, self.input_std = input_mean, input_std
        self.channels: int | None = None  # from the tokenizer, at bind

    def bind(self, tokens: TokenizerSpec) -> None:
        values_per_norm = tokens.token_dim // tokens.channels if self.normalize == "channel" else tokens.token_dim
        if self.normalize != "none" and values_per_norm < 2:
            raise ConfigError(
                f"PatchTarget.normalize={self.normalize!r} needs at least 2 values per {self.normalize} to compute a "
                f"variance; {tokens.name} gives {values_per_norm}"
            )
        if self.input_mean is not None and len(self.input_mean) != tokens.channels:
            raise ConfigError(
                f"{type(self).__name__}.input_mean/input_std have {len(self.input_mean)} values; {tokens.name} "
                f"makes tokens of {tokens.channels} channels"
            )
        self.channels = tokens.channels
        self.dim_per_token = tokens.token_dim

    def values(self, tokens: TokenBatch, ids: Tensor) -> Tensor:
        """The raw values of the tokens at ``ids`` ``[B, M]``, input normalisation undone when asked."""
        values = gather_tokens(tokens.tokens, ids)
        if self.input_mean is None:
            return values
        mean = values.new_tensor(self.input_mean)
        std = values.new_tensor(self.input_std)
        return (values.unflatten(-1, (-1, self.channels)) * std + mean).flatten(-2)

    def token_loss(self, pred: Tensor, target: Tensor, mask: MaskSpec) -> Tensor:
        if self.loss_kind == "mse":
            return super().token_loss(pred, target, mask)
        return (pred.float() - target.float()).abs().mean(dim=-1)

    def _stats(self, values: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and scale of each patch (``"patch"``) or of each channel of each patch (``"channel"``)."""
        if self.normalize == "patch":
            mean = values.mean(dim=-1, keepdim=True)
            scale = (values.var(dim=-1, keepdim=True) + self.eps).sqrt()
        else:
            per_channel = values.unflatten(-1, (-1, self.channels))
            mean = per_channel.mean(dim=-2, keepdim=True)
            scale = per_channel.std(dim=-2, keepdim=True) + self.eps
        return mean, scale

    def forward(self, batch: Mapping[str, Tensor], tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        return self.normalized(self.values(tokens, mask.ids_decode))

    def normalized(self, values: Tensor) -> Tensor:
        """``values`` ``[B, M, D]`` under this target's normalisation."""
        if self.normalize == "none":
            return values
        mean, scale = self._stats(values)
        if self.normalize == "patch":
            return (values - mean) / scale
        return ((values.unflatten(-1, (-1, self.channels)) - mean) / scale).flatten(-2)

    def to_tokens(self, pred: Tensor, tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        """Undo the normalisation with the true patch's statistics (as MAE's and VideoMAE's visualisations do), and
        the input normalisation's inverse, so predictions come back as token values."""
        if self.normalize != "none":
            values = self.values(tokens, mask.ids_decode)
            mean, scale = self._stats(values)
            if self.normalize == "patch":
                pred = pred * scale + mean
            else:
                pred = (pred.unflatten(-1, (-1, self.channels)) * scale + mean).flatten(-2)
        if self.input_mean is None:
            return pred
        mean, std = pred.new_tensor(self.input_mean), pred.new_tensor(self.input_std)
        return ((pred.unflatten(-1, (-1, self.channels)) - mean) / std).flatten(-2)


class ProvidedTarget(Target):
    """Predict, for each decoded token, a quantity its tokenizer provides per token (a name in its ``provides``):
    Point-MAE's neighbourhoods, MaskFeat3D's normals, a trajectory's displacements. Mean squared error by default;
    subclasses fix :attr:`quantity` and bring their own loss (``ChamferTarget``).

    Args:
        quantity: the name the tokenizer provides (the target needs it and predicts it).
    """

    @validated
    def __init__(self, quantity: str) -> None:
        super().__init__()
        self.quantity = quantity
        self.needs = frozenset({quantity})
        self.predicts = quantity

    def bind(self, tokens: TokenizerSpec) -> None:
        shape = tokens.provides[self.quantity]
        if shape is None:
            raise ConfigError(f"{type(self).__name__}: {tokens.name}'s {self.quantity!r} is a property, not data")
        self.dim_per_token = math.prod(shape)

    def forward(self, batch: Mapping[str, Tensor], tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        return gather_tokens(tokens.extras[self.quantity].flatten(2), mask.ids_decode)


class WeightedTarget(Target):
    """A weighted sum of named targets: pixels + HOG, pixels + a teacher's features (MR-MAE, Gao et al. 2023,
    https://arxiv.org/abs/2303.05475). Each target keeps its own geometry and loss; the model logs each one's loss as
    ``train/loss_<name>`` (unweighted) beside the weighted total ``train/loss``.

    The decoder predicts the decoded targets side by side (its output is their widths concatenated, in the order
    given); ``"visible"`` targets score the encoder's latents of the visible tokens themselves. Figures draw the first
    target whose predictions map back to token values (pixels).

    Args:
        targets: the targets by name (the names appear in the logs).
        weights: weight of each target's loss by name (1 where unset).
    """

    @validated
    def __init__(self, targets: dict[str, Target], weights: dict[str, PositiveFloat] | None = None) -> None:
        super().__init__()
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(targets))
        if unknown:
            raise ConfigError(f"WeightedTarget.weights names {unknown}, which are not targets ({sorted(targets)})")
        if not targets:
            raise ConfigError("WeightedTarget.targets is empty; give at least one target")
        self.parts = nn.ModuleDict(targets)
        self.weights = {name: float(weights.get(name, 1.0)) for name in targets}
        self.decoded = [name for name, part in targets.items() if part.scores == "decoded"]
        if not self.decoded:
            raise ConfigError(
                "WeightedTarget needs at least one target the decoder predicts; every one of "
                f"{sorted(targets)} scores the encoder's visible tokens"
            )
        self.needs = frozenset().union(*(part.needs for part in targets.values()))
        raw = [name for name in self.decoded if targets[name].predicts == RAW_VALUES]
        self.drawn = raw[0] if raw else None
        self.predicts = RAW_VALUES if raw else None
        self.widths: list[int] = []

    def bind(self, tokens: TokenizerSpec) -> None:
        for part in self.parts.values():
            part.bind(tokens)
        self.widths = [self.parts[name].dim_per_token for name in self.decoded]
        self.dim_per_token = sum(self.widths)

    def build(self, encoder_dim: int) -> None:
        for part in self.parts.values():
            part.build(encoder_dim)

    def _split(self, values: Tensor) -> dict[str, Tensor]:
        return dict(zip(self.decoded, values.split(self.widths, dim=-1), strict=True))

    def forward(self, batch: Mapping[str, Tensor], tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        return torch.cat([self.parts[name](batch, tokens, mask).float() for name in self.decoded], dim=-1)

    def token_loss(self, pred: Tensor, target: Tensor, mask: MaskSpec) -> Tensor:
        preds, targets = self._split(pred), self._split(target)
        return sum(
            self.weights[name] * self.parts[name].token_loss(preds[name], targets[name], mask) for name in self.decoded
        )

    def score(
        self,
        batch: Mapping[str, Tensor],
        tokens: TokenBatch,
        mask: MaskSpec,
        pred: Tensor,
        target: Tensor,
        visible: Tensor,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        preds, targets = self._split(pred), self._split(target)
        terms = {}
        for name, part in self.parts.items():
            p, t = (preds[name], targets[name]) if name in preds else (pred[..., :0], target[..., :0])
            terms[name] = part.score(batch, tokens, mask, p, t, visible)[0]
        total = sum(self.weights[name] * term for name, term in terms.items())
        return total, terms

    def to_tokens(self, pred: Tensor, tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        if self.drawn is None:
            raise NotImplementedError("none of the WeightedTarget's targets maps predictions back to tokens")
        return self.parts[self.drawn].to_tokens(self._split(pred)[self.drawn], tokens, mask)
