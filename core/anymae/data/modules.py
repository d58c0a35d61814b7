"""The kit's data modules: a plugin's data module is its format and nothing else.

:class:`DataModule` builds its training and validation datasets once (:meth:`DataModule.build`), serves them through
:func:`~anymae.data.loaders.make_loader`, counts skipped samples and records in checkpoints where the epoch stands
(exact mid-epoch resume); :class:`FolderDataModule` adds a folder of files (labelled by sub-folder or not, a
validation folder or a held-out share), so a file format is one ``reader``.
"""

import functools
import pickle
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Annotated, Any, ClassVar, cast

import lightning.pytorch as pl
from pydantic import Field, NonNegativeInt, PositiveInt
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, default_collate

from ..config import ConfigError, PathStr, validated
from .listing import listed_files
from .loaders import make_loader
from .samples import (
    FileList,
    FileSamples,
    SkippedSamples,
    TensorSamples,
    collate_skipping,
    dataset_len,
    scan_folder,
    split_indices,
)
from .sampling import EpochShuffleSampler, world

__all__ = ["DataModule", "FolderDataModule"]


class DataModule(SkippedSamples, pl.LightningDataModule, ABC):
    """The kit's base for a data module: subclasses implement :meth:`build`; setup (once), the loaders and the
    skip counts come from here.

    A subclass's constructor takes its own arguments (with pydantic types, for the CLI) and passes the loader
    arguments below on: by name through ``**kwargs`` (``super().__init__(**kwargs)``: the CLI and the config
    records read them from here, with these defaults), or explicitly where its defaults differ. Batches are dicts of
    tensors, with ``"label"`` when labelled (what ``anymae knn/probe/finetune`` read).

    Args:
        batch_size: samples per batch (per device).
        num_workers: loader processes (in-memory data: 0 is fine).
        seed: seed of the split, the epoch order and the random augmentation.
    """

    #: how samples become a batch (wrapped so unreadable samples are dropped and counted)
    collate: ClassVar[Callable[[list], dict[str, Any]]] = staticmethod(default_collate)
    #: the axis of a sample's entry that holds its channels, where it is not the first (a point cloud's ``[N, 3]``
    #: points: ``{"points": -1}``); what ``anymae stats`` reports per channel
    channel_axes: ClassVar[dict[str, int]] = {}

    @validated
    def __init__(self, batch_size: PositiveInt = 32, num_workers: NonNegativeInt = 0, seed: int = 0) -> None:
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
        if not dataset_len(self.train_set):
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
            resumable=train,  # the position is in state_dict below
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
        if self.train_set is None:
            raise RuntimeError(f"{type(self).__name__}.train_dataloader: call setup() first")
        loader = self.loader(self.train_set, train=True)
        if self._resume_at is not None:  # resumed mid-epoch: the sampler leaves out what the steps already saw
            epoch, batches = self._resume_at
            cast(EpochShuffleSampler, loader.sampler).resume(epoch, batches * self.batch_size * world()[1])
            self._resume_at = None
        return loader

    def val_dataloader(self) -> DataLoader | list:
        return self.loader(self.val_set, train=False) if self.val_set is not None and dataset_len(self.val_set) else []

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
        unreadable = sorted(self.unreadable_sources)
        return {"epoch": epoch, "batches": batches, "num_skipped": self.num_skipped, "unreadable": unreadable}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.num_skipped = state_dict.get("num_skipped", 0)
        self.unreadable_sources.update(state_dict.get("unreadable", ()))
        self._resume_at = (state_dict["epoch"], state_dict["batches"]) if "epoch" in state_dict else None
        self._position = self._resume_at or (0, 0)


class FolderDataModule(DataModule):
    """A folder of files, for pretraining (unlabelled) or evaluation (labelled: one sub-folder per class, or a list
    file).

    Subclasses set :attr:`extensions` and implement :meth:`reader`; their constructor takes ``root`` and its own
    arguments, and forwards the others below through ``**kwargs`` (``super().__init__(root, **kwargs)``), declaring
    one itself only to change its default.

    Args:
        root: the training files: every matching file below it; with ``labeled``, ``root/<class>/<file>``.
        val_root: validation files laid out as ``root``; unset: ``val_fraction`` of ``root`` is held out.
        val_fraction: share of ``root`` held out for validation when ``val_root`` is unset (0: no validation).
        labeled: class labels from the sub-folder names (sorted, as torchvision's ``ImageFolder``).
        batch_size: samples per batch (per device).
        num_workers: loader processes; files are read and decoded there.
        seed: seed of the held-out share, the epoch order and the random augmentation.
        file_list: the training files are the ones this list file names (relative to ``root``), not every file
            below ``root``: a file per line (ShapeNet-55's ``train.txt``), ``path,label`` CSV rows (a header row is
            skipped; an extensionless ``id`` is tried with each of :attr:`extensions`) or ``path label`` lines
            (Kinetics, Something-Something). Its labels, when it has them, label the files (``labeled`` or not);
            see :func:`anymae.data.listing.listed_files`.
        val_file_list: the same for the validation files, relative to ``val_root`` (unset: ``root``).
    """

    extensions: ClassVar[tuple[str, ...]]
    train_set: FileSamples | None  # what build makes
    val_set: FileSamples | None
    #: what a reader raises for a bad file (skipped and counted)
    read_errors: ClassVar[tuple[type[BaseException], ...]] = (OSError, ValueError, RuntimeError)

    @validated
    def __init__(
        self,
        root: PathStr,
        val_root: PathStr | None = None,
        val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.0,
        labeled: bool = False,
        batch_size: PositiveInt = 8,
        num_workers: NonNegativeInt = 4,
        seed: int = 0,
        file_list: PathStr | None = None,  # last: a plugin passing the arguments above by position keeps working
        val_file_list: PathStr | None = None,
    ) -> None:
        super().__init__(batch_size, num_workers, seed)
        self.root, self.val_root, self.val_fraction, self.labeled = root, val_root, val_fraction, labeled
        self.file_list, self.val_file_list = file_list, val_file_list
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
        the validation split numbers them alike): the files the split's list file names (:func:`listed_files`), or
        every file with one of :attr:`extensions`, labelled by sub-folder when :attr:`labeled` (:func:`scan_folder`).
        Override for another layout (folders of frames)."""
        listing = self.file_list if split == "train" else self.val_file_list
        if listing is not None:
            return listed_files(listing, root, self.extensions, classes, self.labeled)
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
        if self.val_root is not None or self.val_file_list is not None:
            val = self.files(self.val_root or self.root, files.classes or None, "val")
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
