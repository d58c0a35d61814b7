"""Reading audio files and Audio-MAE's features: every format soundfile's wheel reads, mono and resampling, our
batched fbank against torchaudio's kaldi fbank, padding, cropping and normalisation, SpecAugment and mixup, bad files
skipped and counted, labels and folds from a CSV."""

import os

import numpy as np
import pytest
import soundfile
import torch

import anymae
from anymae_audio import AUDIOSET_MEAN, AUDIOSET_STD, AudioFolderDataModule, Fbank, read_audio, spec_augment
from anymae_audio.data import mixup
from anymae_audio.features import batched_fbank
from tests.core.toys import epoch

from .media import tone, write_audio, write_av_audio


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg", ".mp3"])
def test_every_format_reads_as_mono_at_the_configured_rate(tmp_path, suffix):
    path = write_audio(tmp_path / f"a{suffix}", tone(1000, 1.0, 44100, channels=2), 44100)
    wave = read_audio(str(path), 16000)
    assert wave.dim() == 1 and abs(len(wave) - 16000) < 1200  # mp3 adds encoder padding
    fbank = Fbank(target_length=96)(wave)["fbank"][0]
    loudest = int(fbank[10:80].mean(0).argmax())  # the 1 kHz tone's mel band, whatever the format
    reference = int(
        Fbank(target_length=96)(torch.tensor(tone(1000, 1.0, 16000)[:, 0]))["fbank"][0, 10:80].mean(0).argmax()
    )
    assert abs(loudest - reference) <= 1


@pytest.mark.parametrize(("suffix", "codec"), [(".m4a", "aac"), (".wma", "wmav2"), (".mka", "flac")])
def test_formats_libsndfile_lacks_read_through_pyav_alike(tmp_path, suffix, codec):
    """AAC in .m4a (phone recordings, YouTube audio), WMA and Matroska audio: decoded with PyAV, mono at the
    configured rate, the same tone in the same mel band; an AudioFolderDataModule finds them, and skips a broken one
    as it skips any unreadable file."""
    path = write_av_audio(tmp_path / "a" / f"a{suffix}", tone(1000, 1.0, 44100, channels=2), 44100, codec)
    wave = read_audio(str(path), 16000)
    assert wave.dim() == 1 and abs(len(wave) - 16000) < 1200  # encoders add priming and padding
    fbank = Fbank(target_length=96)(wave)["fbank"][0]
    reference = Fbank(target_length=96)(torch.tensor(tone(1000, 1.0, 16000)[:, 0]))["fbank"][0]
    assert int(fbank[10:80].mean(0).argmax()) == pytest.approx(int(reference[10:80].mean(0).argmax()), abs=1)
    (tmp_path / "a" / f"broken{suffix}").write_bytes(b"\x00\x00\x00\x18ftypM4A not audio")
    data = AudioFolderDataModule(str(tmp_path), num_workers=0, target_length=96, batch_size=2)
    data.setup("fit")
    assert [os.path.basename(p) for p in data.train_set.files.paths] == [f"a{suffix}", f"broken{suffix}"]
    batch = data.on_before_batch_transfer(next(iter(data.train_dataloader())), 0)
    assert batch["fbank"].shape[0] == 1 and data.num_skipped == 1


@pytest.mark.parametrize(("rate", "bins", "samples"), [(16000, 128, 20480), (8000, 64, 12345), (22050, 80, 30000)])
def test_batched_fbank_equals_kaldi_fbank(rate, bins, samples):
    waves = torch.randn(3, samples, generator=torch.Generator().manual_seed(rate)) * 0.3
    waves[1] *= torch.linspace(0, 1, samples)  # a fade-in, and a quiet clip with a DC offset
    waves[2] = 0.01 * waves[2] + 0.2
    features = Fbank(sample_rate=rate, num_mel_bins=bins)
    expected = torch.stack([features.raw(wave) for wave in waves])  # torchaudio.compliance.kaldi.fbank, one each
    torch.testing.assert_close(batched_fbank(waves, rate, bins), expected, atol=1e-4, rtol=0)


def test_padding_cropping_and_normalisation_are_audio_maes():
    features = Fbank(target_length=100)
    short = features(torch.randn(16000 // 2))  # 0.5 s: 48 frames
    assert short["fbank"].shape == (1, 100, 128) and int(short["frames"]) == 48
    torch.testing.assert_close(short["fbank"][0, 48:], torch.full((52, 128), -AUDIOSET_MEAN / (2 * AUDIOSET_STD)))
    wave = torch.randn(16000 * 2)
    raw = features.raw(wave)
    torch.testing.assert_close(features(wave)["fbank"][0], (raw[:100] - AUDIOSET_MEAN) / (2 * AUDIOSET_STD))
    torch.manual_seed(0)
    crops = {float(Fbank(target_length=100, crop="random")(wave)["fbank"][0, 0, 0]) for _ in range(8)}
    assert len(crops) > 1
    with pytest.raises(ValueError, match="shorter than one 25 ms window"):
        features(torch.randn(100))


def test_spec_augment_and_mixup():
    torch.manual_seed(0)
    fbank = torch.ones(1, 64, 32)
    masked = spec_augment(fbank, freqm=8, timem=16, fill=-2.0)
    assert (masked == -2.0).any() and ((masked == -2.0) | (masked == 1)).all() and masked.shape == fbank.shape
    batch = {"fbank": torch.randn(8, 1, 16, 8), "label": torch.arange(8) % 4, "frames": torch.arange(8) + 5}
    mixed = mixup(batch, probability=1.0, classes=4)
    assert mixed["label"].shape == (8, 4) and mixed["frames"].tolist() == [12, 6, 7, 8, 9, 10, 11, 12]
    torch.testing.assert_close(mixed["label"].sum(1), torch.ones(8))
    assert (mixed["label"].max(1).values < 1).all()


def test_bad_files_are_skipped_and_counted_and_labels_come_from_folders(tmp_path):
    for name in ("dog", "rain"):
        for i in range(3):
            write_audio(tmp_path / name / f"{i}.wav", tone(300 + 200 * i, 0.5, 16000), 16000)
    (tmp_path / "dog" / "garbage.wav").write_bytes(os.urandom(3000))
    (tmp_path / "rain" / "empty.flac").write_bytes(b"")
    good = (tmp_path / "dog" / "0.wav").read_bytes()
    (tmp_path / "rain" / "truncated.wav").write_bytes(good[:30])
    write_audio(tmp_path / "rain" / "tiny.wav", tone(300, 0.001, 16000), 16000)  # shorter than one window
    holes = tone(300, 0.5, 16000)
    holes[100:110] = np.nan  # a float WAV may hold NaN (or infinity): one would make the whole fbank NaN
    soundfile.write(str(tmp_path / "dog" / "nan.wav"), holes, 16000, subtype="FLOAT")
    data = AudioFolderDataModule(str(tmp_path), labeled=True, target_length=64, batch_size=11, num_workers=0)
    batches = epoch(data)
    assert data.classes == ["dog", "rain"]
    assert all(batch["fbank"].shape[1:] == (1, 64, 128) and batch["fbank"].isfinite().all() for batch in batches)
    labels = [label for batch in batches for label in batch["label"].tolist()]
    assert sorted(labels) == [0, 0, 0, 1, 1, 1] and data.num_skipped == 5
    nan = data.train_set[data.train_set.files.paths.index(str(tmp_path / "dog" / "nan.wav"))]
    assert nan.reason == "the clip holds 10 samples that are NaN or infinite"


def test_labels_and_folds_from_a_csv(tmp_path):
    rows = ["filename,fold,target,category"]
    for i in range(10):
        write_audio(tmp_path / "audio" / f"{i}.wav", tone(200 + 50 * i, 0.3, 16000), 16000)
        rows.append(f"{i}.wav,{i % 5 + 1},{i % 2},{'dog' if i % 2 else 'cat'}")
    (tmp_path / "meta.csv").write_text("\n".join(rows) + "\n")
    kwargs = {"labels_csv": str(tmp_path / "meta.csv"), "fold_column": "fold", "target_length": 32, "num_workers": 0}
    data = AudioFolderDataModule(str(tmp_path / "audio"), val_folds=(5,), batch_size=2, **kwargs)
    data.setup("fit")
    assert data.classes == ["cat", "dog"]
    assert len(data.train_set) == 8 and len(data.val_set) == 2
    assert all(path.endswith(("4.wav", "9.wav")) for path in data.val_set.files.paths)
    with pytest.raises(anymae.ConfigError, match="needs columns"):
        AudioFolderDataModule(str(tmp_path / "audio"), label_column="label", **kwargs).setup("fit")
    with pytest.raises(anymae.ConfigError, match="needs labels_csv"):
        AudioFolderDataModule(str(tmp_path / "audio"), val_folds=(1,))
    with pytest.raises(anymae.ConfigError, match="not with val_root"):
        AudioFolderDataModule(str(tmp_path / "audio"), labels_csv=str(tmp_path / "meta.csv"), val_root=str(tmp_path))
    with pytest.raises(anymae.ConfigError, match="not under root"):
        AudioFolderDataModule(str(tmp_path), val_folds=(5,), **kwargs).setup("fit")


def test_a_long_recording_is_read_a_clip_at_a_time(tmp_path):
    """A minute-long file and clips of 128 frames (1.3 s): only the clip's span is decoded. At the start it gives
    the features of reading the whole file; with a random crop, a span drawn from the sample's seed."""
    from anymae_audio.data import read_clip
    from anymae_audio.features import read_audio_span

    t = np.arange(60 * 16000) / 16000
    chirp = (0.5 * np.sin(2 * np.pi * (200 + 30 * t) * t)).astype(np.float32)  # its pitch rises all minute
    path = write_audio(tmp_path / "long.wav", chirp[:, None], 16000)
    short = write_audio(tmp_path / "short.wav", chirp[: 3 * 16000, None], 16000)
    assert read_audio_span(str(short), 16000, 1.305, False) is None  # under four spans: read whole, cached
    span = read_audio_span(str(path), 16000, 1.305, False)
    assert (
        span is not None and len(span) == 20880 and torch.allclose(span, torch.from_numpy(chirp[:20880]), atol=1e-4)
    )  # 16-bit PCM

    features = Fbank(target_length=128)
    clip = read_clip(str(path), 16000, features, 0, 0, cache=False)
    whole = features(read_audio(str(path), 16000, cache=False))
    assert clip["fbank"].shape == whole["fbank"].shape == (1, 128, 128) and int(clip["frames"]) == 128
    assert torch.allclose(clip["fbank"], whole["fbank"], atol=1e-3)  # the same first 1.28 s

    random = Fbank(target_length=128, crop="random")
    torch.manual_seed(0)
    first = read_clip(str(path), 16000, random, 0, 0, cache=False)["fbank"]
    torch.manual_seed(1)
    second = read_clip(str(path), 16000, random, 0, 0, cache=False)["fbank"]
    loudest = [int(f[0].mean(0).argmax()) for f in (first, second, clip["fbank"])]
    assert len(set(loudest)) == 3  # three spans of the rising pitch: three mel bands


@pytest.mark.parametrize(("suffix", "codec"), [(".mka", "flac"), (".m4a", "aac")])
def test_a_long_recording_in_a_pyav_format_is_read_a_clip_at_a_time(tmp_path, suffix, codec):
    """The same for the formats PyAV decodes: a span at the start holds the whole file's first samples; a random
    start reads a later stretch of the rising pitch; a file under four spans long, or one whose length FFmpeg cannot
    tell, is read whole."""
    from anymae_audio.features import read_audio_span

    t = np.arange(20 * 16000) / 16000
    chirp = (0.5 * np.sin(2 * np.pi * (200 + 60 * t) * t)).astype(np.float32)
    path = write_av_audio(tmp_path / f"long{suffix}", chirp[:, None], 16000, codec)
    short = write_av_audio(tmp_path / f"short{suffix}", chirp[: 3 * 16000, None], 16000, codec)
    assert read_audio_span(str(short), 16000, 1.0, False) is None
    broken = tmp_path / f"broken{suffix}"
    broken.write_bytes(b"\x00\x00\x00\x18ftypM4A not audio")
    assert read_audio_span(str(broken), 16000, 1.0, False) is None  # read whole, where it fails and is skipped

    span = read_audio_span(str(path), 16000, 1.0, False)
    whole = read_audio(str(path), 16000, cache=False)
    assert span is not None and len(span) == 16000
    if codec == "flac":  # lossless: the very samples
        torch.testing.assert_close(span, whole[:16000], atol=1e-4, rtol=0)
    torch.manual_seed(0)
    late = read_audio_span(str(path), 16000, 1.0, True)
    assert late is not None and len(late) == 16000
    pitch = [int(torch.fft.rfft(w).abs().argmax()) for w in (span, late)]  # Hz, one-second spans
    assert pitch[1] > pitch[0] + 200  # the pitch rises 120 Hz a second: a span seconds later
