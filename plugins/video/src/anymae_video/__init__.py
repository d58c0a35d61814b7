"""anymae-video: video for anymae (tubelet tokenizer, pixel and motion targets, video files and an embedded set of
moving digits, frame strips).

The names below are public API: saved configs record them by their shortest import path (``anymae_video.X``).
"""

from .data import MovingDigitsDataModule, VideoFolderDataModule, read_clip
from .io import clip_indices, read_frames, read_video_file
from .targets import MotionTarget, VideoPixelTarget, block_matching_flow
from .tokenizers import VideoTubeletTokenizer
from .transforms import ClipTransform
from .viz import FrameStrips, save_frame_strips

__version__ = "0.2.0"

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
