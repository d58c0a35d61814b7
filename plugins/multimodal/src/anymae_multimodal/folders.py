"""Paired files: aligned modalities read from a folder by stem.

A sample is a stem (a path without its extension, ``root/dog/clip01``) and one partner file per modality, named by
the modality's reader: ``clip01.mp4`` (its frames; with ``"mp4:audio"``, its audio track), ``clip01.wav``,
``clip01.png``, ``clip01.npy``, ``clip01.csv``. Each partner is read with the modality plugins' own functions:

* a video file (``"mp4"``, ``"webm"``, ``"mkv"``, ... any of :data:`anymae_video.io.VIDEO_EXTENSIONS`): a clip by the
  video plugin's :func:`~anymae_video.read_clip` (the papers' temporal sampling; short side resized to
  ``image_size`` and the centre cropped) -> ``{"video": [3, T, H, W]}``;
* the audio track of a video file (``"mp4:audio"``): decoded with PyAV (:func:`~anymae_audio.read_audio_track`),
  mixed to mono and resampled, then the audio plugin's :class:`~anymae_audio.Fbank` -> ``{"fbank": [1, T_a, F],
  "frames": n}``;
* an audio file (``"wav"``, ``"flac"``, ``"ogg"``, ... through soundfile, :func:`~anymae_audio.read_audio`): the same
  features;
* an image (``"png"``, ``"jpg"``, ``"jpeg"``, ``"bmp"``, ``"webp"``): RGB, resized and cropped as the video, normalised
  -> ``{"image": [3, H, W]}``;
* an array (``"npy"``: a depth map ``[H, W]``, or ``[C, H, W]`` / ``[H, W, C]``, read by the image plugin's
  :func:`~anymae_image.data.read_bands`): resized and cropped alike, non-finite values 0 -> ``{"image": [C, H, W]}``;
* a CSV table of readings (``"csv"``: a row per time step, a column per channel, an optional header row) ->
  ``{"series": [C, series_length]}`` (plus ``"length"`` when padded).

**Alignment.** When a video file is among the partners, the clip's time span decides what the others give: the audio
track and audio files are cut to the clip's seconds (silence past their end), and a CSV to the same share of its rows
(its rows are taken to span the video evenly); a second video reads the same frames. Without a video, each partner
is read whole (audio cropped to ``target_length`` from its start).

Samples are the stems that have every partner: a stem missing one is left out and counted (one warning per split
names how many, and an example). A partner that cannot be read at run time costs its sample, skipped and counted by
the data kit (:class:`anymae.Unreadable`), never the epoch.
"""

import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import Field, PositiveFloat, PositiveInt
from torch import Tensor

from anymae import ConfigError, FileList, FolderDataModule, PathStr, scan_folder, validated
from anymae_audio.features import (
    AUDIO_EXTENSIONS,
    AUDIOSET_MEAN,
    AUDIOSET_STD,
    Fbank,
    cut_span,
    read_audio,
    read_audio_track,
)
from anymae_image.data import read_bands, read_image
from anymae_video.data import read_clip
from anymae_video.io import VIDEO_EXTENSIONS, Sampling, clip_indices
from anymae_video.transforms import KINETICS_MEAN, KINETICS_STD, ClipTransform

__all__ = ["PairedFolderDataModule", "PairedReader", "Partner", "Span", "read_audio_track", "read_csv_series"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
Kind = Literal["video", "track", "audio", "image", "array", "series"]


@dataclass(frozen=True)
class Partner:
    """How one modality is read: its name (the batch's key prefix), what kind of reading and the file extension."""

    name: str
    kind: Kind
    extension: str  # with its dot, lower case


def parse_partners(modalities: Mapping[str, str]) -> tuple[Partner, ...]:
    """The readers named in ``modalities`` (modality name -> ``"mp4"``, ``"mp4:audio"``, ``"wav"``, ``"png"``,
    ``"npy"``, ``"csv"``...), checked: a ``ConfigError`` names an unknown reader, a reserved name or two modalities
    reading one file alike."""
    if not modalities:
        raise ConfigError("PairedFolderDataModule.modalities is empty: name at least one modality and its reader")
    partners = []
    for name, spec in modalities.items():
        if name == "label":
            raise ConfigError("PairedFolderDataModule.modalities: 'label' is the batch's label, not a modality name")
        if not name or "/" in name:
            raise ConfigError(
                f"PairedFolderDataModule.modalities: {name!r} is not a modality name (a key prefix of the batch: "
                "not empty, no '/')"
            )
        extension, _, part = spec.strip().lower().lstrip(".").partition(":")
        extension = "." + extension
        if part == "audio" and extension in VIDEO_EXTENSIONS:
            kind: Kind = "track"
        elif part:
            raise ConfigError(f"PairedFolderDataModule.modalities[{name!r}] = {spec!r}: only a video file has ':audio'")
        elif extension in VIDEO_EXTENSIONS:
            kind = "video"
        elif extension in AUDIO_EXTENSIONS:
            kind = "audio"
        elif extension in IMAGE_EXTENSIONS:
            kind = "image"
        elif extension == ".npy":
            kind = "array"
        elif extension == ".csv":
            kind = "series"
        else:
            known = sorted({e[1:] for e in (*VIDEO_EXTENSIONS, *AUDIO_EXTENSIONS, *IMAGE_EXTENSIONS, ".npy", ".csv")})
            raise ConfigError(
                f"PairedFolderDataModule.modalities[{name!r}] = {spec!r}: unknown reader; one of {', '.join(known)}, "
                "or a video extension with ':audio' for its audio track"
            )
        partners.append(Partner(name, kind, extension))
    readings = [(p.kind, p.extension) for p in partners]
    twice = sorted({f"{k} of .{e[1:]}" for k, e in readings if readings.count((k, e)) > 1})
    if twice:
        raise ConfigError(f"PairedFolderDataModule.modalities: two modalities read the same ({', '.join(twice)})")
    return tuple(partners)


# ------------------------------------------------------------------------------------------------------ readers
@dataclass(frozen=True)
class Span:
    """The time span of a sample's clip in its video: seconds from the video's first frame, the share of the video
    (``[0, 1]``), and where the video's first frame lies in its file's timeline (seconds)."""

    start: float
    end: float
    first_share: float
    last_share: float
    origin: float = 0.0


def _probe(path: str) -> tuple[int, float, float]:
    """A video file's frame count (as the video plugin's ``read_video`` counts them: the container's count, else the
    packets), frames per second and the time of its first frame."""
    import av

    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise ValueError("the file has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            origin = float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0
            total = int(stream.frames) or sum(1 for packet in container.demux(stream) if packet.size)
    except av.FFmpegError as error:
        raise ValueError(f"{type(error).__name__}: {error}") from None
    if not rate:
        raise ValueError("the video stream has no frame rate to align the other modalities by")
    return total, float(rate), origin


def read_csv_series(path: str) -> Tensor:
    """A CSV table of readings, a row per time step and a column per channel (a first row that is not all numbers is
    a header; blank lines are ignored): float32 ``[C, rows]``. An empty field, or one that is not a number, is NaN
    (the time-series tokenizer's missing value). A file with no readings, rows of different lengths or no number at
    all raise ``ValueError``."""
    with open(path, newline="") as handle:
        lines = [line for line in handle.read().splitlines() if line.strip()]
    if lines and not _all_numbers(lines[0]):
        lines = lines[1:]
    if not lines:
        raise ValueError("the file holds no readings")
    table = np.genfromtxt(lines, delimiter=",", dtype=np.float32, invalid_raise=True, ndmin=2)
    if table.size == 0 or bool(np.isnan(table).all()):
        raise ValueError("no field of the file is a number")
    return torch.from_numpy(np.ascontiguousarray(table.T))


def _all_numbers(line: str) -> bool:
    try:
        [float(field) for field in line.split(",") if field.strip()]
    except ValueError:
        return False
    return True


def _resize(image: Tensor, size: int) -> Tensor:
    """``[C, H, W]`` with its short side resized to ``size`` (bilinear, antialiased) and the centre cropped: what the
    video plugin's evaluation transform does to frames, so spatial partners stay aligned."""
    from torchvision.transforms.v2 import functional as TF

    resized = TF.resize(image, [size], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    return TF.center_crop(resized, [size])


def _normalize(x: Tensor, mean: Sequence[float] | None, std: Sequence[float] | None) -> Tensor:
    if mean is not None:
        x = x - torch.tensor(mean, dtype=x.dtype).view(-1, 1, 1)
    if std is not None:
        x = x / torch.tensor(std, dtype=x.dtype).view(-1, 1, 1)
    return x


@dataclass(frozen=True)
class PairedReader:
    """Reads one sample's partners (a frozen dataclass: it pickles into the loader's workers). Built by
    :meth:`PairedFolderDataModule.reader`; see the module's docstring for what each kind of partner gives."""

    partners: tuple[Partner, ...]
    train: bool
    num_frames: int
    sampling_rate: int
    sampling: Sampling
    clip: ClipTransform
    image: Callable[[object], Tensor]  # torchvision's transform of a PIL image
    image_size: int
    array_mean: tuple[float, ...] | None
    array_std: tuple[float, ...] | None
    features: Fbank
    series_length: int
    series_mode: Literal["resample", "pad"]

    def __call__(self, stem: str) -> dict[str, Tensor]:
        sample: dict[str, Tensor] = {}
        span = None
        state = torch.get_rng_state()  # every video draws the same frames (aligned), from the sample's seed
        for partner in sorted(self.partners, key=lambda p: p.kind != "video"):  # the videos first: their span
            path = self._path(stem, partner.extension)
            try:
                if partner.kind == "video":
                    torch.set_rng_state(state)
                    entries, clip_span = self._video(path)
                    span = span or clip_span
                else:
                    entries = self._read(partner.kind, path, span)
            except (OSError, ValueError, RuntimeError, EOFError, SyntaxError) as error:
                reason = " ".join(str(error).split()) or type(error).__name__
                raise ValueError(f"{partner.name} ({os.path.basename(path)}): {reason}") from None
            sample.update({f"{partner.name}/{key}": value for key, value in entries.items()})
        return sample

    @staticmethod
    def _path(stem: str, extension: str) -> str:
        for path in (stem + extension, stem + extension.upper()):
            if os.path.exists(path):
                return path
        raise FileNotFoundError(f"no partner {os.path.basename(stem) + extension}")

    def _video(self, path: str) -> tuple[dict[str, Tensor], Span]:
        """The clip, and its span: ``read_video`` draws its frames with ``clip_indices`` from torch's generator, so
        the same draw from the same state tells which frames it took."""
        total, rate, origin = _probe(path)
        state = torch.get_rng_state()
        indices = clip_indices(total, self.num_frames, self.sampling_rate, self.sampling, self.train)
        torch.set_rng_state(state)
        entries = read_clip(path, self.num_frames, self.sampling_rate, self.sampling, self.train, self.clip, repeats=1)
        first, last = min(indices), max(indices) + 1
        return entries, Span(first / rate, last / rate, first / total, last / total, origin)

    def _read(self, kind: Kind, path: str, span: Span | None) -> dict[str, Tensor]:
        rate = self.features.sample_rate
        if kind == "track":
            if span is None:
                return self._fbank(read_audio_track(path, rate))
            return self._fbank(read_audio_track(path, rate, span.origin + span.start, span.origin + span.end))
        if kind == "audio":
            wave = read_audio(path, rate)
            return self._fbank(wave if span is None else cut_span(wave, span.start * rate, span.end * rate))
        if kind == "image":
            return read_image(path, self.image, "RGB")
        if kind == "array":
            pixels = torch.from_numpy(np.ascontiguousarray(read_bands(path), dtype=np.float32)).nan_to_num(0, 0, 0)
            if pixels.shape[-1] == 0 or pixels.shape[-2] == 0:
                raise ValueError(f"an empty array of shape {tuple(pixels.shape)}")
            return {"image": _normalize(_resize(pixels, self.image_size), self.array_mean, self.array_std)}
        series = read_csv_series(path)
        if span is not None:  # the rows are taken to span the video evenly
            rows = series.shape[-1]
            first = min(math.floor(span.first_share * rows), rows - 1)
            series = series[:, first : max(math.ceil(span.last_share * rows), first + 1)]
        return self._series(series)

    def _fbank(self, wave: Tensor) -> dict[str, Tensor]:
        shortest = int(0.025 * self.features.sample_rate)  # one fbank window: a shorter span is padded with silence
        return self.features(torch.nn.functional.pad(wave, (0, max(0, shortest - len(wave)))))

    def _series(self, series: Tensor) -> dict[str, Tensor]:
        length = self.series_length
        if self.series_mode == "resample":
            stretched = torch.nn.functional.interpolate(series[None], size=length, mode="linear", align_corners=True)
            return {"series": stretched[0]}
        steps = min(series.shape[-1], length)
        return {
            "series": torch.nn.functional.pad(series[:, :length], (0, length - steps)),
            "length": torch.tensor(steps),
        }


# -------------------------------------------------------------------------------------------------- data module
class PairedFolderDataModule(FolderDataModule):
    """Aligned multi-modal samples from a folder of files paired by stem (``clip01.mp4`` + ``clip01.wav`` +
    ``clip01.csv``...), for pretraining (unlabelled) or evaluation (labelled, ``root/<class>/<stem>.<ext>``).

    ``modalities`` names each modality and its reader, e.g. ``{"video": "mp4", "audio": "mp4:audio"}`` (a video and
    its own sound track), ``{"video": "mp4", "audio": "wav"}``, ``{"rgb": "png", "depth": "npy"}``, ``{"video":
    "mp4", "imu": "csv"}``. Batches are flat dicts, each modality's entries prefixed with its name: a video gives
    ``"<name>/video"`` ``[B, 3, T, H, W]``; audio ``"<name>/fbank"`` ``[B, 1, target_length, num_mel_bins]`` and
    ``"<name>/frames"`` ``[B]``; an image or array ``"<name>/image"`` ``[B, C, H, W]``; a CSV ``"<name>/series"``
    ``[B, C, series_length]`` (and ``"<name>/length"`` ``[B]`` when padded); plus ``"label"`` when labelled. What each
    reader does, and how the partners are aligned in time, is in :mod:`anymae_multimodal.folders`.

    Samples lacking a partner are left out, counted in :attr:`num_unpaired` and named in a warning; a partner that
    cannot be read skips its sample, counted in ``num_skipped`` (a warning names it once), never fatal. There is no
    random spatial augmentation (the partners of a sample must stay aligned); training draws each clip's frames at
    random (``sampling``), and the audio and series follow them.

    Args:
        root: the training files; with ``labeled``, ``root/<class>/<stem>.<ext>``.
        modalities: modality name -> reader: a video extension (``"mp4"``, ``"webm"``, ...), a video extension with
            ``":audio"`` (its audio track), an audio extension (``"wav"``, ``"flac"``, ``"ogg"``, ...), an image
            extension (``"png"``, ``"jpg"``, ...), ``"npy"`` or ``"csv"``.
        num_frames, sampling_rate, sampling: the clip's frames, as :class:`~anymae_video.VideoFolderDataModule`.
        image_size: side of every video frame, image and array (short side resized, the centre cropped).
        video_mean, video_std: the video's per-channel normalisation (ImageNet's, as VideoMAE).
        image_mean, image_std: the images' (ImageNet's).
        array_mean, array_std: the arrays' per-channel (or one) normalisation; unset: the values as stored.
        sample_rate, num_mel_bins, target_length: the audio features, as
            :class:`~anymae_audio.AudioFolderDataModule`.
        audio_mean, audio_std: the fbank normalisation, ``(x - mean) / (2 std)`` (AudioSet's by default).
        series_length: steps per CSV series.
        series_mode: ``"resample"`` (linear interpolation to ``series_length`` steps) or ``"pad"`` (the first
            ``series_length`` rows, zeros after the last; ``"<name>/length"`` holds the real count).
        val_root, val_fraction, labeled, batch_size, num_workers, seed: :class:`~anymae.FolderDataModule`'s (the
            seed also draws the clips' frames).
    """

    # every reader's errors for a bad file; PairedReader names the partner in the message
    read_errors = (OSError, ValueError, RuntimeError, EOFError, SyntaxError)

    @validated
    def __init__(
        self,
        root: PathStr,
        modalities: dict[str, str],
        *,
        num_frames: PositiveInt = 16,
        sampling_rate: PositiveInt = 4,
        sampling: Sampling = "dense",
        image_size: PositiveInt = 224,
        video_mean: tuple[float, float, float] = KINETICS_MEAN,
        video_std: tuple[PositiveFloat, PositiveFloat, PositiveFloat] = KINETICS_STD,
        image_mean: tuple[float, float, float] = KINETICS_MEAN,
        image_std: tuple[PositiveFloat, PositiveFloat, PositiveFloat] = KINETICS_STD,
        array_mean: tuple[float, ...] | None = None,
        array_std: tuple[Annotated[float, Field(gt=0)], ...] | None = None,
        sample_rate: PositiveInt = 16000,
        num_mel_bins: PositiveInt = 128,
        target_length: PositiveInt = 1024,
        audio_mean: float = AUDIOSET_MEAN,
        audio_std: Annotated[float, Field(gt=0)] = AUDIOSET_STD,
        series_length: PositiveInt = 256,
        series_mode: Literal["resample", "pad"] = "resample",
        **kwargs: Any,
    ) -> None:
        super().__init__(root, **kwargs)
        if self.file_list is not None or self.val_file_list is not None:
            raise ConfigError(
                "PairedFolderDataModule pairs every file under root with its partners by stem; it reads no file_list"
            )
        self.partners = parse_partners(modalities)
        self.extensions = tuple(sorted({p.extension for p in self.partners}))  # what a sample's files end with
        self.modalities = dict(modalities)
        self.num_frames, self.sampling_rate, self.sampling = num_frames, sampling_rate, sampling
        self.image_size, self.video_mean, self.video_std = image_size, video_mean, video_std
        self.image_mean, self.image_std, self.array_mean, self.array_std = image_mean, image_std, array_mean, array_std
        self.sample_rate, self.num_mel_bins, self.target_length = sample_rate, num_mel_bins, target_length
        self.audio_mean, self.audio_std = audio_mean, audio_std
        self.series_length, self.series_mode = series_length, series_mode
        #: samples left out for lacking a partner (all splits, each build)
        self.num_unpaired = 0

    def files(self, root: str, classes: Sequence[str] | None, split: str) -> FileList:
        """The stems under ``root`` that have a file for every modality (labelled by sub-folder when
        :attr:`labeled`); the others are counted in :attr:`num_unpaired` and named in a warning."""
        found = scan_folder(root, self.extensions, self.labeled, classes)
        have: dict[str, set[str]] = {}
        label_of: dict[str, int] = {}
        for i, path in enumerate(found.paths):
            stem, extension = os.path.splitext(path)
            have.setdefault(stem, set()).add(extension.lower())
            if found.labels is not None:
                label_of[stem] = found.labels[i]
        needed = set(self.extensions)
        stems = sorted(s for s, extensions in have.items() if needed <= extensions)
        lacking = sorted(set(have) - set(stems))
        if lacking:
            self.num_unpaired += len(lacking)
            example = os.path.relpath(lacking[0], root)
            missing = ", ".join(sorted(needed - have[lacking[0]]))
            warnings.warn(
                f"{type(self).__name__}: {len(lacking)} of {len(have)} samples under {root!r} lack a partner and are "
                f"left out (e.g. {example!r}: no {missing})",
                RuntimeWarning,
                stacklevel=2,
            )
            if not stems and split == "train":
                raise ConfigError(
                    f"{type(self).__name__}: no sample under {root!r} has all of {', '.join(sorted(needed))} "
                    f"(e.g. {example!r} has no {missing})"
                )
        labels = tuple(label_of[s] for s in stems) if found.labels is not None else None
        return FileList(tuple(stems), labels, found.classes)

    def reader(self, train: bool) -> Callable[[str], dict[str, Tensor]]:
        from torchvision.transforms import InterpolationMode, v2

        size = self.image_size
        image = v2.Compose(
            [
                v2.ToImage(),
                v2.Resize(size, interpolation=InterpolationMode.BILINEAR, antialias=True),
                v2.CenterCrop(size),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(self.image_mean, self.image_std),
            ]
        )
        return PairedReader(
            partners=self.partners,
            train=train,
            num_frames=self.num_frames,
            sampling_rate=self.sampling_rate,
            sampling=self.sampling,
            clip=ClipTransform(size, train=False, mean=self.video_mean, std=self.video_std),
            image=image,
            image_size=size,
            array_mean=self.array_mean,
            array_std=self.array_std,
            features=Fbank(
                self.sample_rate, self.num_mel_bins, self.target_length, "start", self.audio_mean, self.audio_std
            ),
            series_length=self.series_length,
            series_mode=self.series_mode,
        )
