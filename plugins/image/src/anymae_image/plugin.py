"""Entry point of the image plugin (``[project.entry-points.anymae] anymae-image``)."""

from __future__ import annotations

import anymae

ANYMAE_PLUGIN_API = 3  # the anymae plugin API this module is written for


@anymae.hookimpl
def anymae_register(registry: anymae.Registry) -> None:
    from .data import DigitsDataModule, ImageFolderDataModule, MultiBandFolderDataModule
    from .export import HFViTMAEExporter, TimmViTExporter
    from .hog import HOGTarget
    from .published import HFViTMAEReader, MAECheckpointReader, TimmViTReader
    from .tokenizers import ImagePatchTokenizer
    from .viz import ReconstructionGrid

    registry.add(
        ImagePatchTokenizer, HOGTarget, DigitsDataModule, ImageFolderDataModule, ReconstructionGrid, TimmViTExporter
    )
    registry.add(MultiBandFolderDataModule)
    registry.add(HFViTMAEExporter, MAECheckpointReader, TimmViTReader, HFViTMAEReader)


@anymae.hookimpl
def anymae_commands(registry: anymae.Registry) -> None:
    registry.add_command(
        "band_stats", "anymae_image.commands:run", help="per-band mean and std of a folder of multi-band images"
    )
