"""Entry point of the point-cloud plugin (``[project.entry-points.anymae] anymae-pointcloud``). Light: open3d is
imported only when data is read."""

import anymae

from .data import PointCloudFolderDataModule, ShapesDataModule
from .targets import ChamferTarget, NormalCurvatureTarget, OccupancyTarget
from .tokenizers import PointGroupTokenizer, VoxelPatchTokenizer
from .viz import PointCloudGrid

ANYMAE_PLUGIN_API = 1  # the anymae plugin API this module is written for


@anymae.hookimpl
def anymae_register(registry: anymae.Registry) -> None:
    registry.add_tokenizer(PointGroupTokenizer)
    registry.add_tokenizer(VoxelPatchTokenizer)
    registry.add_target(ChamferTarget)
    registry.add_target(NormalCurvatureTarget)
    registry.add_target(OccupancyTarget)
    registry.add_datamodule(PointCloudFolderDataModule)
    registry.add_datamodule(ShapesDataModule)
    registry.add_callback(PointCloudGrid)
