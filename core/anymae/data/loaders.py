"""The loaders of the kit's data modules: shuffled per epoch from a seed, each sample with its own seed, workers
kept between epochs and sent on to the next epoch's first batches while the last step, validation and checkpointing
run (:class:`EpochLoader`)."""

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from .samples import collate_skipping, dataset_len
from .sampling import EpochShuffleSampler, world

__all__ = ["EpochLoader", "ResumableLoader", "make_loader"]


# ------------------------------------------------------------------------------------------------------ loaders
class EpochLoader(DataLoader):
    """A ``DataLoader`` whose persistent workers go on to the next epoch as soon as this one's last batch is handed
    out, so the next epoch's first batches load while the last step, validation and checkpointing run (instead of
    after them, the main process waiting). Being an :class:`EpochShuffleSampler`'s, the next epoch's order is known
    from its number alone: the batches are those an epoch started afterwards would get.

    Only with workers, only when ``next_epoch()`` (asked as the epoch's last batch is handed out; unset: never) says
    another epoch follows, and only after an epoch that ran to its end (not one cut short by
    ``limit_train_batches``). The sampler's epoch is then advanced by one: whoever iterates sets it again (Lightning
    does, before every epoch), and when it is set to another epoch the prepared batches are dropped and the epoch
    starts as a ``DataLoader``'s would.
    """

    def __init__(self, *args: Any, next_epoch: Callable[[], bool] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.next_epoch = next_epoch
        self.prepared_epoch: int | None = None  # the epoch the workers were sent ahead to (None: none)

    # torch annotates its own iterator class; an epoch that tells us its end is an _EpochEnd around one
    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        prepared, self.prepared_epoch = self.prepared_epoch, None
        iterator = getattr(self, "_iterator", None)
        if prepared is None or iterator is None or prepared != getattr(self.sampler, "epoch", None):
            iterator = super().__iter__()
        if not (self.persistent_workers and self.num_workers > 0 and isinstance(self.sampler, EpochShuffleSampler)):
            return iterator
        return _EpochEnd(self, iterator)

    def _prepare_next_epoch(self, iterator: Any) -> None:
        sampler = self.sampler  # an EpochShuffleSampler: __iter__ only hands out an _EpochEnd with one
        if not isinstance(sampler, EpochShuffleSampler) or self.next_epoch is None or not self.next_epoch():
            return
        epoch = sampler.epoch + 1
        sampler.set_epoch(epoch)
        iterator._reset(self)  # what iter() does at the start of an epoch with persistent workers
        self.prepared_epoch = epoch


class ResumableLoader(EpochLoader):
    """The training loader of a data module that records where the epoch stands and restores it on resume
    (:class:`~anymae.DataModule`'s ``state_dict``: the batches consumed, from which the sampler skips ahead).
    ``state_dict``/``load_state_dict`` hold nothing themselves: they tell Lightning the loader resumes exactly, so it
    does not warn that a mid-epoch resume is unreliable."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass


class _EpochEnd:
    """An epoch's iterator that tells its :class:`EpochLoader` when the epoch's last batch has been handed out."""

    def __init__(self, loader: EpochLoader, iterator: Any) -> None:
        self.loader, self.iterator = loader, iterator
        self.ended = False

    def __iter__(self) -> "_EpochEnd":
        return self

    def __len__(self) -> int:
        return len(self.iterator)

    def __next__(self) -> Any:
        if self.ended:  # the workers may have gone on to the next epoch: this one is over
            raise StopIteration
        batch = next(self.iterator)
        if self.iterator._num_yielded == len(self.iterator):
            self.ended = True
            if self.loader._iterator is self.iterator:
                self.loader._prepare_next_epoch(self.iterator)
        return batch


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    train: bool,
    seed: int,
    num_workers: int = 0,
    collate_fn: Callable[[list], Any] | None = collate_skipping,
    next_epoch: Callable[[], bool] | None = None,
    resumable: bool = False,
) -> DataLoader:
    """The loader of a kit data module: shuffled per epoch from ``seed`` when ``train``, in order otherwise, each
    sample drawn with its own seed (random augmentation, or a random subset of a file's points, that a resumed run
    repeats); the last partial training batch dropped (as MAE) when each rank still gets a whole one; workers kept
    between epochs, and a training loader's workers start on the next epoch's batches when this one's are all
    handed out when ``next_epoch()`` says one follows (:class:`EpochLoader`). ``resumable``: the caller records and
    restores the loader's position (:class:`ResumableLoader`)."""
    ranks = world()[1]
    return (ResumableLoader if resumable else EpochLoader)(
        dataset,
        batch_size=batch_size,
        sampler=EpochShuffleSampler(dataset_len(dataset), seed, shuffle=train, sample_seeds=True),
        num_workers=num_workers,
        collate_fn=collate_fn,
        pin_memory=torch.cuda.is_available(),
        drop_last=train and dataset_len(dataset) // ranks > batch_size,  # a rank sees 1/ranks of the data under DDP
        persistent_workers=num_workers > 0,
        next_epoch=next_epoch if train else None,
    )
