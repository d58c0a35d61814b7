"""Batched series augmentation: each transform does what it says, padding stays padding, and the data modules apply it
to training batches only."""

import pytest
import torch

from anymae_timeseries import AeonDataModule, augment_series


def ramps(b=6, c=2, steps=40):
    return torch.linspace(0, 1, steps).expand(b, c, steps).clone() * torch.arange(1, c + 1).view(1, c, 1)


def test_no_augmentation_is_the_identity():
    x = torch.randn(3, 1, 20)
    assert augment_series(x) is x


def test_scaling_multiplies_each_channel_by_one_factor():
    x = ramps()
    y = augment_series(x, scaling=0.3, generator=torch.Generator().manual_seed(0))
    factor = y[..., -1] / x[..., -1]
    torch.testing.assert_close(y, x * factor[..., None])
    assert factor.std() > 0.05  # the factors differ across samples and channels


def test_jitter_is_noise_in_units_of_each_series_own_spread():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 2, 500, generator=g) * torch.tensor([1.0, 100.0]).view(1, 2, 1)
    noise = augment_series(x, jitter=0.1, generator=g) - x
    ratio = noise.std(dim=-1) / x.std(dim=-1)
    assert ratio.mean().item() == pytest.approx(0.1, rel=0.05)  # the same relative noise on both channels


def test_crop_is_a_window_stretched_back_to_the_full_length():
    x = ramps(b=200, c=1, steps=50)  # a line from 0 to 1: a stretched window of it is again a line
    y = augment_series(x, crop=0.4, generator=torch.Generator().manual_seed(0))
    start, end = y[:, 0, 0], y[:, 0, -1]
    assert bool((start >= -1e-6).all() and (end <= 1 + 1e-6).all())
    assert bool(((end - start) >= 0.6 - 1e-4).all())  # at least 1 - crop of the series kept
    assert (end - start).min() < 0.7 and start.max() > 0.2  # windows of several widths and starts drawn
    line = start[:, None] + (end - start)[:, None] * torch.linspace(0, 1, 50)
    torch.testing.assert_close(y[:, 0], line, atol=1e-5, rtol=0)


def test_padding_stays_zero_and_a_short_series_is_cropped_within_its_own_length():
    x = ramps(b=2, c=1, steps=30)
    length = torch.tensor([30, 12])
    x[1, :, 12:] = 0
    y = augment_series(x, length, crop=0.5, scaling=0.2, jitter=0.05, generator=torch.Generator().manual_seed(1))
    assert bool((y[1, :, 12:] == 0).all())
    assert y[1, 0, :12].abs().max() < 1  # read from the valid steps (values below 12/29), never from the padding


def test_training_batches_only_are_augmented():
    data = AeonDataModule(name="GunPoint", jitter=0.1, scaling=0.1, crop=0.2, batch_size=8)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))

    class Trainer:
        training = True

    data.trainer = Trainer()
    changed = data.on_after_batch_transfer(dict(batch), 0)
    assert changed["series"].shape == batch["series"].shape and not torch.equal(changed["series"], batch["series"])
    Trainer.training = False
    assert torch.equal(data.on_after_batch_transfer(dict(batch), 0)["series"], batch["series"])
    assert AeonDataModule(name="GunPoint").augment == {}


def test_a_missing_value_stays_missing_and_spoils_nothing_else():
    x = torch.randn(4, 2, 30)
    x[0, 1, 5] = float("nan")  # nan_policy "keep": the tokenizer reads NaN as missing
    y = augment_series(x, jitter=0.1, scaling=0.2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(y.isnan(), x.isnan())  # the jitter's spread is taken over the observed values only
