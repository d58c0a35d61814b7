"""Pretraining on a pool: several data sources mixed into one, so a model pretrains on every unlabelled sample at hand
and is evaluated few-label on one of them (``anymae knn/probe`` on the target set alone).

Pooling unlabelled sets of one modality for masked pretraining is what PatchTST's transfer experiments (Nie et al.
2023, https://arxiv.org/abs/2211.14730) and Ti-MAE (https://arxiv.org/abs/2301.08871) do for series; for images, MAE
pretrains on ImageNet and transfers (https://arxiv.org/abs/2111.06377).

:class:`PooledDataModule` concatenates the sources' training splits (and their validation splits), drops the labels
(different sets' label spaces do not mix) and adds a ``source`` index to each sample. It is modality-free: the
sources are any ``LightningDataModule``s whose samples agree in keys and shapes (series resampled to one length,
images to one size). An epoch visits every pooled sample once in an order drawn from ``(seed, epoch)``
(:class:`~anymae.EpochShuffleSampler`), or, with ``weights``, draws as many samples as the pool holds with each
source's share set by its weight (:class:`WeightedPoolSampler`); either way a resumed run continues exactly and DDP
ranks split the epoch, as every kit data module does. Samples a source cannot read are skipped and counted as theirs.
"""

import bisect
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import lightning.pytorch as pl
import torch
from pydantic import NonNegativeInt, PositiveFloat, PositiveInt
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, default_collate

from ..config import ConfigError, validated
from .loaders import EpochLoader, ResumableLoader
from .modules import DataModule
from .samples import Unreadable, collate_skipping, dataset_len
from .sampling import EpochShuffleSampler, mix_seed, sample_rng, split_key, world

__all__ = ["PooledDataModule", "PooledSamples", "WeightedPoolSampler"]

#: the batch entry holding each sample's source index
SOURCE_KEY = "source"


# ------------------------------------------------------------------------------------------------------ datasets
class PooledSamples(Dataset):
    """The samples of several datasets one after the other, each with its source's index under ``"source"``
    (an int64 scalar tensor: ``ids[i]`` for dataset ``i``, by default ``i``) and without ``"label"`` unless
    ``keep_labels``.

    A key may carry a per-sample seed (an :class:`~anymae.EpochShuffleSampler`'s ``(index, seed)``): the
    source's sample is then read under it (:func:`~anymae.sample_rng`), so a source's random augmentation is
    repeated exactly in a resumed run whatever the dataset class. An unreadable sample (``None`` or
    :class:`~anymae.Unreadable`) is passed on as it is, for the collate to drop and count.
    """

    def __init__(self, datasets: Sequence[Dataset], keep_labels: bool = False, ids: Sequence[int] | None = None):
        self.datasets, self.keep_labels = list(datasets), keep_labels
        self.ids = list(range(len(self.datasets)) if ids is None else ids)
        self.offsets = [0]
        for dataset in self.datasets:
            self.offsets.append(self.offsets[-1] + dataset_len(dataset))

    def sizes(self) -> list[int]:
        """Samples per source."""
        return [b - a for a, b in zip(self.offsets, self.offsets[1:], strict=False)]

    def locate(self, index: int) -> tuple[int, int]:
        """``(source, index within it)`` of pooled sample ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"pooled sample {index} out of range ({len(self)} samples)")
        source = bisect.bisect_right(self.offsets, index) - 1
        return source, index - self.offsets[source]

    def __len__(self) -> int:
        return self.offsets[-1]

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Tensor] | Unreadable | None:
        index, seed = split_key(key)
        source, local = self.locate(index)
        with sample_rng(seed):
            sample = self.datasets[source][local]
        return self.relabel(sample, self.ids[source])

    def relabel(self, sample: Any, source: int) -> Any:
        """``sample`` without its label (unless ``keep_labels``) and with its source index."""
        if sample is None or isinstance(sample, Unreadable):
            return sample
        sample = dict(sample)
        if not self.keep_labels:
            sample.pop("label", None)
        sample[SOURCE_KEY] = torch.tensor(source)
        return sample


# ------------------------------------------------------------------------------------------------------ sampling
class WeightedPoolSampler(EpochShuffleSampler):
    """An epoch of ``size`` pooled samples in which source ``s`` contributes ``size * w_s / sum(w)`` of them (rounded
    so that they add up to ``size``), drawn from ``(seed, epoch)``.

    Within a source the samples are taken without replacement, a fresh random permutation each time the source is
    used up (a source weighted up repeats every sample about equally; one weighted down shows a different random
    subset each epoch); the sources' draws are then shuffled together. Ranks, mid-epoch resume and per-sample seeds
    work as in :class:`~anymae.EpochShuffleSampler`.

    Args:
        sizes: samples per source (the pool lists the sources one after the other).
        weights: one positive weight per source.
        seed: base seed.
        sample_seeds: yield ``(index, seed)`` pairs (see :class:`~anymae.EpochShuffleSampler`).
    """

    def __init__(self, sizes: Sequence[int], weights: Sequence[float], seed: int = 0, sample_seeds: bool = False):
        if len(sizes) != len(weights):
            raise ConfigError(f"WeightedPoolSampler: {len(weights)} weights for {len(sizes)} sources")
        super().__init__(sum(sizes), seed, shuffle=True, sample_seeds=sample_seeds)
        self.sizes, self.weights = list(sizes), [float(w) for w in weights]
        self.counts = _shares(self.size, self.weights)
        empty = [s for s, (n, c) in enumerate(zip(self.sizes, self.counts, strict=True)) if c and not n]
        if empty:
            raise ConfigError(f"WeightedPoolSampler: sources {empty} have weight but no sample")

    def draw(self) -> list[int]:
        """This epoch's pooled indices (before the split across ranks)."""
        generator = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch))
        order, offset = [], 0
        for size, count in zip(self.sizes, self.counts, strict=True):
            rounds = -(-count // size) if size else 0
            drawn = [torch.randperm(size, generator=generator) for _ in range(rounds)]
            if drawn:
                order.append(torch.cat(drawn)[:count] + offset)
            offset += size
        pooled = torch.cat(order) if order else torch.empty(0, dtype=torch.long)
        return pooled[torch.randperm(len(pooled), generator=generator)].tolist()

    def indices(self, rank: int = 0, ranks: int = 1) -> list[int]:
        order = self.draw()
        padded = -(-self.size // ranks) * ranks
        order += order[: padded - self.size]
        if self._resume is not None and self._resume[0] == self.epoch:
            order = order[self._resume[1] :]
        return order[rank::ranks]


def _shares(total: int, weights: Sequence[float]) -> list[int]:
    """``total`` split in proportion to ``weights`` by largest remainders (the counts add up to ``total``)."""
    exact = [total * w / sum(weights) for w in weights]
    counts = [int(e) for e in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: counts[i] - exact[i])
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


# ------------------------------------------------------------------------------------------------------ collation
def collate_pooled(samples: list[dict[str, Any]], collate: Callable[[list], dict[str, Any]]) -> dict[str, Any]:
    """``collate`` of the samples without their source index, then the indices ``[B]`` under ``"source"`` (a
    source's own collate may keep only the keys it knows, as the series one does)."""
    sources = torch.stack([s[SOURCE_KEY] for s in samples])
    batch = collate([{k: v for k, v in s.items() if k != SOURCE_KEY} for s in samples])
    batch[SOURCE_KEY] = sources
    return batch


def _inner_collate(source: pl.LightningDataModule) -> Callable[[list], Any]:
    """How ``source`` turns samples into a batch, without the kit's skip counting around it."""
    if isinstance(source, DataModule):
        return type(source).collate
    collate = getattr(source.train_dataloader(), "collate_fn", None) or default_collate
    if isinstance(collate, functools.partial) and collate.func is collate_skipping:
        return collate.keywords.get("collate", default_collate)
    return collate


# ------------------------------------------------------------------------------------------------------ data module
class PooledDataModule(DataModule):
    """Several data modules pooled into one for pretraining: their training splits one after the other (and their
    validation splits; a source without one adds none), labels dropped, a ``source`` index per sample.

    The sources must give samples of the same keys and shapes (checked at setup on each source's first readable
    sample): resample series to one ``length`` (``AeonDataModule(length=...)``), images to one size. Each source is
    set up with its own arguments (splits, windows, augmentation); its ``batch_size`` and ``num_workers`` are not
    used (the pool's are). Batches are collated with the sources' collate when they all share one, else with
    ``default_collate``.

    From YAML::

        data:
          class_path: anymae.PooledDataModule
          init_args:
            batch_size: 32
            sources:
              - class_path: anymae_timeseries.AeonDataModule
                init_args: {name: GunPoint, length: 150}
              - class_path: anymae_timeseries.AeonDataModule
                init_args: {name: ArrowHead, length: 150}

    Args:
        sources: the data modules, a list or a mapping from a name (used in messages) to a data module.
        batch_size: samples per batch.
        num_workers: loader processes.
        seed: seed of the epoch order (and of the weighted draws).
        weights: per-source sampling weights: each epoch then draws as many samples as the pool holds, source ``s``
            giving a share ``w_s / sum(w)`` of them (:class:`WeightedPoolSampler`). Unset: every sample once per
            epoch.
        keep_labels: keep each sample's ``"label"`` (the sources' own label spaces, not merged).
    """

    @validated
    def __init__(
        self,
        sources: list[pl.LightningDataModule] | dict[str, pl.LightningDataModule],
        batch_size: PositiveInt = 32,
        num_workers: NonNegativeInt = 0,
        seed: int = 0,
        weights: list[PositiveFloat] | None = None,
        keep_labels: bool = False,
    ) -> None:
        super().__init__(batch_size, num_workers, seed)
        if not sources:
            raise ConfigError("PooledDataModule.sources: no source given")
        named = sources.items() if isinstance(sources, Mapping) else _names(sources)
        self.names, self.sources = [n for n, _ in named], [s for _, s in named]
        if weights is not None and len(weights) != len(self.sources):
            raise ConfigError(
                f"PooledDataModule.weights: {len(weights)} weights for {len(self.sources)} sources ({self.names})"
            )
        self.weights, self.keep_labels = weights, keep_labels
        self.collate_fn: Callable[[list], Any] = default_collate

    def build(self) -> tuple[PooledSamples, PooledSamples | None]:
        train, val, val_ids = [], [], []
        for i, (name, source) in enumerate(zip(self.names, self.sources, strict=True)):
            source.setup("fit")
            train_set, val_set = _splits(source)
            if train_set is None or not dataset_len(train_set):
                raise ConfigError(f"PooledDataModule: source {name} has no training samples")
            train.append(train_set)
            if val_set is not None and dataset_len(val_set):
                val.append(val_set)
                val_ids.append(i)
            self.num_skipped += getattr(source, "num_skipped", 0)  # skipped while loading (a file of series)
        self._check_shapes(train)
        collates = [_inner_collate(s) for s in self.sources]
        self.collate_fn = collates[0] if all(c is collates[0] for c in collates) else default_collate
        pooled_val = PooledSamples(val, self.keep_labels, val_ids) if val else None
        return PooledSamples(train, self.keep_labels), pooled_val

    def _check_shapes(self, datasets: list[Dataset]) -> None:
        """Every source's first readable training sample has the first source's keys and per-key shapes."""
        first: tuple[str, dict[str, tuple[int, ...]]] | None = None
        for name, dataset in zip(self.names, datasets, strict=True):
            sample = _first_readable(dataset)
            if sample is None:
                continue  # nothing readable at the start: its samples are skipped and counted when drawn
            if not self.keep_labels:
                sample.pop("label", None)
            shapes = {k: tuple(torch.as_tensor(v).shape) for k, v in sample.items() if _is_array(v)}
            if first is None:
                first = (name, shapes)
                continue
            other, expected = first
            if shapes.keys() != expected.keys():
                raise ConfigError(
                    f"PooledDataModule: sources {other} and {name} give samples with keys {sorted(expected)} and "
                    f"{sorted(shapes)}; pool sources of one kind"
                )
            for key, shape in expected.items():
                if shapes[key] != shape:
                    hint = "; resample them to one length" if len(shape) == 2 else "; bring them to one shape"
                    raise ConfigError(
                        f"PooledDataModule: sources {other} and {name} give {key!r} of shape {shape} and "
                        f"{shapes[key]}{hint}"
                    )

    def loader(self, dataset: Dataset, train: bool) -> DataLoader:
        collate = functools.partial(
            collate_skipping, collate=functools.partial(collate_pooled, collate=self.collate_fn)
        )
        if not train or self.weights is None:
            sampler = EpochShuffleSampler(dataset_len(dataset), self.seed, shuffle=train, sample_seeds=True)
        else:  # the pool's training set, which build made
            sampler = WeightedPoolSampler(
                cast(PooledSamples, dataset).sizes(), self.weights, self.seed, sample_seeds=True
            )
        ranks = world()[1]
        return (ResumableLoader if train else EpochLoader)(  # as make_loader, with the pool's sampler
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate,
            pin_memory=torch.cuda.is_available(),
            drop_last=train and dataset_len(dataset) // ranks > self.batch_size,
            persistent_workers=self.num_workers > 0,
            next_epoch=self._another_epoch if train else None,
        )


def _names(sources: Sequence[pl.LightningDataModule]) -> list[tuple[str, pl.LightningDataModule]]:
    """A name per source for messages: its ``name`` (an aeon set) or its class, numbered where two are alike."""
    given = [getattr(s, "name", None) for s in sources]
    names = [n if isinstance(n, str) else type(s).__name__ for n, s in zip(given, sources, strict=True)]
    names = [f"{n}#{i}" if names.count(n) > 1 else n for i, n in enumerate(names)]
    return list(zip(names, sources, strict=True))


def _splits(source: pl.LightningDataModule) -> tuple[Dataset | None, Dataset | None]:
    """A set-up source's training and validation datasets: a kit module's own, else its loaders'."""
    if isinstance(source, DataModule):
        return source.train_set, source.val_set
    train = source.train_dataloader().dataset
    if type(source).val_dataloader is pl.LightningDataModule.val_dataloader:
        return train, None
    loaders = source.val_dataloader()
    if isinstance(loaders, (list, tuple)):
        loaders = loaders[0] if loaders else None
    return train, None if loaders is None else loaders.dataset


def _first_readable(dataset: Dataset, tries: int = 64) -> dict[str, Any] | None:
    for index in range(min(dataset_len(dataset), tries)):
        sample = dataset[index]
        if sample is not None and not isinstance(sample, Unreadable):
            return dict(sample)
    return None


def _is_array(value: Any) -> bool:
    return isinstance(value, (Tensor, int, float)) or hasattr(value, "shape")
