"""Video data modules.

* :class:`VideoFolderDataModule`: video files (mp4, webm, avi, mkv, mov, gif...) or folders of frames, unlabelled,
  labelled by sub-folder, or listed in a CSV/list file with labels (Kinetics and Something-Something's
  ``path label`` lists); the papers' temporal sampling (:mod:`anymae_video.io`) and spatial transforms
  (:mod:`anymae_video.transforms`); MAE-ST's repeated augmentation. A file that cannot be decoded is skipped and
  counted, never fatal.
* :class:`MovingDigitsDataModule`: clips of scikit-learn's bundled handwritten digits moving across a black canvas,
  made in memory (no download), labelled by digit, by direction of motion, or both.

Batches are dicts: ``{"video": [B, C, T, H, W] float, "label": [B] long}`` (``label`` only when labelled).
"""

import os
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from typing import Annotated, Any, ClassVar, Literal

import torch
from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt
from torch import Tensor
from torch.utils.data import Dataset, default_collate

from anymae import (
    ConfigError,
    DataModule,
    FileList,
    FolderDataModule,
    PathStr,
    ScaleRange,
    TensorSamples,
    require,
    split_indices,
    validated,
)

from .io import FRAME_EXTENSIONS, VIDEO_EXTENSIONS, Sampling, read_video
from .transforms import KINETICS_MEAN, KINETICS_STD, ClipTransform

__all__ = ["MovingDigitsDataModule", "VideoFolderDataModule", "read_clip", "repeat_collate"]


def read_clip(
    path: str,
    num_frames: int,
    sampling_rate: int,
    sampling: Sampling,
    train: bool,
    transform: ClipTransform,
    repeats: int,
    *,
    fit_rate: bool = False,
    rate_jitter: int = 0,
    cache: bool = True,
) -> dict[str, Tensor]:
    """``repeats`` clips of one video (a file, or a folder of frames), each its own frames and crop, decoded in one
    pass: ``{"video": [C, T, H, W]}``, or ``[repeats, C, T, H, W]`` when ``repeats > 1`` (MAE-ST's repeated
    augmentation: 4 clips per decoded video). ``train``: random temporal sampling (``transform`` has its own);
    ``fit_rate``, ``rate_jitter``, ``cache``: as :func:`~anymae_video.read_video`."""
    frames = read_video(
        path,
        num_frames,
        sampling_rate,
        sampling,
        train,
        clips=repeats,
        fit_rate=fit_rate,
        rate_jitter=rate_jitter,
        cache=cache,
    )
    if repeats == 1:
        return {"video": transform(frames)}
    return {"video": torch.stack([transform(clip) for clip in frames])}  # a few clips of one video, each cropped


def repeat_collate(samples: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Collate samples holding ``repeats`` clips each into one batch of ``B x repeats`` clips, labels repeated."""
    batch = default_collate(samples)
    video = batch["video"]
    if video.dim() == 6:  # [B, R, C, T, H, W]
        repeats = video.shape[1]
        batch = {k: v.repeat_interleave(repeats, dim=0) for k, v in batch.items() if k != "video"}
        batch["video"] = video.flatten(0, 1)
    return batch


def _frame_folders(root: str) -> list[str]:
    """Folders under ``root`` that directly hold frame images (one video each), sorted."""
    found = []
    for folder, folders, names in os.walk(root, followlinks=True):
        folders[:] = [f for f in folders if not f.startswith(".")]
        if any(n.lower().endswith(FRAME_EXTENSIONS) and not n.startswith(".") for n in names):
            found.append(folder)
    return sorted(found)


class VideoFolderDataModule(FolderDataModule):
    """Videos from a folder, for pretraining (unlabelled) or evaluation (labelled).

    Args:
        root: the training videos: every video file below it, or with ``frame_folders`` every folder of frames.
        file_list: a list file of the training videos (or frame folders) and their labels instead of every video
            below ``root``: ``path,label`` rows (a header row is skipped) or ``path label`` lines (Kinetics/SSv2
            lists); paths relative to ``root``; labels integers (class ids) or class names (sorted). See
            :class:`~anymae.FolderDataModule`.
        val_file_list: the same for ``val_root``.
        labels_csv, val_labels_csv: the former names of ``file_list`` and ``val_file_list`` (deprecated).
        frame_folders: each video is a folder of frame images (name order) instead of a file.
        num_frames: frames per clip (16 in VideoMAE and MAE-ST).
        sampling_rate: frames between two sampled frames in ``"dense"`` sampling (4 in MAE-ST and VideoMAE on
            Kinetics, 2 in VideoMAE on Something-Something). A video shorter than the span is sampled at the largest
            rate that fits it (down to 1; frames repeat only when it has fewer than ``num_frames``), with one warning
            per loader process naming the first such video.
        sampling: ``"dense"`` or ``"segment"`` (see :mod:`anymae_video.io`).
        rate_jitter: temporal scale jitter: each training clip's dense rate drawn from ``sampling_rate +-
            rate_jitter`` (at least 1). The papers keep the rate fixed (0, the default) and jitter time by the clip's
            random start, which training always draws (with ``augment``); a few hundred clips may want 1 or 2.
        image_size: output side length.
        crop: ``"random_resized"`` (MAE-ST) or ``"multiscale"`` (VideoMAE's ``GroupMultiScaleCrop``).
        crop_scale: area range of the random resized crop (MAE-ST: 0.5 to 1).
        hflip: random horizontal flips (MAE-ST: on; VideoMAE: off). A flip swaps left and right: labels that name a
            side or a direction of motion ("moving left", "swiping right") no longer match a flipped clip, so turn
            it off (or ``augment`` off) for them.
        augment: the training split's random augmentation, all of it: the clip's random start (or segment offsets)
            and ``rate_jitter``, the random crop and the flip. Off, training clips are read as evaluation reads them
            (the middle of the video, the short side resized and the centre cropped): what k-NN banks, linear probes
            and label-sensitive evaluation configs want, in one line.
        repeat_aug: clips drawn from each video, decoded once, each its own frames and crop (MAE-ST: 4); a batch
            holds ``batch_size x repeat_aug`` clips. ``model.blr`` scales with the videos per step, as MAE-ST and
            VideoMAE V2 count them, not with the clips.
        in_chans: 3 (RGB) or 1 (gray).
        mean, std: per-channel normalisation; unset: ImageNet's (VideoMAE; MAE-ST uses 0.45 and 0.225).
        cache: keep small files' decoded frames in memory after their first read (:mod:`anymae_video.io`; each loader
            worker its own copy, within ``ANYMAE_DECODED_CACHE_MB``, 1024 by default): later epochs and evaluation
            runs decode nothing. The same clips either way; off for sets far larger than the budget.
        val_root, val_fraction, labeled, batch_size, num_workers, seed: :class:`~anymae.FolderDataModule`'s
            (``labeled``: ``root/<class>/<video>``; a batch holds ``batch_size`` videos; the seed also draws the
            temporal sampling).
    """

    extensions = VIDEO_EXTENSIONS
    collate: ClassVar[Callable[[list], dict[str, Any]]] = staticmethod(repeat_collate)

    @validated
    def __init__(
        self,
        root: PathStr,
        *,
        labels_csv: str | None = None,
        val_labels_csv: str | None = None,
        frame_folders: bool = False,
        num_frames: PositiveInt = 16,
        sampling_rate: PositiveInt = 4,
        sampling: Sampling = "dense",
        rate_jitter: NonNegativeInt = 0,
        image_size: PositiveInt = 224,
        crop: Literal["random_resized", "multiscale"] = "random_resized",
        crop_scale: ScaleRange = (0.5, 1.0),
        hflip: bool = True,
        augment: bool = True,
        repeat_aug: PositiveInt = 1,
        in_chans: Literal[1, 3] = 3,
        mean: tuple[float, ...] | None = None,
        std: tuple[PositiveFloat, ...] | None = None,
        cache: bool = True,
        **kwargs: Any,
    ) -> None:
        for old, new in (("labels_csv", "file_list"), ("val_labels_csv", "val_file_list")):
            value = labels_csv if old == "labels_csv" else val_labels_csv
            if value is None:
                continue
            if kwargs.get(new) is not None:
                raise ConfigError(f"VideoFolderDataModule: {old} is the former name of {new}; give {new} only")
            warnings.warn(f"VideoFolderDataModule.{old} is now {new}", DeprecationWarning, stacklevel=2)
            kwargs[new] = value
        super().__init__(root, **kwargs)
        default_mean, default_std = (KINETICS_MEAN, KINETICS_STD) if in_chans == 3 else ((0.45,), (0.225,))
        self.mean, self.std = mean or default_mean, std or default_std
        if len(self.mean) != in_chans or len(self.std) != in_chans:
            raise ConfigError(f"VideoFolderDataModule.mean/std need {in_chans} values (in_chans), got {self.mean}")
        self.frame_folders = frame_folders
        self.num_frames, self.sampling_rate, self.sampling = num_frames, sampling_rate, sampling
        self.rate_jitter, self.cache = rate_jitter, cache
        self.image_size, self.crop, self.crop_scale, self.hflip = image_size, crop, crop_scale, hflip
        self.augment, self.repeat_aug, self.in_chans = augment, repeat_aug, in_chans

    def files(self, root: str, classes: Sequence[str] | None, split: str) -> FileList:
        if not os.path.isdir(root):
            raise FileNotFoundError(f"no such folder {root!r}")
        if not self.frame_folders or (self.file_list if split == "train" else self.val_file_list) is not None:
            return super().files(root, classes, split)
        folders = _frame_folders(root)
        if not self.labeled:
            return FileList(tuple(folders))
        pairs = [(f, os.path.relpath(f, root).split(os.sep)[0]) for f in folders if os.path.dirname(f) != root]
        pairs = [(f, c) for f, c in pairs if f != os.path.join(root, c)]  # class/video/frames, not class/frames
        if not pairs:
            raise ConfigError(
                f"labeled=True reads classes from sub-folders, root/<class>/<video>/<frames>; {root!r} has none"
            )
        names = sorted({c for _, c in pairs}) if classes is None else list(classes)
        unknown = sorted({c for _, c in pairs} - set(names))
        if unknown:
            raise ConfigError(f"{root!r} has classes {unknown} that the training folder does not have ({names})")
        index = {name: i for i, name in enumerate(names)}
        return FileList(tuple(f for f, _ in pairs), tuple(index[c] for _, c in pairs), tuple(names))

    def reader(self, train: bool) -> Callable[[str], dict[str, Tensor]]:
        augment = train and self.augment
        transform = ClipTransform(
            self.image_size, augment, self.crop, self.crop_scale, self.hflip, self.mean, self.std, self.in_chans
        )
        repeats = self.repeat_aug if train else 1
        return partial(
            read_clip,
            num_frames=self.num_frames,
            sampling_rate=self.sampling_rate,
            sampling=self.sampling,
            train=augment,
            transform=transform,
            repeats=repeats,
            fit_rate=True,
            rate_jitter=self.rate_jitter if augment else 0,
            cache=self.cache,
        )


# ------------------------------------------------------------------------------------------------ moving digits
DIRECTIONS = ((0, 1), (0, -1), (1, 0), (-1, 0))  # (dy, dx): right, left, down, up


def moving_digits(
    digits: Tensor, num_frames: int, canvas: int, speeds: tuple[int, ...], seed: int
) -> tuple[Tensor, Tensor]:
    """Clips ``[S, T, canvas, canvas]`` of the ``[S, d, d]`` ``digits`` each moving in a straight line, one of 4
    directions at one of ``speeds`` pixels per frame, from a random start that keeps it on the canvas; and each
    clip's direction (0-3). Drawn in one indexed write for all clips and frames."""
    s, d = digits.shape[0], digits.shape[-1]
    g = torch.Generator().manual_seed(seed)
    direction = torch.randint(4, (s,), generator=g)
    speed = torch.tensor(speeds)[torch.randint(len(speeds), (s,), generator=g)]
    step = torch.tensor(DIRECTIONS)[direction] * speed[:, None]  # [S, 2]
    travel = step * (num_frames - 1)
    room = canvas - d  # start in [max(0, -travel), room - max(0, travel)] along each axis
    low, high = (-travel).clamp(min=0), room - travel.clamp(min=0)
    if bool((high < low).any()):
        raise ConfigError(f"MovingDigitsDataModule: a digit of {d} px moving {int(travel.abs().max())} px does not fit")
    start = low + (torch.rand(s, 2, generator=g) * (high - low + 1)).long()
    corner = start[:, None] + step[:, None] * torch.arange(num_frames)[None, :, None]  # [S, T, 2]
    offsets = torch.arange(d)
    rows = (corner[..., 0, None, None] + offsets[:, None]).expand(s, num_frames, d, d)
    cols = (corner[..., 1, None, None] + offsets[None, :]).expand(s, num_frames, d, d)
    clips = torch.zeros(s, num_frames, canvas, canvas)
    sample = torch.arange(s)[:, None, None, None].expand_as(rows)
    frame = torch.arange(num_frames)[None, :, None, None].expand_as(rows)
    clips[sample, frame, rows, cols] = digits[:, None].expand(s, num_frames, d, d)
    return clips, direction


class MovingDigitsDataModule(DataModule):
    """Clips of scikit-learn's 1,797 bundled handwritten digits (UCI ML hand-written digits, 8x8) upsampled to
    ``digit_size`` and moving across a black ``image_size`` canvas, one of 4 directions at 1 or 2 pixels per frame.
    Made in memory, no download: the embedded data set for trying video pretraining and scoring it.

    Labels: ``"direction"`` (4 classes: only motion tells them apart, the digit is a distractor), ``"digit"`` (10:
    appearance) or ``"both"`` (40: a class needs both). Clips are standardised with the training split's mean and
    std.

    Args:
        label: what the class is.
        num_frames: frames per clip.
        temporal_jitter: the random clip start of MAE-ST and VideoMAE for this in-memory set: each motion is made
            ``num_frames + temporal_jitter`` frames long, a training clip starts at a random frame of it (each epoch
            its own) and a validation clip at the middle one. The digit then travels further, so the speeds that
            fit the canvas may change. 0 (the default): every clip is its whole motion.
        image_size: canvas side.
        digit_size: side of the upsampled digit.
        in_chans: 1 (gray) or 3 (the gray repeated).
        val_fraction: share held out for validation.
        batch_size: clips per batch.
        num_workers: loader processes (the clips are in memory: 0 is fine).
        seed: seed of the motions, the split and the shuffling.
    """

    name = "moving-digits"  # what evaluation results call this data set

    @validated
    def __init__(
        self,
        label: Literal["digit", "direction", "both"] = "direction",
        num_frames: PositiveInt = 8,
        temporal_jitter: NonNegativeInt = 0,
        image_size: PositiveInt = 32,
        digit_size: PositiveInt = 16,
        in_chans: Literal[1, 3] = 1,
        val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if digit_size >= image_size:
            raise ConfigError(f"MovingDigitsDataModule.digit_size {digit_size} must be below image_size {image_size}")
        self.label, self.num_frames, self.image_size, self.digit_size = label, num_frames, image_size, digit_size
        self.in_chans, self.val_fraction, self.temporal_jitter = in_chans, val_fraction, temporal_jitter
        directions = ("right", "left", "down", "up")
        self.classes = {
            "digit": [str(i) for i in range(10)],
            "direction": list(directions),
            "both": [f"{d} {m}" for d in range(10) for m in directions],
        }[label]

    def build(self) -> tuple[TensorSamples, TensorSamples]:
        datasets = require("sklearn.datasets", install="anymae-video[digits]", feature="MovingDigitsDataModule")
        digits = datasets.load_digits()
        images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        size = self.digit_size
        images = torch.nn.functional.interpolate(images, size=(size, size), mode="bicubic", align_corners=False)
        images = images.clamp_(0, 1)[:, 0]
        frames = self.num_frames + self.temporal_jitter
        speeds = tuple(s for s in (1, 2) if s * (frames - 1) <= self.image_size - size)
        if not speeds:
            raise ConfigError(
                f"MovingDigitsDataModule: a {size} px digit cannot move {frames - 1} px on a {self.image_size} px "
                "canvas; allowed: image_size >= digit_size + num_frames + temporal_jitter - 1"
            )
        clips, direction = moving_digits(images, frames, self.image_size, speeds, self.seed)
        digit = torch.tensor(digits.target, dtype=torch.long)
        labels = {"digit": digit, "direction": direction, "both": digit * 4 + direction}[self.label]
        train, val = split_indices(len(clips), self.val_fraction, self.seed)
        mean, std = clips[train].mean(), clips[train].std()
        video = ((clips - mean) / std).unsqueeze(1).expand(-1, self.in_chans, -1, -1, -1).contiguous()
        window = partial(_random_window, num_frames=self.num_frames) if self.temporal_jitter else None
        return (
            TensorSamples({"video": video[train], "label": labels[train]}, transform=window),
            TensorSamples({"video": self._middle(video[val]), "label": labels[val]}),
        )

    def _middle(self, video: Tensor) -> Tensor:
        """The middle ``num_frames`` of ``[S, C, T, H, W]`` clips made ``temporal_jitter`` frames longer."""
        start = self.temporal_jitter // 2
        return video[:, :, start : start + self.num_frames]

    def export_samples(self, split: str) -> Dataset | None:
        samples = super().export_samples(split)
        if not self.temporal_jitter or not isinstance(samples, TensorSamples) or split != "train":
            return samples
        return TensorSamples({**samples.tensors, "video": self._middle(samples.tensors["video"])})


def _random_window(sample: dict[str, Tensor], num_frames: int) -> dict[str, Tensor]:
    """``num_frames`` consecutive frames of a sample's ``[C, T, H, W]`` clip from a random start (torch's generator,
    which the data kit seeds per sample)."""
    video = sample["video"]
    start = int(torch.randint(video.shape[1] - num_frames + 1, ()))
    return {**sample, "video": video[:, start : start + num_frames]}
