"""Series data: the UCR/UEA sets aeon ships, files (``.ts``; CSV/TSV/Parquet wide, long or a series per row; NumPy),
generated trajectories.

Every source becomes a list of series ``[C, L_i]`` (lengths may differ) with optional labels, then:

* **missing values** follow ``nan_policy``: ``"interpolate"`` (linear in time, the ends held), ``"mask"`` (kept; the
  tokenizer makes any patch with a missing value padding: never visible, never in the loss) or ``"drop"`` (windows
  with a missing value are left out). An infinite value is made missing first (with a warning). A NaN never
  reaches the loss.
* **z-normalisation** (``normalize``, files and Airline): each series' channels to mean 0 and standard deviation 1
  over time, the UCR convention;
* **resampling** (aeon's sets and files, ``length``): every series stretched or shrunk to one number of steps by linear
  interpolation, so sets of different lengths pool into one (:class:`anymae.PooledDataModule`);
* **windows** of ``window`` steps every ``stride`` steps (``window`` unset: whole series);
* batches are padded to their longest series: ``{"series": [B, C, L], "length": [B], "label": [B]}``; class labels
  are numbered in sorted order (files: numerically when every label is a number, so ``2`` comes before ``10``).

A file that cannot be read is skipped, counted in ``num_skipped`` and reported, never fatal.
"""

import csv
import glob
import math
import os
import re
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import Field, NonNegativeInt, PositiveInt
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset

from anymae import (
    ConfigError,
    DataModule,
    FileList,
    FileSamples,
    Unreadable,
    scan_folder,
    split_indices,
    split_key,
    validated,
)

from .augment import augment_series

__all__ = [
    "AeonDataModule",
    "SeriesFileDataModule",
    "TrajectoryDataModule",
    "collate_series",
    "interpolate_missing",
    "label_order",
    "read_rows",
    "read_series",
    "resample",
    "z_normalize",
]

NanPolicy = Literal["interpolate", "mask", "drop"]
SERIES_EXTENSIONS = (".ts", ".csv", ".tsv", ".parquet", ".npy", ".npz")
AEON_SETS = {
    "GunPoint": "load_gunpoint",
    "ItalyPowerDemand": "load_italy_power_demand",
    "BasicMotions": "load_basic_motions",
    "ArrowHead": "load_arrow_head",
    "OSULeaf": "load_osuleaf",
    "ACSF1": "load_acsf1",
    "JapaneseVowels": "load_japanese_vowels",
    "PickupGestureWiimoteZ": "load_pickup_gesture_wiimoteZ",
    "Airline": "load_airline",
}


def interpolate_missing(series: Tensor) -> Tensor:
    """Fill NaNs of ``[C, L]`` by linear interpolation in time; before the first / after the last observation, hold
    it. A channel with no observation at all becomes zeros."""
    out = series.clone()
    steps = np.arange(series.shape[-1])
    for c in range(series.shape[0]):  # a handful of channels, once per series at setup
        values = series[c].numpy()
        seen = ~np.isnan(values)
        out[c] = torch.from_numpy(np.interp(steps, steps[seen], values[seen]) if seen.any() else np.zeros_like(values))
    return out


def resample(series: list[Tensor], length: int) -> list[Tensor]:
    """Each series ``[C, L_i]`` linearly interpolated to ``[C, length]`` (end points kept: ``align_corners``), in one
    batched call per distinct ``(C, L_i)`` (a whole UCR split is one or a few calls, not one per series)."""

    def stretch(stacked: Tensor) -> Tensor:
        if stacked.shape[-1] == 1:  # one step: nothing to interpolate between, hold it
            return stacked.expand(-1, -1, length)
        return torch.nn.functional.interpolate(stacked, size=length, mode="linear", align_corners=True)

    return _per_shape(series, stretch)


def z_normalize(series: list[Tensor]) -> list[Tensor]:
    """Each series ``[C, L_i]`` with every channel standardised over time (the UCR convention): mean 0, population
    standard deviation 1. Missing values (NaN) count in neither and stay missing; a constant channel is only centred.
    One batched call per distinct ``(C, L_i)``."""

    def standardise(stacked: Tensor) -> Tensor:
        centred = stacked - stacked.nanmean(-1, keepdim=True)
        std = centred.square().nanmean(-1, keepdim=True).sqrt()
        return centred / torch.where(std > 0, std, 1.0)

    return _per_shape(series, standardise)


def _per_shape(series: list[Tensor], function: Callable[[Tensor], Tensor]) -> list[Tensor]:
    """``function`` of each group of same-shape series, stacked ``[S, C, L_i]``; the results in the series' order."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, s in enumerate(series):
        groups.setdefault(tuple(s.shape), []).append(i)
    out: list[Tensor] = [torch.empty(0)] * len(series)
    for ids in groups.values():
        for i, s in zip(ids, function(torch.stack([series[i] for i in ids])), strict=True):
            out[i] = s.contiguous()
    return out


def label_order(names: Iterable[str]) -> list[str]:
    """Distinct class names in order: numerically when every one is a finite number (``"1", "2", "10"``), else as
    strings (``"10"`` before ``"2"``)."""
    distinct = set(names)
    try:
        numbers = {name: float(name) for name in distinct}
    except ValueError:
        return sorted(distinct)
    if not all(math.isfinite(value) for value in numbers.values()):
        return sorted(distinct)
    return sorted(distinct, key=lambda name: (numbers[name], name))


def collate_series(samples: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Pad series ``[C, L_i]`` to the longest with zeros; ``length`` holds each valid length."""
    lengths = torch.tensor([s["series"].shape[-1] for s in samples])
    series = pad_sequence([s["series"].T for s in samples], batch_first=True).transpose(1, 2)  # [B, C, L]
    batch = {"series": series, "length": lengths}
    if "label" in samples[0]:
        batch["label"] = torch.stack([torch.as_tensor(s["label"]) for s in samples])
    return batch


class Windows(Dataset):
    """Windows ``(series index, start)`` over in-memory series, with their series' labels."""

    def __init__(self, series: list[Tensor], labels: Tensor | None, index: list[tuple[int, int]], window: int | None):
        self.series, self.index, self.window = series, index, window
        self.labels = None if labels is None else labels[[i for i, _ in index]]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Tensor]:
        i, _ = split_key(key)
        which, start = self.index[i]
        series = self.series[which]
        sample = {"series": series if self.window is None else series[:, start : start + self.window]}
        if self.labels is not None:
            sample["label"] = self.labels[i]
        return sample


class _SeriesDataModule(DataModule):
    """Shared plumbing: missing values, windows, splits, augmentation (loaders from the kit). Subclasses implement
    :meth:`load`, and take these arguments through ``**kwargs``.

    Args:
        window: window length in steps (unset: whole series).
        stride: steps between windows (unset: ``window``).
        nan_policy: missing values (see the module docstring).
        val_fraction: the share kept for validation when the source has no split of its own: of labelled series,
            whole series drawn at random with ``seed`` (their windows with them, so no window of a held-out series is
            trained on); of unlabelled ones, the last windows, in time order, for forecasting.
        jitter: training augmentation: Gaussian noise, in units of each series' standard deviation (0: none).
        scaling: training augmentation: each channel scaled by ``1 + scaling * N(0, 1)`` (0: none).
        crop: training augmentation: a random window of at least ``1 - crop`` of the series, stretched back to
            its length (window slicing; 0: none).
        batch_size: samples per batch.
        num_workers: loader processes.
        seed: shuffling seed.
    """

    collate = staticmethod(collate_series)
    #: how class names are ordered into label numbers
    class_order: Callable[[Iterable[str]], list[str]] = staticmethod(sorted)

    @validated
    def __init__(
        self,
        window: PositiveInt | None = None,
        stride: PositiveInt | None = None,
        nan_policy: NanPolicy = "interpolate",
        val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2,
        jitter: Annotated[float, Field(ge=0)] = 0.0,
        scaling: Annotated[float, Field(ge=0)] = 0.0,
        crop: Annotated[float, Field(ge=0, lt=1)] = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.window, self.stride, self.nan_policy = window, stride or window, nan_policy
        self.val_fraction = val_fraction
        self.classes: list[str] = []
        self.augment = {k: v for k, v in {"jitter": jitter, "scaling": scaling, "crop": crop}.items() if v}

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Training batches are augmented (:func:`~anymae_timeseries.augment_series`) on their device, batched."""
        trainer = getattr(self, "trainer", None)
        if self.augment and trainer is not None and trainer.training and "series" in batch:
            batch = {**batch, "series": augment_series(batch["series"], batch.get("length"), **self.augment)}
        return batch

    def load(self) -> tuple[list[Tensor], list[Any] | None, list[Tensor] | None, list[Any] | None]:
        """Training series and labels, and validation ones if the source has its own split (else ``None``)."""
        raise NotImplementedError

    def _labels(self, train: list[Any] | None, val: list[Any] | None) -> tuple[Tensor | None, Tensor | None]:
        if train is None:
            return None, None
        values = list(train) + list(val or [])
        if all(isinstance(v, (float, np.floating)) and not float(v).is_integer() for v in values):
            return torch.tensor(train, dtype=torch.float32), None if val is None else torch.tensor(
                val, dtype=torch.float32
            )
        self.classes = list(type(self).class_order({str(v) for v in values}))
        lookup = {name: i for i, name in enumerate(self.classes)}
        encode = lambda items: torch.tensor([lookup[str(v)] for v in items])  # noqa: E731
        return encode(train), None if val is None else encode(val)

    def _windows(self, series: list[Tensor]) -> list[tuple[int, int]]:
        index = []
        for i, s in enumerate(series):  # bookkeeping of window starts, once at setup
            if self.window is None:
                index.append((i, 0))
            elif s.shape[-1] >= self.window:
                index += [(i, start) for start in range(0, s.shape[-1] - self.window + 1, self.stride)]
        if self.nan_policy == "drop":
            width = self.window
            index = [(i, a) for i, a in index if not series[i][:, a : a + width if width else None].isnan().any()]
        return index

    def _prepare(self, series: list[Tensor]) -> list[Tensor]:
        series = [torch.tensor(np.asarray(s), dtype=torch.float32).reshape(-1, np.shape(s)[-1]) for s in series]
        if infinite := sum(int(s.isinf().sum()) for s in series):  # an overflow, a division by zero upstream
            warnings.warn(
                f"{type(self).__name__}: {infinite} infinite value{'s' * (infinite > 1)} made missing, handled by "
                "nan_policy",
                RuntimeWarning,
                stacklevel=2,
            )
            series = [s.masked_fill(s.isinf(), math.nan) for s in series]
        if self.nan_policy == "interpolate":
            series = [interpolate_missing(s) if s.isnan().any() else s for s in series]
        return series

    def build(self) -> tuple[Windows, Windows]:
        train, train_labels, val, val_labels = self.load()
        train = self._prepare(train)
        train_y, val_y = self._labels(train_labels, val_labels)
        if val is None and train_y is not None:  # labelled series: whole series held out, drawn at random
            held = set(split_indices(len(train), self.val_fraction, self.seed)[1])
            index = self._windows(train)
            train_index, val_index = [w for w in index if w[0] not in held], [w for w in index if w[0] in held]
            val, val_y = train, train_y
        elif val is None:  # one unlabelled source: the last share of windows (in time order, for forecasting)
            index = self._windows(train)
            n_val = max(1, math.ceil(len(index) * self.val_fraction))
            train_index, val, val_y, val_index = index[:-n_val], train, train_y, index[-n_val:]
        else:
            val = self._prepare(val)
            train_index, val_index = self._windows(train), self._windows(val)
        if not train_index:
            raise ConfigError(
                f"{type(self).__name__}: no training window (window {self.window}, policy {self.nan_policy})"
            )
        return Windows(train, train_y, train_index, self.window), Windows(val, val_y, val_index, self.window)


class AeonDataModule(_SeriesDataModule):
    """A data set that ships inside aeon (no download): UCR/UEA classification sets (their train/test split is the
    train/validation split) or Airline (one monthly series, for forecasting; the last windows are validation).

    Args:
        name: GunPoint, ItalyPowerDemand, BasicMotions (6 channels), ArrowHead, OSULeaf, ACSF1, JapaneseVowels (12
            channels, variable length), PickupGestureWiimoteZ (variable length) or Airline.
        normalize: z-normalise each series (UCR convention) -- Airline's level grows over time.
        length: resample every series to this many steps (linear interpolation, after missing values are filled),
            e.g. 150 to pool ItalyPowerDemand (24 steps) or ArrowHead (251) with GunPoint; unset: as shipped.
        window, stride, nan_policy, val_fraction, jitter, scaling, crop, batch_size, num_workers, seed: the windows,
            split, augmentation and loading every series data module shares (``val_fraction``: Airline's).
    """

    @validated
    def __init__(
        self,
        name: Literal[
            "GunPoint",
            "ItalyPowerDemand",
            "BasicMotions",
            "ArrowHead",
            "OSULeaf",
            "ACSF1",
            "JapaneseVowels",
            "PickupGestureWiimoteZ",
            "Airline",
        ] = "GunPoint",
        normalize: bool = False,
        length: PositiveInt | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.name, self.normalize, self.length = name, normalize, length

    def _prepare(self, series: list[Tensor]) -> list[Tensor]:
        series = super()._prepare(series)
        return series if self.length is None else resample(series, self.length)

    def load(self):
        import aeon.datasets

        loader = getattr(aeon.datasets, AEON_SETS[self.name])
        if self.name == "Airline":
            values = np.asarray(loader(), dtype=np.float32)
            if self.normalize:
                values = (values - values.mean()) / values.std()
            return [values[None]], None, None, None
        x_train, y_train = loader(split="train")
        x_val, y_val = loader(split="test")
        return list(x_train), list(y_train), list(x_val), list(y_val)


def read_series(
    path: str,
    layout: str,
    columns: Sequence[str] | None,
    id_column: str,
    time_column: str,
    value_column: str,
    label_column: str | int | None,
    problems: list[str] | None = None,
) -> tuple[list[Tensor], list[Any] | None]:
    """Series (and labels) of one file: ``.ts`` (aeon), ``.csv``/``.tsv``/``.parquet`` (wide: a column per channel,
    one series; long: one series per id, from id/time/value columns; rows: a series per row, the UCR archive's
    layout, see :func:`read_rows`), ``.npy``/``.npz`` (``[S, C, L]``, ``[S, L]`` or ``[L]``;
    an ``.npz`` may hold ``X`` and ``y``).

    A bad row costs that row, not the file: a CSV row with another number of fields than the header is skipped, and
    in the long layout a row missing its id, time or value is skipped; in the wide layout (a row per time step) a
    missing value stays missing, for ``nan_policy``. A ``.ts`` case (a data line) that aeon cannot read -- a value
    that is not a number, a channel shorter than the others, a missing label, another number of channels or (with
    ``@equalLength`` not false) another length than the file's other cases -- is skipped with its labels kept aligned,
    and named by its number (1-based, counting the cases after ``@data``) and its line. Each such finding is appended
    to ``problems``; a ``.ts`` file with no readable case raises ``ValueError``."""
    suffix = Path(path).suffix.lower()
    problems = [] if problems is None else problems
    if suffix == ".ts":
        return _read_ts(path, problems)
    if suffix in (".npy", ".npz"):
        data = np.load(path, allow_pickle=False)
        x, y = (data["X"], data.get("y")) if suffix == ".npz" else (data, None)
        x = np.asarray(x, dtype=np.float32)
        x = x[None, None] if x.ndim == 1 else x[:, None] if x.ndim == 2 else x
        return list(x), None if y is None else list(y)
    if suffix not in (".csv", ".tsv", ".parquet"):
        raise ValueError(f"unknown series file type {suffix!r}")
    if layout == "rows":
        return read_rows(path, label_column, problems)
    import pandas as pd

    malformed: list[list[str]] = []
    if suffix != ".parquet":  # the python engine hands malformed rows to a callable: skip them, count them
        sep = "\t" if suffix == ".tsv" else ","
        frame = pd.read_csv(path, sep=sep, on_bad_lines=malformed.append, engine="python", skip_blank_lines=False)
    else:
        frame = pd.read_parquet(path)
    if malformed:
        problems.append(f"{len(malformed)} malformed row{'s' * (len(malformed) > 1)} skipped")
    if layout == "wide":
        data = frame[list(columns)] if columns else frame.select_dtypes("number")
        if missing := int(data.isna().sum().sum()):
            problems.append(f"{missing} missing value{'s' * (missing > 1)}, handled by nan_policy")
        return [data.to_numpy(np.float32).T], None
    incomplete = frame[[id_column, time_column, value_column]].isna().any(axis=1)
    if bool(incomplete.any()):
        problems.append(f"{int(incomplete.sum())} rows missing their id, time or value skipped")
        frame = frame[~incomplete]
    series, labels = [], []
    for _, group in frame.sort_values([id_column, time_column]).groupby(id_column, sort=True):
        series.append(group[value_column].to_numpy(np.float32)[None])
        if label_column:
            labels.append(group[label_column].iloc[0])
    return series, labels if label_column else None


def read_rows(
    path: str, label_column: str | int | None = None, problems: list[str] | None = None
) -> tuple[list[np.ndarray], list[str] | None]:
    """A univariate series per row, the layout of the UCR archive's ``.tsv`` files (and of most CSV exports of a
    classification set): an optional label column, the values in the other columns; a shorter series ends in empty
    cells (or ``NaN``), which are cut off, so each series keeps its own length.

    ``label_column`` is a header name or a column number (0: the first, as in the UCR archive). The first row is a
    header when ``label_column`` is a name or when one of its value cells is not a number. Labels are read as text
    (``"1"``, not ``1.0``). A row with no label or no value is skipped and counted; a cell that is not a number
    becomes a missing value for ``nan_policy``; each finding is appended to ``problems``."""
    import pandas as pd

    problems = [] if problems is None else problems
    if path.lower().endswith(".parquet"):
        frame = pd.read_parquet(path)
        header: list[str] | None = [str(name) for name in frame.columns]
        frame.columns = range(frame.shape[1])
        frame = frame.astype(str).where(frame.notna())  # cells as text, as a CSV's are read
    else:
        sep = "\t" if path.lower().endswith(".tsv") else ","
        # rows differ in length (a shorter series has fewer cells): pandas takes its column count from the first
        # row, so the widest row is found first and every row padded to it
        with open(path, newline="", encoding="utf-8", errors="replace") as handle:
            width = max((len(row) for row in csv.reader(handle, delimiter=sep)), default=0)
        if not width:
            raise ValueError("no rows")
        frame = pd.read_csv(path, sep=sep, header=None, names=range(width), dtype=str, skip_blank_lines=True)
        first = frame.iloc[0]
        cells = first.drop(index=label_column) if isinstance(label_column, int) else first
        cells = cells.dropna().str.strip()
        header = None
        if isinstance(label_column, str) or pd.to_numeric(cells, errors="coerce").isna().any():
            header = [str(name).strip() if isinstance(name, str) else "" for name in first]
            frame = frame.iloc[1:]
    at = label_column
    if isinstance(label_column, str):
        if header is None or label_column not in header:
            raise ValueError(f"no column {label_column!r} in the header {header}")
        at = header.index(label_column)
    elif isinstance(label_column, int) and label_column >= frame.shape[1]:
        raise ValueError(f"label_column {label_column} but rows of {frame.shape[1]} columns")
    labels = None
    if at is not None:
        labels = frame[at].str.strip()
        frame = frame.drop(columns=at)
    values = frame.apply(pd.to_numeric, errors="coerce")
    if words := int((frame.notna() & values.isna()).to_numpy().sum()):
        problems.append(f"{words} non-numeric cell{'s' * (words > 1)} made missing, handled by nan_policy")
    array = values.to_numpy(np.float32)
    present = ~np.isnan(array)
    lengths = np.where(present.any(1), array.shape[1] - present[:, ::-1].argmax(1), 0)  # cut the trailing blanks
    keep = lengths > 0
    if empty := int((~keep).sum()):
        problems.append(f"{empty} row{'s' * (empty > 1)} without a value skipped")
    if labels is not None:
        unlabelled = labels.isna().to_numpy() | (labels.to_numpy() == "")
        if lost := int((unlabelled & keep).sum()):
            problems.append(f"{lost} row{'s' * (lost > 1)} without a label skipped")
        keep &= ~unlabelled
    if gaps := int((~present & (np.arange(array.shape[1]) < lengths[:, None]))[keep].sum()):
        problems.append(f"{gaps} missing value{'s' * (gaps > 1)} inside series, handled by nan_policy")
    rows = np.flatnonzero(keep)
    series = [array[i, : lengths[i]][None] for i in rows]
    return series, None if labels is None else [labels.iloc[i] for i in rows]


def _read_ts(path: str, problems: list[str]) -> tuple[list[np.ndarray], list[Any] | None]:
    """A ``.ts`` file through aeon: the whole file at once; if aeon refuses it, its cases in halves until each bad
    case stands alone (a part aeon reads holds good cases only), so a few bad cases cost a few reads, not one per
    case."""
    from aeon.datasets import load_from_ts_file

    try:  # the common case: aeon reads the whole file
        x, y, meta = load_from_ts_file(path, return_meta_data=True)
    except Exception as error:  # aeon raises OSError, ValueError ...: find the bad cases
        failure = error
    else:
        if not len(x):
            raise ValueError(f"{path}: no cases (no lines after an @data line)")
        labelled = meta["classlabel"] or meta["targetlabel"]
        return [np.asarray(s, dtype=np.float32) for s in x], list(y) if labelled else None
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    end = next((i for i, line in enumerate(lines) if re.match(r"@data\b", line.strip(), re.IGNORECASE)), None)
    if end is None:
        raise ValueError(f"{path}: no @data line ({failure})") from failure
    header = lines[: end + 1]
    data = [
        (number, text) for number, text in enumerate(lines[end + 1 :], end + 2) if text.strip()[:1] not in ("", "#")
    ]
    cases = [(i, number, text) for i, (number, text) in enumerate(data, 1)]  # blank and comment lines are no cases
    if not cases:
        raise ValueError(f"{path}: no cases after @data ({failure})") from failure
    with tempfile.TemporaryDirectory() as folder:
        part = Path(folder) / "cases.ts"

        def read(texts: list[str]) -> tuple[Any, Any, dict]:
            part.write_text("\n".join(header + texts) + "\n", encoding="utf-8")
            return load_from_ts_file(str(part), return_meta_data=True)

        try:
            meta = read([])[2]
        except Exception as error:
            raise ValueError(f"{path}: unreadable header: {error}") from error
        labelled = meta["classlabel"] or meta["targetlabel"]
        good: list[tuple[tuple[int, int, str], np.ndarray, Any]] = []
        bad: dict[int, tuple[int, str]] = {}  # case number -> (line number, reason)
        pending = [cases]
        while pending:  # halves of a part aeon refuses; a part aeon reads holds cases each as aeon reads it alone
            chunk = pending.pop()
            try:
                x, y, _ = read([text for _, _, text in chunk])
            except Exception as error:
                if len(chunk) == 1:
                    bad[chunk[0][0]] = (chunk[0][1], _aeon_reason(error))
                else:
                    pending += [chunk[len(chunk) // 2 :], chunk[: len(chunk) // 2]]
                continue
            good += [
                (case, np.asarray(s, dtype=np.float32), y[j] if labelled else None)
                for j, (case, s) in enumerate(zip(chunk, x, strict=True))
            ]
    # what aeon checks across cases, which a case read alone escapes: channels, and lengths if equal length
    channels = Counter(s.shape[0] for _, s, _ in good if s.shape[0])
    expected = 1 if meta["univariate"] else channels.most_common(1)[0][0] if channels else 1
    for case, s, _ in good:
        if s.shape[0] != expected:
            hint = " (a missing label?)" if labelled and s.shape[0] == expected - 1 else ""
            bad[case[0]] = (case[1], f"{s.shape[0]} channels, expected {expected}{hint}")
    good = [g for g in good if g[0][0] not in bad]
    if meta["equallength"] and good:
        length = Counter(s.shape[-1] for _, s, _ in good).most_common(1)[0][0]
        for case, s, _ in good:
            if s.shape[-1] != length:
                reason = f"{s.shape[-1]} observations where the other cases have {length} (@equalLength is not false)"
                bad[case[0]] = (case[1], reason)
        good = [g for g in good if g[0][0] not in bad]
    named = "; ".join(f"case {i}, line {line}: {reason}" for i, (line, reason) in sorted(bad.items())[:5])
    named += f"; and {len(bad) - 5} more" if len(bad) > 5 else ""
    if not good:
        raise ValueError(f"{path}: no readable case ({named})")
    if bad:
        problems.append(f"{len(bad)} malformed case{'s' * (len(bad) > 1)} skipped ({named})")
    good.sort(key=lambda g: g[0][0])
    return [s for _, s, _ in good], [label for _, _, label in good] if labelled else None


def _aeon_reason(error: Exception) -> str:
    """aeon's message for one case read alone, less the temporary file's name, its case number and its boilerplate."""
    reason = re.sub(r"^Error loading .*?>\.\s*", "", str(error))
    reason = re.sub(r"\.?\s*The metadata specifies.*", "", reason, flags=re.DOTALL)
    return re.sub(r" in case \d+", "", reason).strip()


class SeriesFileDataModule(_SeriesDataModule):
    """Series from files: one file, a folder, or a glob; the files are read once, unreadable ones skipped and
    counted.

    Args:
        path: a ``.ts``, ``.csv``, ``.tsv``, ``.parquet``, ``.npy`` or ``.npz`` file, a folder of them, or a glob
            pattern.
        val_path: validation files, the same way (unset: ``val_fraction`` of the series or windows, see below).
        layout: CSV/TSV/Parquet layout: ``"wide"`` (a file is one series, a column per channel), ``"long"`` (id,
            time, value) or ``"rows"`` (a univariate series per row, the UCR archive's ``.tsv``: a label column
            and the values; shorter series end in empty cells; a header row is found by itself).
        columns: wide layout: the channel columns (unset: every numeric column).
        id_column: long layout: the series id.
        time_column: long layout: the time stamp or step.
        value_column: long layout: the value.
        label_column: long and rows layouts: the column of each series' label (optional), by header name or, in
            the rows layout, by number (``0``: the first column, as the UCR archive's files have it). Classes are
            numbered in sorted order, numerically when every label is a number (``1, 2, 10``), else as strings.
        normalize: z-normalise each series, every channel over time (UCR convention), after missing values are
            filled and before resampling.
        length: resample every series to this many steps (linear interpolation, after missing values are filled),
            as :class:`AeonDataModule`'s; unset: as read.
        labeled: ``path`` (and ``val_path``) is a folder of class folders, ``path/<class>/<file>`` (recordings of
            an activity, a machine state...): every series of a file is labelled with its sub-folder's name.
        window, stride, nan_policy, val_fraction, jitter, scaling, crop, batch_size, num_workers, seed: the windows,
            split, augmentation and loading every series data module shares.
    """

    class_order = staticmethod(label_order)

    @validated
    def __init__(
        self,
        path: str,
        val_path: str | None = None,
        layout: Literal["wide", "long", "rows"] = "wide",
        columns: list[str] | None = None,
        id_column: str = "id",
        time_column: str = "time",
        value_column: str = "value",
        label_column: NonNegativeInt | str | None = None,
        normalize: bool = False,
        length: PositiveInt | None = None,
        labeled: bool = False,
        **kwargs: Any,
    ) -> None:
        if labeled and label_column is not None:
            raise ConfigError(
                "SeriesFileDataModule: labels come from sub-folders (labeled) or from a label_column, not both"
            )
        if label_column is not None and layout == "wide":
            raise ConfigError(
                "SeriesFileDataModule.label_column: the wide layout is one series per file, with no label column; "
                "labels come with layout 'long' (a label per id) or 'rows' (a label per row)"
            )
        if isinstance(label_column, int) and layout != "rows":
            raise ConfigError(
                f"SeriesFileDataModule.label_column: a column number ({label_column}) names a column of the rows "
                "layout's header-less files; in the long layout give the header name"
            )
        if columns is not None and layout != "wide":
            raise ConfigError("SeriesFileDataModule.columns: the channel columns of the wide layout only")
        super().__init__(**kwargs)
        self.path, self.val_path, self.layout, self.columns = path, val_path, layout, columns
        self.id_column, self.time_column, self.value_column = id_column, time_column, value_column
        self.label_column, self.normalize, self.length, self.labeled = label_column, normalize, length, labeled

    def _prepare(self, series: list[Tensor]) -> list[Tensor]:
        series = super()._prepare(series)
        if self.normalize:
            series = z_normalize(series)
        return series if self.length is None else resample(series, self.length)

    def _files(self, path: str) -> FileList:
        if os.path.isdir(path):
            return scan_folder(path, SERIES_EXTENSIONS, labeled=self.labeled)
        if self.labeled:
            raise ConfigError(
                f"SeriesFileDataModule.labeled reads classes from the sub-folders of a folder; {path!r} is none"
            )
        files = sorted(glob.glob(path))
        if not files:
            raise FileNotFoundError(f"SeriesFileDataModule: nothing matches {path!r}")
        return FileList(tuple(files))

    def _read(self, path: str) -> tuple[list[Tensor], list[Any] | None]:
        columns = (self.layout, self.columns, self.id_column, self.time_column, self.value_column, self.label_column)
        # Every file is read once, at setup; any reader's failure skips the file, counted and named (FileSamples).
        files = FileSamples(self._files(path), partial(_read_file, columns=columns), errors=(Exception,))
        series, labels = [], []
        for sample in (files[i] for i in range(len(files))):
            if isinstance(sample, Unreadable):
                self.num_skipped += 1
                warnings.warn(f"skipping unreadable {sample.source}: {sample.reason}", RuntimeWarning, stacklevel=2)
                continue
            if sample["problems"]:  # one line per file
                self.num_skipped += sample["malformed"]
                warnings.warn(f"{sample['path']}: {'; '.join(sample['problems'])}", RuntimeWarning, stacklevel=2)
            series += sample["series"]
            if "label" in sample:  # labeled: the file's sub-folder names the class of every series in it
                labels += [files.files.classes[int(sample["label"])]] * len(sample["series"])
            else:
                labels += sample["labels"] if sample["labels"] is not None else [None] * len(sample["series"])
        if not series:
            raise FileNotFoundError(f"SeriesFileDataModule: no readable series in {path!r}")
        return series, None if any(label is None for label in labels) else labels

    def load(self):
        train, train_labels = self._read(self.path)
        if self.val_path is None:
            return train, train_labels, None, None
        val, val_labels = self._read(self.val_path)
        return train, train_labels, val, val_labels


def _read_file(path: str, columns: tuple) -> dict[str, Any]:
    problems: list[str] = []
    series, labels = read_series(path, *columns, problems=problems)
    malformed = sum(int(p.split()[0]) for p in problems if "skipped" in p)
    return {"series": series, "labels": labels, "problems": problems, "malformed": malformed, "path": path}


def generate_trajectories(count: int, length: int, dims: int, noise: float, seed: int) -> tuple[Tensor, Tensor]:
    """Tracks ``[count, dims, length]`` of three motion models, labels ``[count]``: 0 constant velocity, 1 a constant
    turn, 2 a stop (braking to rest at a random step). Positions start at the origin; observation noise added."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % 3
    speed = 0.5 + torch.rand(count, generator=g)
    heading = torch.rand(count, generator=g) * 2 * math.pi
    turn = torch.where(labels == 1, (torch.rand(count, generator=g) - 0.5) * 0.3, 0.0)
    t = torch.arange(length, dtype=torch.float32)
    angle = heading[:, None] + turn[:, None] * t  # [S, L]
    stop = (length * (0.3 + 0.4 * torch.rand(count, generator=g)))[:, None]
    brake = torch.where(labels[:, None] == 2, (1 - t / stop).clamp_min(0), 1.0)
    velocity = torch.stack([angle.cos(), angle.sin()], dim=1) * (speed[:, None] * brake)[:, None]  # [S, 2, L]
    if dims == 3:
        climb = (torch.rand(count, 1, generator=g) - 0.5) * 0.2 * brake
        velocity = torch.cat([velocity, climb[:, None].expand(-1, 1, length)], dim=1)
    positions = torch.cumsum(velocity, dim=-1) * 0.1
    positions = positions - positions[..., :1]
    return positions + noise * torch.randn(positions.shape, generator=g), labels


class TrajectoryDataModule(_SeriesDataModule):
    """Generated agent tracks (positions over time, 2-D or 3-D), labelled by motion model, no download.

    Args:
        count: tracks.
        length: steps per track.
        dims: 2 or 3 coordinates.
        noise: observation noise (position units).
        val_fraction: share held out.
        batch_size: tracks per batch.
        num_workers: loader processes.
        seed: seed of the generation and shuffling.
    """

    @validated
    def __init__(
        self,
        count: PositiveInt = 1200,
        length: PositiveInt = 64,
        dims: Literal[2, 3] = 2,
        noise: Annotated[float, Field(ge=0)] = 0.01,
        val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2,
        batch_size: PositiveInt = 64,
        num_workers: NonNegativeInt = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(val_fraction=val_fraction, batch_size=batch_size, num_workers=num_workers, seed=seed)
        self.count, self.length, self.dims, self.noise = count, length, dims, noise

    def load(self):
        tracks, labels = generate_trajectories(self.count, self.length, self.dims, self.noise, self.seed)
        n_val = max(1, round(self.count * self.val_fraction))
        names = ["constant_velocity", "turn", "stop"]
        to_names = lambda ids: [names[i] for i in ids.tolist()]  # noqa: E731
        return list(tracks[n_val:]), to_names(labels[n_val:]), list(tracks[:n_val]), to_names(labels[:n_val])
