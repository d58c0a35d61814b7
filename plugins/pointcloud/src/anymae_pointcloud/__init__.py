"""anymae-pointcloud: point clouds for anymae (Point-MAE groups, voxel patches, Chamfer, normal/curvature and
occupancy targets, open3d data, PNG rendering). Names below are public API."""

from .data import PointCloudFolderDataModule, ShapesDataModule, point_normals, read_points
from .ops import chamfer_distance, estimate_normals, farthest_point_sample, knn
from .targets import ChamferTarget, NormalCurvatureTarget, OccupancyTarget
from .tokenizers import PointGroupTokenizer, VoxelPatchTokenizer
from .viz import PointCloudGrid, save_point_cloud_grid

__version__ = "0.2.0"

__all__ = [
    "ChamferTarget",
    "NormalCurvatureTarget",
    "OccupancyTarget",
    "PointCloudFolderDataModule",
    "PointCloudGrid",
    "PointGroupTokenizer",
    "ShapesDataModule",
    "VoxelPatchTokenizer",
    "__version__",
    "chamfer_distance",
    "estimate_normals",
    "farthest_point_sample",
    "knn",
    "point_normals",
    "read_points",
    "save_point_cloud_grid",
]
