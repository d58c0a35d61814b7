"""Series sources (aeon's sets, .ts, CSV/Parquet wide and long, NumPy), windows, missing-value policies."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from anymae_timeseries import AeonDataModule, SeriesFileDataModule, TrajectoryDataModule, interpolate_missing

TS_FILE = """@problemName Toy
@timeStamps false
@missing false
@univariate true
@equalLength false
@classLabel true up down
@data
1.0,2.0,3.0,4.0:up
4.0,3.0,2.0,1.0,0.5,0.2:down
1.0,3.0,5.0,7.0,9.0:up
"""


def first(data):
    data.setup("fit")
    return next(iter(data.train_dataloader()))


def test_aeon_sets_ship_with_aeon():
    batch = first(AeonDataModule(name="GunPoint", batch_size=8))
    assert batch["series"].shape == (8, 1, 150) and batch["label"].max() <= 1
    vowels = AeonDataModule(name="JapaneseVowels", batch_size=16)
    batch = first(vowels)
    assert batch["series"].shape[1] == 12 and len(set(batch["length"].tolist())) > 1  # variable length, padded
    assert len(vowels.classes) == 9
    airline = AeonDataModule(name="Airline", window=36, stride=1, val_fraction=0.2)
    airline.setup("fit")
    assert len(airline.train_set) + len(airline.val_set) == 144 - 36 + 1 and "label" not in first(airline)


def test_ts_file_variable_length_with_labels(tmp_path):
    path = tmp_path / "toy.ts"
    path.write_text(TS_FILE)
    data = SeriesFileDataModule(path=str(path), val_fraction=0.3, batch_size=4)
    data.setup("fit")
    batch = next(iter(data.val_dataloader()))
    assert data.classes == ["down", "up"]
    assert batch["series"].shape[:2] == (1, 1) and batch["label"].tolist() == [1]


def test_csv_wide_and_long_parquet_and_numpy(tmp_path):
    t = np.arange(50)
    pd.DataFrame({"a": np.sin(t), "b": np.cos(t), "note": ["x"] * 50}).to_csv(tmp_path / "wide.csv", index=False)
    wide = SeriesFileDataModule(path=str(tmp_path / "wide.csv"), window=20, stride=10, val_fraction=0.25)
    assert first(wide)["series"].shape[1:] == (2, 20)
    rows = [
        {"id": i, "time": s, "value": float(s * i), "kind": "odd" if i % 2 else "even"}
        for i in range(4)
        for s in range(10 + i)
    ]
    pd.DataFrame(rows).sample(frac=1, random_state=0).to_parquet(tmp_path / "long.parquet")
    long = SeriesFileDataModule(
        path=str(tmp_path / "long.parquet"), layout="long", label_column="kind", val_fraction=0.25, batch_size=4
    )
    long.setup("fit")
    assert [s.shape[-1] for s in long.train_set.series] == [10, 11, 12, 13]
    assert long.train_set.series[2][0, :3].tolist() == [0.0, 2.0, 4.0]  # sorted by time within an id
    np.savez(tmp_path / "arrays.npz", X=np.random.default_rng(0).random((6, 3, 16)), y=np.array([0, 1] * 3))
    arrays = first(SeriesFileDataModule(path=str(tmp_path / "arrays.npz"), val_fraction=0.3, batch_size=8))
    assert arrays["series"].shape[1:] == (3, 16) and set(arrays["label"].tolist()) <= {0, 1}


def test_missing_value_policies(tmp_path):
    values = np.arange(40, dtype=float)
    values[5] = values[25] = np.nan
    pd.DataFrame({"v": values}).to_csv(tmp_path / "gaps.csv", index=False)
    common = {"path": str(tmp_path / "gaps.csv"), "window": 10, "stride": 10, "val_fraction": 0.25}
    filled = SeriesFileDataModule(**common, nan_policy="interpolate")
    filled.setup("fit")
    assert not torch.cat([s for s in filled.train_set.series]).isnan().any()
    assert filled.train_set.series[0][0, 5].item() == pytest.approx(5.0)
    dropped = SeriesFileDataModule(**common, nan_policy="drop")
    dropped.setup("fit")
    assert len(dropped.train_set) + len(dropped.val_set) == 2  # the windows [10, 20) and [30, 40) have no gap
    masked = SeriesFileDataModule(**common, nan_policy="mask")
    assert torch.isnan(first(masked)["series"]).any()  # kept: the tokenizer turns their patches into padding
    torch.testing.assert_close(
        interpolate_missing(torch.tensor([[float("nan"), 1.0, float("nan"), 3.0, float("nan")]])),
        torch.tensor([[1.0, 1.0, 2.0, 3.0, 3.0]]),
    )


def test_unreadable_files_are_skipped_and_counted(tmp_path):
    pd.DataFrame({"v": np.arange(30.0)}).to_csv(tmp_path / "good.csv", index=False)
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    (tmp_path / "bad.ts").write_text("@data\n1,2,x:?\n")
    data = SeriesFileDataModule(path=str(tmp_path), window=10, stride=5, val_fraction=0.2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data.setup("fit")
    assert data.num_skipped == 2 and len(data.train_set) + len(data.val_set) == 5
    assert sum("skipping unreadable file" in str(w.message) for w in caught) == 2


def test_trajectories_three_motion_models():
    data = TrajectoryDataModule(count=30, length=32, dims=3, batch_size=30, noise=0.0)
    data.setup("fit")
    tracks, labels = data.train_set.series, data.train_set.labels
    assert len(tracks) == 24 and tracks[0].shape == (3, 32) and set(labels.tolist()) == {0, 1, 2}
    stop = data.classes.index("stop")
    stopped = [t for t, y in zip(tracks, labels.tolist(), strict=True) if y == stop]
    assert all((t[:, -1] - t[:, -2]).abs().max() < 1e-6 for t in stopped)  # at rest by the end


def test_a_bad_row_costs_the_row_not_the_file(tmp_path):
    """200 rows, one with a field too many: 199 are kept, one is skipped, counted and named in one warning line; a
    long-layout row missing its value is skipped the same way."""
    lines = ["a,b"] + [f"{i},{-i}" for i in range(200)]
    lines[101] = "100,-100,999"  # ragged
    (tmp_path / "wide.csv").write_text("\n".join(lines) + "\n")
    data = SeriesFileDataModule(path=str(tmp_path / "wide.csv"), window=50, val_fraction=0.2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data.setup("fit")
    assert data.train_set.series[0].shape == (2, 199) and data.num_skipped == 1
    assert [str(w.message) for w in caught] == [f"{tmp_path / 'wide.csv'}: 1 malformed row skipped"]

    long = pd.DataFrame({"id": [0] * 5 + [1] * 5, "time": list(range(5)) * 2, "value": np.arange(10.0)})
    long.loc[7, "value"] = np.nan
    long.to_csv(tmp_path / "long.csv", index=False)
    data = SeriesFileDataModule(path=str(tmp_path / "long.csv"), layout="long", val_fraction=0.5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data.setup("fit")
    assert sorted(s.shape[-1] for s in data.train_set.series) == [4, 5]  # series 1 lost one row, not itself
    assert "1 rows missing their id, time or value skipped" in str(caught[0].message)
