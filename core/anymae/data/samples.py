"""Datasets and what a sample that cannot be read becomes.

A dataset returns an :class:`Unreadable` record (or ``None``) for a sample it cannot read; :func:`collate_skipping`
drops it and counts it in the batch, and :class:`SkippedSamples` (a data module mixin) warns once per file and adds
the counts up. A corrupt file costs one sample, never the epoch. :func:`scan_folder` lists a folder's files by
extension (labels from sub-folders), :func:`split_indices` draws a deterministic held-out share, and
:class:`TensorSamples` / :class:`FileSamples` read samples under their per-sample seed.
"""

import functools
import os
import warnings
from collections.abc import Callable, Mapping, Sequence, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, default_collate

from ..config import ConfigError
from .sampling import sample_rng, split_key

__all__ = [
    "SKIPPED_KEY",
    "UNREADABLE_KEY",
    "FileList",
    "FileSamples",
    "SkippedSamples",
    "TensorSamples",
    "Unreadable",
    "collate_skipping",
    "dataset_len",
    "scan_folder",
    "split_indices",
]


SKIPPED_KEY = "_skipped"


UNREADABLE_KEY = "_unreadable"


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
    counts: :attr:`num_skipped` reads in all (a file is read again each epoch and each validation), the files in
    :attr:`unreadable_sources`, and per epoch for the model's report (:meth:`epoch_report`)."""

    num_skipped: int = 0

    @property
    def unreadable_sources(self) -> set[str]:
        """The unreadable files (each :class:`Unreadable`'s ``source``) met so far; a sample returned as ``None``
        names none."""
        sources: set[str] = self.__dict__.setdefault("_reported", set())
        return sources

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if isinstance(batch, dict) and SKIPPED_KEY in batch:
            skipped = batch.pop(SKIPPED_KEY)
            count = int(skipped.sum()) if isinstance(skipped, Tensor) else int(skipped)
            seen = self.unreadable_sources
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
def dataset_len(dataset: Dataset) -> int:
    """The number of samples of a map-style dataset (torch's ``Dataset`` leaves ``__len__`` to its subclasses)."""
    if not isinstance(dataset, Sized):
        raise TypeError(f"{type(dataset).__name__} is not a map-style dataset: it has no length")
    return len(dataset)


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
    located = [(p, Path(p).relative_to(root).parts) for p in paths]
    pairs = [(p, parts[0]) for p, parts in located if len(parts) > 1 and parts[0] in found]
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
