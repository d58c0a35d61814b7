"""Small real files for the multi-modal tests: mp4 files with a sound track written with PyAV (the FFmpeg the plugins
read with), partner audio, images, arrays and CSV tables."""

import math
from pathlib import Path

import numpy as np

FPS = 25


def numbered_frames(count: int, size: int = 32) -> np.ndarray:
    """``[count, size, size, 3]`` uint8 frames whose brightness tells their index (frame ``i`` is gray ``8 + 8i``)."""
    levels = (8 + 8 * np.arange(count)) % 240
    return np.broadcast_to(levels[:, None, None, None], (count, size, size, 3)).astype(np.uint8).copy()


def frame_levels(video) -> list[int]:
    """The frame indices a normalised ``[3, T, H, W]`` clip of :func:`numbered_frames` shows (ImageNet's mean and std
    undone)."""
    mean = np.array([0.485, 0.456, 0.406])[:, None]
    std = np.array([0.229, 0.224, 0.225])[:, None]
    pixels = video.flatten(2).mean(-1).numpy() * std + mean  # [3, T] in [0, 1]
    return [round((level * 255 - 8) / 8) for level in pixels.mean(0)]


def tone(seconds: float, rate: int, frequency: float = 440.0, onset: float = 0.0) -> np.ndarray:
    """A sine ``[N]`` float32 at amplitude 0.5, silent before ``onset`` seconds."""
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * math.pi * frequency * t) * (t >= onset)).astype(np.float32)


def write_video(path: Path, frames: np.ndarray, sound: np.ndarray | None = None, rate: int = 16000) -> Path:
    """An mp4 (H.264, near lossless) of ``frames`` at :data:`FPS`, with ``sound`` (mono, ``rate``) as an AAC track."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        video.options = {"crf": "1", "g": "8"}
        audio = None
        if sound is not None:
            audio = container.add_stream("aac", rate=rate)
            audio.layout = "mono"
        for array in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        if audio is not None:
            frame = av.AudioFrame.from_ndarray(sound[None], format="flt", layout="mono")
            frame.sample_rate, frame.pts = rate, 0  # pts 0: the encoder marks its priming samples (an edit list)
            container.mux(audio.encode(frame))
            container.mux(audio.encode(None))
        container.mux(video.encode())
    return path


def write_audio(path: Path, data: np.ndarray, rate: int = 16000) -> Path:
    import soundfile

    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), data, rate)
    return path
