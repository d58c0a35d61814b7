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
