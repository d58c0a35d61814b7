"""anymae-video: video for anymae (tubelet tokenizer, pixel and motion targets, video files and an embedded set of
moving digits, frame strips).

The names below are public API: saved configs record them by their shortest import path (``anymae_video.X``).
"""

from anymae.lazy import lazy_exports

__version__ = "0.3.0"  # released with anymae 0.3.0 (pyproject.toml reads it)

__all__ = [
    "ClipTransform",
    "FrameStrips",
    "MotionTarget",
    "MovingDigitsDataModule",
    "VideoFolderDataModule",
    "VideoPixelTarget",
    "VideoTubeletTokenizer",
    "__version__",
    "block_matching_flow",
    "clip_indices",
    "read_clip",
    "read_frames",
    "read_video_file",
    "save_frame_strips",
]

# imported on first use: loading the plugin (as `anymae --help` does) imports none of them
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".data": ["MovingDigitsDataModule", "VideoFolderDataModule", "read_clip"],
        ".io": ["clip_indices", "read_frames", "read_video_file"],
        ".targets": ["MotionTarget", "VideoPixelTarget", "block_matching_flow"],
        ".tokenizers": ["VideoTubeletTokenizer"],
        ".transforms": ["ClipTransform"],
        ".viz": ["FrameStrips", "save_frame_strips"],
    },
)
