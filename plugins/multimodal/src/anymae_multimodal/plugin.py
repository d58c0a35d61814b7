"""Entry point of the multi-modal plugin (``[project.entry-points.anymae] anymae-multimodal``)."""

from __future__ import annotations

import anymae

ANYMAE_PLUGIN_API = 3  # the anymae plugin API this module is written for


@anymae.hookimpl
def anymae_register(registry: anymae.Registry) -> None:
    from .embedded import AudioVisualDigitsDataModule, MovingDigitsIMUDataModule, RGBDepthScenesDataModule
    from .folders import PairedFolderDataModule

    registry.add(
        AudioVisualDigitsDataModule, RGBDepthScenesDataModule, MovingDigitsIMUDataModule, PairedFolderDataModule
    )
