"""anymae-audio: audio for anymae (Audio-MAE's fbank features, spectrogram patches, audio files and generated
sounds, spectrogram figures, Audio-MAE's published weights, timm export).

The names below are public API: saved configs record them by their shortest import path (``anymae_audio.X``).
"""

from anymae.lazy import lazy_exports

__version__ = "0.3.0"  # released with anymae 0.3.0 (pyproject.toml reads it)

# imported on first use: loading the plugin (as `anymae --help` does) imports none of them
EXPORTS = {
    ".data": ["AudioFolderDataModule", "SynthSoundsDataModule", "shift_and_gain", "spec_augment", "synth_sounds"],
    ".export": ["TimmAudioViTExporter", "create_timm_audio_vit", "timm_audio_vit_config", "timm_audio_vit_state_dict"],
    ".features": ["AUDIOSET_MEAN", "AUDIOSET_STD", "Fbank", "read_audio", "read_audio_track"],
    ".published": ["AudioMAEReader"],
    ".tokenizers": ["SpectrogramPatchTokenizer"],
    ".viz": ["SpectrogramFigure", "save_spectrograms"],
}
__all__ = sorted({name for names in EXPORTS.values() for name in names} | {"__version__"})
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
