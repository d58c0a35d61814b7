"""Few-label evaluation data: ``n`` labelled examples per class for training, the held-out split for evaluation."""

import os
import warnings
from typing import Any

import lightning.pytorch as pl
import torch
from pydantic import PositiveInt
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from ..config import ConfigError, validated
from ..data.samples import dataset_len
from ..data.sampling import EpochShuffleSampler

__all__ = ["CACHED", "CachedFeatures", "FewLabels", "dataset_labels", "few_label_indices"]

#: the batch entry of cached encoder features (:class:`CachedFeatures`)
CACHED = "_features"


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
    return torch.stack([torch.as_tensor(dataset[i][key]) for i in range(dataset_len(dataset))])


def data_set_name(data: Any) -> str:
    """What results call a data module's data: its ``name`` (an aeon set, an embedded set such as ``"digits"``), else
    the file or folder it reads (``root`` or ``path``, as given), else its class."""
    name = getattr(data, "name", None)
    if isinstance(name, str) and name:
        return name
    for attribute in ("root", "path"):
        value = getattr(data, attribute, None)
        if isinstance(value, (str, os.PathLike)) and str(value):
            return str(value)
    return type(data).__name__


class FewLabels(pl.LightningDataModule):
    """Wraps a labelled data module: trains on ``labels_per_class`` examples of each class of its training split
    (all of them when unset), evaluates on its validation split.

    Args:
        data: the labelled data module (batches carry ``label_key``).
        labels_per_class: examples per class to train on (e.g. 1, 5, 10); unset: the whole training split.
        seed: seed of the draw (and of the shuffling).
        label_key: the batch entry holding labels.
        carve_validation: evaluate on the training examples that were not drawn (without their random augmentation
            where the data module can say) instead of the validation split: a validation split for choosing a
            recipe or a read-out, so that the split a table scores is never looked at while choosing. Results name
            the data set ``"<name>/carved"``.
    """

    @validated
    def __init__(
        self,
        data: pl.LightningDataModule,
        labels_per_class: PositiveInt | None = None,
        seed: int = 0,
        label_key: str = "label",
        carve_validation: bool = False,
    ) -> None:
        super().__init__()
        if carve_validation and labels_per_class is None:
            raise ConfigError(
                "FewLabels.carve_validation needs labels_per_class: the carved validation split is the training "
                "examples that were not drawn"
            )
        self.data = data
        self.labels_per_class = labels_per_class
        self.seed = seed
        self.label_key = label_key
        self.carve_validation = carve_validation
        self.train_subset: Dataset | None = None
        self.carved: Dataset | None = None

    @property  # Lightning's LightningDataModule.name is a plain optional attribute; ours follows the data
    def name(self) -> str:  # type: ignore[override]
        """The wrapped data set's name, for results (:func:`data_set_name`); ``"<name>/carved"`` when scored on the
        carved validation split."""
        return data_set_name(self.data) + ("/carved" if self.carve_validation else "")

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
        try:
            indices = few_label_indices(labels, self.labels_per_class, self.seed)
        except ValueError:  # name the classes and their counts, as the user knows them
            counts = torch.bincount(labels.long().flatten()).tolist()
            names = list(getattr(self.data, "classes", None) or []) or [str(i) for i in range(len(counts))]
            short = [
                f"{names[i] if i < len(names) else i!r} ({n})"
                for i, n in enumerate(counts)
                if 0 < n < self.labels_per_class
            ]
            raise ConfigError(
                f"data.labels_per_class: {self.labels_per_class} labelled examples of each class are drawn, but the "
                f"training split has fewer of {', '.join(short[:10])}{' ...' if len(short) > 10 else ''}; lower "
                "labels_per_class or add examples"
            ) from None
        if len(indices) == len(dataset):
            warnings.warn(
                f"FewLabels: labels_per_class={self.labels_per_class} takes the whole labelled training split of "
                f"{self.name} ({len(dataset)} examples): every seed trains on the same examples, so seeds differ only "
                "in initialisation and order",
                stacklevel=1,
            )
        self.train_subset = Subset(dataset, indices.tolist())
        if self.carve_validation:
            rest = torch.ones(len(dataset), dtype=torch.bool)
            rest[indices] = False
            if not bool(rest.any()):
                raise ConfigError(
                    f"FewLabels.carve_validation: labels_per_class={self.labels_per_class} takes every training "
                    f"example of {self.name}; nothing is left to validate on"
                )
            export = getattr(self.data, "export_samples", None)
            plain = export("train") if callable(export) else None
            self.carved = Subset(plain if plain is not None else dataset, torch.nonzero(rest).flatten().tolist())

    def _training_subset(self) -> Dataset:
        """The examples drawn for training (after :meth:`setup`)."""
        if self.train_subset is None:
            raise RuntimeError("FewLabels: call setup() first")
        return self.train_subset

    def train_dataloader(self) -> DataLoader:
        template = self._train_loader
        subset = self._training_subset()
        batch_size = min(template.batch_size or 1, dataset_len(subset))
        return DataLoader(
            subset,
            batch_size=batch_size,
            sampler=EpochShuffleSampler(dataset_len(subset), self.seed),
            num_workers=template.num_workers,
            collate_fn=template.collate_fn,
            pin_memory=template.pin_memory,
            persistent_workers=template.num_workers > 0,  # workers started once per fit, not once per epoch
            drop_last=dataset_len(subset) % batch_size == 1,  # never a batch of one (a BatchNorm head needs two)
        )

    def _in_order(self, dataset: Dataset) -> DataLoader:
        """Every example of ``dataset`` once, in order, batched and collated as the wrapped module's training data."""
        template = self._train_loader
        return DataLoader(
            dataset,
            batch_size=template.batch_size or 1,
            shuffle=False,
            num_workers=template.num_workers,
            collate_fn=template.collate_fn,
        )

    def bank_dataloader(self) -> DataLoader:
        """The training examples in order, every one of them (a k-NN memory bank)."""
        return self._in_order(self._training_subset())

    def val_dataloader(self) -> Any:
        return self.data.val_dataloader() if self.carved is None else self._in_order(self.carved)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return self.data.on_before_batch_transfer(batch, dataloader_idx)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        self.data.trainer = self.trainer  # the wrapped module's batch hooks (mixup) ask whether training runs
        return self.data.on_after_batch_transfer(batch, dataloader_idx)


def _plain_training_set(data: pl.LightningDataModule) -> Dataset:
    """The training samples a data module (or a :class:`FewLabels` around one) trains on, without their random
    augmentation where the module can say (the data kit's ``export_samples``)."""
    inner = data.data if isinstance(data, FewLabels) else data
    dataset = data._training_subset() if isinstance(data, FewLabels) else inner.train_dataloader().dataset
    export = getattr(inner, "export_samples", None)
    plain = export("train") if callable(export) else None
    if plain is None:
        return dataset
    return Subset(plain, dataset.indices) if isinstance(dataset, Subset) else plain


class CachedFeatures(pl.LightningDataModule):
    """A labelled data module's samples as features of a frozen encoder, computed once, in batches, on ``device``:
    the training samples without random augmentation and the validation split. Batches are ``{CACHED: [B, D],
    label_key: [B]}``, shuffled and batched as :class:`FewLabels` does, so a probe on them sees what it would see
    running the encoder on every batch of unaugmented data.

    Args:
        data: the labelled data module (a :class:`FewLabels` or any module with labels).
        encode: a raw batch on ``device`` -> features ``[B, D]`` (the probe's frozen encoder).
        device: where the encoder runs.
        seed: shuffling seed (unset: the :class:`FewLabels`'s).
        label_key: the batch entry holding labels.
    """

    def __init__(
        self,
        data: pl.LightningDataModule,
        encode: Any,
        device: torch.device,
        seed: int | None = None,
        label_key: str = "label",
    ) -> None:
        super().__init__()
        data.setup("fit")
        self.label_key = label_key
        self.seed = seed if seed is not None else getattr(data, "seed", 0)
        template = data._train_loader if isinstance(data, FewLabels) else data.train_dataloader()
        self.batch_size = template.batch_size or 1
        self.train = self._features(data, _plain_training_set(data), template, encode, device)
        val = data.val_dataloader()
        self.val = self._features(data, val.dataset, val, encode, device) if val else None

    def _features(self, data: Any, dataset: Dataset, template: DataLoader, encode: Any, device: torch.device) -> dict:
        loader = DataLoader(
            dataset,
            batch_size=256,
            shuffle=False,
            num_workers=template.num_workers,
            collate_fn=template.collate_fn,
        )
        features, labels = [], []
        with torch.no_grad():
            for batch in loader:  # once per split
                batch = data.on_before_batch_transfer(batch, 0)  # counts skipped samples, drops the bookkeeping
                batch = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}
                features.append(encode(batch).float().cpu())
                labels.append(batch[self.label_key].cpu())
        return {CACHED: torch.cat(features), self.label_key: torch.cat(labels)}

    def train_dataloader(self) -> DataLoader:
        from ..data.samples import TensorSamples

        samples = TensorSamples(self.train)
        batch_size = min(self.batch_size, len(samples))
        return DataLoader(
            samples,
            batch_size=batch_size,
            sampler=EpochShuffleSampler(len(samples), self.seed),
            drop_last=len(samples) % batch_size == 1,  # never a batch of one (a BatchNorm head needs two)
        )

    def val_dataloader(self) -> Any:
        from ..data.samples import TensorSamples

        return [] if self.val is None else DataLoader(TensorSamples(self.val), batch_size=256)
