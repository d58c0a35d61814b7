"""SeriesFileDataModule's ``length`` (resampling, as AeonDataModule's) and ``normalize`` (z-normalisation per series
and channel), and its class order: numeric when every label is a number."""

import numpy as np
import pandas as pd
import pytest
import torch

from anymae import ConfigError
from anymae_timeseries import AeonDataModule, SeriesFileDataModule
from anymae_timeseries.data import label_order, resample


def series_of(data: SeriesFileDataModule) -> list[torch.Tensor]:
    data.setup("fit")
    return data.train_set.series  # every series, prepared (the validation share is a slice of its windows)


def two_lengths(tmp_path) -> list[np.ndarray]:
    """A folder of two .npy files: series [2, 30] and [2, 50], values on very different scales per channel."""
    rng = np.random.default_rng(0)
    short = np.stack([rng.normal(5, 2, (3, 30)), rng.normal(-100, 30, (3, 30))], axis=1).astype(np.float32)
    long = np.stack([rng.normal(1, 1, (2, 50)), rng.normal(40, 9, (2, 50))], axis=1).astype(np.float32)
    np.save(tmp_path / "a_short.npy", short)
    np.save(tmp_path / "b_long.npy", long)
    return [*short, *long]


def test_length_resamples_every_series_as_aeon_does(tmp_path):
    raw = two_lengths(tmp_path)
    resampled = series_of(SeriesFileDataModule(path=str(tmp_path), length=40, val_fraction=0.2))
    assert [tuple(s.shape) for s in resampled] == [(2, 40)] * 5
    for got, series in zip(resampled, raw, strict=True):
        expected = torch.nn.functional.interpolate(
            torch.from_numpy(series)[None], 40, mode="linear", align_corners=True
        )
        torch.testing.assert_close(got, expected[0])
        assert got[:, 0].tolist() == series[:, 0].tolist() and got[:, -1].tolist() == series[:, -1].tolist()
    unchanged = series_of(SeriesFileDataModule(path=str(tmp_path), val_fraction=0.2))
    assert [s.shape[-1] for s in unchanged] == [30, 30, 30, 50, 50]


def test_normalize_standardises_each_series_and_channel_before_resampling(tmp_path):
    raw = two_lengths(tmp_path)
    normalised = series_of(SeriesFileDataModule(path=str(tmp_path), normalize=True, val_fraction=0.2))
    for got, series in zip(normalised, raw, strict=True):
        expected = (series - series.mean(-1, keepdims=True)) / series.std(-1, keepdims=True)  # numpy: population
        np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)
        np.testing.assert_allclose(got.numpy().mean(-1), 0, atol=1e-5)
        np.testing.assert_allclose(got.numpy().std(-1), 1, atol=1e-5)
    both = series_of(SeriesFileDataModule(path=str(tmp_path), normalize=True, length=40, val_fraction=0.2))
    for got, series in zip(both, normalised, strict=True):
        torch.testing.assert_close(got, resample([series], 40)[0])


def test_normalize_keeps_missing_values_missing_and_a_constant_channel_centred(tmp_path):
    values = np.arange(20, dtype=float)
    values[[3, 4]] = np.nan
    pd.DataFrame({"a": values, "b": np.full(20, 7.0)}).to_csv(tmp_path / "wide.csv", index=False)
    common = {"path": str(tmp_path / "wide.csv"), "normalize": True, "window": 5, "val_fraction": 0.2}
    (masked,) = series_of(SeriesFileDataModule(**common, nan_policy="mask"))
    assert masked[0].isnan().tolist() == [i in (3, 4) for i in range(20)]
    seen = masked[0][~masked[0].isnan()].double()
    assert abs(float(seen.mean())) < 1e-6 and abs(float(seen.std(unbiased=False)) - 1) < 1e-6
    assert masked[1].tolist() == [0.0] * 20  # constant: centred, not divided by zero
    (filled,) = series_of(SeriesFileDataModule(**common))  # interpolated first, then standardised
    assert not filled.isnan().any() and abs(float(filled[0].double().std(unbiased=False)) - 1) < 1e-6


def test_numeric_labels_are_ordered_as_numbers(tmp_path):
    rows = [
        {"id": i, "time": t, "value": float(t), "kind": kind}
        for i, kind in enumerate(["10", "2", "1", "2", "10", "1"])
        for t in range(5)
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "long.csv", index=False)
    data = SeriesFileDataModule(path=str(tmp_path / "long.csv"), layout="long", label_column="kind", val_fraction=0.2)
    data.setup("fit")
    assert data.classes == ["1", "2", "10"]  # not "1", "10", "2"
    every = {
        i: int(y) for part in (data.train_set, data.val_set) for (i, _), y in zip(part.index, part.labels, strict=True)
    }
    assert [every[i] for i in range(6)] == [2, 1, 0, 1, 2, 0]  # each series' label, numbered by that order
    np.savez(tmp_path / "arrays.npz", X=np.zeros((4, 1, 8)), y=np.array([10, 9, 1, 9]))
    arrays = SeriesFileDataModule(path=str(tmp_path / "arrays.npz"), val_fraction=0.2)
    arrays.setup("fit")
    assert arrays.classes == ["1", "9", "10"]


def test_labels_that_are_not_all_numbers_are_ordered_as_strings():
    assert label_order(["b", "10", "2", "a"]) == ["10", "2", "a", "b"]
    assert label_order(["2", "10", "-1.5", "1e1", "0"]) == ["-1.5", "0", "2", "10", "1e1"]
    assert label_order(["2", "nan", "10"]) == ["10", "2", "nan"]  # not a finite number: as strings
    assert label_order(["up", "down"]) == ["down", "up"]


def test_the_options_have_aeons_types(tmp_path):
    two_lengths(tmp_path)
    for field in ("normalize", "length"):
        assert SeriesFileDataModule.__init__.__annotations__[field] == AeonDataModule.__init__.__annotations__[field]
    with pytest.raises(ConfigError, match="length"):
        SeriesFileDataModule(path=str(tmp_path), length=0)
    with pytest.raises(ConfigError, match="normalize"):
        SeriesFileDataModule(path=str(tmp_path), normalize="sometimes")


def test_an_infinite_value_is_made_missing_and_follows_nan_policy(tmp_path):
    """An overflow upstream leaves ``inf`` in a file: it would make the series' mean, and so the whole normalised
    series, NaN; it is missing instead, as a blank cell is."""
    values = np.arange(20, dtype=np.float32)
    values[4] = np.inf
    values[9] = -np.inf
    np.save(tmp_path / "overflow.npy", values[None])
    common = {"path": str(tmp_path / "overflow.npy"), "normalize": True, "window": 5, "val_fraction": 0.2}
    with pytest.warns(RuntimeWarning, match="2 infinite values made missing, handled by nan_policy"):
        (masked,) = series_of(SeriesFileDataModule(**common, nan_policy="mask"))
    assert masked[0].isnan().tolist() == [i in (4, 9) for i in range(20)] and not masked.isinf().any()
    with pytest.warns(RuntimeWarning, match="infinite"):
        (filled,) = series_of(SeriesFileDataModule(**common))
    assert filled.isfinite().all() and abs(float(filled[0].double().mean())) < 1e-6
    dropped = SeriesFileDataModule(**common, nan_policy="drop")
    with pytest.warns(RuntimeWarning, match="infinite"):
        dropped.setup("fit")
    assert len(dropped.train_set) + len(dropped.val_set) == 2  # the windows [10, 15) and [15, 20) are whole
