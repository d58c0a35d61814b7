"""Spatial transforms of a clip, the same crop and flip for every frame (torchvision's v2 transforms on a
``tv_tensors.Video``, plus VideoMAE's multi-scale crop, which torchvision does not have).

A clip comes in as ``[T, H, W, 3]`` uint8 (what :mod:`anymae_video.io` reads) and leaves as ``[C, T, size, size]``
float, normalised per channel: the ``[B, C, T, H, W]`` layout of VideoMAE, MAE-ST and :class:`VideoTubeletTokenizer`.
"""

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

__all__ = ["ClipTransform", "multiscale_crop_box"]

KINETICS_MEAN = (0.485, 0.456, 0.406)  # ImageNet's, as VideoMAE and MAE-ST normalise
KINETICS_STD = (0.229, 0.224, 0.225)


def multiscale_crop_box(
    height: int, width: int, scales: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66), max_distort: int = 1
) -> tuple[int, int, int, int]:
    """VideoMAE's ``GroupMultiScaleCrop`` (from TSN): crop height and width each ``scale x`` the short side, their
    scales at most ``max_distort`` steps apart, at one of 13 fixed offsets (corners, centre, edge midpoints, quarter
    points). Returns ``(top, left, crop_height, crop_width)``, drawn from torch's generator (which the data kit
    seeds per sample, so a resumed run crops alike)."""
    base = min(height, width)
    sizes = [int(base * s) for s in scales]
    pairs = [(h, w) for i, h in enumerate(sizes) for j, w in enumerate(sizes) if abs(i - j) <= max_distort]
    crop_h, crop_w = pairs[int(torch.randint(len(pairs), ()))]
    h_step, w_step = (height - crop_h) // 4, (width - crop_w) // 4
    offsets = [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2), (2, 0), (2, 4), (0, 2), (4, 2), (1, 1), (1, 3), (3, 1), (3, 3)]
    rows, cols = offsets[int(torch.randint(len(offsets), ()))]
    return rows * h_step, cols * w_step, crop_h, crop_w


@dataclass(frozen=True)
class ClipTransform:
    """The clip transform of one split (a frozen dataclass: it pickles into the loader's workers).

    Args:
        size: output side length.
        train: random crop and flip; otherwise short side resized to ``size`` and the centre cropped.
        crop: ``"random_resized"`` (MAE-ST: area ``crop_scale``, aspect 3/4 to 4/3) or ``"multiscale"``
            (VideoMAE's ``GroupMultiScaleCrop`` with scales 1, 0.875, 0.75, 0.66).
        crop_scale: area range of the random resized crop.
        hflip: random horizontal flips in training.
        mean, std: per-channel normalisation of [0, 1] pixels.
        channels: 3 (RGB) or 1 (the mean of R, G and B).
    """

    size: int
    train: bool
    crop: Literal["random_resized", "multiscale"] = "random_resized"
    crop_scale: tuple[float, float] = (0.5, 1.0)
    hflip: bool = True
    mean: tuple[float, ...] = KINETICS_MEAN
    std: tuple[float, ...] = KINETICS_STD
    channels: int = 3

    def __call__(self, frames: Tensor) -> Tensor:
        from torchvision import tv_tensors
        from torchvision.transforms import InterpolationMode, v2
        from torchvision.transforms.v2 import functional as F

        video = tv_tensors.Video(frames.permute(0, 3, 1, 2))  # [T, 3, H, W] uint8
        bilinear = InterpolationMode.BILINEAR
        if not self.train:
            video = F.center_crop(F.resize(video, [self.size], interpolation=bilinear, antialias=True), [self.size])
        elif self.crop == "multiscale":
            top, left, h, w = multiscale_crop_box(video.shape[-2], video.shape[-1])
            video = F.resized_crop(video, top, left, h, w, [self.size, self.size], interpolation=bilinear)
        else:
            crop = v2.RandomResizedCrop(self.size, scale=self.crop_scale, interpolation=bilinear, antialias=True)
            video = crop(video)
        if self.train and self.hflip and bool(torch.rand(()) < 0.5):
            video = F.horizontal_flip(video)
        x = video.as_subclass(Tensor).float().div_(255)
        if self.channels == 1:
            x = x.mean(dim=1, keepdim=True)
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        return ((x - mean) / std).transpose(0, 1).contiguous()  # [C, T, H, W]
