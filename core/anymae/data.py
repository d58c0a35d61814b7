"""Data helpers every modality's data modules share.

* :class:`EpochShuffleSampler`: a shuffle that depends only on ``(seed, epoch)``. Lightning calls ``set_epoch`` on it
  (and forwards the call through its distributed wrapper), so a run resumed from a checkpoint sees exactly the
  batches an uninterrupted run would have seen.
* :func:`collate_skipping` and :class:`SkippedSamples`: a dataset returns ``None`` for a sample it cannot read; the
  collate drops it and counts it in the batch, and the data module adds the counts up. A corrupt file costs one
  sample, never the epoch.
"""

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Sampler, default_collate

__all__ = ["SKIPPED_KEY", "EpochShuffleSampler", "SkippedSamples", "collate_skipping", "sample_rng", "split_key"]

SKIPPED_KEY = "_skipped"


class EpochShuffleSampler(Sampler):
    """Random permutation of ``range(size)`` drawn from ``seed`` and the epoch number.

    Args:
        size: number of samples.
        seed: base seed.
        shuffle: ``False`` yields ``0, 1, ..., size - 1`` (for validation).
        sample_seeds: yield ``(index, seed)`` pairs instead of indices, the seed derived from ``(seed, epoch,
            index)``; a dataset that draws its random augmentation under :func:`sample_rng` then augments each
            sample the same way in a resumed run, whatever the number of workers.
    """

    def __init__(self, size: int, seed: int = 0, shuffle: bool = True, sample_seeds: bool = False) -> None:
        self.size = size
        self.seed = seed
        self.shuffle = shuffle
        self.sample_seeds = sample_seeds
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int | tuple[int, int]]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(_mix(self.seed, self.epoch))
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = range(self.size)
        if not self.sample_seeds:
            return iter(order)
        return ((index, _mix(self.seed, self.epoch, index)) for index in order)

    def __len__(self) -> int:
        return self.size


def _mix(*values: int) -> int:
    """A 63-bit seed from integers (Python does not salt the hash of ints and tuples of ints)."""
    return hash(values) & 0x7FFF_FFFF_FFFF_FFFF


def split_key(key: int | tuple[int, int]) -> tuple[int, int | None]:
    """``(index, seed)`` from what an :class:`EpochShuffleSampler` yields (a bare index has no seed)."""
    return (key[0], key[1]) if isinstance(key, tuple) else (key, None)


@contextlib.contextmanager
def sample_rng(seed: int | None) -> Iterator[None]:
    """Run the block with torch's CPU random state seeded by ``seed`` (nothing changes when ``seed`` is None), and
    restore the state afterwards, so per-sample seeding never disturbs training's own random draws."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def collate_skipping(samples: Sequence[Mapping[str, Any] | None]) -> dict[str, Any]:
    """``default_collate`` of the samples that are not ``None``, plus the number dropped under :data:`SKIPPED_KEY`."""
    kept = [s for s in samples if s is not None]
    batch: dict[str, Any] = default_collate(kept) if kept else {}
    batch[SKIPPED_KEY] = torch.tensor(len(samples) - len(kept))
    return batch


class SkippedSamples:
    """Mixin for a ``LightningDataModule`` whose loaders use :func:`collate_skipping`: takes the skip count out of
    each batch before it reaches the model, and keeps the total in :attr:`num_skipped`."""

    num_skipped: int = 0

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if isinstance(batch, dict) and SKIPPED_KEY in batch:
            skipped = batch.pop(SKIPPED_KEY)
            count = int(skipped.sum()) if isinstance(skipped, Tensor) else int(skipped)
            if count and not self.num_skipped:
                warnings.warn(
                    "unreadable samples are being skipped (each is reported once as it is met); "
                    "the total is in the data module's num_skipped",
                    RuntimeWarning,
                    stacklevel=2,
                )
            self.num_skipped += count
        return batch
