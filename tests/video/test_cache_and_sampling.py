"""Decoded-file cache, short videos and training augmentation of the video data: a cached read gives the clip an
uncached one gives and decodes nothing the second time, a short video is sampled at the rate that fits it (warned
once), ``augment: false`` turns every random draw off, rate jitter and the moving digits' random clip start."""

import itertools
import warnings

import numpy as np
import pytest
import torch

from anymae import decoded_cache
from anymae.testing import DataModuleContract
from anymae_video import MovingDigitsDataModule, VideoFolderDataModule, VideoTubeletTokenizer, clip_indices, read_video
from anymae_video import io as video_io

from .media import frame_levels, numbered_frames, write_video


def ramp_frames(count: int, size: int = 32) -> np.ndarray:
    """Numbered frames with a left-to-right ramp added, so crops and flips change them."""
    frames = numbered_frames(count, size).astype(np.int16)
    return (frames + np.arange(size)[None, None, :, None] * 3).clip(0, 255).astype(np.uint8)


@pytest.fixture
def decoders(monkeypatch):
    """Counts of the calls that decode a video file: whole (the cache's), by seeking, and frame counts."""
    calls = {"whole": 0, "seek": 0, "count": 0}
    for name, key in (("_decode_whole", "whole"), ("_decode", "seek"), ("_frame_count", "count")):
        original = getattr(video_io, name)

        def counted(*args, _original=original, _key=key):
            calls[_key] += 1
            return _original(*args)

        monkeypatch.setattr(video_io, name, counted)
    decoded_cache().clear()
    return calls


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_a_cached_read_is_the_uncached_clip_and_the_second_decodes_nothing(tmp_path, decoders, suffix):
    path = str(write_video(tmp_path / f"clip{suffix}", numbered_frames(60)))
    for train, clips in ((True, 1), (True, 3), (False, 1)):
        torch.manual_seed(7)
        plain = read_video(path, num_frames=4, sampling_rate=3, train=train, clips=clips, cache=False)
        for _ in range(2):
            torch.manual_seed(7)
            cached = read_video(path, num_frames=4, sampling_rate=3, train=train, clips=clips)
            assert torch.equal(cached, plain)
    assert decoders["whole"] == 1 and decoders["seek"] == 3  # the uncached reads only
    assert decoded_cache().misses == 1 and decoded_cache().hits == 5
    torch.manual_seed(0)
    late = frame_levels(read_video(path, num_frames=4, sampling_rate=5, train=True))  # from the cached frames
    assert [(b - a) % 30 for a, b in itertools.pairwise(late)] == [5, 5, 5]  # levels wrap at 30


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])  # a recorded frame count, and none (counted by demuxing)
def test_a_large_file_keeps_the_seek_path_and_caches_its_frame_count(tmp_path, decoders, monkeypatch, suffix):
    monkeypatch.setattr(video_io, "CACHE_FILE_BYTES", 10 * 32 * 32 * 3)  # 10 frames of 32 x 32
    path = str(write_video(tmp_path / f"long{suffix}", numbered_frames(80)))
    torch.manual_seed(3)
    plain = read_video(path, num_frames=4, sampling_rate=2, train=True, cache=False)
    for _ in range(2):
        torch.manual_seed(3)
        assert torch.equal(read_video(path, num_frames=4, sampling_rate=2, train=True), plain)
    assert decoders["whole"] == 1 and decoders["seek"] == 3 and decoders["count"] == 1  # the uncached read's count
    assert decoded_cache().bytes < 1000  # a count, not frames


def test_an_edited_file_is_decoded_again(tmp_path, decoders):
    path = tmp_path / "clip.mp4"
    write_video(path, numbered_frames(12))
    assert frame_levels(read_video(str(path), num_frames=3, sampling_rate=1, train=False)) == [4, 5, 6]
    write_video(path, numbered_frames(30)[::-1].copy())
    assert frame_levels(read_video(str(path), num_frames=3, sampling_rate=1, train=False)) == [16, 15, 14]
    assert decoders["whole"] == 2


def test_no_cache_budget_reads_as_before(tmp_path, decoders, monkeypatch):
    monkeypatch.setenv("ANYMAE_DECODED_CACHE_MB", "0")
    monkeypatch.setattr("anymae.data.cache._CACHE", None)  # the process's cache, made again with no budget
    path = str(write_video(tmp_path / "clip.mp4", numbered_frames(20)))
    assert frame_levels(read_video(path, num_frames=2, sampling_rate=3, train=False)) == [8, 11]
    assert decoders["whole"] == 0 and decoders["seek"] == 1


def test_fit_rate_lowers_the_rate_to_fit_and_repeats_only_below_num_frames():
    assert clip_indices(10, 4, 4, "dense", train=True) == [0, 4, 8, 9]  # as before: the last frame repeats
    assert clip_indices(10, 4, 4, "dense", train=True, fit_rate=True) == [0, 3, 6, 9]
    assert clip_indices(20, 8, 4, "dense", train=False, fit_rate=True) == list(range(2, 17, 2))
    assert clip_indices(5, 8, 4, "dense", train=False, fit_rate=True) == [0, 1, 2, 3, 4, 4, 4, 4]
    assert clip_indices(100, 8, 4, "dense", train=False, fit_rate=True) == list(range(35, 64, 4))  # long: as before


def test_rate_jitter_draws_training_rates_around_the_rate():
    torch.manual_seed(0)
    rates = set()
    for _ in range(200):
        indices = clip_indices(100, 8, 4, "dense", train=True, rate_jitter=2)
        rates |= {b - a for a, b in itertools.pairwise(indices)}
    assert rates == {2, 3, 4, 5, 6}
    assert {b - a for a, b in itertools.pairwise(clip_indices(100, 8, 4, "dense", False, rate_jitter=2))} == {4}
    draws = [clip_indices(20, 8, 4, "dense", True, fit_rate=True, rate_jitter=3) for _ in range(100)]
    assert {indices[1] - indices[0] for indices in draws} == {1, 2}  # a drawn rate too long for the video is fitted too


def folder_module(root, **kwargs):
    args = {"num_frames": 8, "sampling_rate": 4, "image_size": 32, "mean": (0.0,) * 3, "std": (1.0,) * 3}
    return VideoFolderDataModule(str(root), batch_size=2, num_workers=0, **{**args, **kwargs})


def levels(video: torch.Tensor) -> list[int]:
    """The frame numbers of a ``[3, T, H, W]`` clip of numbered frames read with mean 0 and std 1."""
    return [round((float(f.mean()) * 255 - 8) / 8) for f in video.transpose(0, 1)]


def test_short_videos_are_sampled_at_the_rate_that_fits_with_one_warning(tmp_path, monkeypatch):
    monkeypatch.setattr(video_io, "_warned", set())
    for i in range(3):
        write_video(tmp_path / f"short{i}.mp4", numbered_frames(20))
    write_video(tmp_path / "tiny.mp4", numbered_frames(5))
    data = folder_module(tmp_path)
    data.setup("fit")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for train in (True, False):
            read = data.reader(train)
            for path in data.train_set.files.paths:
                for seed in range(3):
                    torch.manual_seed(seed)
                    clip = levels(read(path)["video"])
                    if "tiny" in path:  # fewer frames than num_frames even at rate 1: all of them, then repeats
                        assert clip == [0, 1, 2, 3, 4, 4, 4, 4]
                        continue
                    steps = {b - a for a, b in itertools.pairwise(clip)}  # 2: the largest rate whose 8 frames fit 20
                    assert steps == {2} and len(set(clip)) == 8 and clip[0] >= 0 and clip[-1] <= 19
                    if not train:
                        assert clip == list(range(2, 17, 2))  # the middle
    said = [str(w.message) for w in caught]
    assert len(said) == 2, said  # one for the fitted rate, one for the repeated frames, however many videos
    assert any("20 frames" in s and "sampled at rate 2 instead" in s for s in said)
    assert any("tiny.mp4 has 5 frames" in s and "frames repeat" in s for s in said)


def test_augment_false_reads_training_clips_as_evaluation_does(tmp_path):
    path = str(write_video(tmp_path / "v" / "clip.mp4", ramp_frames(60)))
    kwargs = {"num_frames": 4, "sampling_rate": 2, "rate_jitter": 1, "crop_scale": (0.3, 0.6), "image_size": 24}
    on, off = folder_module(tmp_path / "v", **kwargs), folder_module(tmp_path / "v", augment=False, **kwargs)
    evaluation = on.reader(train=False)(path)["video"]
    differ = 0
    for seed in range(6):
        torch.manual_seed(seed)
        assert torch.equal(off.reader(train=True)(path)["video"], evaluation)
        torch.manual_seed(seed)
        differ += not torch.equal(on.reader(train=True)(path)["video"], evaluation)
    assert differ == 6


def test_cache_off_and_on_give_the_same_training_clips(tmp_path):
    path = str(write_video(tmp_path / "v" / "clip.mp4", ramp_frames(40)))
    kwargs = {"num_frames": 4, "sampling_rate": 3, "rate_jitter": 1, "image_size": 24}
    cached, plain = folder_module(tmp_path / "v", **kwargs), folder_module(tmp_path / "v", cache=False, **kwargs)
    for seed in range(4):
        torch.manual_seed(seed)
        expected = plain.reader(train=True)(path)["video"]
        torch.manual_seed(seed)
        assert torch.equal(cached.reader(train=True)(path)["video"], expected)


def test_moving_digits_temporal_jitter_draws_a_window_of_the_longer_motion():
    base = {"num_frames": 4, "image_size": 16, "digit_size": 8, "batch_size": 8}
    plain = MovingDigitsDataModule(**base)
    plain.setup("fit")
    assert plain.train_set.transform is None  # off by default: the clips as before
    data = MovingDigitsDataModule(temporal_jitter=3, **base)
    data.setup("fit")
    full = data.train_set.tensors["video"]
    assert full.shape[2] == 7 and data.val_set.tensors["video"].shape[2] == 4
    starts = set()
    for seed in range(20):
        clip = data.train_set[(0, seed)]["video"]
        assert clip.shape[1] == 4
        matches = [s for s in range(4) if torch.equal(clip, full[0, :, s : s + 4])]
        assert len(matches) == 1
        starts.add(matches[0])
    assert len(starts) > 1
    exported = data.export_samples("train")
    assert torch.equal(exported[0]["video"], full[0, :, 1:5])
    assert torch.equal(exported.tensors["label"], data.train_set.tensors["label"])


class TestJitteredMovingDigitsDataModule(DataModuleContract):
    component_class = MovingDigitsDataModule
    init_args = {"num_frames": 4, "temporal_jitter": 2, "image_size": 16, "digit_size": 8, "batch_size": 16}

    def make_tokenizer(self):
        return VideoTubeletTokenizer(num_frames=4, image_size=16, tubelet_size=2, patch_size=4, in_chans=1)
