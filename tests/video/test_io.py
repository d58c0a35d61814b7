"""Reading clips from real files: every container the plugin advertises, folders of frames, the papers' temporal
sampling, seeking in long files, bad files skipped and counted, labels from folders and list files."""

import itertools
import os

import pytest
import torch
from PIL import Image

import anymae
from anymae_video import ClipTransform, VideoFolderDataModule, clip_indices, read_video
from tests.core.toys import epoch

from .media import CODECS, frame_levels, numbered_frames, write_video


@pytest.mark.parametrize("suffix", sorted(CODECS))
def test_every_container_decodes_the_frames_asked_for(tmp_path, suffix):
    path = write_video(tmp_path / f"clip{suffix}", numbered_frames(20))
    clip = read_video(str(path), num_frames=4, sampling_rate=3, train=False)  # span 10 of 20: start 5
    assert clip.shape == (4, 32, 32, 3) and clip.dtype == torch.uint8
    assert frame_levels(clip) == [5, 8, 11, 14]


def test_dense_sampling_is_a_random_window_in_training_and_the_middle_otherwise():
    torch.manual_seed(0)
    starts = {clip_indices(100, 16, 4, "dense", train=True)[0] for _ in range(50)}
    assert len(starts) > 10 and min(starts) >= 0 and max(starts) <= 100 - 61
    assert clip_indices(100, 16, 4, "dense", train=False) == list(range(19, 80, 4))
    assert clip_indices(10, 4, 4, "dense", train=True) == [0, 4, 8, 9]  # shorter than the span: the last frame repeats


def test_segment_sampling_takes_one_frame_per_segment():
    torch.manual_seed(0)
    for _ in range(20):
        indices = clip_indices(64, 8, 1, "segment", train=True)
        assert [i // 8 for i in indices] == list(range(8))
    assert clip_indices(64, 8, 1, "segment", train=False) == [4, 12, 20, 28, 36, 44, 52, 60]


def test_a_late_clip_in_a_long_file_seeks_and_gets_the_same_frames(tmp_path):
    path = write_video(tmp_path / "long.mp4", numbered_frames(200))
    torch.manual_seed(3)
    clip = read_video(str(path), num_frames=4, sampling_rate=5, train=True)
    levels = frame_levels(clip)
    assert [b - a for a, b in itertools.pairwise(levels)] == [5, 5, 5]
    late = read_video(str(path), num_frames=3, sampling_rate=2, train=False)  # middle: 97, 99, 101
    assert [(x * 8 + 8) % 240 for x in frame_levels(late)] == [(8 + 8 * i) % 240 for i in (97, 99, 101)]


def test_folders_of_frames(tmp_path):
    frames = numbered_frames(12)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / f"img_{i:05d}.jpg", quality=100)
    clip = read_video(str(tmp_path), num_frames=3, sampling_rate=2, train=False)
    assert frame_levels(clip) == [3, 5, 7]


def test_clip_transform_gives_normalised_channel_first_clips():
    frames = torch.randint(0, 256, (8, 48, 64, 3), dtype=torch.uint8)
    for train, crop in ((True, "random_resized"), (True, "multiscale"), (False, "random_resized")):
        out = ClipTransform(32, train=train, crop=crop)(frames)
        assert out.shape == (3, 8, 32, 32) and out.dtype == torch.float32
    gray = ClipTransform(32, train=False, mean=(0.5,), std=(0.5,), channels=1)(
        torch.full((2, 40, 40, 3), 255, dtype=torch.uint8)
    )
    torch.testing.assert_close(gray, torch.ones(1, 2, 32, 32))


def write_folder(root, classes=("jump", "run"), per_class=3, frames=12):
    paths = []
    for c, name in enumerate(classes):
        for i in range(per_class):
            paths.append(write_video(root / name / f"{name}{i}.mp4", numbered_frames(frames) // (c + 1)))
    return paths


def folder_module(root, **kwargs) -> VideoFolderDataModule:
    """A folder module of small clips read in the test process."""
    return VideoFolderDataModule(str(root), image_size=32, num_workers=0, **kwargs)


def write_frame_folders(root, names, frames=4):
    for name in names:
        folder = root / name
        folder.mkdir(parents=True)
        for i, frame in enumerate(numbered_frames(frames)):
            Image.fromarray(frame).save(folder / f"{i:03d}.png")


def test_folder_module_skips_and_counts_bad_files_and_labels_by_folder(tmp_path):
    paths = write_folder(tmp_path / "videos")
    (tmp_path / "videos" / "run" / "garbage.mp4").write_bytes(os.urandom(2000))
    truncated = paths[0].read_bytes()
    (tmp_path / "videos" / "jump" / "truncated.mp4").write_bytes(truncated[: len(truncated) // 3])
    (tmp_path / "videos" / "run" / "empty.webm").write_bytes(b"")
    data = folder_module(tmp_path / "videos", labeled=True, num_frames=4, sampling_rate=2, batch_size=3)
    batches = epoch(data)
    assert data.classes == ["jump", "run"]
    assert all(batch["video"].shape[1:] == (3, 4, 32, 32) for batch in batches)
    labels = [label for batch in batches for label in batch["label"].tolist()]
    seen = len(labels)
    assert sorted(labels) == [0, 0, 0, 1, 1, 1] + [0] * (seen - 6)  # a truncated file may still give frames
    assert data.num_skipped == 9 - seen >= 2


def test_labels_from_a_list_file_and_repeated_augmentation(tmp_path):
    paths = write_folder(tmp_path / "videos")
    listing = tmp_path / "train.csv"
    rows = [f"{os.path.relpath(p, tmp_path / 'videos')} {i % 2 + 7}" for i, p in enumerate(paths)]  # Kinetics style
    listing.write_text("\n".join(rows) + "\n")
    data = folder_module(
        tmp_path / "videos", file_list=str(listing), num_frames=4, sampling_rate=2, batch_size=2, repeat_aug=3
    )
    data.setup("fit")
    assert data.classes == [str(i) for i in range(9)] and sorted(set(data.train_set.labels)) == [7, 8]  # ids kept
    batch = next(iter(data.train_dataloader()))
    assert batch["video"].shape == (6, 3, 4, 32, 32)
    assert batch["label"].view(2, 3).eq(batch["label"].view(2, 3)[:, :1]).all()  # each video's clips keep its label


def test_frame_folder_videos_labelled_by_folder(tmp_path):
    write_frame_folders(tmp_path, ["a/v0", "a/v1", "b/v0", "b/v1"], frames=6)
    data = folder_module(tmp_path, labeled=True, frame_folders=True, num_frames=2, sampling_rate=1, batch_size=4)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["video"].shape == (4, 3, 2, 32, 32) and sorted(batch["label"].tolist()) == [0, 0, 1, 1]


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_several_clips_of_one_video_come_from_one_decode(tmp_path, suffix):
    path = write_video(tmp_path / f"long{suffix}", numbered_frames(120))
    torch.manual_seed(1)
    clips = read_video(str(path), num_frames=4, sampling_rate=3, train=True, clips=3)
    assert clips.shape == (3, 4, 32, 32, 3)
    windows = [frame_levels(clip) for clip in clips]
    assert all([(b - a) % 30 for a, b in itertools.pairwise(w)] == [3, 3, 3] for w in windows)  # levels wrap at 30
    assert len({w[0] for w in windows}) > 1  # each clip its own window


def test_list_file_mistakes_are_config_errors_and_class_ids_are_kept(tmp_path):
    paths = write_folder(tmp_path / "videos", per_class=1)
    kwargs = {"num_frames": 2, "sampling_rate": 1, "batch_size": 2}
    for listing, message in ((tmp_path / "missing.csv", "cannot read"), (tmp_path / "empty.csv", "is empty")):
        if "empty" in listing.name:
            listing.write_text("\n\n")
        data = folder_module(tmp_path / "videos", file_list=str(listing), **kwargs)
        with pytest.raises(anymae.ConfigError, match=message):
            data.setup("fit")
    listing = tmp_path / "ids.csv"
    listing.write_text("path,label\n" + "".join(f"{p},{3 + 2 * i}\n" for i, p in enumerate(paths)))  # ids 3 and 5
    data = folder_module(tmp_path / "videos", file_list=str(listing), **kwargs)
    data.setup("fit")
    assert sorted(data.train_set.labels) == [3, 5] and len(data.classes) == 6


def test_labels_csv_is_the_former_name_of_file_list(tmp_path):
    listing = tmp_path / "train.csv"
    listing.write_text("a.mp4,0\n")
    with pytest.warns(DeprecationWarning, match="VideoFolderDataModule.labels_csv is now file_list"):
        data = folder_module(tmp_path, labels_csv=str(listing))
    assert data.file_list == str(listing)
    with pytest.raises(anymae.ConfigError, match="give file_list only"):
        folder_module(tmp_path, labels_csv=str(listing), file_list=str(listing))


def test_a_broken_frame_skips_its_video(tmp_path):
    write_frame_folders(tmp_path, ["good", "bad"])
    (tmp_path / "bad" / "001.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    data = folder_module(tmp_path, frame_folders=True, num_frames=4, sampling_rate=1, batch_size=2)
    data.setup("fit")
    batch = data.on_before_batch_transfer(next(iter(data.train_dataloader())), 0)
    assert len(batch["video"]) == 1 and data.num_skipped == 1
