"""anymae-audio: audio for anymae (Audio-MAE's fbank features, spectrogram patches, audio files and generated
sounds, spectrogram figures).

The names below are public API: saved configs record them by their shortest import path (``anymae_audio.X``).
"""

from .data import AudioFolderDataModule, SynthSoundsDataModule, spec_augment, synth_sounds
from .features import AUDIOSET_MEAN, AUDIOSET_STD, Fbank, read_audio
from .tokenizers import SpectrogramPatchTokenizer
from .viz import SpectrogramFigure, save_spectrograms

__version__ = "0.2.0"

__all__ = [
    "AUDIOSET_MEAN",
    "AUDIOSET_STD",
    "AudioFolderDataModule",
    "Fbank",
    "SpectrogramFigure",
    "SpectrogramPatchTokenizer",
    "SynthSoundsDataModule",
    "__version__",
    "read_audio",
    "save_spectrograms",
    "spec_augment",
    "synth_sounds",
]
