"""Entry point of the video plugin (``[project.entry-points.anymae] anymae-video``)."""

from __future__ import annotations

import anymae

ANYMAE_PLUGIN_API = 3  # the anymae plugin API this module is written for


@anymae.hookimpl
def anymae_register(registry: anymae.Registry) -> None:
    from .data import MovingDigitsDataModule, VideoFolderDataModule
    from .export import HFVideoMAEExporter
    from .masking import MotionTubeMasker
    from .published import HFVideoMAEReader, VideoMAEReader
    from .targets import MotionTarget, VideoPixelTarget
    from .timm_export import TimmVideoViTExporter
    from .tokenizers import VideoTubeletTokenizer
    from .viz import FrameStrips

    registry.add(
        VideoTubeletTokenizer,
        VideoPixelTarget,
        MotionTarget,
        MotionTubeMasker,
        VideoFolderDataModule,
        MovingDigitsDataModule,
        FrameStrips,
        TimmVideoViTExporter,
        VideoMAEReader,
        HFVideoMAEReader,
        HFVideoMAEExporter,
    )
