"""Data helpers every modality's data modules share.

* :class:`EpochShuffleSampler`: a shuffle that depends only on ``(seed, epoch)``. Lightning calls ``set_epoch`` on it
  (and forwards the call through its distributed wrapper), so a run resumed from a checkpoint sees exactly the
  batches an uninterrupted run would have seen.
* :func:`collate_skipping` and :class:`SkippedSamples`: a dataset returns ``None`` for a sample it cannot read; the
  collate drops it and counts it in the batch, and the data module adds the counts up. A corrupt file costs one
  sample, never the epoch.
"""

import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Sampler, default_collate

__all__ = ["SKIPPED_KEY", "EpochShuffleSampler", "SkippedSamples", "collate_skipping"]

SKIPPED_KEY = "_skipped"


class EpochShuffleSampler(Sampler[int]):
    """Random permutation of ``range(size)`` drawn from ``seed`` and the epoch number.

    Args:
        size: number of samples.
        seed: base seed.
        shuffle: ``False`` yields ``0, 1, ..., size - 1`` (for validation).
    """

    def __init__(self, size: int, seed: int = 0, shuffle: bool = True) -> None:
        self.size = size
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.size))
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


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
