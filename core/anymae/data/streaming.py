"""Data beyond one disk: shards written by ``anymae shard`` and streamed back, locally or from an object store.

The shards are litdata's (Lightning's streaming format: chunked binary files and an ``index.json``, written by
``litdata.optimize`` and read by ``litdata.StreamingDataset``), chosen because it is Lightning's own: it reads local
folders and ``s3://``/``gs://`` URLs alike, splits the data across ranks and loader workers by itself, shuffles per
epoch from a seed, and its ``StreamingDataLoader`` keeps a state that Lightning saves in checkpoints, so a run resumed
mid-epoch continues where it stopped. litdata is an optional dependency: ``pip install 'anymae[streaming]'``.
"""

from collections.abc import Iterator
from typing import Any

import lightning.pytorch as pl
from pydantic import NonNegativeInt, PositiveInt
from torch import Tensor
from torch.utils.data import Dataset

from ..config import validated
from ..lazy import require
from .samples import Unreadable, dataset_len

__all__ = ["StreamingDataModule", "write_shards"]


class _Samples:
    """litdata's ``fn``: the sample at an index, nothing for an unreadable one (a generator may yield nothing)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __call__(self, index: int) -> Iterator[dict[str, Tensor]]:
        sample = self.dataset[index]
        if sample is None or isinstance(sample, Unreadable):
            return
        yield {key: value for key, value in sample.items() if not key.startswith("_")}


def write_shards(dataset: Dataset, out: str, chunk_bytes: str = "64MB", workers: int = 1) -> int:
    """Write every readable sample of ``dataset`` (dicts of tensors) as litdata shards to ``out`` (a folder or an
    object-store URL); return how many were written."""
    litdata = require("litdata", install="anymae[streaming]", feature="anymae shard")
    litdata.optimize(
        fn=_Samples(dataset),
        inputs=list(range(dataset_len(dataset))),
        output_dir=out,
        chunk_bytes=chunk_bytes,
        num_workers=workers,
        mode="overwrite",
        verbose=False,
    )
    return len(litdata.StreamingDataset(out))


class StreamingDataModule(pl.LightningDataModule):
    """Samples from shards written by ``anymae shard``, streamed from a folder or an object-store URL.

    Args:
        train_dir: the training shards (``anymae shard --out X`` writes ``X/train``).
        val_dir: the validation shards (``X/val``), if any.
        batch_size: samples per batch (per device).
        num_workers: loader processes (each streams its own part of the shards).
        seed: the shuffle's seed (a new order every epoch, the same on every rank).
        shuffle: shuffle the training shards and samples.
        cache_dir: where remote chunks are cached (default: litdata's).
    """

    @validated
    def __init__(
        self,
        train_dir: str,
        val_dir: str | None = None,
        batch_size: PositiveInt = 64,
        num_workers: NonNegativeInt = 2,
        seed: int = 0,
        shuffle: bool = True,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.train_dir, self.val_dir, self.cache_dir = train_dir, val_dir, cache_dir
        self.batch_size, self.num_workers, self.seed, self.shuffle = batch_size, num_workers, seed, shuffle

    def _loader(self, directory: str, train: bool) -> Any:
        litdata = require("litdata", install="anymae[streaming]", feature="StreamingDataModule")
        dataset = litdata.StreamingDataset(
            directory, cache_dir=self.cache_dir, shuffle=train and self.shuffle, seed=self.seed, drop_last=train
        )
        return litdata.StreamingDataLoader(dataset, batch_size=self.batch_size, num_workers=self.num_workers)

    def train_dataloader(self) -> Any:
        return self._loader(self.train_dir, train=True)

    def val_dataloader(self) -> Any:
        return self._loader(self.val_dir, train=False) if self.val_dir else []
