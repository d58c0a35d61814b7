"""The generic "reconstruct the raw values of the hidden patches" target shared by MAE (pixels,
https://arxiv.org/abs/2111.06377), VideoMAE (https://arxiv.org/abs/2203.12602), Audio-MAE (spectrogram patches) and
patch-based time-series MAEs. It works with any tokenizer whose tokens are raw values laid out channel-last.
"""

from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import Field
from torch import Tensor

from ...config import ConfigError, validated
from ..specs import RAW_VALUES, BuildContext
from ..types import MaskSpec, TokenBatch, gather_tokens
from .base import Target

__all__ = ["PatchTarget"]


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
        if (input_mean is None) != (input_std is None) or (
            input_mean and input_std is not None and len(input_mean) != len(input_std)
        ):
            raise ConfigError(
                f"{type(self).__name__}.input_mean and input_std go together, one value per channel each; got "
                f"{input_mean} and {input_std}"
            )
        self.normalize = normalize
        self.eps = eps
        self.loss_kind = loss
        self.input_mean, self.input_std = input_mean, input_std
        self.channels: int | None = None  # from the tokenizer, at build

    def build(self, ctx: BuildContext) -> None:
        tokens = ctx.tokens
        values_per_norm = tokens.token_dim
        if self.normalize == "channel":
            if tokens.channels is None:
                raise ConfigError(
                    f"PatchTarget.normalize='channel' needs tokens of raw values in channels; {tokens.name} has none"
                )
            values_per_norm = tokens.token_dim // tokens.channels
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

    def token_loss(self, pred: Tensor, target: Tensor, mask: MaskSpec, tokens: TokenBatch | None = None) -> Tensor:
        error = pred.float() - target.float()
        return (error.pow(2) if self.loss_kind == "mse" else error.abs()).mean(dim=-1)

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
