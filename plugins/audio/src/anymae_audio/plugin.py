"""Entry point of the audio plugin (``[project.entry-points.anymae] anymae-audio``)."""

from __future__ import annotations

import anymae

ANYMAE_PLUGIN_API = 3  # the anymae plugin API this module is written for


@anymae.hookimpl
def anymae_register(registry: anymae.Registry) -> None:
    from .data import AudioFolderDataModule, SynthSoundsDataModule
    from .export import TimmAudioViTExporter
    from .published import AudioMAEReader
    from .tokenizers import SpectrogramPatchTokenizer
    from .viz import SpectrogramFigure

    registry.add(SpectrogramPatchTokenizer, AudioFolderDataModule, SynthSoundsDataModule, SpectrogramFigure)
    registry.add(AudioMAEReader, TimmAudioViTExporter)


@anymae.hookimpl
def anymae_commands(registry: anymae.Registry) -> None:
    registry.add_command("fbank_stats", "anymae_audio.commands:run", help="mean and std of a folder's fbank features")
