"""SeriesFileDataModule's ``rows`` layout: a series per row, as the UCR archive's ``.tsv`` files and most CSV exports
of a classification set hold them (a label column, the values, shorter series ending in empty cells)."""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anymae import ConfigError
from anymae.cli import main
from anymae_timeseries import SeriesFileDataModule, read_rows

ROOT = Path(__file__).resolve().parents[2]


def ucr_tsv(path, rows: list[tuple[str, list[float]]]) -> None:
    """The UCR archive's layout: no header, the label first, tab-separated; a short series leaves its cells empty."""
    width = max(len(values) for _, values in rows)
    lines = ["\t".join([label, *(f"{v:g}" for v in values), *[""] * (width - len(values))]) for label, values in rows]
    path.write_text("\n".join(lines) + "\n")


def setup(data: SeriesFileDataModule) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data.setup("fit")
    return [str(w.message) for w in caught]


def test_a_ucr_tsv_reads_a_series_and_a_label_per_row_each_at_its_own_length(tmp_path):
    rng = np.random.default_rng(0)
    rows = [(label, list(rng.normal(size=n).round(3))) for label, n in [("10", 12), ("2", 7), ("1", 12), ("2", 9)]]
    ucr_tsv(tmp_path / "Set_TRAIN.tsv", rows)
    series, labels = read_rows(str(tmp_path / "Set_TRAIN.tsv"), label_column=0)
    assert labels == ["10", "2", "1", "2"]  # text, as written: not 10.0
    assert [s.shape for s in series] == [(1, 12), (1, 7), (1, 12), (1, 9)]  # the empty cells are cut off
    for got, (_, values) in zip(series, rows, strict=True):
        np.testing.assert_allclose(got[0], values, rtol=1e-6)

    data = SeriesFileDataModule(path=str(tmp_path / "Set_TRAIN.tsv"), layout="rows", label_column=0, val_fraction=0.5)
    assert setup(data) == []
    assert data.classes == ["1", "2", "10"]  # numeric order
    everything = data.train_set.series
    assert [s.shape[-1] for s in everything] == [12, 7, 12, 9] and data.num_skipped == 0
    every = {
        i: int(y) for part in (data.train_set, data.val_set) for (i, _), y in zip(part.index, part.labels, strict=True)
    }
    assert [every[i] for i in range(4)] == [2, 1, 0, 1] and len(data.val_set) == 2  # half the series held out


def test_a_header_is_found_and_the_label_column_named_anywhere(tmp_path):
    """A CSV with a header and the label in the middle: found by name; a cell that is not a number becomes missing;
    a row without a label and a row without a value are skipped and counted, in one warning line."""
    lines = ["t0,t1,kind,t2,t3", "1,2,cat,3,4", "5,x,dog,7,", ",,dog,,", "9,10,,11,12", "0.5,1.5,cat,2.5,3.5"]
    (tmp_path / "rows.csv").write_text("\n".join(lines) + "\n")
    data = SeriesFileDataModule(path=str(tmp_path / "rows.csv"), layout="rows", label_column="kind", val_fraction=0.4)
    messages = setup(data)
    assert data.num_skipped == 2 and data.classes == ["cat", "dog"]
    assert len(messages) == 1
    for finding in ("1 non-numeric cell made missing", "1 row without a value skipped", "1 row without a label"):
        assert finding in messages[0], messages
    series, labels = read_rows(str(tmp_path / "rows.csv"), label_column="kind")
    assert labels == ["cat", "dog", "cat"]
    np.testing.assert_allclose(series[0][0], [1, 2, 3, 4])
    assert np.isnan(series[1][0, 1]) and series[1].shape == (1, 3)  # "x" is missing; the empty last cell cut off
    # interpolated by the default nan_policy before it reaches a batch
    assert not any(s.isnan().any() for s in data.train_set.series)

    with pytest.raises(ValueError, match="no column 'label'"):
        read_rows(str(tmp_path / "rows.csv"), label_column="label")


def test_unlabelled_rows_and_parquet(tmp_path):
    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.savetxt(tmp_path / "plain.csv", values, delimiter=",")
    series, labels = read_rows(str(tmp_path / "plain.csv"))
    assert labels is None and np.array_equal(np.concatenate(series), values)

    pd.DataFrame({"y": [3, 1, 3], "a": [0.0, 1.0, 2.0], "b": [5.0, np.nan, 7.0]}).to_parquet(tmp_path / "p.parquet")
    series, labels = read_rows(str(tmp_path / "p.parquet"), label_column="y")
    assert labels == ["3", "1", "3"] and [s.shape for s in series] == [(1, 2), (1, 1), (1, 2)]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"layout": "wide", "label_column": "y"}, "the wide layout is one series per file"),
        ({"layout": "long", "label_column": 0}, "a column number"),
        ({"layout": "rows", "columns": ["a"]}, "wide layout only"),
    ],
)
def test_options_that_do_not_fit_the_layout_are_refused(tmp_path, options, message):
    with pytest.raises(ConfigError, match=message):
        SeriesFileDataModule(path=str(tmp_path), **options)


def test_the_cli_reads_a_column_number_as_a_number(tmp_path, capsys):
    """``--data.label_column 0`` is the first column, not a header named "0"."""
    ucr_tsv(tmp_path / "s.tsv", [(str(i % 2), list(np.sin(np.arange(20) * (1 + i % 2)))) for i in range(8)])
    with pytest.raises(SystemExit):  # --print_config prints, then exits
        main(
            [
                "fit",
                "--print_config",
                "--config",
                str(ROOT / "examples/timeseries/patch_mae_ucr.yaml"),
                "--data",
                "anymae_timeseries.SeriesFileDataModule",
                "--data.path",
                str(tmp_path / "s.tsv"),
                "--data.layout",
                "rows",
                "--data.label_column",
                "0",
            ]
        )
    assert "label_column: 0\n" in capsys.readouterr().out


def test_labelled_series_without_a_validation_file_hold_out_whole_series_at_random(tmp_path):
    """Sorted by class (as files and folders often are), the last windows would all be one class, and windows of
    one series would fall on both sides: labelled series are held out whole, drawn with the seed."""
    rows = [(str(i // 10), list(np.sin(np.arange(60) * (1 + i // 10)))) for i in range(30)]  # classes 0, 1, 2 in order
    ucr_tsv(tmp_path / "sorted.tsv", rows)
    data = SeriesFileDataModule(
        path=str(tmp_path / "sorted.tsv"), layout="rows", label_column=0, window=20, val_fraction=0.3
    )
    setup(data)
    held = {i for i, _ in data.val_set.index}
    assert len(held) == 9 and held.isdisjoint(i for i, _ in data.train_set.index)  # whole series, 30%
    assert len(set(data.val_set.labels.tolist())) > 1  # not the last class only
    again = SeriesFileDataModule(
        path=str(tmp_path / "sorted.tsv"), layout="rows", label_column=0, window=20, val_fraction=0.3
    )
    setup(again)
    assert {i for i, _ in again.val_set.index} == held  # the seed's draw


def test_a_folder_of_class_folders_labels_every_series_of_a_file(tmp_path):
    """Recordings sorted into class folders (activity/recording.csv, a column per sensor channel): every window of a
    file is labelled with its folder, the validation folder numbered alike."""
    rng = np.random.default_rng(0)
    for split, names in (("train", ["walk/a.csv", "walk/b.csv", "run/c.csv"]), ("val", ["run/d.csv", "walk/e.csv"])):
        for name in names:
            (tmp_path / split / name).parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(rng.normal(size=(40, 2)), columns=["ax", "ay"]).to_csv(tmp_path / split / name, index=False)
    data = SeriesFileDataModule(
        path=str(tmp_path / "train"), val_path=str(tmp_path / "val"), labeled=True, window=20, stride=10
    )
    assert setup(data) == []
    assert data.classes == ["run", "walk"]
    assert data.train_set.labels.tolist() == [0] * 3 + [1] * 6  # 3 windows of each file, files in sorted order
    assert data.val_set.labels.tolist() == [0] * 3 + [1] * 3
    assert all(s.shape == (2, 40) for s in data.train_set.series)
    with pytest.raises(ConfigError, match="not both"):
        SeriesFileDataModule(path=str(tmp_path), labeled=True, layout="rows", label_column=0)
    with pytest.raises(ConfigError, match="is none"):
        SeriesFileDataModule(path=str(tmp_path / "train" / "*" / "*.csv"), labeled=True).setup("fit")
