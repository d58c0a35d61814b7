"""A bad case (data line) in a ``.ts`` file costs that case, not the file (issue 25, item 2)."""

import warnings

import numpy as np
import pytest

from anymae_timeseries import SeriesFileDataModule, read_series

HEADER = """@problemName Rows
@timeStamps false
@missing false
@univariate {univariate}
@equalLength {equal}
@classLabel true up down
@data
"""


def label(i):
    return "up" if i % 2 else "down"


def univariate(i):
    return [float(i + j) for j in range(5)]


def multivariate(i):
    return [[float(i + j) for j in range(5)], [float(-i - j) for j in range(5)]]


def ts_file(path, cases, univariate="true", equal="true"):
    path.write_text(HEADER.format(univariate=univariate, equal=equal) + "\n".join(cases) + "\n")
    return str(path)


def line(channels, i):
    return ":".join(",".join(f"{v:g}" for v in channel) for channel in channels) + f":{label(i)}"


def read(path):
    problems = []
    series, labels = read_series(path, "wide", None, "id", "time", "value", None, problems=problems)
    return series, labels, problems


def assert_cases(series, labels, expected, values):
    assert [s.dtype for s in series] == [np.float32] * len(expected)
    assert [s.tolist() for s in series] == [values(i) for i in expected]
    assert labels == [label(i) for i in expected]  # still aligned with their series


@pytest.mark.parametrize(
    ("bad", "reason"),
    [("3,4,x,6,7:up", "could not convert string to float: 'x'"), ("3,4,5,6,7", "0 channels, expected 1")],
    ids=["not a number", "no label"],
)
def test_a_bad_univariate_case_costs_that_case(tmp_path, bad, reason):
    cases = [line([univariate(i)], i) for i in range(10)]
    cases[3] = bad  # case 4, line 11
    series, labels, problems = read(ts_file(tmp_path / "uni.ts", cases))
    assert_cases(series, labels, [0, 1, 2, 4, 5, 6, 7, 8, 9], lambda i: [univariate(i)])
    assert len(problems) == 1 and problems[0].startswith("1 malformed case skipped (case 4, line 11: ")
    assert reason in problems[0]


def test_a_short_channel_costs_its_case(tmp_path):
    cases = [line(multivariate(i), i) for i in range(10)]
    cases[3] = line([multivariate(3)[0][:3], multivariate(3)[1]], 3)  # channel 0 of case 4: 3 values, not 5
    series, labels, problems = read(ts_file(tmp_path / "multi.ts", cases, univariate="false"))
    assert_cases(series, labels, [0, 1, 2, 4, 5, 6, 7, 8, 9], multivariate)
    assert series[0].shape == (2, 5)
    assert problems == [
        "1 malformed case skipped (case 4, line 11: Channel 1 has a different number of observations to the other "
        "channels. Saw 3 in the first channel but 5 in the channel 1)"
    ]


def test_good_and_unequal_length_files_load_every_case(tmp_path):
    series, labels, problems = read(ts_file(tmp_path / "good.ts", [line([univariate(i)], i) for i in range(10)]))
    assert_cases(series, labels, range(10), lambda i: [univariate(i)])
    assert problems == []
    lengths = [[float(j) for j in range(2 + i)] for i in range(10)]
    path = ts_file(tmp_path / "unequal.ts", [line([lengths[i]], i) for i in range(10)], equal="false")
    series, labels, problems = read(path)
    assert [s.tolist() for s in series] == [[values] for values in lengths] and problems == []
    assert labels == [label(i) for i in range(10)]


def test_a_file_with_no_readable_case_is_named(tmp_path):
    path = ts_file(tmp_path / "none.ts", ["1,x:up", "y,2:down"])
    with pytest.raises(ValueError, match=r"none\.ts: no readable case \(case 1, line 8: could not convert"):
        read(path)


def test_the_data_module_keeps_the_good_cases(tmp_path):
    """One file, one bad case: 9 series set up (not "no readable series"), 1 skipped, named in one warning."""
    cases = [line(multivariate(i), i) for i in range(10)]
    cases[3] = line([multivariate(3)[0][:3], multivariate(3)[1]], 3)
    path = ts_file(tmp_path / "multi.ts", cases, univariate="false")
    data = SeriesFileDataModule(path=path, val_fraction=0.2, batch_size=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data.setup("fit")
    assert len(data.train_set.series) == 9 and len(data.train_set) + len(data.val_set) == 9
    assert data.num_skipped == 1 and data.classes == ["down", "up"]
    assert [str(w.message) for w in caught if "malformed" in str(w.message)] == [
        f"{path}: 1 malformed case skipped (case 4, line 11: Channel 1 has a different number of observations to the "
        "other channels. Saw 3 in the first channel but 5 in the channel 1)"
    ]
