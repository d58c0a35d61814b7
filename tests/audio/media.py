"""Small real audio files for the tests, written with soundfile (the library the plugin reads with)."""

import math
from pathlib import Path

import numpy as np


def tone(frequency: float, seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    """A sine ``[N, channels]`` float32 at amplitude 0.5."""
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.5 * np.sin(2 * math.pi * frequency * t).astype(np.float32)
    return np.repeat(wave[:, None], channels, axis=1)


def write_audio(path: Path, data: np.ndarray, rate: int) -> Path:
    import soundfile

    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), data, rate)
    return path


def write_av_audio(path: Path, data: np.ndarray, rate: int, codec: str) -> Path:
    """``data`` ``[N, channels]`` written with PyAV's FFmpeg in ``codec`` (the container from the suffix): the formats
    libsndfile does not write (AAC in ``.m4a``, WMA, Matroska audio)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    layout = "stereo" if data.shape[1] == 2 else "mono"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout, stream.bit_rate = layout, 128000  # WMA's encoder needs a bit rate
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data.T), format="fltp", layout=layout)
        frame.sample_rate, frame.pts = rate, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path
