"""Image data modules.

* :class:`DigitsDataModule`: scikit-learn's bundled handwritten digits (1,797 grayscale 8x8 images, UCI ML
  hand-written digits), upsampled; it ships inside the scikit-learn wheel, so nothing is downloaded.
* :class:`ImageFolderDataModule`: a folder of PNG/JPEG files, unlabeled (any layout) or ImageFolder-style labeled
  (one sub-folder per class), with MAE's pretraining transform (``RandomResizedCrop(scale=(0.2, 1.0))``, bicubic,
  horizontal flip, ImageNet normalisation). An unreadable file is skipped and counted, never fatal.

Batches are dicts: ``{"image": [B, C, H, W] float, "label": [B] long}`` (``label`` only when labeled).
"""

from collections.abc import Callable
from functools import partial
from typing import Annotated, Any, Literal

import torch
from pydantic import Field, NonNegativeInt, PositiveInt
from torch import Tensor

from anymae import ConfigError, DataModule, FolderDataModule, TensorSamples, require, split_indices, validated

__all__ = ["DigitsDataModule", "ImageFolderDataModule", "read_image"]

# torchvision's IMG_EXTENSIONS, without importing torchvision when the plugin loads
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DigitsDataModule(DataModule):
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

    name = "digits"  # what evaluation results call this data set

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
        super().__init__(batch_size, num_workers, seed)
        self.image_size, self.in_chans, self.val_fraction = image_size, in_chans, val_fraction

    def build(self) -> tuple[TensorSamples, TensorSamples]:
        datasets = require("sklearn.datasets", install="anymae-image[digits]", feature="DigitsDataModule")
        digits = datasets.load_digits()
        images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        images = torch.nn.functional.interpolate(
            images, size=(self.image_size, self.image_size), mode="bicubic", align_corners=False
        ).clamp_(0, 1)
        labels = torch.tensor(digits.target, dtype=torch.long)
        train, val = split_indices(len(images), self.val_fraction, self.seed)
        mean, std = images[train].mean(), images[train].std()
        images = ((images - mean) / std).expand(-1, self.in_chans, -1, -1).contiguous()
        return (
            TensorSamples({"image": images[train], "label": labels[train]}),
            TensorSamples({"image": images[val], "label": labels[val]}),
        )


def read_image(path: str, transform: Callable[[Any], Tensor], mode: str) -> dict[str, Tensor]:
    """One image file through ``transform``; PIL's errors for a bad file are ``OSError``/``ValueError`` (skipped)."""
    from PIL import Image

    with Image.open(path) as image:
        return {"image": transform(image.convert(mode))}


class ImageFolderDataModule(FolderDataModule):
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

    extensions = IMG_EXTENSIONS
    read_errors = (OSError, ValueError, SyntaxError)  # PIL: unidentified or truncated files, bad headers

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
        super().__init__(root, val_root, val_fraction, labeled, batch_size, num_workers, seed)
        if crop_scale[0] > crop_scale[1]:
            raise ConfigError(f"ImageFolderDataModule.crop_scale: lower bound above upper bound, got {crop_scale}")
        default_mean, default_std = (IMAGENET_MEAN, IMAGENET_STD) if in_chans == 3 else ((0.5,), (0.5,))
        self.mean, self.std = mean or default_mean, std or default_std
        if len(self.mean) != in_chans or len(self.std) != in_chans:
            raise ConfigError(f"ImageFolderDataModule.mean/std need {in_chans} values (in_chans), got {self.mean}")
        self.image_size, self.crop_scale, self.hflip, self.augment = image_size, crop_scale, hflip, augment
        self.in_chans = in_chans

    def reader(self, train: bool) -> Callable[[str], dict[str, Tensor]]:
        from torchvision.transforms import InterpolationMode, v2

        size = self.image_size
        if train and self.augment:
            geometry = [v2.RandomResizedCrop(size, scale=self.crop_scale, interpolation=InterpolationMode.BICUBIC)]
            if self.hflip:
                geometry.append(v2.RandomHorizontalFlip())
        else:  # the evaluation transform of MAE's fine-tuning recipe: resize to size / 0.875, centre crop
            geometry = [v2.Resize(int(size / 0.875), interpolation=InterpolationMode.BICUBIC), v2.CenterCrop(size)]
        transform = v2.Compose(
            [v2.ToImage(), *geometry, v2.ToDtype(torch.float32, scale=True), v2.Normalize(self.mean, self.std)]
        )
        return partial(read_image, transform=transform, mode="RGB" if self.in_chans == 3 else "L")
