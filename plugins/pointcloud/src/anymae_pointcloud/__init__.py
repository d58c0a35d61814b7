"""anymae-pointcloud: point clouds for anymae (Point-MAE groups, voxel patches, Chamfer, normal/curvature and
occupancy targets, open3d data, PNG rendering, Point-MAE's published weights). Names below are public API."""

from anymae.lazy import lazy_exports

__version__ = "0.3.0"  # released with anymae 0.3.0 (pyproject.toml reads it)

# imported on first use: loading the plugin (as `anymae --help` does) imports none of them
EXPORTS = {
    ".data": ["PointCloudFolderDataModule", "ShapesDataModule", "point_normals", "read_points"],
    ".ops": ["chamfer_distance", "estimate_normals", "farthest_point_sample", "knn"],
    ".published": ["PointMAEReader"],
    ".targets": ["ChamferTarget", "NormalCurvatureTarget", "OccupancyTarget"],
    ".tokenizers": ["PointGroupTokenizer", "VoxelPatchTokenizer"],
    ".viz": ["PointCloudGrid", "save_point_cloud_grid"],
}
__all__ = sorted({name for names in EXPORTS.values() for name in names} | {"__version__"})
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
