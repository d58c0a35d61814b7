"""Entry point of the image plugin (``[project.entry-points.anymae] anymae-image``)."""

from __future__ import annotations

import anymae

ANYMAE_PLUGIN_API = 3  # the anymae plugin API this module is written for


@anymae.hookimpl
def anymae_register(registry: anymae.Registry) -> None:
    from .data import DigitsDataModule, ImageFolderDataModule
    from .export import TimmViTExporter
    from .hog import HOGTarget
    from .tokenizers import ImagePatchTokenizer
    from .viz import ReconstructionGrid

    registry.add(
        ImagePatchTokenizer, HOGTarget, DigitsDataModule, ImageFolderDataModule, ReconstructionGrid, TimmViTExporter
    )
