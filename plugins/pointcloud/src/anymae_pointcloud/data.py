"""Point-cloud data: files read with open3d, and an embedded labelled set of generated shapes.

* :class:`PointCloudFolderDataModule`: ``.ply``, ``.pcd``, ``.xyz``, ``.pts`` point clouds and ``.ply``, ``.obj``,
  ``.off``, ``.stl`` meshes (sampled uniformly to points), unlabeled or labeled by sub-folder; a file that cannot be
  read (or holds no points) is skipped and counted, never fatal.
* :class:`ShapesDataModule`: open3d's primitives (box, sphere, cylinder, cone, torus, arrow, Moebius strip,
  tetrahedron, octahedron, icosahedron) with random proportions, rotations and noise, sampled to points; the class is
  the primitive. Made in memory, no download.

Every cloud is centred and scaled into the unit sphere (Point-MAE's ``pc_normalize``) and resampled to
``num_points``. Training clouds get random scale, shift and rotation. Batches: ``{"points": [B, N, 3]}`` plus
``"label"`` when labelled.
"""

import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from pydantic import Field, NonNegativeInt, PositiveInt
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from anymae import EpochShuffleSampler, SkippedSamples, collate_skipping, sample_rng, split_key, validated

__all__ = [
    "CLOUD_EXTENSIONS",
    "MESH_EXTENSIONS",
    "PointCloudFolderDataModule",
    "ShapesDataModule",
    "augment",
    "normalize",
    "read_points",
]

CLOUD_EXTENSIONS = (".ply", ".pcd", ".xyz", ".pts")
MESH_EXTENSIONS = (".ply", ".obj", ".off", ".stl")
SHAPES = ("box", "sphere", "cylinder", "cone", "torus", "arrow", "mobius", "tetrahedron", "octahedron", "icosahedron")


def normalize(points: Tensor) -> Tensor:
    """Centre on the centroid and scale so the farthest point is at distance 1 (``[..., N, 3]``)."""
    centred = points - points.mean(dim=-2, keepdim=True)
    return centred / centred.norm(dim=-1).amax(dim=-1, keepdim=True)[..., None].clamp_min(1e-9)


def resample(points: Tensor, count: int) -> Tensor:
    """``count`` points: a random subset, or with repeats when there are fewer (draws from torch's random state)."""
    n = points.shape[0]
    index = torch.randperm(n)[:count] if n >= count else torch.randint(0, n, (count,))
    return points[index]


def random_rotation(kind: str) -> Tensor:
    """A rotation matrix: about the vertical axis (``"z"``) or uniform over SO(3) (``"so3"``)."""
    if kind == "z":
        angle = torch.rand(()) * 2 * math.pi
        c, s = torch.cos(angle), torch.sin(angle)
        return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    q, r = torch.linalg.qr(torch.randn(3, 3))
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.det(q) > 0 else -q


def augment(points: Tensor, rotation: str) -> Tensor:
    """Point-MAE's scale (per axis, 2/3 to 3/2) and shift (-0.2 to 0.2), and a random rotation."""
    if rotation != "none":
        points = points @ random_rotation(rotation).T
    scale = torch.empty(3).uniform_(2 / 3, 3 / 2)
    shift = torch.empty(3).uniform_(-0.2, 0.2)
    return points * scale + shift


def read_points(path: str | Path, count: int) -> Tensor:
    """Points ``[count, 3]`` of a cloud or a mesh file, normalised to the unit sphere.

    Raises ``ValueError`` when the file holds no points (open3d reports unreadable files that way).
    """
    import open3d as o3d

    path = str(path)
    suffix = os.path.splitext(path)[1].lower()
    points = None
    if suffix in MESH_EXTENSIONS:
        mesh = o3d.io.read_triangle_mesh(path)
        if len(mesh.triangles):
            # Sample generously, then subsample to count with torch's seeded state (open3d's own is global).
            points = np.asarray(mesh.sample_points_uniformly(number_of_points=max(count, 2048)).points)
    if points is None and suffix in CLOUD_EXTENSIONS:
        points = np.asarray(o3d.io.read_point_cloud(path).points)
    if points is None or len(points) == 0:
        raise ValueError(f"no points in {path}")
    return normalize(resample(torch.as_tensor(points, dtype=torch.float32), count))


class PointFiles(Dataset):
    """Point-cloud and mesh files (and labels); an unreadable file yields ``None`` (see ``collate_skipping``)."""

    def __init__(
        self, paths: Sequence[str], labels: Sequence[int] | None, count: int, train: bool, rotation: str
    ) -> None:
        self.paths, self.labels = list(paths), None if labels is None else list(labels)
        self.count, self.train, self.rotation = count, train, rotation

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Tensor] | None:
        index, seed = split_key(key)
        try:
            with sample_rng(seed):
                points = read_points(self.paths[index], self.count)
                if self.train:
                    points = augment(points, self.rotation)
        except (OSError, ValueError, RuntimeError) as error:
            warnings.warn(f"skipping unreadable point cloud {self.paths[index]}: {error}", RuntimeWarning, stacklevel=2)
            return None
        sample = {"points": points}
        if self.labels is not None:
            sample["label"] = torch.tensor(self.labels[index])
        return sample


def _split(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = max(1, round(n * fraction)) if fraction > 0 else 0
    return order[n_val:], order[:n_val]


class PointCloudFolderDataModule(SkippedSamples, pl.LightningDataModule):
    """A folder of point clouds and meshes.

    Args:
        root: files below it; with ``labeled``, ``root/<class>/<file>``.
        val_root: validation files laid out as ``root``; unset: ``val_fraction`` of ``root``.
        val_fraction: share held out when ``val_root`` is unset.
        labeled: labels from sub-folder names (sorted).
        num_points: points per cloud (1024 in Point-MAE).
        augment: random scale, shift and rotation on training clouds.
        rotation: ``"z"`` (about the vertical axis), ``"so3"`` or ``"none"``.
        batch_size: clouds per batch.
        num_workers: loader processes.
        seed: seed of the split, shuffling and augmentation.
    """

    @validated
    def __init__(
        self,
        root: str,
        val_root: str | None = None,
        val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.1,
        labeled: bool = False,
        num_points: PositiveInt = 1024,
        augment: bool = True,
        rotation: Literal["none", "z", "so3"] = "z",
        batch_size: PositiveInt = 32,
        num_workers: NonNegativeInt = 2,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.root, self.val_root, self.val_fraction, self.labeled = root, val_root, val_fraction, labeled
        self.num_points, self.augment, self.rotation = num_points, augment, rotation
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.classes: list[str] = []
        self.train_set: PointFiles | None = None
        self.val_set: PointFiles | None = None

    def _scan(self, root: str) -> tuple[list[str], list[int] | None]:
        if not Path(root).is_dir():
            raise FileNotFoundError(f"PointCloudFolderDataModule: no such folder {root!r}")
        extensions = tuple(sorted(set(CLOUD_EXTENSIONS + MESH_EXTENSIONS)))
        paths = sorted(
            os.path.join(folder, name)
            for folder, _, names in os.walk(root, followlinks=True)
            for name in names
            if name.lower().endswith(extensions)
        )
        if not self.labeled:
            return paths, None
        classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
        self.classes = self.classes or classes
        index = {name: i for i, name in enumerate(self.classes)}
        labelled = [
            (p, index[Path(p).relative_to(root).parts[0]]) for p in paths if len(Path(p).relative_to(root).parts) > 1
        ]
        return [p for p, _ in labelled], [c for _, c in labelled]

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        paths, labels = self._scan(self.root)
        if not paths:
            raise FileNotFoundError(f"PointCloudFolderDataModule: no point-cloud or mesh files under {self.root!r}")
        if self.val_root is not None:
            val_paths, val_labels = self._scan(self.val_root)
        else:
            train, val = _split(len(paths), self.val_fraction, self.seed)
            take = lambda items, ids: None if items is None else [items[i] for i in ids]  # noqa: E731
            val_paths, val_labels, paths, labels = (
                take(paths, val),
                take(labels, val),
                take(paths, train),
                take(labels, train),
            )
        self.train_set = PointFiles(paths, labels, self.num_points, self.augment, self.rotation)
        self.val_set = PointFiles(val_paths, val_labels, self.num_points, False, self.rotation) if val_paths else None

    def _loader(self, dataset: PointFiles, train: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=EpochShuffleSampler(len(dataset), self.seed, shuffle=train, sample_seeds=True),
            num_workers=self.num_workers,
            collate_fn=collate_skipping,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.val_set, train=False) if self.val_set is not None else []


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


class _Clouds(Dataset):
    def __init__(self, points: Tensor, labels: Tensor, train: bool, rotation: str) -> None:
        self.points, self.labels, self.train, self.rotation = points, labels, train, rotation

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Tensor]:
        index, seed = split_key(key)
        points = self.points[index]
        if self.train:
            with sample_rng(seed):
                points = augment(points, self.rotation)
        return {"points": points, "label": self.labels[index]}


class ShapesDataModule(pl.LightningDataModule):
    """Labelled clouds of the 10 open3d primitives, generated (a few seconds), no download.

    Args:
        per_class: clouds per primitive.
        num_points: points per cloud.
        noise: Gaussian jitter (in units of the cloud's radius).
        val_fraction: share held out for validation.
        augment: random scale, shift and rotation on training clouds.
        rotation: ``"z"``, ``"so3"`` or ``"none"``.
        batch_size: clouds per batch.
        num_workers: loader processes (the clouds are in memory: 0 is fine).
        seed: seed of the generation, the split, shuffling and augmentation.
    """

    @validated
    def __init__(
        self,
        per_class: PositiveInt = 100,
        num_points: PositiveInt = 1024,
        noise: Annotated[float, Field(ge=0)] = 0.01,
        val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2,
        augment: bool = True,
        rotation: Literal["none", "z", "so3"] = "z",
        batch_size: PositiveInt = 32,
        num_workers: NonNegativeInt = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.per_class, self.num_points, self.noise, self.val_fraction = per_class, num_points, noise, val_fraction
        self.augment, self.rotation = augment, rotation
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.classes = list(SHAPES)
        self.train_set: _Clouds | None = None
        self.val_set: _Clouds | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        points, labels = generate_shapes(self.per_class, self.num_points, self.noise, self.seed)
        train, val = _split(len(points), self.val_fraction, self.seed)
        self.train_set = _Clouds(points[train], labels[train], self.augment, self.rotation)
        self.val_set = _Clouds(points[val], labels[val], False, self.rotation)

    def train_dataloader(self) -> DataLoader:
        sampler = EpochShuffleSampler(len(self.train_set), self.seed, sample_seeds=True)
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            drop_last=len(self.train_set) > self.batch_size,
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size, num_workers=self.num_workers)
