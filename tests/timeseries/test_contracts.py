"""The time-series components pass the core's contracts."""

import torch

from anymae import GridLayout, TokenBatch
from anymae.testing import DataModuleContract, MaskerContract, TargetContract, TokenizerContract
from anymae_timeseries import (
    AeonDataModule,
    ForecastMasker,
    SeriesPatchTokenizer,
    TrajectoryDataModule,
    TrajectoryTarget,
)


def batch(batch_size, device, channels=2, length=48):
    x = torch.randn(batch_size, channels, length, generator=torch.Generator().manual_seed(batch_size)).to(device)
    return {"series": x, "length": torch.tensor([48, 40, 33, 48][:batch_size], device=device)}


class TestMixedSeriesPatchTokenizer(TokenizerContract):
    component_class = SeriesPatchTokenizer
    init_args = {"channels": 2, "length": 48, "patch_len": 8}

    def make_batch(self, batch_size, device):
        return batch(batch_size, device)


class TestIndependentSeriesPatchTokenizer(TestMixedSeriesPatchTokenizer):
    init_args = {"channels": 2, "length": 48, "patch_len": 8, "stride": 4, "mode": "independent", "revin": True}


class TestTrajectoryTarget(TargetContract):
    component_class = TrajectoryTarget

    def make_tokenizer(self):
        return SeriesPatchTokenizer(channels=2, length=48, patch_len=8)

    def make_batch(self, batch_size, device):
        return batch(batch_size, device)


class TestForecastMasker(MaskerContract):
    component_class = ForecastMasker
    init_args = {"horizon": 2}
    deterministic = True

    def make_tokens(self, kind, batch_size, device, padded=False):
        padding = None
        if padded:
            padding = (
                torch.arange(12, device=device)[None, :]
                >= torch.tensor([12, 9, 7, 12][:batch_size], device=device)[:, None]
            )
        return TokenBatch(torch.zeros(batch_size, 12, 4, device=device), GridLayout((12,)), padding)


class TestAeonDataModule(DataModuleContract):
    component_class = AeonDataModule
    init_args = {"name": "ItalyPowerDemand", "batch_size": 16}

    def make_tokenizer(self):
        return SeriesPatchTokenizer(channels=1, length=24, patch_len=4)


class TestTrajectoryDataModule(DataModuleContract):
    component_class = TrajectoryDataModule
    init_args = {"count": 60, "length": 32, "batch_size": 16}

    def make_tokenizer(self):
        return SeriesPatchTokenizer(channels=2, length=32, patch_len=4)
