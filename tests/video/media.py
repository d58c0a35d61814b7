"""Small real video files for the tests, written with PyAV (the same FFmpeg the plugin reads with)."""

from pathlib import Path

import numpy as np

CODECS = {  # extension: (codec, pixel format)
    ".mp4": ("libx264", "yuv420p"),
    ".webm": ("libvpx-vp9", "yuv420p"),
    ".avi": ("mpeg4", "yuv420p"),
    ".mkv": ("ffv1", "yuv420p"),
    ".gif": ("gif", "rgb8"),
}


def numbered_frames(count: int, size: int = 32) -> np.ndarray:
    """``[count, size, size, 3]`` uint8 frames whose brightness tells their index: frame ``i`` is gray ``8 + 8i``
    (mod 240), so a decoded clip shows which frames were sampled."""
    levels = (8 + 8 * np.arange(count)) % 240
    return np.broadcast_to(levels[:, None, None, None], (count, size, size, 3)).astype(np.uint8).copy()


def write_video(path: Path, frames: np.ndarray, fps: int = 25) -> Path:
    import av

    codec, pix_fmt = CODECS[path.suffix]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        if codec == "libx264":
            stream.options = {"crf": "1", "g": "8"}  # near-lossless, a keyframe every 8 frames (so seeking matters)
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def frame_levels(clip) -> list[int]:
    """The frame indices a ``[T, H, W, 3]`` clip of :func:`numbered_frames` shows."""
    return [round((float(f.float().mean()) - 8) / 8) for f in clip]
