"""Epoch orders that depend only on ``(seed, epoch)``, so a run resumed from a checkpoint sees exactly the batches an
uninterrupted one would have seen, and per-sample seeds for random augmentation.

:class:`EpochShuffleSampler` is a ``DistributedSampler``: Lightning calls its ``set_epoch`` (also through its
distributed wrapper), and under DDP rank ``r`` of ``R`` gets ``order[r::R]``.
"""

import contextlib
from collections.abc import Iterator

import torch
from torch.utils.data import DistributedSampler

__all__ = ["EpochShuffleSampler", "mix_seed", "sample_rng", "split_key", "world"]


def world() -> tuple[int, int]:
    """``(rank, number of ranks)`` of the running distributed job, ``(0, 1)`` outside one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class EpochShuffleSampler(DistributedSampler):
    """Random permutation of ``range(size)`` drawn from ``seed`` and the epoch number, split across ranks.

    Under a distributed job (Lightning's DDP/FSDP), rank ``r`` of ``R`` gets ``order[r::R]`` of the epoch's order,
    padded by repeating its first indices so every rank gets as many (as ``DistributedSampler``). Being a
    ``DistributedSampler``, it is not wrapped in another one that would shuffle again, so the order a rank sees
    depends only on ``(seed, epoch, rank)``, and a run resumed mid-epoch (:meth:`resume`) continues exactly.

    Args:
        size: number of samples.
        seed: base seed.
        shuffle: ``False`` yields ``0, 1, ..., size - 1`` (for validation).
        sample_seeds: yield ``(index, seed)`` pairs instead of indices, the seed derived from ``(seed, epoch,
            index)``; a dataset that draws its random augmentation under :func:`sample_rng` then augments each
            sample the same way in a resumed run, whatever the number of workers.
    """

    def __init__(self, size: int, seed: int = 0, shuffle: bool = True, sample_seeds: bool = False) -> None:
        # DistributedSampler's own fields are not used (ranks are read when iterating); num_replicas/rank are given
        # so that building one needs no process group.
        # (torch's annotation asks for a Dataset; DistributedSampler only takes its len())
        super().__init__(range(size), num_replicas=1, rank=0, shuffle=shuffle, seed=seed)  # type: ignore[arg-type]
        self.size = size
        self.sample_seeds = sample_seeds
        self._resume: tuple[int, int] | None = None

    def resume(self, epoch: int, consumed: int) -> None:
        """Leave out the first ``consumed`` samples (over all ranks) of epoch ``epoch``, once: a run resumed
        mid-epoch."""
        self._resume = (epoch, consumed)

    def indices(self, rank: int = 0, ranks: int = 1) -> list[int]:
        """The indices rank ``rank`` of ``ranks`` visits this epoch."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch))
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        padded = -(-self.size // ranks) * ranks
        order += order[: padded - self.size]
        if self._resume is not None and self._resume[0] == self.epoch:
            order = order[self._resume[1] :]
        return order[rank::ranks]

    def __iter__(self) -> Iterator[int | tuple[int, int]]:
        order = self.indices(*world())
        self._resume = None
        if not self.sample_seeds:
            return iter(order)
        return ((index, mix_seed(self.seed, self.epoch, index)) for index in order)

    def __len__(self) -> int:
        """A rank's share of a whole epoch (also while resuming: the loop counts the batches already done)."""
        return -(-self.size // world()[1])


def mix_seed(*values: int) -> int:
    """A 63-bit seed from integers (Python does not salt the hash of ints and tuples of ints)."""
    return hash(values) & 0x7FFF_FFFF_FFFF_FFFF


def split_key(key: int | tuple[int, int]) -> tuple[int, int | None]:
    """``(index, seed)`` from what an :class:`EpochShuffleSampler` yields (a bare index has no seed)."""
    return (key[0], key[1]) if isinstance(key, tuple) else (key, None)


@contextlib.contextmanager
def sample_rng(seed: int | None) -> Iterator[None]:
    """Run the block with torch's CPU random state seeded by ``seed`` (nothing changes when ``seed`` is None), and
    restore the state afterwards, so per-sample seeding never disturbs training's own random draws.

    Only the CPU generator is seeded: ``torch.manual_seed`` would also reseed every accelerator's generators (and not
    restore them), and costs a stack trace per backend even where there is none, once per sample.
    """
    if seed is None:
        yield
        return
    generator = torch.default_generator
    state = generator.get_state()
    generator.manual_seed(seed)
    try:
        yield
    finally:
        generator.set_state(state)
