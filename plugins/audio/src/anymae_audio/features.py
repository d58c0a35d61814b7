"""Reading audio and computing Audio-MAE's features (Huang et al. 2022, https://arxiv.org/abs/2207.06405).

Reading is `soundfile <https://python-soundfile.readthedocs.io>`_: its wheels carry libsndfile 1.2 (WAV, FLAC, OGG
Vorbis/Opus, MP3 and more), so ``pip install anymae-audio`` is all a Linux machine needs (``torchaudio.load`` needs
the system's FFmpeg). What libsndfile does not read -- AAC in ``.m4a``/``.aac``, ``.wma``, ``.mka``, and the sound
track of a video file (:func:`read_audio_track`) -- is decoded with PyAV, whose wheels carry FFmpeg. Channels are
averaged to mono and the signal is resampled with ``torchaudio.functional.resample``; the result is kept in the
process's decoded-file cache (:func:`anymae.decoded_cache`), so a file is read and resampled once per loader worker,
not once per epoch and evaluation run.

Features are ``torchaudio.compliance.kaldi.fbank`` with Audio-MAE's call: the waveform's mean removed, 128 mel bins,
a 25 ms Hanning window every 10 ms, ``htk_compat``, no energy, no dither; then ``target_length`` frames (1024 for
AudioSet, 512 for ESC-50, 128 for Speech Commands) by zero padding at the end or cropping, and Audio-MAE's
normalisation ``(fbank - mean) / (2 std)`` with AudioSet's mean -4.2677393 and std 4.5689974 (or a data set's own,
from ``anymae fbank_stats``). :class:`Fbank` runs kaldi's fbank per clip in the loader's workers, where a clip's
features cost far less than its training step; :func:`batched_fbank` computes the same features for a whole batch
of equal-length waveforms at once, on any device (equal to kaldi's to 1e-4, ``tests/audio/test_features.py``), for
generated data and for feature extraction on the GPU (``benchmarks/audio.py`` times both).
"""

import functools
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from anymae import decoded_cache

__all__ = [
    "AUDIO_EXTENSIONS",
    "AUDIOSET_MEAN",
    "AUDIOSET_STD",
    "AV_EXTENSIONS",
    "Fbank",
    "batched_fbank",
    "cut_span",
    "read_audio",
    "read_audio_span",
    "read_audio_track",
]

#: what libsndfile does not read (AAC in MP4/M4A, Windows Media, Matroska audio) is decoded with PyAV's FFmpeg
AV_EXTENSIONS = (".m4a", ".aac", ".wma", ".mka")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".au", *AV_EXTENSIONS)
AUDIOSET_MEAN, AUDIOSET_STD = -4.2677393, 4.5689974


def read_audio(path: str, sample_rate: int, cache: bool = True) -> Tensor:
    """A file as a mono waveform ``[N]`` float32 at ``sample_rate``. libsndfile's errors (an unreadable or truncated
    file) are ``RuntimeError``s; an empty file raises ``ValueError``. With ``cache``, the waveform is decoded and
    resampled on the file's first read only (:func:`anymae.decoded_cache`, keyed by the file's modification time and
    size and by ``sample_rate``); each call returns its own copy, which the caller may change."""
    if not cache:
        return _decode_audio(path, sample_rate)
    key = ("anymae_audio.waveform", sample_rate)
    return decoded_cache().get(path, key, lambda: _decode_audio(path, sample_rate)).clone()


def _decode_audio(path: str, sample_rate: int) -> Tensor:
    if path.lower().endswith(AV_EXTENSIONS):
        return read_audio_track(path, sample_rate)
    import soundfile

    data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    return _mono_at(data, rate, sample_rate)


def _mono_at(data: np.ndarray, rate: int, sample_rate: int) -> Tensor:
    """Samples ``[N, channels]`` read at ``rate`` as a mono waveform ``[N']`` at ``sample_rate``."""
    if data.size == 0:
        raise ValueError("the file holds no samples")
    waveform = torch.from_numpy(data).mean(dim=1)
    if rate != sample_rate:
        import torchaudio.functional

        waveform = torchaudio.functional.resample(waveform, rate, sample_rate)
    return waveform


def read_audio_span(path: str, sample_rate: int, seconds: float, random_start: bool) -> Tensor | None:
    """``seconds`` of a long file, read alone: from its start, or from a random start (drawn from torch's random
    state: the sample's seed in a loader), mono at ``sample_rate``. ``None`` for a file no longer than four such
    spans (and for one whose length PyAV cannot tell): those are read whole (and kept in the decoded-file cache).

    An hour-long recording holds 360 ten-second clips; decoding all of it (230 MB at 16 kHz) and computing its
    whole fbank for each 10 s sample would cost seconds and fill the cache, so only the span is read: libsndfile
    seeks to it; in the formats PyAV decodes, FFmpeg seeks to the packet before it (:func:`read_audio_track`)."""
    if path.lower().endswith(AV_EXTENSIONS):
        total = _track_seconds(path)
        if total is None or total <= 4 * seconds:
            return None
        start = float(torch.rand(())) * (total - seconds) if random_start else 0.0
        return read_audio_track(path, sample_rate, start, start + seconds)
    import soundfile

    info = soundfile.info(path)
    count = math.ceil(seconds * info.samplerate)
    if info.frames <= 4 * count:
        return None
    start = int(torch.randint(info.frames - count + 1, ())) if random_start else 0
    data, rate = soundfile.read(path, start=start, frames=count, dtype="float32", always_2d=True)
    return _mono_at(data, rate, sample_rate)


def read_audio_track(path: str, sample_rate: int, start: float | None = None, end: float | None = None) -> Tensor:
    """The first audio stream of a (video) file, decoded with PyAV, mixed to mono and resampled to ``sample_rate``
    (PyAV's ``AudioResampler``, FFmpeg's swresample): float32 ``[N]``. With ``start`` and ``end`` (seconds in the
    file's timeline), only that span, zero-padded where the track ends before it. A file with no audio stream, or one
    FFmpeg cannot decode, raises ``ValueError``."""
    import av

    chunks: list[np.ndarray] = []
    first = None  # the time of the first sample decoded
    try:
        with av.open(path) as container:
            if not container.streams.audio:
                raise ValueError("the file has no audio stream")
            stream = container.streams.audio[0]
            if start and stream.time_base:  # to the packet at or before the start: a late clip skips the rest
                container.seek(int(start / stream.time_base), stream=stream, backward=True, any_frame=False)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            for frame in container.decode(stream):
                if first is None:
                    first = float(frame.time) if frame.time is not None else 0.0
                chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]
                if end is not None and frame.time is not None and frame.time > end:
                    break
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    except av.FFmpegError as error:
        raise ValueError(f"{type(error).__name__}: {error}") from None
    if not chunks or first is None:
        raise ValueError("the audio track holds no samples")
    wave = torch.from_numpy(np.concatenate(chunks).astype(np.float32, copy=False))
    if start is None or end is None:
        return wave
    return cut_span(wave, (start - first) * sample_rate, (end - first) * sample_rate)


def _track_seconds(path: str) -> float | None:
    """The length of a file's first audio stream in seconds, from its header (the stream's duration, else the
    container's); ``None`` when the file says neither or FFmpeg cannot open it (then it is read whole, and a broken
    file fails there, to be skipped and counted)."""
    import av

    try:
        with av.open(path) as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            if stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base)
            return container.duration / av.time_base if container.duration else None
    except av.FFmpegError:
        return None


def cut_span(wave: Tensor, start: float, end: float) -> Tensor:
    """Samples ``[start, end)`` of ``wave``, zeros where it does not reach (before its start or past its end)."""
    first, count = round(start), max(1, round(end - start))
    out = torch.zeros(count, dtype=wave.dtype)
    lo, hi = max(first, 0), min(first + count, len(wave))
    if hi > lo:
        out[lo - first : hi - first] = wave[lo:hi]
    return out


def batched_fbank(waveforms: Tensor, sample_rate: int = 16000, num_mel_bins: int = 128) -> Tensor:
    """Audio-MAE's kaldi fbank (see :meth:`Fbank.raw`) of ``B`` equal-length waveforms ``[B, N]`` at once:
    ``[B, frames, num_mel_bins]``, on the waveforms' device.

    Kaldi's steps, batched (``torchaudio.compliance.kaldi.fbank`` takes one waveform): each clip's mean removed;
    25 ms frames every 10 ms (edges snipped); each frame's DC offset removed; pre-emphasis 0.97; a symmetric Hann
    window; zero padding to the next power of two; the power spectrum; kaldi's mel filterbank (20 Hz to Nyquist);
    the log, floored at float32's epsilon. Written here because no library computes kaldi's fbank for a batch.
    """
    size, shift = int(sample_rate * 0.025), int(sample_rate * 0.01)
    if waveforms.shape[-1] < size:
        raise ValueError(f"the clips are shorter than one 25 ms window ({waveforms.shape[-1]} samples)")
    padded = 1 << (size - 1).bit_length()
    x = waveforms - waveforms.mean(dim=1, keepdim=True)
    frames = x.unfold(1, size, shift)  # [B, M, size]
    frames = frames - frames.mean(dim=-1, keepdim=True)
    previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
    frames = frames - 0.97 * previous
    window = torch.hann_window(size, periodic=False, device=x.device, dtype=x.dtype)
    frames = torch.nn.functional.pad(frames * window, (0, padded - size))
    power = torch.fft.rfft(frames).abs().pow(2.0)
    banks = _mel_banks(num_mel_bins, padded, sample_rate, str(x.device)).to(x.dtype)  # [bins, padded // 2 + 1]
    mel = power @ banks.T
    return mel.clamp_min(torch.finfo(torch.float32).eps).log()


@functools.lru_cache(maxsize=16)
def _mel_banks(num_mel_bins: int, padded: int, sample_rate: int, device: str) -> Tensor:
    """kaldi's mel filterbank (20 Hz to Nyquist), with the zero column for the Nyquist bin, kept per device."""
    import torchaudio.compliance.kaldi as kaldi

    banks, _ = kaldi.get_mel_banks(num_mel_bins, padded, float(sample_rate), 20.0, 0.0, 100.0, -500.0, 1.0)
    return torch.nn.functional.pad(banks, (0, 1)).to(device)


@dataclass(frozen=True)
class Fbank:
    """Audio-MAE's features of one waveform (a frozen dataclass: it pickles into the loader's workers).

    Args:
        sample_rate: of the waveform (16 kHz in Audio-MAE).
        num_mel_bins: mel bands (128).
        target_length: frames kept (1024 AudioSet, 512 ESC-50, 128 Speech Commands): shorter clips are padded with
            zeros at the end, longer ones cropped.
        crop: where a longer clip is cropped: ``"start"`` (Audio-MAE) or ``"random"`` (a random window; training).
        mean, std: normalisation, ``(fbank - mean) / (2 std)``.
    """

    sample_rate: int = 16000
    num_mel_bins: int = 128
    target_length: int = 1024
    crop: Literal["start", "random"] = "start"
    mean: float = AUDIOSET_MEAN
    std: float = AUDIOSET_STD

    def raw(self, waveform: Tensor) -> Tensor:
        """kaldi fbank ``[frames, num_mel_bins]`` with Audio-MAE's arguments, before padding and normalisation;
        ``ValueError`` for a waveform with NaN or infinite samples (a float file may hold them; one would make every
        value NaN)."""
        import torchaudio.compliance.kaldi as kaldi

        if not bool(waveform.isfinite().all()):
            raise ValueError(f"the clip holds {int((~waveform.isfinite()).sum())} samples that are NaN or infinite")
        waveform = waveform - waveform.mean()
        return kaldi.fbank(
            waveform[None],
            htk_compat=True,
            sample_frequency=self.sample_rate,
            use_energy=False,
            window_type="hanning",
            num_mel_bins=self.num_mel_bins,
            dither=0.0,
            frame_shift=10,
        )

    def __call__(self, waveform: Tensor) -> dict[str, Tensor]:
        """``{"fbank": [1, target_length, num_mel_bins], "frames": real frames}`` (time first, as Audio-MAE)."""
        if waveform.numel() < int(0.025 * self.sample_rate):
            raise ValueError(f"the clip is shorter than one 25 ms window ({waveform.numel()} samples)")
        return self.fit(self.raw(waveform))

    def fit(self, fbank: Tensor) -> dict[str, Tensor]:
        """A raw fbank ``[..., frames, bins]`` (one clip, or a batch of equal-length clips) padded or cropped to
        ``target_length`` and normalised: ``{"fbank": [..., 1, target_length, bins], "frames": real frames}``."""
        frames = fbank.shape[-2]
        if frames > self.target_length:
            start = int(torch.randint(frames - self.target_length + 1, ())) if self.crop == "random" else 0
            fbank = fbank[..., start : start + self.target_length, :]
        elif frames < self.target_length:
            fbank = torch.nn.functional.pad(fbank, (0, 0, 0, self.target_length - frames))
        fbank = (fbank - self.mean) / (2 * self.std)  # padded frames too, as Audio-MAE pads before normalising
        return {"fbank": fbank.unsqueeze(-3), "frames": torch.tensor(min(frames, self.target_length))}
