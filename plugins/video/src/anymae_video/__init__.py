"""anymae-video: video for anymae (tubelet tokenizer, pixel and motion targets, video files and an embedded set of
moving digits, frame strips; published VideoMAE weights read, HuggingFace VideoMAE written).

The names below are public API: saved configs record them by their shortest import path (``anymae_video.X``).
"""

from anymae.lazy import lazy_exports

__version__ = "0.3.0"  # released with anymae 0.3.0 (pyproject.toml reads it)

# imported on first use: loading the plugin (as `anymae --help` does) imports none of them
EXPORTS = {
    ".data": ["MovingDigitsDataModule", "VideoFolderDataModule", "read_clip"],
    ".export": ["HFVideoMAEExporter", "hf_videomae_config", "hf_videomae_state_dict"],
    ".io": ["clip_indices", "read_video"],
    ".masking": ["MotionTubeMasker", "token_shifts"],
    ".published": ["HFVideoMAEReader", "VideoMAEReader"],
    ".targets": ["MotionTarget", "VideoPixelTarget", "block_matching_flow"],
    ".timm_export": ["TimmVideoViT", "TimmVideoViTExporter", "clip_as_image", "create_timm_video_vit"],
    ".tokenizers": ["VideoTubeletTokenizer"],
    ".transforms": ["ClipTransform"],
    ".viz": ["FrameStrips", "save_frame_strips"],
}
__all__ = sorted({name for names in EXPORTS.values() for name in names} | {"__version__"})
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
