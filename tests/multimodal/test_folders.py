"""Paired files from real media: an mp4's frames with its own audio track (aligned in time, for random clips too), a
partner wav, png + npy pairs labelled by folder, mp4 + csv readings; missing partners left out and counted, corrupt
partners skipped and counted without ending the epoch."""

import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import anymae
from anymae_multimodal import PairedFolderDataModule, read_audio_track
from anymae_multimodal.folders import read_csv_series
from tests.core.toys import epoch

from .media import FPS, frame_levels, numbered_frames, tone, write_audio, write_video

SMALL = {"num_frames": 4, "sampling_rate": 2, "image_size": 32, "num_mel_bins": 32, "target_length": 64}


def test_a_video_and_its_own_audio_track_stay_aligned(tmp_path):
    # 28 numbered frames (1.12 s); the sound is silent until 0.6 s (frame 15), then a tone
    write_video(tmp_path / "clip.mp4", numbered_frames(28), tone(1.12, 16000, onset=0.6))
    track = read_audio_track(str(tmp_path / "clip.mp4"), 8000)
    assert abs(len(track) - 8960) < 1024 and int((track.abs() > 0.1).nonzero()[0]) == pytest.approx(4800, abs=8)
    data = PairedFolderDataModule(
        str(tmp_path), {"video": "mp4", "audio": "mp4:audio"}, batch_size=1, num_workers=0, **SMALL
    )
    data.setup("fit")
    onsets = set()
    for seed in range(12):  # random clips (training): the sound follows each clip's frames
        sample = data.train_set[(0, seed)]
        assert sample["video/video"].shape == (3, 4, 32, 32) and sample["audio/fbank"].shape == (1, 64, 32)
        assert int(sample["audio/frames"]) == 26  # 7 frames at 25 fps: 0.28 s
        first = frame_levels(sample["video/video"])[0]
        assert frame_levels(sample["video/video"]) == [first, first + 2, first + 4, first + 6]
        loud = (sample["audio/fbank"][0, :26].amax(-1) > 0).tolist()
        expected = [first / FPS + k * 0.01 + 0.0125 >= 0.6 for k in range(26)]  # each fbank frame's centre
        assert sum(a != b for a, b in zip(loud, expected, strict=True)) <= 2, (first, loud)
        onsets.add(first)
    assert len(onsets) > 3


def test_partner_wav_missing_partners_and_corrupt_files(tmp_path):
    for i in range(4):
        write_video(tmp_path / f"clip{i}.mp4", numbered_frames(12))
        write_audio(tmp_path / f"clip{i}.wav", tone(0.5, 8000, frequency=300 + 100 * i), rate=8000)
    write_video(tmp_path / "lonely.mp4", numbered_frames(12))  # no wav: left out, counted
    (tmp_path / "clip3.wav").write_bytes(os.urandom(300))  # corrupt: skipped at run time, counted
    data = PairedFolderDataModule(str(tmp_path), {"video": "mp4", "audio": "wav"}, batch_size=2, num_workers=0, **SMALL)
    with pytest.warns(RuntimeWarning, match=r"1 of 5 samples .* lack a partner .*'lonely': no \.wav"):
        data.setup("fit")
    assert data.num_unpaired == 1 and len(data.train_set) == 4
    with pytest.warns(RuntimeWarning, match=r"skipping unreadable file .*clip3: audio \(clip3\.wav\)"):
        batches = epoch(data)
    assert sum(len(b["audio/frames"]) for b in batches) == 3
    assert data.num_skipped == 1 and data.unreadable_sources == {f"file {tmp_path / 'clip3'}"}
    batch = next(b for b in batches if len(b["audio/frames"]) == 2)
    assert set(batch) == {"video/video", "audio/fbank", "audio/frames"}
    assert batch["video/video"].shape == (2, 3, 4, 32, 32) and batch["audio/fbank"].shape == (2, 1, 64, 32)
    assert batch["audio/frames"].tolist() == [26, 26]  # the wav cut to the clip's 0.28 s


def test_a_video_without_an_audio_track_is_skipped(tmp_path):
    write_video(tmp_path / "sound.mp4", numbered_frames(10), tone(0.4, 16000))
    write_video(tmp_path / "mute.mp4", numbered_frames(10))
    data = PairedFolderDataModule(str(tmp_path), {"audio": "mp4:audio"}, batch_size=2, num_workers=0, **SMALL)
    with pytest.warns(RuntimeWarning, match="no audio stream"):
        (batch,) = epoch(data)
    assert batch["audio/fbank"].shape == (1, 1, 64, 32)
    assert 38 <= int(batch["audio/frames"][0]) <= 44  # the whole track: 0.4 s, and the AAC frame it ends in
    assert data.num_skipped == 1


def test_rgb_and_depth_pairs_labelled_by_folder(tmp_path):
    rng = np.random.default_rng(0)
    for c, name in enumerate(("kitchen", "office")):
        for i in range(3):
            stem = tmp_path / name / f"view{i}"
            stem.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(f"{stem}.png")
            depth = np.full((40, 48), 1.0 + c, dtype=np.float32)
            depth[0, 0] = np.nan  # a missing reading
            np.save(f"{stem}.npy", depth)
    (tmp_path / "office" / "view2.npy").write_bytes(b"\x93NUMPY garbage")
    (tmp_path / "office" / "view9.png").write_bytes(b"")  # no depth partner
    data = PairedFolderDataModule(
        str(tmp_path), {"rgb": "png", "depth": "npy"}, labeled=True, image_size=16, batch_size=8, num_workers=0
    )
    with pytest.warns(RuntimeWarning, match="1 of 7 samples"):
        data.setup("fit")
    assert data.classes == ["kitchen", "office"] and data.num_unpaired == 1
    with pytest.warns(RuntimeWarning, match="depth"):
        (batch,) = epoch(data)
    assert set(batch) == {"rgb/image", "depth/image", "label"} and data.num_skipped == 1
    assert batch["rgb/image"].shape == (5, 3, 16, 16) and batch["depth/image"].shape == (5, 1, 16, 16)
    assert sorted(batch["label"].tolist()) == [0, 0, 0, 1, 1]
    depth = batch["depth/image"]
    assert bool(torch.isfinite(depth).all())
    assert torch.allclose(depth[batch["label"] == 1][:, :, 4:, 4:], torch.tensor(2.0))  # values as stored
    scaled = PairedFolderDataModule(
        str(tmp_path), {"rgb": "png", "depth": "npy"}, labeled=True, image_size=16, array_mean=(1.0,), array_std=(2.0,)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sample = scaled.export_samples("train")[0]
    assert torch.allclose(sample["depth/image"][:, 4:, 4:], torch.tensor(0.0), atol=1e-5)  # kitchen: (1 - 1) / 2


def test_video_and_imu_readings_follow_the_clip(tmp_path):
    write_video(tmp_path / "walk.mp4", numbered_frames(28))
    rows = np.arange(40, dtype=np.float32)[:, None] * np.array([1, -1, 2], dtype=np.float32)  # row i: (i, -i, 2i)
    np.savetxt(tmp_path / "walk.csv", rows, delimiter=",", header="ax,ay,az", comments="")
    padded = PairedFolderDataModule(
        str(tmp_path), {"video": "mp4", "imu": "csv"}, series_mode="pad", series_length=16, batch_size=1, **SMALL
    )
    sample = padded.export_samples("train")[0]  # evaluation: the middle 7 of 28 frames, 10-16
    assert frame_levels(sample["video/video"]) == [10, 12, 14, 16]
    assert int(sample["imu/length"]) == 11  # rows 14-24 of 40: the clip's share of the video
    torch.testing.assert_close(sample["imu/series"][0, :11], torch.arange(14.0, 25.0))
    torch.testing.assert_close(sample["imu/series"][1, :11], -torch.arange(14.0, 25.0))
    assert bool((sample["imu/series"][:, 11:] == 0).all())
    resampled = PairedFolderDataModule(str(tmp_path), {"video": "mp4", "imu": "csv"}, series_length=21, **SMALL)
    series = resampled.export_samples("train")[0]["imu/series"]
    assert series.shape == (3, 21)
    torch.testing.assert_close(series[0], torch.linspace(14.0, 24.0, 21))
    (tmp_path / "walk.csv").write_text("ax,ay\n1,2\n3\n")  # rows of different lengths
    with pytest.raises(ValueError, match="columns"):
        read_csv_series(str(tmp_path / "walk.csv"))
    (tmp_path / "walk.csv").write_text("ax,ay\n")
    assert isinstance(resampled.export_samples("train")[0], anymae.Unreadable)


def test_modalities_are_checked(tmp_path):
    for modalities, message in (
        ({}, "empty"),
        ({"a": "xyz"}, "unknown reader"),
        ({"a": "png", "b": "png"}, "two modalities read the same"),
        ({"a": "wav:audio"}, "only a video file"),
        ({"label": "png"}, "'label' is the batch's label"),
        ({"a/b": "png"}, "'a/b' is not a modality name"),
    ):
        with pytest.raises(anymae.ConfigError, match=message):
            PairedFolderDataModule(str(tmp_path), modalities)
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.warns(RuntimeWarning), pytest.raises(anymae.ConfigError, match=r"no sample .* has all of \.npy, \.png"):
        PairedFolderDataModule(str(tmp_path), {"rgb": "png", "depth": "npy"}).setup("fit")


def test_the_plugin_registers_its_data_modules():
    from anymae_multimodal import plugin

    registry = anymae.Registry("anymae-multimodal")
    plugin.anymae_register(registry)
    assert [c.name for c in registry.of_kind("datamodule")] == [
        "AudioVisualDigitsDataModule",
        "RGBDepthScenesDataModule",
        "MovingDigitsIMUDataModule",
        "PairedFolderDataModule",
    ]
    assert plugin.ANYMAE_PLUGIN_API == anymae.PLUGIN_API_VERSION


@pytest.mark.parametrize("field", ["video_std", "image_std"])
def test_a_std_that_is_not_positive_is_refused_naming_the_field(tmp_path, field):
    expected = rf"PairedFolderDataModule\.{field}\.1: Input should be greater than 0"
    with pytest.raises(anymae.ConfigError, match=expected):
        PairedFolderDataModule(str(tmp_path), {"video": "mp4"}, **{field: (0.2, -1.0, 0.2)})
