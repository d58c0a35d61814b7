"""PooledDataModule: sources concatenated with a source index, shapes checked, labels dropped, weighted draws,
epoch orders from the seed, unreadable samples skipped and counted, and a model trains on a pool."""

import warnings
from collections import Counter
from functools import partial

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

import anymae
from anymae import FileList, FileSamples, TensorSamples
from anymae.data.pooled import PooledDataModule, WeightedPoolSampler
from anymae.testing import fast_dev_run, tiny_model

from .toys import SeriesTokenizer, sinusoids


class Series(anymae.DataModule):
    """``count`` labelled series ``[2, length]`` (``val`` more for validation), each marked by ``offset``."""

    def __init__(self, count=8, length=32, val=0, offset=0.0, name=None, batch_size=4):
        super().__init__(batch_size, 0, seed=0)
        self.count, self.length, self.val, self.offset, self.name = count, length, val, offset, name

    def build(self):
        def samples(n, seed):
            return TensorSamples({"series": sinusoids(n, 2, self.length, seed) + self.offset, "label": torch.arange(n)})

        return samples(self.count, 0), samples(self.val, 1) if self.val else None


class Loaders(pl.LightningDataModule):
    """A plain LightningDataModule (not the kit's): its datasets come from its loaders."""

    def __init__(self, count=5):
        super().__init__()
        self.items = [{"series": torch.full((2, 32), 9.0), "label": torch.tensor(1)} for _ in range(count)]

    def train_dataloader(self):
        return DataLoader(self.items, batch_size=2)


def read(path: str) -> dict[str, torch.Tensor]:
    if path.endswith("bad"):
        raise ValueError("not a series")
    return {"series": torch.zeros(2, 32)}


def pooled(*sources, **kwargs):
    data = PooledDataModule(list(sources), **{"batch_size": 4, **kwargs})
    data.setup("fit")
    return data


def every_batch(data, loader):
    return [data.on_before_batch_transfer(b, 0) for b in loader]


def test_training_and_validation_splits_concatenate_with_a_source_index():
    data = pooled(Series(6, val=3), Series(10, offset=5.0), Loaders(5), Series(4, val=2))
    assert len(data.train_set) == 6 + 10 + 5 + 4 and data.train_set.sizes() == [6, 10, 5, 4]
    assert len(data.val_set) == 3 + 2  # sources without validation add none
    assert data.names == ["Series#0", "Series#1", "Loaders", "Series#3"]
    sample = data.train_set[6 + 2]
    assert sample["source"].dtype == torch.int64 and int(sample["source"]) == 1 and sample["series"].min() > 2
    assert "label" not in sample and int(data.train_set[16]["source"]) == 2
    loader = data.train_dataloader()
    batches = every_batch(data, loader)
    sources = torch.cat([b["source"] for b in batches])
    assert len(sources) == len(loader) * 4 == 24  # drop_last: 25 // 4 whole batches
    assert all(set(b) == {"series", "source"} for b in batches)
    val = every_batch(data, data.val_dataloader())
    assert torch.cat([b["source"] for b in val]).tolist() == [0, 0, 0, 3, 3]  # validation in order


def test_sources_by_name_and_labels_kept_on_request():
    data = PooledDataModule({"a": Series(3), "b": Loaders(2)}, batch_size=2, keep_labels=True)
    data.setup("fit")
    assert data.names == ["a", "b"] and data.train_set[4]["label"] == 1 and int(data.train_set[4]["source"]) == 1
    batch = next(iter(data.val_dataloader() or data.train_dataloader()))
    assert set(batch) >= {"series", "label", "source"}


def test_mismatched_samples_name_both_sources():
    with pytest.raises(
        anymae.ConfigError,
        match=r"sources short and long give 'series' of shape \(2, 16\) and "
        r"\(2, 32\); resample them to one length",
    ):
        PooledDataModule({"short": Series(length=16), "long": Series()}, batch_size=2).setup("fit")
    bad = Loaders()
    bad.items = [{"values": torch.zeros(3)}]
    with pytest.raises(anymae.ConfigError, match=r"sources GunPoint and Loaders give samples with keys"):
        PooledDataModule([Series(name="GunPoint"), bad], batch_size=2).setup("fit")
    with pytest.raises(anymae.ConfigError, match="3 weights for 2 sources"):
        PooledDataModule([Series(), Series()], batch_size=2, weights=[1, 2, 3])
    with pytest.raises(anymae.ConfigError, match="weights"):
        PooledDataModule([Series(), Series()], batch_size=2, weights=[1, -2])


def test_weights_set_each_sources_share_reproducibly():
    sizes, weights = [10, 40, 150], [2.0, 1.0, 1.0]
    sampler = WeightedPoolSampler(sizes, weights, seed=3)
    sampler.set_epoch(0)
    order = list(sampler)
    assert len(order) == 200 and len(sampler) == 200
    counts = Counter(0 if i < 10 else 1 if i < 50 else 2 for i in order)
    assert counts == {0: 100, 1: 50, 2: 50}  # 2:1:1 of an epoch of the pool's size
    small = Counter(i for i in order if i < 10)
    assert set(small.values()) == {10}  # a source weighted up repeats each sample equally
    assert len({i for i in order if i >= 50}) == 50  # one weighted down: a subset without repeats
    again = WeightedPoolSampler(sizes, weights, seed=3)
    again.set_epoch(0)
    assert list(again) == order
    sampler.set_epoch(1)
    assert list(sampler) != order
    other = WeightedPoolSampler(sizes, weights, seed=4)
    other.set_epoch(0)
    assert list(other) != order
    # mid-epoch resume and ranks, as the kit's sampler
    sampler.set_epoch(0)
    sampler.resume(0, 60)
    assert list(sampler) == order[60:]
    assert sampler.indices(1, 2) == order[1::2]


def test_weighted_pool_batches_come_in_proportion():
    data = pooled(Series(8), Series(24, offset=5.0), weights=[1.0, 1.0], seed=1)
    loader = data.train_dataloader()
    loader.sampler.set_epoch(0)
    sources = torch.cat([b["source"] for b in every_batch(data, loader)])
    assert len(sources) == 32 and (sources == 0).sum() == 16  # an 8-sample source gives half the epoch


def test_epoch_order_depends_on_seed_and_epoch_only():
    def order(seed, epoch):
        data = pooled(Series(8), Series(8, offset=5.0), seed=seed)
        loader = data.train_dataloader()
        loader.sampler.set_epoch(epoch)
        return torch.cat([b["series"][:, 0, 0] + 100 * b["source"] for b in every_batch(data, loader)])

    first = order(0, 0)
    assert len(first) == 16 and len(set(first.tolist())) == 16  # every sample once
    assert torch.equal(order(0, 0), first)
    assert not torch.equal(order(0, 1), first) and not torch.equal(order(1, 0), first)


class Files(anymae.DataModule):
    def __init__(self, paths):
        super().__init__(batch_size=2, num_workers=0, seed=0)
        self.paths = paths

    def build(self):
        return FileSamples(FileList(tuple(self.paths)), partial(read)), None


def test_an_unreadable_sample_of_one_source_is_skipped_and_counted():
    data = pooled(Series(6), Files(["a", "b", "bad", "c"]), batch_size=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batches = every_batch(data, data.train_dataloader())
    assert data.num_skipped == 1 and any("skipping unreadable file bad" in str(w.message) for w in caught)
    assert sum(len(b["source"]) for b in batches) == 9 and data.epoch_report() == (1, 9)
    assert data.state_dict()["num_skipped"] == 1


def test_a_tiny_model_trains_on_a_pool():
    data = pooled(Series(8, val=4), Series(8, offset=1.0), Loaders(4), batch_size=4)
    trainer = fast_dev_run(tiny_model(SeriesTokenizer(patch=4, channels=2, length=32)), data)
    assert trainer.global_step == 1
