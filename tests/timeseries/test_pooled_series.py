"""Pooling aeon's UCR sets: resampled to one length they pool into one pretraining set (labels dropped, a source
index per series), unresampled they fail with one line, and the pooled example parses and trains."""

from pathlib import Path

import pytest
import torch

import anymae
from anymae.cli.fit import AnymaeCLI
from anymae.data.pooled import PooledDataModule
from anymae.testing import fast_dev_run, tiny_model
from anymae_timeseries import AeonDataModule, SeriesPatchTokenizer
from anymae_timeseries.data import resample

ROOT = Path(__file__).resolve().parents[2]


def test_resample_is_linear_batched_and_keeps_the_ends():
    ramp = torch.linspace(0, 1, 11)[None]  # [1, 11]
    out = resample([ramp, 2 * ramp, torch.arange(4.0).reshape(2, 2), torch.ones(1, 1)], 21)
    assert [tuple(s.shape) for s in out] == [(1, 21), (1, 21), (2, 21), (1, 21)]
    assert torch.allclose(out[0], torch.linspace(0, 1, 21)[None], atol=1e-6)  # linear stays linear
    assert torch.allclose(out[1], 2 * out[0]) and torch.allclose(out[2][1, [0, -1]], torch.tensor([2.0, 3.0]))
    assert torch.equal(out[3], torch.ones(1, 21))


def test_aeon_sets_resample_to_one_length_at_load():
    italy = AeonDataModule(name="ItalyPowerDemand", length=150, batch_size=8)
    italy.setup("fit")
    assert {tuple(s.shape) for s in italy.train_set.series} == {(1, 150)} and len(italy.train_set) == 67
    batch = next(iter(italy.train_dataloader()))
    assert batch["series"].shape == (8, 1, 150) and (batch["length"] == 150).all() and "label" in batch
    with pytest.raises(anymae.ConfigError, match="length"):
        AeonDataModule(name="GunPoint", length=0)


def test_ucr_sets_pool_only_at_one_length():
    with pytest.raises(
        anymae.ConfigError,
        match=r"sources GunPoint and ItalyPowerDemand give 'series' of shape \(1, 150\) and \(1, 24\); resample",
    ):
        PooledDataModule([AeonDataModule(name="GunPoint"), AeonDataModule(name="ItalyPowerDemand")]).setup("fit")
    data = PooledDataModule(
        [AeonDataModule(name="GunPoint"), AeonDataModule(name="ItalyPowerDemand", length=150)], batch_size=16
    )
    data.setup("fit")
    assert len(data.train_set) == 50 + 67 and len(data.val_set) == 150 + 1029
    batch = data.on_before_batch_transfer(next(iter(data.train_dataloader())), 0)
    assert set(batch) == {"series", "length", "source"} and batch["series"].shape == (16, 1, 150)  # no labels
    model = tiny_model(SeriesPatchTokenizer(channels=1, length=150, patch_len=10))
    assert fast_dev_run(model, data).global_step == 1


def test_the_pooled_example_parses_and_builds():
    config = ROOT / "examples" / "timeseries" / "pooled_ucr.yaml"
    text = config.read_text()
    assert text.startswith("# ") and "arxiv.org/abs/2211.14730" in text
    assert "anymae fit --config examples/timeseries/pooled_ucr.yaml" in text
    cli = AnymaeCLI(args=["--config", str(config), "--trainer.logger", "false"], run=False)
    assert isinstance(cli.model, anymae.MaskedAutoencoder) and isinstance(cli.datamodule, PooledDataModule)
    data = cli.datamodule
    assert data.names == ["GunPoint", "ItalyPowerDemand", "ArrowHead", "PickupGestureWiimoteZ"]
    assert all(s.length == 150 for s in data.sources[1:]) and data.sources[0].length is None
