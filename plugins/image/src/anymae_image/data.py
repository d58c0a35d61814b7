"""Image data modules.

* :class:`DigitsDataModule`: scikit-learn's bundled handwritten digits (1,797 grayscale 8x8 images, UCI ML
  hand-written digits), upsampled; it ships inside the scikit-learn wheel, so nothing is downloaded.
* :class:`ImageFolderDataModule`: a folder of PNG/JPEG files, unlabeled (any layout) or ImageFolder-style labeled
  (one sub-folder per class), with MAE's pretraining transform (``RandomResizedCrop(scale=(0.2, 1.0))``, bicubic,
  horizontal flip, ImageNet normalisation). An unreadable file is skipped and counted, never fatal.

Batches are dicts: ``{"image": [B, C, H, W] float, "label": [B] long}`` (``label`` only when labeled).
"""

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import lightning.pytorch as pl
import torch
from pydantic import Field, NonNegativeInt, PositiveInt
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from anymae import (
    ConfigError,
    EpochShuffleSampler,
    SkippedSamples,
    collate_skipping,
    require,
    sample_rng,
    split_key,
    validated,
)

__all__ = ["DigitsDataModule", "ImageFiles", "ImageFolderDataModule"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _TensorImages(Dataset):
    """In-memory images (and labels) as dict samples."""

    def __init__(self, images: Tensor, labels: Tensor | None) -> None:
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        sample = {"image": self.images[index]}
        if self.labels is not None:
            sample["label"] = self.labels[index]
        return sample


def _split(n: int, val_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = max(1, round(n * val_fraction)) if val_fraction > 0 else 0
    return order[n_val:], order[:n_val]


def _take(items: list | None, ids: Tensor) -> list | None:
    return None if items is None else [items[i] for i in ids.tolist()]


class DigitsDataModule(pl.LightningDataModule):
    """scikit-learn's digits, upsampled to ``image_size`` with bicubic interpolation, labeled 0-9.

    Images are scaled to [0, 1], then standardised with the training split's mean and standard deviation.

    Args:
        image_size: side of the upsampled square images.
        in_chans: 1 (grayscale) or 3 (the gray channel repeated, for RGB models).
        batch_size: samples per batch.
        val_fraction: share of the 1,797 images held out for validation.
        num_workers: DataLoader worker processes (the data is in memory; 0 is fastest).
        seed: seed of the train/validation split and of the shuffling.
    """

    @validated
    def __init__(
        self,
        image_size: PositiveInt = 32,
        in_chans: Literal[1, 3] = 1,
        batch_size: PositiveInt = 64,
        val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1,
        num_workers: NonNegativeInt = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.image_size = image_size
        self.in_chans = in_chans
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.num_workers = num_workers
        self.seed = seed
        self.train_set: _TensorImages | None = None
        self.val_set: _TensorImages | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        datasets = require("sklearn.datasets", install="anymae-image[digits]", feature="DigitsDataModule")
        digits = datasets.load_digits()
        images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        images = torch.nn.functional.interpolate(
            images, size=(self.image_size, self.image_size), mode="bicubic", align_corners=False
        ).clamp_(0, 1)
        labels = torch.tensor(digits.target, dtype=torch.long)
        train, val = _split(len(images), self.val_fraction, self.seed)
        mean, std = images[train].mean(), images[train].std()
        images = ((images - mean) / std).expand(-1, self.in_chans, -1, -1).contiguous()
        self.train_set = _TensorImages(images[train], labels[train])
        self.val_set = _TensorImages(images[val], labels[val])

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            sampler=EpochShuffleSampler(len(self.train_set), self.seed),
            num_workers=self.num_workers,
            drop_last=len(self.train_set) > self.batch_size,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size, num_workers=self.num_workers)


class ImageFiles(Dataset):
    """Image files (and labels), loaded with PIL and transformed; an unreadable file yields ``None``.

    Use with :func:`anymae.collate_skipping`, which drops the ``None`` samples and counts them. Indexed with an
    ``(index, seed)`` pair (``EpochShuffleSampler(sample_seeds=True)``), the random transform draws from ``seed``.
    """

    def __init__(
        self,
        paths: Sequence[str],
        labels: Sequence[int] | None,
        transform: Callable[[Any], Tensor],
        mode: str = "RGB",
    ) -> None:
        self.paths = list(paths)
        self.labels = None if labels is None else list(labels)
        self.transform = transform
        self.mode = mode

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Tensor] | None:
        from PIL import Image, UnidentifiedImageError

        index, seed = split_key(key)  # a seed when the sampler gives one: the same crop in a resumed run
        path = self.paths[index]
        try:
            with Image.open(path) as image, sample_rng(seed):
                pixels = self.transform(image.convert(self.mode))
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as error:
            warnings.warn(f"skipping unreadable image {path}: {error}", RuntimeWarning, stacklevel=2)
            return None
        sample = {"image": pixels}
        if self.labels is not None:
            sample["label"] = torch.tensor(self.labels[index])
        return sample


class ImageFolderDataModule(SkippedSamples, pl.LightningDataModule):
    """A folder of images, for pretraining (unlabeled) or probing (labeled, one sub-folder per class).

    Args:
        root: the training images. Unlabeled: every image file below it. Labeled: ``root/<class>/<file>``.
        val_root: validation images, laid out as ``root``; when unset, ``val_fraction`` of ``root`` is held out.
        val_fraction: share of ``root`` held out for validation when ``val_root`` is unset (0: no validation).
        labeled: read class labels from the sub-folder names (sorted, as torchvision's ``ImageFolder``).
        image_size: output side length ``H = W``.
        crop_scale: area range of MAE's ``RandomResizedCrop`` ((0.2, 1.0) in MAE pretraining).
        hflip: random horizontal flips (MAE: on).
        augment: the random crop and flips on the training split; off, it gets the evaluation transform (for k-NN
            banks and feature extraction).
        in_chans: 3 reads RGB, 1 reads grayscale.
        mean: per-channel normalisation mean; unset: ImageNet's for RGB, 0.5 for grayscale.
        std: per-channel normalisation std; unset: ImageNet's for RGB, 0.5 for grayscale.
        batch_size: samples per batch (per device).
        num_workers: DataLoader worker processes.
        seed: seed of the validation split and of the shuffling.
    """

    @validated
    def __init__(
        self,
        root: str,
        val_root: str | None = None,
        val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.0,
        labeled: bool = False,
        image_size: PositiveInt = 224,
        crop_scale: tuple[Annotated[float, Field(gt=0, le=1)], Annotated[float, Field(gt=0, le=1)]] = (0.2, 1.0),
        hflip: bool = True,
        augment: bool = True,
        in_chans: Literal[1, 3] = 3,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        batch_size: PositiveInt = 64,
        num_workers: NonNegativeInt = 4,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if crop_scale[0] > crop_scale[1]:
            raise ConfigError(f"ImageFolderDataModule.crop_scale: lower bound above upper bound, got {crop_scale}")
        default_mean, default_std = (IMAGENET_MEAN, IMAGENET_STD) if in_chans == 3 else ((0.5,), (0.5,))
        self.mean, self.std = mean or default_mean, std or default_std
        if len(self.mean) != in_chans or len(self.std) != in_chans:
            raise ConfigError(f"ImageFolderDataModule.mean/std need {in_chans} values (in_chans), got {self.mean}")
        self.root, self.val_root = root, val_root
        self.val_fraction = val_fraction
        self.labeled = labeled
        self.image_size = image_size
        self.crop_scale = crop_scale
        self.hflip = hflip
        self.augment = augment
        self.in_chans = in_chans
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.classes: list[str] = []
        self.train_set: ImageFiles | None = None
        self.val_set: ImageFiles | None = None

    # ------------------------------------------------------------------------------------------------ files & labels
    def _scan(self, root: str) -> tuple[list[str], list[int] | None]:
        from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

        if not Path(root).is_dir():
            raise FileNotFoundError(f"ImageFolderDataModule: no such folder {root!r}")
        if self.labeled:
            classes, class_to_idx = find_classes(root)
            if not self.classes:
                self.classes = classes
            elif classes != self.classes:
                raise ValueError(f"{root!r} has classes {classes}, the training folder {self.classes}")
            pairs = make_dataset(root, class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=True)
            return [p for p, _ in pairs], [c for _, c in pairs]
        paths = sorted(
            os.path.join(folder, name)
            for folder, _, names in os.walk(root, followlinks=True)
            for name in names
            if name.lower().endswith(IMG_EXTENSIONS)
        )
        return paths, None

    def _transform(self, train: bool) -> Callable[[Any], Tensor]:
        from torchvision.transforms import InterpolationMode, v2

        size = self.image_size
        if train:
            geometry = [v2.RandomResizedCrop(size, scale=self.crop_scale, interpolation=InterpolationMode.BICUBIC)]
            if self.hflip:
                geometry.append(v2.RandomHorizontalFlip())
        else:  # the evaluation transform of MAE's fine-tuning recipe: resize to size / 0.875, centre crop
            geometry = [
                v2.Resize(int(size / 0.875), interpolation=InterpolationMode.BICUBIC),
                v2.CenterCrop(size),
            ]
        return v2.Compose(
            [v2.ToImage(), *geometry, v2.ToDtype(torch.float32, scale=True), v2.Normalize(self.mean, self.std)]
        )

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        mode = "RGB" if self.in_chans == 3 else "L"
        paths, labels = self._scan(self.root)
        if not paths:
            raise FileNotFoundError(f"ImageFolderDataModule: no image files under {self.root!r}")
        if self.val_root is not None:
            val_paths, val_labels = self._scan(self.val_root)
        elif self.val_fraction > 0:
            train, val = _split(len(paths), self.val_fraction, self.seed)
            val_paths, val_labels = _take(paths, val), _take(labels, val)
            paths, labels = _take(paths, train), _take(labels, train)
        else:
            val_paths, val_labels = [], None
        self.train_set = ImageFiles(paths, labels, self._transform(train=self.augment), mode)
        self.val_set = ImageFiles(val_paths, val_labels, self._transform(train=False), mode) if val_paths else None

    def _loader(self, dataset: ImageFiles, train: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=EpochShuffleSampler(len(dataset), self.seed, shuffle=train, sample_seeds=train),
            num_workers=self.num_workers,
            collate_fn=collate_skipping,
            pin_memory=torch.cuda.is_available(),
            drop_last=train and len(dataset) > self.batch_size,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.val_set, train=False) if self.val_set is not None else []
