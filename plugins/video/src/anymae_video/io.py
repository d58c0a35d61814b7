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
  (the middle of the video for evaluation). A video shorter than the span repeats its last frame, unless
  ``fit_rate`` (what the data modules ask): then the rate falls to the largest that fits the video (down to 1), and
  only a video shorter than ``num_frames`` repeats frames. ``rate_jitter`` draws each training clip's rate from
  ``sampling_rate +- rate_jitter`` (temporal scale jitter; the papers keep the rate fixed).
* ``"segment"`` (TSN; VideoMAE fine-tunes on Something-Something so): the video cut into ``num_frames`` equal
  segments, one random frame from each (its middle for evaluation).

**Decoded-file cache.** A file whose frames take at most :data:`CACHE_FILE_BYTES` (and fit the budget of
:func:`anymae.decoded_cache`) is decoded whole once per process and kept as ``[N, H, W, 3]`` uint8 frames; every
later read draws its frames from them, with the same draws as the decoder's path, so a clip is the same with or
without the cache (``cache=False`` turns it off). Scoring a small set over several protocols and seeds otherwise
decodes every file again for every epoch and run. Larger files keep the seek-and-decode path (the cache then holds
their frame count only); folders of frames are read from their files each time.
"""

import os
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from anymae import decoded_cache

__all__ = ["CACHE_FILE_BYTES", "FRAME_EXTENSIONS", "VIDEO_EXTENSIONS", "clip_indices", "fitted_rate", "read_video"]

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".gif", ".mpg", ".mpeg", ".ogv", ".flv")
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

#: the most bytes of decoded frames (``N x H x W x 3``) a file may take to be decoded whole and cached: 32 MiB holds
#: 16 frames of 820 x 820, or 200 of 240 x 224; a longer or larger file is read by seeking, as without the cache
CACHE_FILE_BYTES = 32 * 2**20

Sampling = Literal["dense", "segment"]

_warned: set[tuple[int, int, str, bool]] = set()  # what short videos have been reported, in this process


def fitted_rate(total: int, num_frames: int, sampling_rate: int) -> int:
    """The largest rate up to ``sampling_rate`` whose ``num_frames`` frames fit a video of ``total`` frames, at
    least 1."""
    if num_frames == 1:
        return sampling_rate
    return max(1, min(sampling_rate, (total - 1) // (num_frames - 1)))


def clip_indices(
    total: int,
    num_frames: int,
    sampling_rate: int,
    sampling: Sampling,
    train: bool,
    fit_rate: bool = False,
    rate_jitter: int = 0,
) -> list[int]:
    """The frame indices of one clip from a video of ``total`` frames (random draws from torch's generator, which
    the data kit seeds per sample). ``fit_rate`` lowers the dense rate to fit a short video instead of repeating its
    last frame; ``rate_jitter`` draws a training clip's dense rate from ``sampling_rate +- rate_jitter`` (at least
    1) before the start."""
    if total < 1:
        raise ValueError("the video has no frames")
    if sampling == "segment":
        segment = total / num_frames
        offsets = torch.rand(num_frames) if train else torch.full((num_frames,), 0.5)
        starts = torch.arange(num_frames) * segment
        return (starts + offsets * segment).floor().long().clamp(max=total - 1).tolist()
    rate = sampling_rate
    if train and rate_jitter:
        rate = int(torch.randint(max(1, rate - rate_jitter), rate + rate_jitter + 1, ()))
    if fit_rate:
        rate = fitted_rate(total, num_frames, rate)
    span = (num_frames - 1) * rate + 1
    start = 0  # a video shorter than the span repeats its last frame
    if total >= span:
        start = int(torch.randint(total - span + 1, ())) if train else (total - span) // 2
    return [min(start + i * rate, total - 1) for i in range(num_frames)]


def _warn_short(path: str, total: int, num_frames: int, sampling_rate: int, sampling: Sampling) -> None:
    """Say that a video is too short for its clip and what was done instead: once per process, settings and remedy
    (a lower rate, or repeated frames)."""
    repeats = sampling == "segment" or total < num_frames
    key = (num_frames, sampling_rate, sampling, repeats)
    if key in _warned:
        return
    _warned.add(key)
    if not repeats:
        span, rate = (num_frames - 1) * sampling_rate + 1, fitted_rate(total, num_frames, sampling_rate)
        said = (
            f"fewer than the {span} that {num_frames} frames at sampling_rate {sampling_rate} span: its clips are "
            f"sampled at rate {rate} instead, the largest that fits"
        )
    else:
        said = f"fewer than num_frames={num_frames}: frames repeat to fill its clips"
    warnings.warn(
        f"{path} has {total} frames, {said}. Other videos this short are sampled alike without another warning",
        stacklevel=3,
    )


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
                frames[index] = _rgb(frame)
            if index >= last:
                break
    return _complete(frames, indices, path)


def _decode_sequential(path: str, wanted: list[int], indices: Sequence[int]) -> list[Tensor]:
    import av

    frames: dict[int, Tensor] = {}
    with av.open(path) as container:
        for index, frame in enumerate(container.decode(_video_stream(container))):
            if index in wanted:
                frames[index] = _rgb(frame)
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
    *,
    fit_rate: bool = False,
    rate_jitter: int = 0,
    cache: bool = True,
) -> Tensor:
    """A clip of a video file, or of a folder of frames (image files, in name order): ``[T, H, W, 3]`` uint8 RGB;
    with ``clips > 1``, ``[clips, T, H, W, 3]``: that many clips, each its own draw of frames, from one pass of the
    decoder (MAE-ST's repeated augmentation). A file FFmpeg or PIL cannot read raises ``ValueError``.

    ``fit_rate`` and ``rate_jitter``: see :func:`clip_indices` (with ``fit_rate``, the first video too short for the
    clip is reported in a warning, once per process). ``cache``: a small file's frames come from the process's
    decoded-file cache after its first read (the same clip either way; see the module's docstring)."""

    def draw(total: int) -> list[int]:
        if fit_rate and total < ((num_frames - 1) * sampling_rate + 1 if sampling == "dense" else num_frames):
            _warn_short(path, total, num_frames, sampling_rate, sampling)
        return [
            i
            for _ in range(clips)
            for i in clip_indices(total, num_frames, sampling_rate, sampling, train, fit_rate, rate_jitter)
        ]

    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if n.lower().endswith(FRAME_EXTENSIONS) and not n.startswith("."))
        frames = _read_frames(path, names, draw(len(names)))
    else:
        import av

        try:
            whole = _cached_file(path) if cache else None
            if whole is not None and whole["frames"] is not None:
                frames = _pick(whole["frames"], draw(whole["total"]), path)
            else:
                total = whole["total"] if whole is not None and whole["total"] else _frame_count(path)
                frames = torch.stack(_decode(path, draw(total)))
        except av.FFmpegError as error:
            raise ValueError(f"{type(error).__name__}: {error}") from None
    return frames if clips == 1 else frames.unflatten(0, (clips, num_frames))


def _rgb(frame: Any) -> Tensor:
    """A decoded frame as ``[H, W, 3]`` uint8 RGB. The colour conversion runs on one thread: by default swscale
    starts (and later joins) a pool of slice threads for each frame's converter, and in a forked loader worker that
    join was seen to hang for good (``avpriv_slicethread_free`` inside ``sws_scale_frame``); the loader's workers are
    the parallelism, and one thread converts a frame as fast at these sizes."""
    return torch.from_numpy(frame.to_ndarray(format="rgb24", threads=1))


def _cached_file(path: str) -> dict[str, Any] | None:
    """What the decoded-file cache holds for a video file (decoding it whole on its first read): ``{"total": frame
    count as _frame_count gives it, or 0 when not counted, "frames": [N, H, W, 3] uint8 or None for a large file}``;
    ``None`` when the cache has no room for any file."""
    cache = decoded_cache()
    budget = min(CACHE_FILE_BYTES, cache.max_bytes)
    if budget <= 0:
        return None
    return cache.get(path, ("anymae_video.frames", budget), lambda: _decode_whole(path, budget))


def _decode_whole(path: str, budget: int) -> dict[str, Any]:
    """Every frame of a file in one pass (demuxed packets decoded in turn, so the packets are counted as
    :func:`_frame_count` counts them when the container records no count), or only its frame count when the frames
    would take more than ``budget`` bytes. A decoder error leaves the file to the seek-and-decode path, which
    reports it as it does without the cache."""
    import av

    with av.open(path) as container:
        stream = _video_stream(container)
        recorded = int(stream.frames)
        width, height = stream.codec_context.width, stream.codec_context.height
        if recorded and recorded * width * height * 3 > budget:
            return {"total": recorded, "frames": None}  # large: its count only, frames by seeking as before
        frames: list[Tensor] | None = []
        packets, size = 0, 0
        try:
            for packet in container.demux(stream):
                packets += bool(packet.size)
                if frames is None:
                    continue  # too large after all (no recorded count): only counting now
                for frame in packet.decode():
                    frames.append(_rgb(frame))
                    size += frames[-1].numel()
                    if size > budget:
                        frames = None
                        break
        except av.FFmpegError:
            return {"total": 0, "frames": None}
    total = recorded or packets
    if not frames or len({tuple(f.shape) for f in frames}) > 1:  # nothing decoded, or the size changes midway
        return {"total": total, "frames": None}
    return {"total": total, "frames": torch.stack(frames)}


def _pick(frames: Tensor, indices: Sequence[int], path: str) -> Tensor:
    """The frames at ``indices`` from a whole decoded file, as :func:`_decode` gives them: an index past the frames
    decoded (a file that ends before its header says) repeats the last decoded frame it asked for."""
    known = [i for i in sorted(set(indices)) if i < len(frames)]
    if not known:
        raise ValueError(f"no frame of {path} could be decoded")
    return frames[torch.tensor([i if i < len(frames) else known[-1] for i in indices])]


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
