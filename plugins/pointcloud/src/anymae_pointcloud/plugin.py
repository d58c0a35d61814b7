"""Entry point of the point-cloud plugin (``[project.entry-points.anymae] anymae-pointcloud``). Light: open3d is
imported only when data is read."""

import anymae

ANYMAE_PLUGIN_API = 3  # the anymae plugin API this module is written for


@anymae.hookimpl
def anymae_register(registry: anymae.Registry) -> None:
    from .data import PointCloudFolderDataModule, ShapesDataModule
    from .published import PointMAEReader
    from .targets import ChamferTarget, NormalCurvatureTarget, OccupancyTarget
    from .tokenizers import PointGroupTokenizer, VoxelPatchTokenizer
    from .viz import PointCloudGrid

    registry.add(PointGroupTokenizer, VoxelPatchTokenizer, ChamferTarget, NormalCurvatureTarget, OccupancyTarget)
    registry.add(PointCloudFolderDataModule, ShapesDataModule, PointCloudGrid)
    registry.add(PointMAEReader)
