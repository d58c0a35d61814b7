"""anymae-multimodal: aligned multi-modal data for anymae (embedded audio-visual digits, RGB-D scenes and digits with
an inertial sensor; paired files read by stem: video, its audio track, audio, images, arrays, CSV series).

Batches are flat dicts: each modality's entries prefixed ``"<modality>/"``, the label unprefixed.
The names below are public API: saved configs record them by their shortest import path (``anymae_multimodal.X``).
"""

from anymae.lazy import lazy_exports

__version__ = "0.3.0"  # released with anymae 0.3.0 (pyproject.toml reads it)

# imported on first use: loading the plugin (as `anymae --help` does) imports none of them
EXPORTS = {
    ".embedded": [
        "AudioVisualDigitsDataModule",
        "MovingDigitsIMUDataModule",
        "RGBDepthScenesDataModule",
        "digit_sounds",
        "imu_series",
        "rgbd_scenes",
    ],
    ".folders": ["PairedFolderDataModule", "read_audio_track"],
}
__all__ = sorted({name for names in EXPORTS.values() for name in names} | {"__version__"})
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
