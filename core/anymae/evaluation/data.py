"""Few-label evaluation data: ``n`` labelled examples per class for training, the held-out split for evaluation."""

from typing import Any

import lightning.pytorch as pl
import torch
from pydantic import PositiveInt
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from ..config import ConfigError, validated
from ..data import EpochShuffleSampler

__all__ = ["FewLabels", "dataset_labels", "few_label_indices"]


def few_label_indices(labels: Tensor, per_class: int, seed: int) -> Tensor:
    """Indices of exactly ``per_class`` examples of every class, drawn with ``seed`` (sorted).

    Vectorised: a random key per example, a stable sort by class then key, and each example's rank within its class.
    """
    labels = labels.long().flatten()
    counts = torch.bincount(labels)
    present = counts[counts > 0]
    if bool((present < per_class).any()):
        short = torch.nonzero((counts > 0) & (counts < per_class)).flatten().tolist()
        raise ValueError(f"classes {short} have fewer than {per_class} labelled examples")
    key = torch.rand(len(labels), generator=torch.Generator().manual_seed(seed))
    order = torch.argsort(labels.double() + key.double() * 0.5, stable=True)  # by class, then random within
    sorted_labels = labels[order]
    first = torch.cumsum(counts, 0) - counts  # where each class starts in the sorted order
    rank = torch.arange(len(labels)) - first[sorted_labels]
    return order[rank < per_class].sort().values


def dataset_labels(dataset: Dataset, key: str = "label") -> Tensor:
    """The labels of a dataset: its ``labels`` attribute when it has one (cheap), else read sample by sample."""
    labels = getattr(dataset, "labels", None)
    if labels is not None:
        return torch.as_tensor(labels)
    return torch.stack([torch.as_tensor(dataset[i][key]) for i in range(len(dataset))])


class FewLabels(pl.LightningDataModule):
    """Wraps a labelled data module: trains on ``labels_per_class`` examples of each class of its training split
    (all of them when unset), evaluates on its validation split.

    Args:
        data: the labelled data module (batches carry ``label_key``).
        labels_per_class: examples per class to train on (e.g. 1, 5, 10); unset: the whole training split.
        seed: seed of the draw (and of the shuffling).
        label_key: the batch entry holding labels.
    """

    @validated
    def __init__(
        self,
        data: pl.LightningDataModule,
        labels_per_class: PositiveInt | None = None,
        seed: int = 0,
        label_key: str = "label",
    ) -> None:
        super().__init__()
        self.data = data
        self.labels_per_class = labels_per_class
        self.seed = seed
        self.label_key = label_key
        self.train_subset: Dataset | None = None

    @property
    def name(self) -> str:
        """The wrapped data module's class, with its data set's name when it has one (``AeonDataModule(GunPoint)``)."""
        inner = getattr(self.data, "name", None)
        return type(self.data).__name__ + (f"({inner})" if isinstance(inner, str) else "")

    def setup(self, stage: str | None = None) -> None:
        self.data.setup("fit")
        if self.train_subset is not None:
            return
        self._train_loader = self.data.train_dataloader()
        dataset = self._train_loader.dataset
        if self.labels_per_class is None:
            self.train_subset = dataset
            return
        labels = dataset_labels(dataset, self.label_key)
        if labels.is_floating_point():
            raise ConfigError("FewLabels.labels_per_class needs class labels; this data set's labels are continuous")
        self.train_subset = Subset(dataset, few_label_indices(labels, self.labels_per_class, self.seed).tolist())

    def train_dataloader(self) -> DataLoader:
        template = self._train_loader
        subset = self.train_subset
        batch_size = min(template.batch_size or 1, len(subset))
        return DataLoader(
            subset,
            batch_size=batch_size,
            sampler=EpochShuffleSampler(len(subset), self.seed),
            num_workers=template.num_workers,
            collate_fn=template.collate_fn,
            pin_memory=template.pin_memory,
            drop_last=len(subset) % batch_size == 1,  # never a batch of one (a BatchNorm head needs two)
        )

    def bank_dataloader(self) -> DataLoader:
        """The training examples in order, every one of them (a k-NN memory bank)."""
        template = self._train_loader
        return DataLoader(
            self.train_subset,
            batch_size=template.batch_size or 1,
            shuffle=False,
            num_workers=template.num_workers,
            collate_fn=template.collate_fn,
        )

    def val_dataloader(self) -> Any:
        return self.data.val_dataloader()

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return self.data.on_before_batch_transfer(batch, dataloader_idx)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        self.data.trainer = self.trainer  # the wrapped module's batch hooks (mixup) ask whether training runs
        return self.data.on_after_batch_transfer(batch, dataloader_idx)
