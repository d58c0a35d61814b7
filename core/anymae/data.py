"""The data kit: what every modality's data modules share, so that a plugin's data module is its format and nothing
else.

* :class:`DataModule`: a ``LightningDataModule`` that builds its training and validation datasets once
  (:meth:`DataModule.build`) and serves them through :func:`make_loader`; :class:`FolderDataModule` adds a folder of
  files (labelled by sub-folder or not, a validation folder or a held-out share), so a file format is one
  ``reader``.
* :func:`scan_folder` (files by extension, labels from sub-folders, cached between setups), :func:`split_indices`
  (a deterministic train/validation split), :class:`FileSamples` (skip-and-count reading) and :class:`TensorSamples`
  (in-memory samples, augmented with per-sample seeds).
* :class:`EpochShuffleSampler`: a shuffle that depends only on ``(seed, epoch)``. Lightning calls ``set_epoch`` on it
  (and forwards the call through its distributed wrapper), so a run resumed from a checkpoint sees exactly the
  batches an uninterrupted run would have seen.
* :func:`collate_skipping` and :class:`SkippedSamples`: a dataset returns ``None`` for a sample it cannot read; the
  collate drops it and counts it in the batch, and the data module adds the counts up. A corrupt file costs one
  sample, never the epoch.
"""

import contextlib
import functools
import os
import pickle
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, default_collate

from .config import ConfigError

__all__ = [
    "SKIPPED_KEY",
    "UNREADABLE_KEY",
    "DataModule",
    "EpochLoader",
    "EpochShuffleSampler",
    "FileList",
    "FileSamples",
    "FolderDataModule",
    "SkippedSamples",
    "TensorSamples",
    "Unreadable",
    "collate_skipping",
    "make_loader",
    "sample_rng",
    "scan_folder",
    "split_indices",
    "split_key",
]

SKIPPED_KEY = "_skipped"
UNREADABLE_KEY = "_unreadable"


def _world() -> tuple[int, int]:
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
        super().__init__(range(size), num_replicas=1, rank=0, shuffle=shuffle, seed=seed)
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
            generator = torch.Generator().manual_seed(_mix(self.seed, self.epoch))
            order = torch.randperm(self.size, generator=generator).tolist()
        else:
            order = list(range(self.size))
        padded = -(-self.size // ranks) * ranks
        order += order[: padded - self.size]
        if self._resume is not None and self._resume[0] == self.epoch:
            order = order[self._resume[1] :]
        return order[rank::ranks]

    def __iter__(self) -> Iterator[int | tuple[int, int]]:
        order = self.indices(*_world())
        self._resume = None
        if not self.sample_seeds:
            return iter(order)
        return ((index, _mix(self.seed, self.epoch, index)) for index in order)

    def __len__(self) -> int:
        """A rank's share of a whole epoch (also while resuming: the loop counts the batches already done)."""
        return -(-self.size // _world()[1])


def _mix(*values: int) -> int:
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


@dataclass(frozen=True)
class Unreadable:
    """What a dataset returns for a sample it cannot read: where it came from and why (``None`` also works)."""

    source: str
    reason: str


def collate_skipping(
    samples: Sequence[Mapping[str, Any] | Unreadable | None],
    collate: Callable[[list], dict[str, Any]] = default_collate,
) -> dict[str, Any]:
    """``collate`` (``default_collate``) of the readable samples, plus the number dropped under :data:`SKIPPED_KEY`
    and their :class:`Unreadable` records under :data:`UNREADABLE_KEY` (reported by :class:`SkippedSamples` in the
    main process: once per file, whatever the number of workers)."""
    kept = [s for s in samples if s is not None and not isinstance(s, Unreadable)]
    batch: dict[str, Any] = collate(kept) if kept else {}
    batch[SKIPPED_KEY] = torch.tensor(len(samples) - len(kept))
    batch[UNREADABLE_KEY] = [s for s in samples if isinstance(s, Unreadable)]
    return batch


class SkippedSamples:
    """Mixin for a ``LightningDataModule`` whose loaders use :func:`collate_skipping`: takes the skip records out of
    each batch before it reaches the model, warns once per unreadable file (one line, in the main process), and
    counts: :attr:`num_skipped` in all, and per epoch for the model's report (:meth:`epoch_report`)."""

    num_skipped: int = 0

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if isinstance(batch, dict) and SKIPPED_KEY in batch:
            skipped = batch.pop(SKIPPED_KEY)
            count = int(skipped.sum()) if isinstance(skipped, Tensor) else int(skipped)
            seen = self.__dict__.setdefault("_reported", set())
            for record in batch.pop(UNREADABLE_KEY, []):
                if record.source not in seen:
                    seen.add(record.source)
                    warnings.warn(f"skipping unreadable {record.source}: {record.reason}", RuntimeWarning, stacklevel=2)
            self.num_skipped += count
            trainer = getattr(self, "trainer", None)
            if trainer is None or trainer.training:
                epoch_skipped, epoch_read = self.__dict__.get("_epoch", (0, 0))
                size = next((len(v) for v in batch.values() if isinstance(v, Tensor) and v.dim() > 0), 0)
                self._epoch = (epoch_skipped + count, epoch_read + size)
        return batch

    def epoch_report(self) -> tuple[int, int]:
        """``(training samples skipped, training samples read)`` since the last call (the model asks at the end of
        each epoch)."""
        report = self.__dict__.get("_epoch", (0, 0))
        self._epoch = (0, 0)
        return report


# ------------------------------------------------------------------------------------------------------ datasets
def split_indices(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """A deterministic random split of ``range(n)``: ``(train, val)``, ``val`` holding ``round(n * val_fraction)``
    indices (at least one when the fraction is positive)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = max(1, round(n * val_fraction)) if val_fraction > 0 else 0
    return order[n_val:], order[:n_val]


@dataclass(frozen=True)
class FileList:
    """Files found by :func:`scan_folder`: paths, class indices (when labelled) and the class names."""

    paths: tuple[str, ...]
    labels: tuple[int, ...] | None = None
    classes: tuple[str, ...] = ()

    def subset(self, ids: Sequence[int]) -> "FileList":
        labels = None if self.labels is None else tuple(self.labels[i] for i in ids)
        return FileList(tuple(self.paths[i] for i in ids), labels, self.classes)

    def __len__(self) -> int:
        return len(self.paths)


@functools.lru_cache(maxsize=64)
def _scan(root: str, extensions: tuple[str, ...], labeled: bool, classes: tuple[str, ...] | None) -> FileList:
    paths = []
    for folder, folders, names in os.walk(root, followlinks=True):
        folders[:] = [f for f in folders if not f.startswith(".")]  # .ipynb_checkpoints, .git: not data
        paths += [os.path.join(folder, n) for n in names if n.lower().endswith(extensions) and not n.startswith(".")]
    paths.sort()
    if not labeled:
        return FileList(tuple(paths))
    found = tuple(sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")))
    pairs = [(p, Path(p).relative_to(root).parts) for p in paths]
    pairs = [(p, parts[0]) for p, parts in pairs if len(parts) > 1 and parts[0] in found]
    if not found:
        raise ConfigError(
            f"labeled=True reads classes from sub-folders, root/<class>/<file>; {root!r} has none ({len(paths)} "
            "matching files lie directly under it)"
        )
    classes = classes if classes is not None else found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise ConfigError(f"{root!r} has classes {unknown} that the training folder does not have ({list(classes)})")
    empty = sorted(set(found) - {name for _, name in pairs})
    if empty:
        raise ConfigError(f"{root!r}: class folders {empty} hold no file with extension {'/'.join(extensions)}")
    index = {name: i for i, name in enumerate(classes)}
    return FileList(tuple(p for p, _ in pairs), tuple(index[name] for _, name in pairs), tuple(classes))


def scan_folder(
    root: str | Path,
    extensions: Sequence[str],
    labeled: bool = False,
    classes: Sequence[str] | None = None,
    refresh: bool = False,
) -> FileList:
    """The files under ``root`` whose names end with one of ``extensions`` (case-insensitive), sorted.

    Labelled, each file's class is the sub-folder of ``root`` it lies in (sorted names, as torchvision's
    ``ImageFolder``; files directly under ``root`` and hidden folders are left out; a class folder with no matching
    file, or no class folder at all, is an error); pass the training folder's ``classes`` to read a validation folder
    with the same indices. Scans are cached per process (a data module set up again, an
    evaluation over several seeds); ``refresh=True`` scans again.
    """
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"no such folder {root!r}")
    key = (root, tuple(e.lower() for e in extensions), labeled, None if classes is None else tuple(classes))
    if refresh:
        _scan.cache_clear()
    return _scan(*key)


class TensorSamples(Dataset):
    """In-memory samples: tensors sharing their first dimension, sample ``i`` being ``{name: tensor[i]}``.

    Args:
        tensors: the data, e.g. ``{"image": [S, C, H, W], "label": [S]}``.
        transform: applied to each sample (a dict) under the per-sample seed an :class:`EpochShuffleSampler` with
            ``sample_seeds=True`` hands out (random augmentation that a resumed run repeats exactly).
    """

    def __init__(
        self, tensors: Mapping[str, Tensor], transform: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None = None
    ) -> None:
        sizes = {len(v) for v in tensors.values()}
        if len(sizes) != 1:
            raise ValueError(f"TensorSamples: tensors of different lengths {sorted(sizes)}")
        self.tensors, self.transform = dict(tensors), transform

    @property
    def labels(self) -> Tensor | None:
        return self.tensors.get("label")

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Tensor]:
        index, seed = split_key(key)
        sample = {name: value[index] for name, value in self.tensors.items()}
        if self.transform is None:
            return sample
        with sample_rng(seed):
            return self.transform(sample)


class FileSamples(Dataset):
    """Samples read from files by ``read(path) -> dict`` (plus ``"label"`` for labelled files).

    A file whose reading raises one of ``errors`` yields an :class:`Unreadable` record: :func:`collate_skipping` drops
    it and counts it, and the data module warns once naming it. ``read`` runs in the loader's workers under the
    sample's seed (see :class:`TensorSamples`), so it must pickle: a module-level function or a ``functools.partial``
    of one.
    """

    def __init__(
        self,
        files: FileList,
        read: Callable[[str], dict[str, Tensor]],
        errors: tuple[type[BaseException], ...] = (OSError, ValueError, RuntimeError),
    ) -> None:
        self.files, self.read, self.errors = files, read, errors

    @property
    def labels(self) -> tuple[int, ...] | None:
        return self.files.labels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Tensor] | Unreadable:
        index, seed = split_key(key)
        path = self.files.paths[index]
        try:
            with sample_rng(seed):
                sample = self.read(path)
        except self.errors as error:
            return Unreadable(f"file {path}", " ".join(str(error).split()) or type(error).__name__)
        if self.files.labels is not None:
            sample["label"] = torch.tensor(self.files.labels[index])
        return sample


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

    def __iter__(self) -> Iterator[Any]:
        prepared, self.prepared_epoch = self.prepared_epoch, None
        iterator = getattr(self, "_iterator", None)
        if prepared is None or iterator is None or prepared != getattr(self.sampler, "epoch", None):
            iterator = super().__iter__()
        if not (self.persistent_workers and self.num_workers > 0 and isinstance(self.sampler, EpochShuffleSampler)):
            return iterator
        return _EpochEnd(self, iterator)

    def _prepare_next_epoch(self, iterator: Any) -> None:
        if self.next_epoch is None or not self.next_epoch():
            return
        epoch = self.sampler.epoch + 1
        self.sampler.set_epoch(epoch)
        iterator._reset(self)  # what iter() does at the start of an epoch with persistent workers
        self.prepared_epoch = epoch


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
) -> DataLoader:
    """The loader of a kit data module: shuffled per epoch from ``seed`` when ``train``, in order otherwise, each
    sample drawn with its own seed (random augmentation, or a random subset of a file's points, that a resumed run
    repeats); the last partial training batch dropped (as MAE) when each rank still gets a whole one; workers kept
    between epochs, and a training loader's workers start on the next epoch's batches when this one's are all
    handed out when ``next_epoch()`` says one follows (:class:`EpochLoader`)."""
    ranks = _world()[1]
    return EpochLoader(
        dataset,
        batch_size=batch_size,
        sampler=EpochShuffleSampler(len(dataset), seed, shuffle=train, sample_seeds=True),
        num_workers=num_workers,
        collate_fn=collate_fn,
        pin_memory=torch.cuda.is_available(),
        drop_last=train and len(dataset) // ranks > batch_size,  # a rank sees 1/ranks of the data under DDP
        persistent_workers=num_workers > 0,
        next_epoch=next_epoch if train else None,
    )


class DataModule(SkippedSamples, pl.LightningDataModule, ABC):
    """The kit's base for a data module: subclasses implement :meth:`build`; setup (once), the loaders and the
    skip counts come from here.

    A subclass's constructor takes its own arguments (with pydantic types, for the CLI) and passes ``batch_size``,
    ``num_workers`` and ``seed`` on. Batches are dicts of tensors, with ``"label"`` when labelled (what
    ``anymae knn/probe/finetune`` read).
    """

    #: how samples become a batch (wrapped so unreadable samples are dropped and counted)
    collate: ClassVar[Callable[[list], dict[str, Any]]] = staticmethod(default_collate)

    def __init__(self, batch_size: int, num_workers: int, seed: int) -> None:
        super().__init__()
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self._position = (0, 0)  # (epoch, training batches handed to steps in it), saved in checkpoints
        self._resume_at: tuple[int, int] | None = None

    @abstractmethod
    def build(self) -> tuple[Dataset, Dataset | None]:
        """The training and validation datasets (validation ``None`` when there is none); called once."""

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.train_set, self.val_set = self.build()
        if not len(self.train_set):
            raise ConfigError(f"{type(self).__name__}: the training split is empty")

    def loader(self, dataset: Dataset, train: bool) -> DataLoader:
        collate = functools.partial(collate_skipping, collate=type(self).collate)
        return make_loader(
            dataset,
            self.batch_size,
            train=train,
            seed=self.seed,
            num_workers=self.num_workers,
            collate_fn=collate,
            next_epoch=self._another_epoch,
        )

    def _another_epoch(self) -> bool:
        """Whether the trainer fitting this module will run an epoch after the current one (asked when its last
        training batch is handed out, so that the loader's workers do not prepare an epoch that never comes)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None or not trainer.training:
            return False
        if trainer.should_stop or trainer.reload_dataloaders_every_n_epochs:
            return False
        if trainer.max_steps is not None and 0 <= trainer.max_steps <= trainer.global_step + 1:
            return False
        max_epochs = trainer.max_epochs
        return max_epochs is None or max_epochs < 0 or trainer.current_epoch + 1 < max_epochs

    def train_dataloader(self) -> DataLoader:
        loader = self.loader(self.train_set, train=True)
        if self._resume_at is not None:  # resumed mid-epoch: the sampler leaves out what the steps already saw
            epoch, batches = self._resume_at
            loader.sampler.resume(epoch, batches * self.batch_size * _world()[1])
            self._resume_at = None
        return loader

    def val_dataloader(self) -> DataLoader | list:
        return self.loader(self.val_set, train=False) if self.val_set is not None and len(self.val_set) else []

    def export_samples(self, split: str) -> Dataset | None:
        """The samples of ``split`` (``"train"`` or ``"val"``) as evaluation sees them, without random augmentation
        (what ``anymae shard`` writes)."""
        self.setup("fit")
        dataset = self.train_set if split == "train" else self.val_set
        if isinstance(dataset, TensorSamples) and dataset.transform is not None:
            return TensorSamples(dataset.tensors)
        return dataset

    # ------------------------------------------------------------------------------------ exact mid-epoch resume
    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Count the training batches that reach a step (after the loader's prefetching, unlike the loader's own
        count), so a checkpoint records exactly where the epoch stands."""
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.training:
            epoch, batches = self._position
            self._position = (trainer.current_epoch, batches + 1 if epoch == trainer.current_epoch else 1)
        return super().on_before_batch_transfer(batch, dataloader_idx)

    def state_dict(self) -> dict[str, Any]:
        epoch, batches = self._position
        return {"epoch": epoch, "batches": batches, "num_skipped": self.num_skipped}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.num_skipped = state_dict.get("num_skipped", 0)
        self._resume_at = (state_dict["epoch"], state_dict["batches"]) if "epoch" in state_dict else None
        self._position = self._resume_at or (0, 0)


class FolderDataModule(DataModule):
    """A folder of files, for pretraining (unlabelled) or evaluation (labelled, one sub-folder per class).

    Subclasses set :attr:`extensions` and implement :meth:`reader`; their constructor passes the folder arguments
    below on.

    Args:
        root: the training files: every matching file below it; with ``labeled``, ``root/<class>/<file>``.
        val_root: validation files laid out as ``root``; unset: ``val_fraction`` of ``root`` is held out.
        val_fraction: share of ``root`` held out for validation when ``val_root`` is unset (0: no validation).
        labeled: class labels from the sub-folder names (sorted).
        batch_size, num_workers, seed: as :class:`DataModule` (the seed also draws the held-out share).
    """

    extensions: ClassVar[tuple[str, ...]]
    #: what a reader raises for a bad file (skipped and counted)
    read_errors: ClassVar[tuple[type[BaseException], ...]] = (OSError, ValueError, RuntimeError)

    def __init__(
        self,
        root: str,
        val_root: str | None,
        val_fraction: float,
        labeled: bool,
        batch_size: int,
        num_workers: int,
        seed: int,
    ) -> None:
        super().__init__(batch_size, num_workers, seed)
        self.root, self.val_root, self.val_fraction, self.labeled = root, val_root, val_fraction, labeled
        self.classes: list[str] = []

    @abstractmethod
    def reader(self, train: bool) -> Callable[[str], dict[str, Tensor]]:
        """The function that reads one file into a sample (raising one of :attr:`read_errors` on a bad file), with
        training augmentation when ``train``; it runs in the loader's workers, so it must pickle."""

    def export_samples(self, split: str) -> Dataset | None:
        self.setup("fit")
        dataset = self.train_set if split == "train" else self.val_set
        return None if dataset is None else FileSamples(dataset.files, self.reader(train=False), self.read_errors)

    def files(self, root: str, classes: Sequence[str] | None, split: str) -> FileList:
        """The samples under ``root`` for ``split`` (``"train"`` or ``"val"``; ``classes``: the training split's, so
        the validation split numbers them alike): every file with one of :attr:`extensions`, labelled by sub-folder
        when :attr:`labeled` (:func:`scan_folder`). Override for another layout (folders of frames, a list file)."""
        return scan_folder(root, self.extensions, self.labeled, classes)

    def build(self) -> tuple[FileSamples, FileSamples | None]:
        name = type(self).__name__
        try:
            files = self.files(self.root, None, "train")
        except FileNotFoundError:
            raise FileNotFoundError(f"{name}: no such folder {self.root!r}") from None
        if not len(files):
            raise FileNotFoundError(f"{name}: no {'/'.join(self.extensions)} files under {self.root!r}")
        val = None
        if self.val_root is not None:
            val = self.files(self.val_root, files.classes or None, "val")
        elif self.val_fraction > 0:
            train_ids, val_ids = split_indices(len(files), self.val_fraction, self.seed)
            files, val = files.subset(train_ids), files.subset(val_ids)
        self.classes = list(files.classes)
        if self.num_workers > 0:  # a reader that does not pickle fails in the workers, after setup: say so now
            try:
                pickle.dumps(self.reader(train=True))
            except Exception as error:
                raise ConfigError(
                    f"{name}.reader must pickle to run in loader workers (a module-level function or a partial of "
                    f"one): {type(error).__name__}: {error}"
                ) from None
        train_set = FileSamples(files, self.reader(train=True), self.read_errors)
        val_set = FileSamples(val, self.reader(train=False), self.read_errors) if val is not None and len(val) else None
        return train_set, val_set
