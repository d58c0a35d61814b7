"""Forecast scores: the model's forecast of the hidden horizon (``ForecastMasker``) beside two baselines, the naive
forecast (the last observed value, repeated) and the seasonal-naive one (the value one season earlier), as MSE and
MAE over the validation split, in the tokens' scale (after RevIN when it is on)."""

import lightning.pytorch as pl
import torch
from pydantic import PositiveInt
from torch import Tensor

from anymae import ConfigError, MaskedAutoencoder, PatchTarget, validated

from .masking import ForecastMasker
from .tokenizers import SeriesPatchTokenizer

__all__ = ["ForecastMetrics", "forecast_errors"]


@torch.no_grad()
def forecast_errors(module: MaskedAutoencoder, batch: dict[str, Tensor], season: int) -> dict[str, Tensor]:
    """Summed squared and absolute errors of the model, naive and seasonal-naive forecasts, and the count."""
    tokenizer, masker = module.tokenizer, module.masker
    out = module(batch)
    tokens, spec = out.tokens, out.mask
    index = spec.ids_decode[..., None].expand(-1, -1, tokens.tokens.shape[-1])
    predicted = tokens.tokens.scatter(1, index, module.target.to_tokens(out.pred, tokens, spec).to(tokens.tokens.dtype))
    true, forecast = tokenizer.inverse(tokens), tokenizer.inverse(tokens.with_tokens(predicted))  # [B, C, T]
    cut = masker._lengths(tokens) - masker.horizon  # first horizon patch, per token sequence
    cut = cut.view(true.shape[0], -1)[:, 0] * tokenizer.patch_len  # first horizon step, per sample
    steps = cut[:, None] + torch.arange(masker.horizon * tokenizer.patch_len, device=cut.device)[None, :]  # [B, H]
    if bool((cut < season).any()):
        raise ValueError(f"ForecastMetrics: a context shorter than the season ({season} steps)")
    pick = lambda series, at: torch.gather(series, 2, at[:, None, :].expand(-1, series.shape[1], -1))  # noqa: E731
    target = pick(true, steps)
    naive = pick(true, (cut - 1)[:, None].expand_as(steps))
    seasonal = pick(true, cut[:, None] - season + (steps - cut[:, None]) % season)
    errors = {}
    for name, guess in (("forecast", pick(forecast, steps)), ("naive", naive), ("seasonal_naive", seasonal)):
        errors[f"{name}_se"] = (guess - target).pow(2).sum()
        errors[f"{name}_ae"] = (guess - target).abs().sum()
    errors["count"] = torch.tensor(float(target.numel()), device=target.device)
    return errors


class ForecastMetrics(pl.Callback):
    """Logs ``val/forecast_mse``, ``val/naive_mse``, ``val/seasonal_naive_mse`` (and ``_mae``) after each validation.

    Needs a ``SeriesPatchTokenizer`` with non-overlapping patches, a ``ForecastMasker`` and ``PatchTarget``.

    Args:
        season: the seasonal period in steps (12 for monthly data).
    """

    @validated
    def __init__(self, season: PositiveInt = 12) -> None:
        super().__init__()
        self.season = season
        self.last: dict[str, float] = {}

    def on_fit_start(self, trainer: pl.Trainer, pl_module: MaskedAutoencoder) -> None:
        tokenizer, masker, target = pl_module.tokenizer, pl_module.masker, pl_module.target
        if not isinstance(tokenizer, SeriesPatchTokenizer) or tokenizer.stride != tokenizer.patch_len:
            raise ConfigError("ForecastMetrics needs a SeriesPatchTokenizer with stride equal to patch_len")
        if not isinstance(masker, ForecastMasker) or not isinstance(target, PatchTarget):
            raise ConfigError("ForecastMetrics needs a ForecastMasker and a PatchTarget")

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: MaskedAutoencoder) -> None:
        if trainer.sanity_checking:
            return
        datamodule = trainer.datamodule
        totals: dict[str, Tensor] = {}
        was_training = pl_module.training
        pl_module.eval()
        for batch in datamodule.val_dataloader():
            batch = datamodule.on_before_batch_transfer(batch, 0)
            batch = {k: v.to(pl_module.device) if isinstance(v, Tensor) else v for k, v in batch.items()}
            for key, value in forecast_errors(pl_module, batch, self.season).items():
                totals[key] = totals.get(key, 0) + value
        pl_module.train(was_training)
        count = totals.pop("count")
        self.last = {}
        for key, value in totals.items():
            name = key[:-3] + ("_mse" if key.endswith("_se") else "_mae")
            self.last[name] = float(value / count)
            pl_module.log(f"val/{name}", value / count)
