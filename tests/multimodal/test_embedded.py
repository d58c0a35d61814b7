"""The embedded multi-modal sets: batch keys, shapes and dtypes, determinism by seed, labels in range, and that each
modality carries what the set says it does (a ridge classifier on one modality at a time, fit on the training split
and scored on the validation split)."""

import pytest
import torch

import anymae
from anymae_multimodal import AudioVisualDigitsDataModule, MovingDigitsIMUDataModule, RGBDepthScenesDataModule
from anymae_multimodal.embedded import digit_clips, digit_sounds, imu_series, rgbd_scenes


def accuracy(data: anymae.DataModule, features) -> float:
    """Validation accuracy of a ridge classifier (closed form) on ``features(tensors)`` of the training split."""
    data.setup("fit")
    train, val = data.train_set.tensors, data.val_set.tensors
    x, y = features(train).flatten(1).double(), train["label"]
    mean, std = x.mean(0), x.std(0) + 1e-6

    def design(t):
        z = (features(t).flatten(1).double() - mean) / std
        return torch.cat([z, torch.ones(len(z), 1, dtype=z.dtype)], dim=1)

    a = design(train)
    ridge = len(a) * torch.eye(a.shape[1], dtype=a.dtype)
    weights = torch.linalg.solve(a.T @ a + ridge, a.T @ torch.nn.functional.one_hot(y, len(data.classes)).double())
    return float(((design(val) @ weights).argmax(1) == val["label"]).double().mean())


def shape_spectrum(images):  # |FFT| of an image: what shapes it holds, wherever they are
    return torch.fft.fft2(images).abs().sum(1)


def first_frame(t, key="video/video"):
    return shape_spectrum(t[key][:, :, 0])


def motion(t, key="video/video"):
    """How the clip's centre of mass moves from its first frame to its last (rows, columns)."""
    clip = t[key][:, 0]
    clip = clip - clip.amin(dim=(1, 2, 3), keepdim=True)
    grid = torch.arange(clip.shape[-1], dtype=clip.dtype)
    mass = clip.sum(dim=(2, 3))
    rows = (clip.sum(-1) * grid).sum(-1) / mass
    cols = (clip.sum(-2) * grid).sum(-1) / mass
    return torch.stack([rows[:, -1] - rows[:, 0], cols[:, -1] - cols[:, 0]], dim=1)


def pitch(t):  # the mean spectrum
    return t["audio/fbank"][:, 0].mean(1)


def glide(t):  # how the sound moves: each band's change from the first half of the clip to the second, and the total
    fbank = t["audio/fbank"][:, 0, :62]  # [S, frames, bins]: the 62 real frames
    change = fbank[:, :31].mean(1) - fbank[:, 31:].mean(1)
    return torch.cat([change, change.mean(1, keepdim=True)], 1)


def rhythm(t):  # the spectrum of the loudness envelope
    envelope = t["audio/fbank"][:, 0].mean(2)
    return torch.fft.rfft(envelope - envelope.mean(1, keepdim=True)).abs()


def test_audio_visual_digits_batches_and_determinism():
    data = AudioVisualDigitsDataModule(batch_size=4)
    assert data.name == "av-digits" and data.classes == ["right", "left", "down", "up"]
    data.setup("fit")
    batch = data.on_before_batch_transfer(next(iter(data.train_dataloader())), 0)
    assert set(batch) == {"video/video", "audio/fbank", "audio/frames", "label"}
    assert batch["video/video"].shape == (4, 1, 8, 32, 32) and batch["video/video"].dtype == torch.float32
    assert batch["audio/fbank"].shape == (4, 1, 64, 64) and batch["audio/fbank"].dtype == torch.float32
    assert batch["audio/frames"].tolist() == [62] * 4 and batch["label"].dtype == torch.long
    assert len(data.train_set) + len(data.val_set) == 1797
    assert int(data.train_set.tensors["label"].min()) >= 0 and int(data.train_set.tensors["label"].max()) == 3
    video = data.train_set.tensors["video/video"]
    assert abs(float(video.mean())) < 0.01 and abs(float(video.std()) - 1) < 0.01
    clips = digit_clips.__wrapped__(8, 32, 16, 0)
    digits, path = torch.arange(10), clips["path"][:10]
    first, again = digit_sounds(digits, path, 16000, 0.64, 4.5, 0), digit_sounds(digits, path, 16000, 0.64, 4.5, 0)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], digit_sounds(digits, path, 16000, 0.64, 4.5, 1)[0])
    assert torch.equal(clips["clips"], digit_clips.__wrapped__(8, 32, 16, 0)["clips"])
    assert set(clips["step"].abs().sum(1).tolist()) == {1.0, 2.0}  # the speeds moving_digits drew
    named = AudioVisualDigitsDataModule(label="notes", video="rgb", audio="sound")
    named.setup("fit")
    assert set(named.train_set.tensors) == {"rgb/video", "sound/fbank", "sound/frames", "label"}
    assert set(named.train_set.tensors["label"].tolist()) == {0, 1, 2, 3} and len(named.classes) == 4


def test_audio_visual_digits_modalities_carry_their_own_information():
    digit = AudioVisualDigitsDataModule(label="digit")
    video_digit, audio_digit = accuracy(digit, first_frame), accuracy(digit, pitch)
    assert video_digit > 0.8 and 0.2 < audio_digit < video_digit - 0.3  # the sound: a weaker cue of the digit
    direction = AudioVisualDigitsDataModule(label="direction")
    video_direction, audio_direction = accuracy(direction, motion), accuracy(direction, glide)
    assert video_direction > 0.95 and 0.33 < audio_direction < video_direction - 0.4  # the sound follows the digit
    assert accuracy(direction, rhythm) < 0.4  # chance: 0.25
    notes = AudioVisualDigitsDataModule(label="notes")
    assert accuracy(notes, rhythm) > 0.8
    assert accuracy(notes, lambda t: torch.cat([first_frame(t).flatten(1), motion(t)], 1)) < 0.4  # chance: 0.25


def test_rgbd_scenes_batches_and_determinism():
    data = RGBDepthScenesDataModule(num_scenes=100, image_size=24, rgb="color", batch_size=5)
    assert data.name == "rgbd-scenes" and data.classes == ["disc", "square", "triangle", "diamond"]
    data.setup("fit")
    batch = data.on_before_batch_transfer(next(iter(data.train_dataloader())), 0)
    assert set(batch) == {"color/image", "depth/image", "label"}
    assert batch["color/image"].shape == (5, 3, 24, 24) and batch["depth/image"].shape == (5, 1, 24, 24)
    assert batch["label"].dtype == torch.long and len(data.train_set) == 80
    scenes = rgbd_scenes.__wrapped__(50, 24, 3, 7)
    again = rgbd_scenes.__wrapped__(50, 24, 3, 7)
    assert all(torch.equal(scenes[k], again[k]) for k in scenes)
    assert not torch.equal(scenes["rgb"], rgbd_scenes.__wrapped__(50, 24, 3, 8)["rgb"])
    assert float(scenes["rgb"].min()) >= 0 and float(scenes["rgb"].max()) <= 1
    nearest = scenes["depth"].flatten(1).amin(1)
    assert float(nearest.min()) > 0.15 and float(scenes["depth"].max()) < 1.2  # objects 0.2-0.8, the wall 0.9-1.1
    assert int(scenes["shape"].max()) < 4 and int(scenes["colour"].max()) < 6
    with pytest.raises(anymae.ConfigError, match="share the name"):
        RGBDepthScenesDataModule(rgb="x", depth="x")


def test_rgbd_scenes_depth_tells_the_nearest_object_and_rgb_its_colour():
    shape = RGBDepthScenesDataModule(label="shape")
    from_depth = accuracy(shape, lambda t: shape_spectrum(t["depth/image"]))
    from_rgb = accuracy(shape, lambda t: shape_spectrum(t["rgb/image"]))
    assert from_depth > 0.65 and 0.3 < from_rgb < from_depth - 0.1  # chance: 0.25
    colour = RGBDepthScenesDataModule(label="colour")
    assert accuracy(colour, lambda t: t["rgb/image"]) > 0.3  # chance: 1/6
    assert accuracy(colour, lambda t: shape_spectrum(t["depth/image"])) < 0.25


def test_digits_imu_batches_and_determinism():
    data = MovingDigitsIMUDataModule(batch_size=3, series_length=32)
    assert data.name == "digits-imu" and data.classes == ["right", "left", "down", "up"]
    data.setup("fit")
    batch = data.on_before_batch_transfer(next(iter(data.train_dataloader())), 0)
    assert set(batch) == {"video/video", "imu/series", "label"}
    assert batch["video/video"].shape == (3, 1, 8, 32, 32) and batch["imu/series"].shape == (3, 6, 32)
    assert batch["imu/series"].dtype == torch.float32 and batch["label"].dtype == torch.long
    assert set(data.train_set.tensors["label"].tolist()) == {0, 1, 2, 3}
    step = torch.tensor([[0.0, 1.0], [-2.0, 0.0]])
    first, again = imu_series(step, 8, 64, 0.5, 3), imu_series(step, 8, 64, 0.5, 3)
    assert torch.equal(first[0], again[0]) and not torch.equal(first[0], imu_series(step, 8, 64, 0.5, 4)[0])
    quiet, _ = imu_series(step, 8, 64, 0.0, 3)
    assert torch.equal(quiet[:, 2], torch.ones(2, 64))  # gravity on z, no bias nor noise
    with pytest.raises(anymae.ConfigError):
        MovingDigitsIMUDataModule(num_frames=1)


def test_digits_imu_modalities_carry_their_own_information():
    def series(t):
        return t["imu/series"]

    def shaking(t):
        s = t["imu/series"]
        return torch.fft.rfft(s - s.mean(-1, keepdim=True)).abs()

    direction = MovingDigitsIMUDataModule(label="direction")
    from_video, from_imu = accuracy(direction, motion), accuracy(direction, series)
    assert from_video > 0.95 and 0.5 < from_imu < from_video  # chance: 0.25
    digit = MovingDigitsIMUDataModule(label="digit")
    assert accuracy(digit, first_frame) > 0.8 and accuracy(digit, series) < 0.2  # chance: 0.1
    tremor = MovingDigitsIMUDataModule(label="tremor")
    assert accuracy(tremor, shaking) > 0.8
    assert accuracy(tremor, lambda t: torch.cat([first_frame(t).flatten(1), motion(t)], 1)) < 0.4  # chance: 0.25
