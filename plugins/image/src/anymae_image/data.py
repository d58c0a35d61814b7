"""Image data modules.

* :class:`DigitsDataModule`: scikit-learn's bundled handwritten digits (1,797 grayscale 8x8 images, UCI ML
  hand-written digits), upsampled; it ships inside the scikit-learn wheel, so nothing is downloaded.
* :class:`ImageFolderDataModule`: a folder of PNG/JPEG files, unlabeled (any layout) or ImageFolder-style labeled
  (one sub-folder per class), with MAE's pretraining transform (``RandomResizedCrop(scale=(0.2, 1.0))``, bicubic,
  horizontal flip, ImageNet normalisation); evaluation resizes an image no larger than the training size whole, and
  centre-crops a larger one. An unreadable file is skipped and counted, never fatal.
* :class:`MultiBandFolderDataModule`: a folder of multi-band rasters (``.tif``/``.tiff`` through ``tifffile``,
  ``.npy``) with any number of bands and 8- or 16-bit (or float) pixels, standardised per band with statistics from
  ``anymae band_stats`` (SatMAE-style multi-spectral data), with the same crop and flip as the RGB folder.

Batches are dicts: ``{"image": [B, C, H, W] float, "label": [B] long}`` (``label`` only when labeled).
"""

from collections.abc import Callable, Sequence
from functools import partial
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt
from torch import Tensor

from anymae import (
    ConfigError,
    DataModule,
    FileSamples,
    FolderDataModule,
    PathStr,
    ScaleRange,
    TensorSamples,
    require,
    split_indices,
    validated,
)

__all__ = [
    "DigitsDataModule",
    "EvalResize",
    "ImageFolderDataModule",
    "MultiBandFolderDataModule",
    "bands_first",
    "load_raster",
    "read_bands",
    "read_image",
]

# torchvision's IMG_EXTENSIONS, without importing torchvision when the plugin loads
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BAND_EXTENSIONS = (".tif", ".tiff", ".npy")


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


def mae_geometry(size: int, augment: bool, crop_scale: tuple[float, float], hflip: bool) -> list[Any]:
    """MAE's geometric transforms (torchvision ``v2``, on images with any number of channels): for training
    (``augment``) ``RandomResizedCrop(size, crop_scale)``, bicubic, then a random horizontal flip (``hflip``); for
    evaluation MAE's fine-tuning recipe, a bicubic resize to ``size / 0.875`` and a centre crop."""
    from torchvision.transforms import InterpolationMode, v2

    if augment:
        geometry = [v2.RandomResizedCrop(size, scale=crop_scale, interpolation=InterpolationMode.BICUBIC)]
        if hflip:
            geometry.append(v2.RandomHorizontalFlip())
        return geometry
    return [v2.Resize(int(size / 0.875), interpolation=InterpolationMode.BICUBIC), v2.CenterCrop(size)]


class EvalResize:
    """:class:`ImageFolderDataModule`'s evaluation geometry, chosen per image: a small image (shorter side at most
    ``size``) is resized straight to ``size x size``, bicubic, so none of it is cut; a larger one gets MAE's resize to
    ``size / 0.875`` and centre crop (:func:`mae_geometry`).

    A callable class rather than a torchvision transform because the choice depends on each image's size, on which
    no torchvision transform branches; it holds only torchvision transforms, so it pickles into the loader's workers.
    """

    def __init__(self, size: int) -> None:
        from torchvision.transforms import InterpolationMode, v2

        self.size = size
        self.small = v2.Resize((size, size), interpolation=InterpolationMode.BICUBIC)
        self.large = v2.Compose(mae_geometry(size, augment=False, crop_scale=(1.0, 1.0), hflip=False))

    def __call__(self, image: Any) -> Any:
        from torchvision.transforms.v2.functional import get_size

        return self.small(image) if min(get_size(image)) <= self.size else self.large(image)


def read_image(path: str, transform: Callable[[Any], Tensor], mode: str) -> dict[str, Tensor]:
    """One image file through ``transform``; PIL's errors for a bad file are ``OSError``/``ValueError`` (skipped).

    A 16-bit, 32-bit integer or float grayscale image (medical, microscopy, depth PNGs and TIFFs) is first mapped to
    8 bits by its range (:func:`eight_bit`): PIL's own ``convert`` clips such values at 255, which turns a 16-bit
    image white. A photo whose EXIF tag says it was taken turned (phones store it so) is turned upright first, as
    image viewers show it."""
    from PIL import Image, ImageOps

    with Image.open(path) as opened:
        image = opened
        if opened.getexif().get(ORIENTATION, 1) != 1:  # most files have none: no copy of their pixels then
            image = ImageOps.exif_transpose(opened) or opened  # None only with in_place=True
        if image.mode in WIDE_MODES:
            image = Image.fromarray(eight_bit(np.asarray(image), image.mode))
        return {"image": transform(image.convert(mode))}


ORIENTATION = 0x0112  # the EXIF tag of how a photo was turned when taken

#: PIL's modes of one channel wider than 8 bits
WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def eight_bit(array: np.ndarray, mode: str) -> np.ndarray:
    """A one-channel image of PIL mode ``mode`` as ``uint8``: 16-bit modes by their full range (0-65535, as
    torchvision's ``decode_png`` scales them); 32-bit integers as 8-bit when they stay within 0-255, as 16-bit
    within 0-65535, else by the image's own range; floats as fractions when they stay within 0-1, else by the
    image's own range. NaN and infinite pixels (a float image's no-data) count in no range and become 0."""
    values = array.astype(np.float64)
    finite = np.isfinite(values)
    low, high = float(values.min(initial=0, where=finite)), float(values.max(initial=0, where=finite))
    if mode.startswith("I;16"):
        low, high = 0.0, 65535.0
    elif mode == "I" and low >= 0 and high <= 65535:
        low, high = 0.0, 255.0 if high <= 255 else 65535.0
    elif mode == "F" and low >= 0 and high <= 1:
        low, high = 0.0, 1.0
    scaled = np.where(finite, (values - low) / max(high - low, 1e-12) * 255, 0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


class ImageFolderDataModule(FolderDataModule):
    """A folder of images, for pretraining (unlabeled) or probing (labeled, one sub-folder per class).

    Training images get MAE's random resized crop and flip. Evaluation images (the validation split, and the training
    split with ``augment`` off) are fitted to ``image_size`` without augmentation (:class:`EvalResize`): an image whose
    shorter side is at most ``image_size`` is resized straight to ``image_size x image_size`` (the whole image, its
    aspect ratio changed as the training crop changes it); a larger one is resized to ``image_size / 0.875`` and
    centre-cropped, as MAE evaluates ImageNet. MAE's crop alone would cut the edges of images no larger than the
    training size, which hold the object.

    Args:
        root: the training images. Unlabeled: every image file below it. Labeled: ``root/<class>/<file>``.
        image_size: output side length ``H = W``.
        crop_scale: area range of MAE's ``RandomResizedCrop`` ((0.2, 1.0) in MAE pretraining).
        hflip: random horizontal flips (MAE: on).
        augment: the random crop and flips on the training split; off, it gets the evaluation transform above (for
            k-NN banks and feature extraction).
        in_chans: 3 reads RGB, 1 reads grayscale.
        mean: per-channel normalisation mean; unset: ImageNet's for RGB, 0.5 for grayscale.
        std: per-channel normalisation std; unset: ImageNet's for RGB, 0.5 for grayscale.
        batch_size: samples per batch (per device).
        val_root, val_fraction, labeled, num_workers, seed: :class:`~anymae.FolderDataModule`'s.
    """

    extensions = IMG_EXTENSIONS
    read_errors = (OSError, ValueError, SyntaxError)  # PIL: unidentified or truncated files, bad headers

    @validated
    def __init__(
        self,
        root: PathStr,
        *,
        image_size: PositiveInt = 224,
        crop_scale: ScaleRange = (0.2, 1.0),
        hflip: bool = True,
        augment: bool = True,
        in_chans: Literal[1, 3] = 3,
        mean: tuple[float, ...] | None = None,
        std: tuple[PositiveFloat, ...] | None = None,
        batch_size: PositiveInt = 64,
        **kwargs: Any,
    ) -> None:
        super().__init__(root, batch_size=batch_size, **kwargs)
        default_mean, default_std = (IMAGENET_MEAN, IMAGENET_STD) if in_chans == 3 else ((0.5,), (0.5,))
        self.mean, self.std = mean or default_mean, std or default_std
        if len(self.mean) != in_chans or len(self.std) != in_chans:
            raise ConfigError(f"ImageFolderDataModule.mean/std need {in_chans} values (in_chans), got {self.mean}")
        self.image_size, self.crop_scale, self.hflip, self.augment = image_size, crop_scale, hflip, augment
        self.in_chans = in_chans

    def reader(self, train: bool) -> Callable[[str], dict[str, Tensor]]:
        from torchvision.transforms import v2

        if train and self.augment:
            geometry = mae_geometry(self.image_size, True, self.crop_scale, self.hflip)
        else:
            geometry = [EvalResize(self.image_size)]
        transform = v2.Compose(
            [v2.ToImage(), *geometry, v2.ToDtype(torch.float32, scale=True), v2.Normalize(self.mean, self.std)]
        )
        return partial(read_image, transform=transform, mode="RGB" if self.in_chans == 3 else "L")


def load_raster(path: str) -> np.ndarray:
    """A ``.tif``/``.tiff`` (``tifffile``) or ``.npy`` (``numpy.load``, no pickles) file's array, in its own dtype;
    ``ValueError`` for pixels that are not integers or floats."""
    if path.lower().endswith(".npy"):
        array = np.load(path, allow_pickle=False)
    else:
        tifffile = require("tifffile", install="anymae-image", feature="reading TIFF files")
        array = tifffile.imread(path)
    if array.dtype.kind not in "uif":  # bool, complex, strings: not pixels
        raise ValueError(f"pixels of dtype {array.dtype} (expected integers or floats)")
    return array


def bands_first(array: np.ndarray, bands: int | None = None) -> np.ndarray:
    """``array`` as ``[C, H, W]``. A 2-D array is one band. Of a 3-D array's first and last axes, the band axis is
    the one of length ``bands`` (the first when both are); with ``bands`` unset, or when neither is, the shorter one
    (the first when they tie): ``[13, 96, 96]`` and ``[96, 96, 13]`` both read as 13 bands. Another number of
    dimensions is a ``ValueError``."""
    if array.ndim == 2:
        return array[None]
    if array.ndim != 3:
        raise ValueError(f"a {array.ndim}-D array of shape {tuple(array.shape)} (expected [C, H, W] or [H, W, C])")
    first, last = array.shape[0], array.shape[-1]
    matches = bands is not None and bands in (first, last)
    return np.moveaxis(array, -1, 0) if ((first != bands) if matches else (last < first)) else array


def read_bands(path: str, bands: int | None = None) -> np.ndarray:
    """The pixels of a multi-band raster file (:func:`load_raster`), band axis first (:func:`bands_first`), in the
    file's own dtype; ``ValueError`` for another band count than ``bands`` (the data module skips such a file and
    counts it)."""
    array = bands_first(load_raster(path), bands)
    if bands is not None and len(array) != bands:
        raise ValueError(f"{len(array)} bands (shape {tuple(array.shape)}), expected {bands}")
    return array


def read_band_image(
    path: str,
    bands: int,
    transform: Callable[[Tensor], Tensor],
    fill: Sequence[float] | None = None,
    nodata: float | None = None,
) -> dict[str, Tensor]:
    """One multi-band file (:func:`read_bands`) as float32 ``[C, H, W]`` (the file's values, not rescaled nor
    clipped) through ``transform``. With ``fill`` (a value per band), missing pixels (NaN, infinite, or equal to
    ``nodata``) take their band's value first, so that no resize spreads them."""
    pixels = torch.from_numpy(np.ascontiguousarray(read_bands(path, bands), dtype=np.float32))
    if fill is not None:
        missing = ~pixels.isfinite() if nodata is None else ~pixels.isfinite() | (pixels == nodata)
        if bool(missing.any()):
            pixels = torch.where(missing, torch.tensor(fill, dtype=pixels.dtype)[:, None, None], pixels)
    return {"image": torch.as_tensor(transform(pixels)).contiguous()}


class MultiBandFolderDataModule(FolderDataModule):
    """A folder of multi-band images (multi-spectral, SAR, ...): ``.tif``/``.tiff`` (read with ``tifffile``) and
    ``.npy`` arrays with ``bands`` bands, for pretraining (unlabeled) or probing (labeled, one sub-folder per class).

    Each file is a ``[C, H, W]`` or ``[H, W, C]`` array (a 2-D array is one band): of its first and last axes, the
    band axis is the one of length ``bands`` (the first when both are; see :func:`bands_first`). Pixels of any integer
    or float dtype (8-bit ``uint8``, 16-bit ``uint16``/``int16``, ``float32``) become float32 as they are, neither
    rescaled to [0, 1] nor clipped, and are standardised per band, ``(x - mean[c]) / std[c]``: ``mean`` and ``std``
    are in the files' own units, as ``anymae band_stats --root ROOT --bands N`` prints them. Missing pixels (NaN or
    infinite, and those equal to ``nodata``: the no-data value of many rasters) take their band's mean, so they are 0
    after standardisation and never reach the loss as NaN (``band_stats`` leaves them out too). Then MAE's crop and
    flip (:class:`ImageFolderDataModule`'s, on all bands at once). A file with another band count, or one that cannot be
    read, is skipped and counted (a warning names it once), never fatal.

    Batches are ``{"image": [B, bands, image_size, image_size] float32}`` (plus ``"label"`` when labeled); the
    tokenizer's ``in_chans`` must equal ``bands``.

    Args:
        root: the training files. Unlabeled: every ``.tif``/``.tiff``/``.npy`` below it. Labeled:
            ``root/<class>/<file>``.
        bands: the number of bands (channels) of every file.
        mean: per-band mean, ``bands`` values (``anymae band_stats`` prints them); required before training.
        std: per-band standard deviation, ``bands`` values; required before training.
        nodata: the value that marks a missing pixel (``-9999``, ``0``: the raster's own); such pixels, and NaN or
            infinite ones whatever this is, take their band's mean. ``anymae band_stats --nodata`` leaves them out.
        image_size: output side length ``H = W``.
        crop_scale: area range of MAE's ``RandomResizedCrop`` ((0.2, 1.0) in MAE pretraining).
        hflip: random horizontal flips.
        augment: the random crop and flips on the training split; off, it gets the evaluation transform (a bicubic
            resize to ``image_size / 0.875`` and a centre crop).
        batch_size: samples per batch (per device).
        val_root, val_fraction, labeled, num_workers, seed: :class:`~anymae.FolderDataModule`'s.
    """

    extensions = BAND_EXTENSIONS
    # tifffile: TiffFileError is a ValueError; numpy: ValueError (pickles, bad headers), EOFError (truncated); torch:
    # RuntimeError (an empty image)
    read_errors = (OSError, ValueError, EOFError, RuntimeError)

    @validated
    def __init__(
        self,
        root: PathStr,
        bands: PositiveInt,
        *,
        mean: list[float] | None = None,
        std: list[Annotated[float, Field(gt=0)]] | None = None,
        nodata: float | None = None,
        image_size: PositiveInt = 224,
        crop_scale: ScaleRange = (0.2, 1.0),
        hflip: bool = True,
        augment: bool = True,
        batch_size: PositiveInt = 64,
        **kwargs: Any,
    ) -> None:
        super().__init__(root, batch_size=batch_size, **kwargs)
        name = type(self).__name__
        for field, values in (("mean", mean), ("std", std)):
            if values is not None and len(values) != bands:
                raise ConfigError(f"{name}.{field} has {len(values)} values but bands is {bands}: one per band")
        self.bands, self.mean, self.std, self.nodata = bands, mean, std, nodata
        self.image_size, self.crop_scale, self.hflip, self.augment = image_size, crop_scale, hflip, augment

    def build(self) -> tuple[FileSamples, FileSamples | None]:
        if self.mean is None or self.std is None:
            unset = " and ".join(f for f, v in (("mean", self.mean), ("std", self.std)) if v is None)
            raise ConfigError(
                f"{type(self).__name__}.{unset} unset: `anymae band_stats --root {self.root} --bands {self.bands}` "
                "prints the per-band values to paste under data.init_args"
            )
        return super().build()

    def reader(self, train: bool) -> Callable[[str], dict[str, Tensor]]:
        from torchvision.transforms import v2

        if self.mean is None or self.std is None:
            raise ConfigError(f"{type(self).__name__}: mean and std are unset (`anymae band_stats` prints them)")
        geometry = mae_geometry(self.image_size, train and self.augment, self.crop_scale, self.hflip)
        transform = v2.Compose([*geometry, v2.Normalize(self.mean, self.std)])
        return partial(read_band_image, bands=self.bands, transform=transform, fill=self.mean, nodata=self.nodata)
