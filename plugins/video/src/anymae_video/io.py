"""Reading clips: which frames (the papers' temporal sampling) and how (PyAV for video files, PIL for folders of
frames).

PyAV is the decoder: its wheels carry their own FFmpeg (H.264, VP8/9, AV1, MPEG-4, MJPEG, GIF...), so
``pip install anymae-video`` is all a Linux machine needs; torchvision 0.29 no longer reads video, and torchcodec and
``torchaudio.load`` need the system's FFmpeg libraries. Decoding runs in the loader's workers, one clip per call;
only the frames a clip uses are converted to RGB, a clip that starts late in a long file seeks to the keyframe
before it instead of decoding from the start, and several clips of one video (MAE-ST's repeated augmentation) come
from one pass.

Temporal sampling, as the papers do it:

* ``"dense"`` (MAE-ST, VideoMAE on Kinetics): ``num_frames`` frames ``sampling_rate`` apart from a random start
  (the middle of the video for evaluation); a video shorter than the span repeats its last frame.
* ``"segment"`` (TSN; VideoMAE fine-tunes on Something-Something so): the video cut into ``num_frames`` equal
  segments, one random frame from each (its middle for evaluation).
"""

import os
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor

__all__ = ["FRAME_EXTENSIONS", "VIDEO_EXTENSIONS", "clip_indices", "read_video"]

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".gif", ".mpg", ".mpeg", ".ogv", ".flv")
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

Sampling = Literal["dense", "segment"]


def clip_indices(total: int, num_frames: int, sampling_rate: int, sampling: Sampling, train: bool) -> list[int]:
    """The frame indices of one clip from a video of ``total`` frames (random draws from torch's generator, which
    the data kit seeds per sample)."""
    if total < 1:
        raise ValueError("the video has no frames")
    if sampling == "segment":
        segment = total / num_frames
        offsets = torch.rand(num_frames) if train else torch.full((num_frames,), 0.5)
        starts = torch.arange(num_frames) * segment
        return (starts + offsets * segment).floor().long().clamp(max=total - 1).tolist()
    span = (num_frames - 1) * sampling_rate + 1
    start = 0  # a video shorter than the span repeats its last frame
    if total >= span:
        start = int(torch.randint(total - span + 1, ())) if train else (total - span) // 2
    return [min(start + i * sampling_rate, total - 1) for i in range(num_frames)]


def _video_stream(container: Any) -> Any:
    if not container.streams.video:
        raise ValueError("the file has no video stream")
    return container.streams.video[0]


def _frame_count(path: str) -> int:
    """Frames in the first video stream: the container's count when it records one, else the packets counted by
    demuxing (no decoding; WebM and GIF record none)."""
    import av

    with av.open(path) as container:
        stream = _video_stream(container)
        if stream.frames:
            return int(stream.frames)
        return sum(1 for packet in container.demux(stream) if packet.size)


def _decode(path: str, indices: Sequence[int]) -> list[Tensor]:
    """Decode the frames at ``indices`` (sorted or not, repeats allowed) as ``[H, W, 3]`` uint8 tensors."""
    import av

    wanted = sorted(set(indices))
    first, last = wanted[0], wanted[-1]
    frames: dict[int, Tensor] = {}
    with av.open(path) as container:
        stream = _video_stream(container)
        rate, base, start_time = stream.average_rate, stream.time_base, stream.start_time or 0
        seek = first > 0 and rate and base
        if seek:  # to the keyframe at or before the first frame, then count frames by their timestamps
            container.seek(int(first / rate / base) + start_time, stream=stream, backward=True, any_frame=False)
        index = None
        for frame in container.decode(stream):
            if seek:
                if frame.pts is None:  # no timestamps to count by: decode from the start instead
                    return _decode_sequential(path, wanted, indices)
                index = round(float((frame.pts - start_time) * base * rate))
                if index > first and not frames:  # the seek overshot the first frame
                    return _decode_sequential(path, wanted, indices)
            else:
                index = 0 if index is None else index + 1
            if index in wanted:
                frames[index] = torch.from_numpy(frame.to_ndarray(format="rgb24"))
            if index >= last:
                break
    return _complete(frames, indices, path)


def _decode_sequential(path: str, wanted: list[int], indices: Sequence[int]) -> list[Tensor]:
    import av

    frames: dict[int, Tensor] = {}
    with av.open(path) as container:
        for index, frame in enumerate(container.decode(_video_stream(container))):
            if index in wanted:
                frames[index] = torch.from_numpy(frame.to_ndarray(format="rgb24"))
            if index >= wanted[-1]:
                break
    return _complete(frames, indices, path)


def _complete(frames: dict[int, Tensor], indices: Sequence[int], path: str) -> list[Tensor]:
    """The frames at ``indices``; one the file ends before (its header promised more) repeats the last one read."""
    if not frames:
        raise ValueError(f"no frame of {path} could be decoded")
    known = sorted(frames)
    return [frames[i] if i in frames else frames[max((k for k in known if k <= i), default=known[0])] for i in indices]


def read_video(
    path: str,
    num_frames: int,
    sampling_rate: int,
    sampling: Sampling = "dense",
    train: bool = True,
    clips: int = 1,
) -> Tensor:
    """A clip of a video file, or of a folder of frames (image files, in name order): ``[T, H, W, 3]`` uint8 RGB;
    with ``clips > 1``, ``[clips, T, H, W, 3]``: that many clips, each its own draw of frames, from one pass of the
    decoder (MAE-ST's repeated augmentation). A file FFmpeg or PIL cannot read raises ``ValueError``."""

    def draw(total: int) -> list[int]:
        return [i for _ in range(clips) for i in clip_indices(total, num_frames, sampling_rate, sampling, train)]

    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if n.lower().endswith(FRAME_EXTENSIONS) and not n.startswith("."))
        frames = _read_frames(path, names, draw(len(names)))
    else:
        import av

        try:
            frames = torch.stack(_decode(path, draw(_frame_count(path))))
        except av.FFmpegError as error:
            raise ValueError(f"{type(error).__name__}: {error}") from None
    return frames if clips == 1 else frames.unflatten(0, (clips, num_frames))


def _read_frames(folder: str, names: list[str], indices: list[int]) -> Tensor:
    import numpy as np
    from PIL import Image

    frames = {}
    for i in sorted(set(indices)):  # a clip's frames, not a batch: PIL reads one file at a time
        try:
            with Image.open(os.path.join(folder, names[i])) as image:
                frames[i] = torch.from_numpy(np.array(image.convert("RGB")))
        except (SyntaxError, Image.DecompressionBombError) as error:  # neither is an OSError: broken or huge frames
            raise ValueError(f"{names[i]}: {type(error).__name__}: {error}") from None
    if len({tuple(f.shape) for f in frames.values()}) > 1:
        raise ValueError(f"the frames of {folder} differ in size")
    return torch.stack([frames[i] for i in indices])
