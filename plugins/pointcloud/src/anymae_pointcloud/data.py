"""Point-cloud data: files read with open3d, and an embedded labelled set of generated shapes.

* :class:`PointCloudFolderDataModule`: ``.ply``, ``.pcd``, ``.xyz``, ``.pts`` point clouds and ``.ply``, ``.obj``,
  ``.off``, ``.stl`` meshes (sampled uniformly to points), unlabeled or labeled by sub-folder; a file that cannot be
  read, holds no points, or holds non-finite or absurd coordinates (a truncated file) is skipped and counted, never
  fatal.
* :class:`ShapesDataModule`: open3d's primitives (box, sphere, cylinder, cone, torus, arrow, Moebius strip,
  tetrahedron, octahedron, icosahedron) with random proportions, rotations and noise, sampled to points; the class is
  the primitive. Made in memory, no download.

Every cloud is centred and scaled into the unit sphere (Point-MAE's ``pc_normalize``) and resampled to
``num_points``. Training clouds get random scale, shift and rotation. Batches: ``{"points": [B, N, 3]}``, plus
``"normals"`` ``[B, N, 4]`` (unit normal and surface variation per point, for ``NormalCurvatureTarget``) with
``normals=True``, plus ``"label"`` when labelled. Normals are estimated once per cloud, before augmentation, and
moved with it (the inverse transpose of the augmentation's linear map), so no training step searches neighbourhoods.
"""

import math
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import Field, NonNegativeInt, PositiveInt
from torch import Tensor

from anymae import DataModule, FolderDataModule, PathStr, TensorSamples, split_indices, validated

from .ops import estimate_normals

__all__ = [
    "ARRAY_EXTENSIONS",
    "CLOUD_EXTENSIONS",
    "MESH_EXTENSIONS",
    "PointCloudFolderDataModule",
    "ShapesDataModule",
    "augment",
    "normalize",
    "point_normals",
    "read_points",
]

CLOUD_EXTENSIONS = (".ply", ".pcd", ".xyz", ".pts")
#: arrays of points, a row each, x y z first (further columns, such as normals or colours, are not read): ShapeNet-55's
#: ``.npy`` files (Point-MAE's pretraining set), ModelNet40's resampled ``.txt`` files (``x,y,z,nx,ny,nz``)
ARRAY_EXTENSIONS = (".npy", ".txt")
MESH_EXTENSIONS = (".ply", ".obj", ".off", ".stl")
SHAPES = ("box", "sphere", "cylinder", "cone", "torus", "arrow", "mobius", "tetrahedron", "octahedron", "icosahedron")
#: a cloud's points ``[N, 3]`` and normals ``[N, 4]`` hold their channels (x y z ...) last
POINT_AXES = {"points": -1, "normals": -1}
MAX_COORDINATE = 1e6  # beyond this a coordinate is garbage (open3d reads truncated binary files as ~1e304)


def normalize(points: Tensor) -> Tensor:
    """Centre on the centroid and scale so the farthest point is at distance 1 (``[..., N, 3]``)."""
    centred = points - points.mean(dim=-2, keepdim=True)
    return centred / centred.norm(dim=-1).amax(dim=-1, keepdim=True)[..., None].clamp_min(1e-9)


def resample(points: Tensor, count: int) -> Tensor:
    """``count`` points: a random subset, or with repeats when there are fewer (draws from torch's random state)."""
    n = points.shape[0]
    index = torch.randperm(n)[:count] if n >= count else torch.randint(0, n, (count,))
    return points[index]


def point_normals(points: Tensor, neighbors: int = 16, chunk: int = 32) -> Tensor:
    """Unit normal and surface variation ``[..., N, 4]`` of every point of clouds ``[..., N, 3]`` (local PCA over
    ``neighbors`` nearest points, :func:`~anymae_pointcloud.ops.estimate_normals`), ``chunk`` clouds at a time to
    bound the ``[N, N]`` distance matrices."""
    flat = points.reshape(-1, *points.shape[-2:])
    parts = []
    for start in range(0, len(flat), chunk):  # chunks of clouds, each batched: memory, not a per-sample loop
        normals, variation = estimate_normals(flat[start : start + chunk], k=neighbors)
        parts.append(torch.cat([normals, variation.unsqueeze(-1)], dim=-1))
    return torch.cat(parts).reshape(*points.shape[:-1], 4)


def random_rotation(kind: str) -> Tensor:
    """A rotation matrix: about the vertical axis (``"z"``) or uniform over SO(3) (``"so3"``)."""
    if kind == "z":
        angle = torch.rand(()) * 2 * math.pi
        c, s = torch.cos(angle), torch.sin(angle)
        return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    q, r = torch.linalg.qr(torch.randn(3, 3))
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.det(q) > 0 else -q


def augment(points: Tensor, rotation: str, normals: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
    """Point-MAE's scale (per axis, 2/3 to 3/2) and shift (-0.2 to 0.2), and a random rotation.

    ``normals`` ``[N, 4]`` (normal and surface variation) move with the points: a normal maps by the inverse
    transpose of the linear part, ``n' ~ S^-1 R n``, renormalised; surface variation is kept (exact for rotations,
    approximate under the mild anisotropic scale).
    """
    rotate = random_rotation(rotation) if rotation != "none" else torch.eye(3)
    scale = torch.empty(3).uniform_(2 / 3, 3 / 2)
    shift = torch.empty(3).uniform_(-0.2, 0.2)
    points = (points @ rotate.T) * scale + shift
    if normals is not None:
        directions = torch.nn.functional.normalize((normals[:, :3] @ rotate.T) / scale, dim=-1)
        normals = torch.cat([directions, normals[:, 3:]], dim=-1)
    return points, normals


def _augmented(sample: dict[str, Tensor], rotation: str) -> dict[str, Tensor]:
    points, normals = augment(sample["points"], rotation, sample.get("normals"))
    return {**sample, "points": points, **({"normals": normals} if normals is not None else {})}


_PLY_SIZES = {
    **dict.fromkeys(("char", "uchar", "int8", "uint8"), 1),
    **dict.fromkeys(("short", "ushort", "int16", "uint16"), 2),
    **dict.fromkeys(("int", "uint", "float", "int32", "uint32", "float32"), 4),
    **dict.fromkeys(("double", "float64"), 8),
}


def check_ply(path: str) -> None:
    """Raise ``ValueError`` for a ``.ply`` file shorter than its header declares.

    open3d reads a truncated binary PLY as the declared number of points, the missing ones left as whatever memory
    held (NaN, 1e304 or plausible numbers), and only prints a warning; no library we use reports it, so the header is
    checked here: the bytes (binary) or lines (ASCII) of the vertex element and the elements before it must be there.
    """
    header: list[str] = []
    with open(path, "rb") as handle:
        for _ in range(500):  # a header is a few lines; never read a whole file looking for one
            line = handle.readline()
            header.append(line.decode("ascii", "replace").strip())
            if not line or header[-1] == "end_header":
                break
        binary = any(line.startswith("format binary") for line in header)
        # the size of the body, not its contents: a large cloud is read once, by open3d
        have = os.path.getsize(path) - handle.tell() if binary else sum(1 for line in handle if line.strip())
    if header[0] != "ply" or header[-1] != "end_header":
        return  # not a header open3d could use either: its own reading reports the file
    elements: list[tuple[str, int, list[str]]] = []  # name, rows, property types
    for words in (line.split() for line in header):
        if words[:1] == ["element"]:
            elements.append((words[1], int(words[2]), []))
        elif words[:1] == ["property"] and elements:
            elements[-1][2].append(words[1])
    needed = 0
    for name, rows, types in elements:
        if binary and "list" in types:  # rows of variable size: nothing further can be counted
            break
        needed += rows * sum(_PLY_SIZES.get(t, 0) for t in types) if binary else rows
        if name == "vertex":
            break
    if have < needed:
        raise ValueError(
            f"{path} is truncated: its header declares {needed} {'bytes' if binary else 'rows'}, {have} found"
        )


def load_point_array(path: str) -> np.ndarray:
    """The ``[N, 3]`` coordinates of an array file: ``.npy`` (no pickles) or text (comma- or whitespace-separated
    rows, after an optional header line of column names); the first three columns of each row. ``ValueError`` for
    anything else."""
    if path.lower().endswith(".npy"):
        array = np.load(path, allow_pickle=False)
    else:
        with open(path, encoding="utf-8", errors="replace") as handle:
            first = handle.readline()
        delimiter = "," if "," in first else None
        try:  # a first line of column names ("x,y,z") is a header
            [float(field) for field in first.split(delimiter)]
            header = 0
        except ValueError:
            header = 1
        array = np.loadtxt(path, delimiter=delimiter, ndmin=2, dtype=np.float64, skiprows=header)
    if array.ndim != 2 or array.shape[1] < 3 or array.dtype.kind not in "uif":
        raise ValueError(f"an array of shape {tuple(array.shape)} and dtype {array.dtype} (expected [N, >= 3] numbers)")
    return array[:, :3]


def read_points(path: str | Path, count: int) -> Tensor:
    """Points ``[count, 3]`` of a cloud or a mesh file, normalised to the unit sphere.

    Raises ``ValueError`` when the file holds no points (open3d reports unreadable files that way) or non-finite or
    absurd coordinates (what it reads from a truncated binary file).
    """
    import open3d as o3d

    path = str(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".ply":
        check_ply(path)
    points = None
    if suffix in ARRAY_EXTENSIONS:
        points = load_point_array(path)
    # open3d prints a warning for every .ply it reads as a mesh first and finds a cloud: its errors are enough (a bad
    # file is reported by us, once, with its reason)
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        if suffix in MESH_EXTENSIONS:
            mesh = o3d.io.read_triangle_mesh(path)
            if len(mesh.triangles):
                # Sample generously, then subsample to count with torch's seeded state (open3d's own is global).
                points = np.asarray(mesh.sample_points_uniformly(number_of_points=max(count, 2048)).points)
        if points is None and suffix in CLOUD_EXTENSIONS:
            points = np.asarray(o3d.io.read_point_cloud(path).points)
    if points is None or len(points) == 0:
        raise ValueError(f"no points in {path}")
    points = torch.as_tensor(points, dtype=torch.float32)
    if not bool(torch.isfinite(points).all()) or float(points.abs().max()) > MAX_COORDINATE:
        raise ValueError(f"non-finite or absurd coordinates in {path} (a truncated file?)")
    return normalize(resample(points, count))


def read_cloud(path: str, count: int, augment_rotation: str | None, normal_neighbors: int | None) -> dict[str, Tensor]:
    """One file as a sample: points, normals (``normal_neighbors`` set) and augmentation (``augment_rotation`` set)."""
    sample = {"points": read_points(path, count)}
    if normal_neighbors is not None:
        sample["normals"] = point_normals(sample["points"], normal_neighbors)
    return sample if augment_rotation is None else _augmented(sample, augment_rotation)


class PointCloudFolderDataModule(FolderDataModule):
    """A folder of point clouds, meshes and point arrays.

    Clouds: ``.ply``, ``.pcd``, ``.xyz``, ``.pts`` (open3d); meshes: ``.ply``, ``.obj``, ``.off``, ``.stl`` (points
    sampled on the surface); arrays: ``.npy`` and ``.txt`` (a point per row, x y z first: ShapeNet-55 and ModelNet40
    as Point-MAE reads them). A file that cannot be read is skipped and counted.

    Args:
        root: files below it; with ``labeled``, ``root/<class>/<file>``; with ``file_list``, the files it names
            (ShapeNet-55's ``train.txt``).
        num_points: points per cloud (1024 in Point-MAE).
        augment: random scale, shift and rotation on training clouds.
        rotation: ``"z"`` (about the vertical axis), ``"so3"`` or ``"none"``.
        normals: add ``"normals"`` ``[N, 4]`` (unit normal, surface variation) per cloud, for
            ``NormalCurvatureTarget``.
        normal_neighbors: points in each normal's local PCA (16).
        val_fraction: share held out when ``val_root`` is unset.
        batch_size: clouds per batch.
        num_workers: loader processes.
        val_root, labeled, file_list, val_file_list, seed: :class:`~anymae.FolderDataModule`'s.
    """

    channel_axes = POINT_AXES

    extensions = tuple(sorted(set(CLOUD_EXTENSIONS + MESH_EXTENSIONS + ARRAY_EXTENSIONS)))

    @validated
    def __init__(
        self,
        root: PathStr,
        *,
        num_points: PositiveInt = 1024,
        augment: bool = True,
        rotation: Literal["none", "z", "so3"] = "z",
        normals: bool = False,
        normal_neighbors: Annotated[int, Field(ge=3)] = 16,
        val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.1,
        batch_size: PositiveInt = 32,
        num_workers: NonNegativeInt = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__(root, val_fraction=val_fraction, batch_size=batch_size, num_workers=num_workers, **kwargs)
        self.num_points, self.augment, self.rotation = num_points, augment, rotation
        self.normals, self.normal_neighbors = normals, normal_neighbors

    def reader(self, train: bool) -> Callable[[str], dict[str, Tensor]]:
        return partial(
            read_cloud,
            count=self.num_points,
            augment_rotation=self.rotation if train and self.augment else None,
            normal_neighbors=self.normal_neighbors if self.normals else None,
        )


def make_shape(name: str, rng: np.random.Generator) -> Any:
    """An open3d mesh of primitive ``name`` with random proportions."""
    import open3d as o3d

    u = lambda low, high: float(rng.uniform(low, high))  # noqa: E731
    g = o3d.geometry.TriangleMesh
    if name == "box":
        return g.create_box(u(0.3, 1), u(0.3, 1), u(0.3, 1))
    if name == "sphere":
        return g.create_sphere(radius=1.0, resolution=12)
    if name == "cylinder":
        return g.create_cylinder(radius=u(0.2, 0.6), height=u(0.8, 2.0), resolution=24)
    if name == "cone":
        return g.create_cone(radius=u(0.3, 0.8), height=u(0.6, 2.0), resolution=24)
    if name == "torus":
        return g.create_torus(torus_radius=1.0, tube_radius=u(0.15, 0.5), radial_resolution=24, tubular_resolution=12)
    if name == "arrow":
        return g.create_arrow(
            cylinder_radius=u(0.05, 0.15),
            cone_radius=u(0.2, 0.35),
            cylinder_height=u(0.5, 1.0),
            cone_height=u(0.2, 0.5),
        )
    if name == "mobius":
        return g.create_mobius(
            length_split=60,
            width_split=8,
            twists=int(rng.integers(1, 3)),
            radius=1,
            flatness=1,
            width=u(0.3, 0.8),
            scale=1,
        )
    return {
        "tetrahedron": g.create_tetrahedron,
        "octahedron": g.create_octahedron,
        "icosahedron": g.create_icosahedron,
    }[name]()


def generate_shapes(per_class: int, num_points: int, noise: float, seed: int) -> tuple[Tensor, Tensor]:
    """``per_class`` clouds of every primitive: points ``[S, num_points, 3]`` (unit sphere) and labels ``[S]``."""
    import open3d as o3d

    rng = np.random.default_rng(seed)
    o3d.utility.random.seed(seed)
    clouds, labels = [], []
    for label, name in enumerate(SHAPES):  # data generation, once: a loop over meshes, not in a training step
        for _ in range(per_class):
            mesh = make_shape(name, rng)
            mesh.vertices = o3d.utility.Vector3dVector(np.asarray(mesh.vertices) * rng.uniform(0.7, 1.3, size=3))
            rotation = o3d.geometry.get_rotation_matrix_from_xyz(rng.uniform(0, 2 * np.pi, size=3))
            mesh.rotate(rotation, center=mesh.get_center())
            clouds.append(np.asarray(mesh.sample_points_uniformly(number_of_points=num_points).points))
            labels.append(label)
    points = normalize(torch.as_tensor(np.stack(clouds), dtype=torch.float32))
    generator = torch.Generator().manual_seed(seed)
    points = normalize(points + noise * torch.randn(points.shape, generator=generator))
    return points, torch.tensor(labels)


class ShapesDataModule(DataModule):
    """Labelled clouds of the 10 open3d primitives, generated (a few seconds), no download.

    Args:
        per_class: clouds per primitive.
        num_points: points per cloud.
        noise: Gaussian jitter (in units of the cloud's radius).
        val_fraction: share held out for validation.
        augment: random scale, shift and rotation on training clouds.
        rotation: ``"z"``, ``"so3"`` or ``"none"``.
        normals: add ``"normals"`` ``[N, 4]`` (unit normal, surface variation) per cloud, estimated once when the
            set is made, for ``NormalCurvatureTarget``.
        normal_neighbors: points in each normal's local PCA (16).
        batch_size: clouds per batch.
        num_workers: loader processes (the clouds are in memory: 0 is fine).
        seed: seed of the generation, the split, shuffling and augmentation.
    """

    channel_axes = POINT_AXES

    name = "shapes"  # what evaluation results call this data set

    @validated
    def __init__(
        self,
        per_class: PositiveInt = 100,
        num_points: PositiveInt = 1024,
        noise: Annotated[float, Field(ge=0)] = 0.01,
        val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2,
        augment: bool = True,
        rotation: Literal["none", "z", "so3"] = "z",
        normals: bool = False,
        normal_neighbors: Annotated[int, Field(ge=3)] = 16,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.per_class, self.num_points, self.noise, self.val_fraction = per_class, num_points, noise, val_fraction
        self.augment, self.rotation = augment, rotation
        self.normals, self.normal_neighbors = normals, normal_neighbors
        self.classes = list(SHAPES)

    def build(self) -> tuple[TensorSamples, TensorSamples]:
        points, labels = generate_shapes(self.per_class, self.num_points, self.noise, self.seed)
        data = {"points": points, "label": labels}
        if self.normals:
            data["normals"] = point_normals(points, self.normal_neighbors)
        train, val = split_indices(len(points), self.val_fraction, self.seed)
        transform = partial(_augmented, rotation=self.rotation) if self.augment else None
        return (
            TensorSamples({k: v[train] for k, v in data.items()}, transform),
            TensorSamples({k: v[val] for k, v in data.items()}),
        )
