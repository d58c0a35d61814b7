"""``anymae stats``: the mean and standard deviation of any data module's samples, per key and channel, printed with
the ``data: init_args: mean/std`` lines to paste into its config.

    anymae stats --config examples/image/mae_vit_base_imagefolder.yaml --limit 2000
    anymae stats --config my_clips.yaml --key video

The data module is the ``data:`` section of a config (any registered data module, and any plugin's). It is set up for
``fit`` and its training samples are read as evaluation sees them (``export_samples("train")``: no random
augmentation), one at a time, by the data module's loader workers; ``--limit N`` reads a random subset of N samples
(drawn with ``--seed``). Each floating-point entry of a sample except ``label`` counts (``--key`` keeps one), its
first dimension being the channels (a 1-D entry is one channel) unless the data module's ``channel_axes`` names
another (a point cloud's ``[N, 3]`` points: the last); integer entries (lengths, frame counts) are left out. The
moments are merged sample by sample in float64 (Chan et al.), so the data never has to fit in memory; the
standard deviation is the population one. Unreadable samples are skipped and counted.

A data module that takes ``mean`` and ``std`` arguments is built with its normalisation off: mean 0 and std 1 of the
shape it takes (one number, or one per channel; when they are unset, one per ``bands`` or ``in_chans``), so the
figures are of the raw values. The figures are per channel where it takes a sequence and one number where it takes a
scalar (an audio fbank's). A data module that divides by a multiple of ``std`` (Audio-MAE's ``(x - mean) / (2
std)``) is probed once, with mean 1, to undo that factor, so the printed ``std`` is the one to give it. A data module
without ``mean`` and ``std`` arguments gets its samples' figures as it gives them, and no lines to paste.
``anymae fbank_stats`` (audio plugin) and ``anymae band_stats`` (image plugin) read a folder of files directly.
"""

import copy
import inspect
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..config import ConfigError, instantiate_component
from ..data.samples import Unreadable, dataset_len
from .errors import read_yaml
from .parser import command_parser

__all__ = ["Moments", "run"]


class Moments:
    """Running per-channel count, mean and sum of squared deviations (float64), merged sample by sample; values that
    are not finite (a series' missing steps) do not count."""

    def __init__(self) -> None:
        self.count = torch.zeros(0, dtype=torch.float64)
        self.mean = torch.zeros(0, dtype=torch.float64)
        self.m2 = torch.zeros(0, dtype=torch.float64)

    def add(self, values: Tensor) -> None:
        """Add one sample's values ``[C, N]`` (channel ``c``'s ``N`` values in row ``c``)."""
        values = values.to(torch.float64)
        seen = values.isfinite()
        n = seen.sum(1).to(torch.float64)
        mean = torch.where(seen, values, 0.0).sum(1) / n.clamp_min(1)
        m2 = torch.where(seen, values - mean[:, None], 0.0).square().sum(1)
        if not len(self.count):
            self.count, self.mean, self.m2 = n, mean, m2
            return
        if len(n) != len(self.count):
            raise ValueError(f"{len(n)} channels where the samples before had {len(self.count)}")
        total = self.count + n
        delta = mean - self.mean
        share = n / total.clamp_min(1)
        self.mean = self.mean + delta * share
        self.m2 = self.m2 + m2 + delta.square() * self.count * share
        self.count = total

    @property
    def std(self) -> Tensor:
        return (self.m2 / self.count.clamp_min(1)).sqrt()


def run(argv: Sequence[str]) -> int:
    parser = command_parser("stats", __doc__)
    parser.add_argument("--config", required=True, help="a config whose data: section names the data module")
    parser.add_argument("--limit", type=int, default=0, help="a random subset of this many samples (0: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --limit subset")
    parser.add_argument("--key", help="the one sample entry to measure (default: every floating-point entry)")
    options = parser.parse_args(argv)
    if options.limit < 0:
        parser.error(f"--limit must be 0 (all) or positive, got {options.limit}")
    config = read_yaml(options.config) or {}
    if not isinstance(config, dict) or "data" not in config:
        raise ConfigError(f"{options.config}: no data: section to measure")
    section = config["data"]
    data = instantiate_component(section, pl.LightningDataModule)
    name = type(data).__name__
    if not hasattr(data, "export_samples"):
        raise ConfigError(f"stats: {name} cannot list its samples (no export_samples)")
    scalar: bool | None = None  # one number (the data module's mean is a float), per channel, or no mean/std at all
    scales: dict[str, float] = {}
    if _normalises(data):
        scalar, zeros = _unnormalised(data)
        data = instantiate_component(_with_norm(section, zeros, 0.0), pl.LightningDataModule)
        probe = instantiate_component(_with_norm(section, zeros, 1.0), pl.LightningDataModule)
        scales = _scales(data, probe, name)
    else:
        print(f"{name} takes no mean and std: the figures are of its samples as it gives them")
    samples = data.export_samples("train")
    if samples is None:
        raise ConfigError(f"stats: {name} has no training samples")
    total = dataset_len(samples)
    indices = list(range(total))
    if options.limit and total > options.limit:
        generator = torch.Generator().manual_seed(options.seed)
        indices = sorted(torch.randperm(total, generator=generator)[: options.limit].tolist())
    axes = getattr(data, "channel_axes", {})
    moments, read, skipped = _measure(samples, indices, getattr(data, "num_workers", 0), options.key, scalar, axes)
    if not read:
        raise ConfigError(f"stats: no readable sample among the {len(indices)} read ({skipped} unreadable)")
    if not moments:
        what = f"no entry {options.key!r}" if options.key else "no floating-point entry besides label"
        raise ConfigError(f"stats: {name}'s samples have {what}")
    print(f"{name}: {read} training samples of {total} read ({skipped} unreadable skipped)")
    figures = {}
    for key, found in moments.items():
        scale = scales.get(key, 1.0)
        mean, std = (found.mean * scale).tolist(), (found.std * scale).tolist()
        figures[key] = (mean, std)
        channels = "one number" if scalar else f"{len(mean)} channel{'s' * (len(mean) > 1)}"
        print(f"{key} ({channels}): mean {_yaml(mean, scalar)}, std {_yaml(std, scalar)}")
        if any(s == 0 for s in std):
            print(f"{key}: a channel is constant (std 0); normalising by it would divide by zero")
    if scalar is None:
        return 0
    if len(figures) > 1:
        print(f"several entries ({', '.join(figures)}): pass --key to print the lines for one")
        return 0
    mean, std = next(iter(figures.values()))
    print(f"data:\n  init_args:\n    mean: {_yaml(mean, scalar)}\n    std: {_yaml(std, scalar)}")
    return 0


def _normalises(data: pl.LightningDataModule) -> bool:
    """Whether the data module's constructor takes ``mean`` and ``std``."""
    parameters = inspect.signature(type(data).__init__).parameters
    return "mean" in parameters and "std" in parameters


def _unnormalised(data: pl.LightningDataModule) -> tuple[bool, float | list[float]]:
    """Whether the data module's ``mean`` is one number, and a zero mean of the same shape (one per ``bands`` or
    ``in_chans`` when it is unset)."""
    mean = getattr(data, "mean", None)
    if isinstance(mean, (int, float)):
        return True, 0.0
    if mean is None:
        mean = [0.0] * int(getattr(data, "bands", None) or getattr(data, "in_chans", None) or 0)
        if not mean:
            raise ConfigError(
                f"stats: {type(data).__name__}.mean is unset and its shape unknown: give mean and std in the config "
                "(any values of the right shape; anymae stats replaces them)"
            )
    return False, [0.0] * len(mean)


def _with_norm(section: Any, zeros: float | list[float], mean: float) -> dict[str, Any]:
    """The ``data:`` section with ``mean`` set to ``mean`` and ``std`` to 1, in the shape of ``zeros``."""
    section = copy.deepcopy(section) if isinstance(section, dict) else {"class_path": section}
    shaped = (lambda v: [v] * len(zeros)) if isinstance(zeros, list) else (lambda v: v)
    section.setdefault("init_args", {}).update(mean=shaped(mean), std=shaped(1.0))
    return section


def _scales(raw: Any, probe: Any, name: str) -> dict[str, float]:
    """Per sample entry, the factor ``a`` of a normalisation ``(x - mean) / (a * std)`` (1 for an entry that it leaves
    alone): the same sample read with mean 0 and with mean 1 (std 1) differs by ``1 / a`` everywhere."""
    zero, one = raw.export_samples("train"), probe.export_samples("train")
    if zero is None or one is None:
        return {}
    for index in range(min(dataset_len(zero), 100)):  # the first readable sample
        first, second = zero[index], one[index]
        if _readable(first) and _readable(second):
            break
    else:
        return {}
    scales = {}
    for key, value in first.items():
        if not _measured(key, value) or not isinstance(second.get(key), Tensor):
            continue
        difference = (value.double() - second[key].double()).flatten()
        difference = difference[difference.isfinite()]
        if not len(difference) or difference.abs().max() < 1e-9:
            continue  # not normalised by mean and std
        typical = difference.median()
        if not torch.allclose(difference, typical.expand_as(difference), rtol=1e-3, atol=1e-6):
            raise ConfigError(
                f"stats: {name} does not normalise {key!r} as (x - mean) / (a * std), so anymae stats cannot turn its "
                "normalisation off"
            )
        scales[key] = float(1 / typical)
    return scales


def _measure(
    samples: Dataset, indices: list[int], workers: int, key: str | None, scalar: bool | None, axes: dict[str, int]
) -> tuple[dict[str, Moments], int, int]:
    """Moments per measured entry of the samples at ``indices``, and the numbers read and skipped as unreadable;
    ``axes``: the channel axis of the entries whose channels are not their first dimension."""
    loader = DataLoader(samples, batch_size=None, sampler=indices, num_workers=workers, collate_fn=_as_is)
    moments: dict[str, Moments] = {}
    read = skipped = 0
    for sample in loader:
        if not _readable(sample):
            skipped += 1
            continue
        read += 1
        for name, value in sample.items():
            if (key is not None and name != key) or not _measured(name, value):
                continue
            if name in axes and value.ndim > 1:
                value = value.movedim(axes[name], 0)
            values = value.reshape(1, -1) if scalar or value.ndim <= 1 else value.reshape(len(value), -1)
            try:
                moments.setdefault(name, Moments()).add(values)
            except ValueError as error:
                raise ConfigError(f"stats: {name!r}: {error}") from None
    return moments, read, skipped


def _readable(sample: Any) -> bool:
    return sample is not None and not isinstance(sample, Unreadable)


def _measured(key: str, value: Any) -> bool:
    return key != "label" and isinstance(value, Tensor) and value.is_floating_point()


def _as_is(sample: Any) -> Any:
    """The loader's collate: each sample as the dataset gives it (a module-level function: workers pickle it)."""
    return sample


def _yaml(values: list[float], scalar: bool | None) -> str:
    if scalar:
        return f"{values[0]:.6f}"
    return "[" + ", ".join(f"{v:.6f}" for v in values) + "]"
