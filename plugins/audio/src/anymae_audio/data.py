"""Audio data modules.

* :class:`AudioFolderDataModule`: WAV / FLAC / OGG / MP3 files, unlabelled, labelled by sub-folder, or listed in a
  CSV with labels and folds (ESC-50's ``meta/esc50.csv``: ``filename``, ``fold``, ``category``); Audio-MAE's fbank
  features (:mod:`anymae_audio.features`) computed in the loader's workers; a file's waveform decoded once per
  worker (the decoded-file cache); augmentation for small sets: time shift and gain of the waveform, fine-tuning's
  SpecAugment and mixup. A file that cannot be read is skipped and counted, never fatal.
* :class:`SynthSoundsDataModule`: generated sounds whose class is told apart by pitch contour, timbre or rhythm,
  made in memory (no download); SpecAugment and mixup.

Augmentation follows Audio-MAE (facebookresearch/AudioMAE): its pretraining code defaults to none (``freqm``,
``timem`` and ``mixup`` 0; its AudioSet-2M script adds ``roll_mag_aug``, a random roll and a magnitude in 0.5-1.5),
and its fine-tuning adds SpecAugment and mixup. Every augmentation here is off by default.

Batches are dicts: ``{"fbank": [B, 1, T, F] float, "frames": [B] real frames, "label": [B] long}`` (``label`` when
labelled; class probabilities ``[B, C]`` after mixup).
"""

import csv
import functools
import math
import os
from collections.abc import Callable, Sequence
from functools import partial
from typing import Annotated, Any, Literal

import torch
from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveInt
from torch import Tensor

from anymae import ConfigError, DataModule, FileList, FolderDataModule, PathStr, TensorSamples, split_indices, validated

from .features import (
    AUDIO_EXTENSIONS,
    AUDIOSET_MEAN,
    AUDIOSET_STD,
    Fbank,
    batched_fbank,
    read_audio,
    read_audio_span,
)

__all__ = ["AudioFolderDataModule", "SynthSoundsDataModule", "mixup", "read_clip", "shift_and_gain", "spec_augment"]


def spec_augment(fbank: Tensor, freqm: int, timem: int, fill: float = 0.0) -> Tensor:
    """SpecAugment as Audio-MAE fine-tunes (torchaudio's ``FrequencyMasking(freqm)`` and ``TimeMasking(timem)``): one
    band of up to ``freqm`` mel bins and one span of up to ``timem`` frames set to ``fill``, on ``[1, T, F]``."""
    import torchaudio.transforms as T

    x = fbank.transpose(1, 2)  # torchaudio masks [..., freq, time]
    if freqm:
        x = T.FrequencyMasking(freqm)(x, mask_value=fill)
    if timem:
        x = T.TimeMasking(timem)(x, mask_value=fill)
    return x.transpose(1, 2)


def shift_and_gain(waveform: Tensor, time_shift: float, gain_db: float) -> Tensor:
    """A waveform ``[N]`` rolled (circularly, as Audio-MAE's ``roll_mag_aug``) by a random offset of up to
    ``time_shift x N`` samples either way, and scaled by a random gain drawn uniformly in ``[-gain_db, gain_db]`` dB
    (torch's generator, which the data kit seeds per sample). A new tensor; the input is left as it is."""
    if time_shift:
        limit = int(time_shift * len(waveform))
        waveform = torch.roll(waveform, int(torch.randint(-limit, limit + 1, ())))
    if gain_db:
        waveform = waveform * 10 ** ((2 * float(torch.rand(())) - 1) * gain_db / 20)
    return waveform


def read_clip(
    path: str,
    sample_rate: int,
    features: Fbank,
    freqm: int,
    timem: int,
    time_shift: float = 0.0,
    gain_db: float = 0.0,
    cache: bool = True,
) -> dict[str, Tensor]:
    """One file's features (``{"fbank": [1, T, F], "frames": n}``): the waveform shifted and scaled
    (:func:`shift_and_gain`), then SpecAugment when asked: Audio-MAE masks the raw fbank with zeros before
    normalising, which is the normalised value of zero here. ``cache``: the decoded waveform from the decoded-file
    cache after the file's first read (:func:`~anymae_audio.read_audio`); the augmentation is drawn afresh. Of a file
    more than four clips long, only the clip's span is read (:func:`~anymae_audio.features.read_audio_span`: at its
    start, or at a random start with ``features.crop == "random"``)."""
    seconds = features.target_length * 0.010 + 0.025  # target_length frames 10 ms apart (25 ms windows), and one more
    waveform = read_audio_span(path, sample_rate, seconds, features.crop == "random")
    if waveform is None:
        waveform = read_audio(path, sample_rate, cache=cache)
    if time_shift or gain_db:
        waveform = shift_and_gain(waveform, time_shift, gain_db)
    sample = features(waveform)
    if freqm or timem:
        fill = -features.mean / (2 * features.std)
        sample["fbank"] = spec_augment(sample["fbank"], freqm, timem, fill)
    return sample


def mixup(batch: dict[str, Tensor], probability: float, classes: int, alpha: float = 10.0) -> dict[str, Tensor]:
    """Mix each sample, with ``probability``, with the previous one in the batch: ``lam x + (1 - lam) x'`` for the
    normalised features and the one-hot labels, ``lam ~ Beta(alpha, alpha)``, one per sample. Audio-MAE mixes
    waveforms before the fbank, with a partner drawn from the whole set, at the same Beta(10, 10); mixing the batch's
    features keeps the fbank in the workers. Labels become probabilities; a mixed clip's real frames are the longer
    of the two."""
    x, labels = batch["fbank"], batch["label"]
    b = len(labels)
    concentration = torch.full((b,), alpha, device=x.device)
    lam = torch.distributions.Beta(concentration, concentration).sample()
    lam = torch.where(torch.rand(b, device=x.device) < probability, lam, torch.ones_like(lam))
    one_hot = torch.nn.functional.one_hot(labels.long(), classes).float() if labels.dim() == 1 else labels
    partner = torch.roll(torch.arange(b, device=x.device), 1)
    shape = (b,) + (1,) * (x.dim() - 1)
    batch = dict(batch)
    batch["fbank"] = lam.view(shape) * x + (1 - lam.view(shape)) * x[partner]
    batch["label"] = lam[:, None] * one_hot + (1 - lam[:, None]) * one_hot[partner]
    if "frames" in batch:
        batch["frames"] = torch.maximum(batch["frames"], batch["frames"][partner])
    return batch


class AudioFolderDataModule(FolderDataModule):
    """Audio files from a folder, for pretraining (unlabelled) or evaluation and fine-tuning (labelled).

    Args:
        root: the training files: every audio file below it; with ``labeled``, ``root/<class>/<file>``.
        labels_csv: a CSV listing the files with their labels instead (ESC-50: ``meta/esc50.csv``), paths relative
            to ``root``, in named columns (below). A plain list of files and labels (``path,label`` rows, ``path
            label`` lines) is :class:`~anymae.FolderDataModule`'s ``file_list``.
        path_column, label_column: its columns of file names and labels (class names or integer ids).
        fold_column: its column of folds (ESC-50: ``fold``); with ``val_folds``, those folds are the validation
            split and the others the training split (``root`` then holds both).
        val_folds: the validation folds.
        sample_rate: the waveform's rate after resampling (16 kHz in Audio-MAE).
        num_mel_bins: mel bands (128).
        target_length: frames per clip (1024 AudioSet, 512 ESC-50, 128 Speech Commands).
        crop: where longer training clips are cropped (``"start"``: Audio-MAE; ``"random"``); evaluation crops the
            start.
        mean, std: the fbank normalisation (AudioSet's by default; ``anymae fbank_stats`` computes a data set's).
        time_shift: a training waveform rolled (circularly) by a random offset of up to this share of its length
            either way (1: any offset, Audio-MAE's ``roll_mag_aug``, which its AudioSet-2M pretraining script turns
            on; 0: off, its code's default).
        gain_db: a training waveform scaled by a random gain, uniform in ``[-gain_db, gain_db]`` dB (Audio-MAE's
            ``roll_mag_aug`` scales by 0.5 to 1.5, about -6 to +3.5 dB; 0: off). The fbank has no dither, so a gain
            shifts every log-mel value alike: it teaches loudness invariance.
        freqm, timem: SpecAugment on training clips (torchaudio's ``FrequencyMasking`` and ``TimeMasking``): one
            band of up to ``freqm`` mel bins and one span of up to ``timem`` frames set to the raw fbank's zero
            (Audio-MAE fine-tunes with 48 / 192 on AudioSet, 96 / 24 on ESC-50; 0: off, as in pretraining).
        mixup: probability that a training sample is mixed with another of its batch (Audio-MAE: 0.5 on AudioSet;
            needs labels; the labels become class probabilities).
        augment: all the training split's random augmentation at once (the random crop, ``time_shift``,
            ``gain_db``, ``freqm``, ``timem`` and ``mixup``); off, training clips are read as evaluation reads them,
            whatever those say: one line for evaluation configs.
        cache: keep each file's decoded waveform in memory after its first read (each loader worker its own copy,
            within ``ANYMAE_DECODED_CACHE_MB``, 1024 by default); the same samples either way.
        val_root, val_fraction, labeled, batch_size, num_workers, seed: :class:`~anymae.FolderDataModule`'s
            (``val_folds`` splits a list by fold instead of ``val_root`` or ``val_fraction``).
    """

    extensions = AUDIO_EXTENSIONS

    @validated
    def __init__(
        self,
        root: PathStr,
        *,
        labels_csv: str | None = None,
        path_column: str = "filename",
        label_column: str = "category",
        fold_column: str | None = None,
        val_folds: tuple[int, ...] = (),
        sample_rate: PositiveInt = 16000,
        num_mel_bins: PositiveInt = 128,
        target_length: PositiveInt = 1024,
        crop: Literal["start", "random"] = "start",
        mean: float = AUDIOSET_MEAN,
        std: Annotated[float, Field(gt=0)] = AUDIOSET_STD,
        time_shift: Annotated[float, Field(ge=0, le=1)] = 0.0,
        gain_db: NonNegativeFloat = 0.0,
        freqm: NonNegativeInt = 0,
        timem: NonNegativeInt = 0,
        mixup: Annotated[float, Field(ge=0, le=1)] = 0.0,
        augment: bool = True,
        cache: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(root, **kwargs)
        if val_folds and (labels_csv is None or fold_column is None):
            raise ConfigError("AudioFolderDataModule.val_folds needs labels_csv and its fold_column")
        if labels_csv is not None and self.val_root is not None and not val_folds:
            raise ConfigError(
                "AudioFolderDataModule: a labels_csv lists the training files; split it with val_folds (and its "
                "fold_column) or val_fraction, not with val_root"
            )
        if val_folds and self.val_root is None:
            self.val_root = root  # both splits come from the list, by fold
        if self.labeled and labels_csv is not None:
            raise ConfigError("AudioFolderDataModule: labels come from sub-folders (labeled) or labels_csv, not both")
        if labels_csv is not None and self.file_list is not None:
            raise ConfigError(
                "AudioFolderDataModule: labels_csv (a table with named columns and folds) or file_list (a list of "
                "files, each with its label), not both"
            )
        self.labeled = self.labeled or labels_csv is not None
        if mixup and not (self.labeled or self.file_list is not None):
            raise ConfigError("AudioFolderDataModule.mixup mixes labels too: it needs labeled, labels_csv or file_list")
        self.labels_csv, self.path_column, self.label_column = labels_csv, path_column, label_column
        self.fold_column, self.val_folds = fold_column, tuple(val_folds)
        self.sample_rate, self.num_mel_bins, self.target_length, self.crop = (
            sample_rate,
            num_mel_bins,
            target_length,
            crop,
        )
        self.mean, self.std, self.freqm, self.timem, self.mixup = mean, std, freqm, timem, mixup
        self.time_shift, self.gain_db, self.augment, self.cache = time_shift, gain_db, augment, cache

    def files(self, root: str, classes: Sequence[str] | None, split: str) -> FileList:
        if self.labels_csv is None:
            return super().files(root, classes, split)
        try:
            with open(self.labels_csv, newline="") as handle:
                rows = list(csv.DictReader(handle))
        except OSError as error:
            raise ConfigError(f"cannot read labels_csv {self.labels_csv!r}: {error.strerror or error}") from None
        columns = [self.path_column, self.label_column, *([self.fold_column] if self.fold_column else [])]
        missing = [c for c in columns if rows and c not in rows[0]]
        if not rows or missing:
            have = ", ".join(rows[0]) if rows else "no rows"
            raise ConfigError(f"labels_csv {self.labels_csv!r} needs columns {missing or columns} (it has: {have})")
        if self.val_folds:
            in_val = {str(f) for f in self.val_folds}
            rows = [r for r in rows if (r[self.fold_column].strip() in in_val) == (split == "val")]
        names = [r[self.label_column].strip() for r in rows]
        if classes is None:
            classes = sorted(set(names), key=lambda n: (not n.isdigit(), int(n) if n.isdigit() else 0, n))
        index = {name: i for i, name in enumerate(classes)}
        unknown = sorted(set(names) - set(index))
        if unknown:
            raise ConfigError(f"{self.labels_csv}: labels {unknown[:5]} of the {split} split are not training labels")
        paths = tuple(os.path.join(root, r[self.path_column].strip()) for r in rows)
        if paths and not any(os.path.exists(p) for p in paths[:10]):
            raise ConfigError(
                f"labels_csv {self.labels_csv!r} names files that are not under root {root!r} (first: {paths[0]!r})"
            )
        return FileList(paths, tuple(index[n] for n in names), tuple(classes))

    def reader(self, train: bool) -> Callable[[str], dict[str, Tensor]]:
        augment = train and self.augment
        crop = self.crop if augment else "start"
        features = Fbank(self.sample_rate, self.num_mel_bins, self.target_length, crop, self.mean, self.std)
        return partial(
            read_clip,
            sample_rate=self.sample_rate,
            features=features,
            freqm=self.freqm if augment else 0,
            timem=self.timem if augment else 0,
            time_shift=self.time_shift if augment else 0.0,
            gain_db=self.gain_db if augment else 0.0,
            cache=self.cache,
        )

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return _mix_when_training(self, batch, self.mixup if self.augment else 0.0)


def _mix_when_training(data: DataModule, batch: Any, probability: float) -> Any:
    """:func:`mixup` of a labelled training batch (on the device, after the transfer); other batches as they are."""
    trainer = getattr(data, "trainer", None)
    if probability and trainer is not None and trainer.training and isinstance(batch, dict) and "label" in batch:
        return mixup(batch, probability, len(data.classes))
    return batch


# ------------------------------------------------------------------------------------------------ generated sounds
SOUNDS = ("rising", "falling", "vibrato", "harmonic", "pulsed", "trill")


def synth_sounds(per_class: int, sample_rate: int, duration: float, seed: int) -> tuple[Tensor, Tensor]:
    """Waveforms ``[S, N]`` and labels of the 6 classes of :data:`SOUNDS`, all generated at once:

    * pitch contour: a tone gliding up an octave (``rising``), down one (``falling``), or wobbling by a semitone
      at 3-8 Hz (``vibrato``), or jumping between two notes a third apart at 5-10 Hz (``trill``);
    * timbre: a steady note with 6 harmonics falling as 1/k (``harmonic``; the others are pure tones);
    * rhythm: a steady pure tone switched on and off at 3-8 Hz (``pulsed``).

    Each clip has its own base pitch (200-1000 Hz, log-uniform), loudness, onset and background noise, so no single
    number tells the classes apart.
    """
    g = torch.Generator().manual_seed(seed)
    s, n = per_class * len(SOUNDS), int(sample_rate * duration)
    labels = torch.arange(len(SOUNDS)).repeat_interleave(per_class)
    t = torch.arange(n) / sample_rate
    u = torch.rand(s, 4, generator=g)
    base = 200 * 5 ** u[:, :1]  # [S, 1]
    rate = 3 + 5 * u[:, 1:2]  # modulation rate, Hz
    progress = t[None] / duration
    contours = {
        0: base * 2**progress,
        1: base * 2 ** (1 - progress) / 2,
        2: base * 2 ** (torch.sin(2 * math.pi * rate * t) / 12),
        3: base.expand(s, n),
        4: base.expand(s, n),
        5: base * 2 ** ((torch.sin(2 * math.pi * (rate + 2) * t) > 0).float() * 4 / 12),
    }
    frequency = torch.zeros(s, n)
    for label, contour in contours.items():  # 6 classes, each batched over its clips
        rows = labels == label
        frequency[rows] = contour.expand(s, n)[rows]
    phase = 2 * math.pi * torch.cumsum(frequency, dim=1) / sample_rate
    wave = torch.sin(phase)
    rich = labels == 3
    for k in range(2, 7):  # 5 more harmonics, falling as 1/k, for the harmonic class
        wave[rich] += torch.sin(k * phase[rich]) / k
    gate = (torch.sin(2 * math.pi * rate * t) > 0).float()
    wave = torch.where((labels == 4)[:, None], wave * gate, wave)
    onset = (u[:, 2:3] * 0.2 * duration * sample_rate).long()
    wave = wave * (torch.arange(n)[None] >= onset)
    loudness = 0.1 + 0.4 * u[:, 3:4]
    noise = 0.01 * torch.randn(s, n, generator=g)
    return loudness * wave + noise, labels


@functools.lru_cache(maxsize=4)
def synth_fbanks(
    per_class: int, sample_rate: int, duration: float, num_mel_bins: int, target_length: int, seed: int
) -> dict[str, Tensor]:
    """The generated set as Audio-MAE's features, made once per process (evaluation builds it for every seed)."""
    waves, labels = synth_sounds(per_class, sample_rate, duration, seed)
    raw = batched_fbank(waves, sample_rate, num_mel_bins)  # [S, frames, bins]: every clip at once
    fitted = Fbank(sample_rate, num_mel_bins, target_length).fit(raw)  # the same padding and normalisation
    return {"fbank": fitted["fbank"], "frames": fitted["frames"].expand(len(labels)).clone(), "label": labels}


class SynthSoundsDataModule(DataModule):
    """Generated sounds told apart by pitch contour, timbre or rhythm (:func:`synth_sounds`), as Audio-MAE's fbank
    features, made in memory in a few seconds (no download): the embedded data set for trying audio pretraining and
    scoring it with few labels.

    Args:
        per_class: clips per class (6 classes).
        sample_rate: of the generated waveforms.
        duration: seconds per clip (1.28 s: 126 frames, padded to ``target_length``).
        num_mel_bins: mel bands.
        target_length: frames per clip.
        freqm, timem: SpecAugment on training clips, as :class:`AudioFolderDataModule` (0: off). The features are
            computed once for the whole set, so the waveform's time shift and gain are not offered here.
        mixup: probability that a training sample is mixed with another of its batch, as
            :class:`AudioFolderDataModule` (0: off).
        val_fraction: share held out for validation.
        batch_size, num_workers, seed: as every data module (the seed also draws the sounds).
    """

    name = "synth-sounds"  # what evaluation results call this data set

    @validated
    def __init__(
        self,
        per_class: PositiveInt = 200,
        sample_rate: PositiveInt = 16000,
        duration: Annotated[float, Field(gt=0.05)] = 1.28,
        num_mel_bins: PositiveInt = 128,
        target_length: PositiveInt = 128,
        freqm: NonNegativeInt = 0,
        timem: NonNegativeInt = 0,
        mixup: Annotated[float, Field(ge=0, le=1)] = 0.0,
        val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.per_class, self.sample_rate, self.duration = per_class, sample_rate, duration
        self.num_mel_bins, self.target_length, self.val_fraction = num_mel_bins, target_length, val_fraction
        self.freqm, self.timem, self.mixup = freqm, timem, mixup
        self.classes = list(SOUNDS)

    def build(self) -> tuple[TensorSamples, TensorSamples]:
        data = synth_fbanks(
            self.per_class, self.sample_rate, self.duration, self.num_mel_bins, self.target_length, self.seed
        )
        train, val = split_indices(len(data["label"]), self.val_fraction, self.seed)
        masking = None
        if self.freqm or self.timem:
            fill = -AUDIOSET_MEAN / (2 * AUDIOSET_STD)  # the raw fbank's zero, as read_clip masks (Fbank's defaults)
            masking = partial(_spec_augment_sample, freqm=self.freqm, timem=self.timem, fill=fill)
        return (
            TensorSamples({k: v[train] for k, v in data.items()}, transform=masking),
            TensorSamples({k: v[val] for k, v in data.items()}),
        )

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return _mix_when_training(self, batch, self.mixup)


def _spec_augment_sample(sample: dict[str, Tensor], freqm: int, timem: int, fill: float) -> dict[str, Tensor]:
    return {**sample, "fbank": spec_augment(sample["fbank"], freqm, timem, fill)}
