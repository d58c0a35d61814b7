"""Readers for every supported file format, unreadable files skipped and counted, the embedded shapes."""

import csv
import warnings

import numpy as np
import open3d as o3d
import pytest
import torch

from anymae_pointcloud import PointCloudFolderDataModule, ShapesDataModule, point_normals, read_points
from anymae_pointcloud.data import SHAPES, normalize, resample

from ..core.toys import quiet_trainer


def write_formats(folder):
    folder.mkdir(parents=True, exist_ok=True)
    mesh = o3d.geometry.TriangleMesh.create_box(1, 2, 3)
    mesh.compute_vertex_normals()
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.random.default_rng(0).random((400, 3)) * 4))
    paths = []
    for suffix in (".ply", ".pcd", ".xyz", ".pts"):
        path = folder / f"cloud{suffix}"
        assert o3d.io.write_point_cloud(str(path), cloud)
        paths.append(path)
    for suffix in (".obj", ".off", ".stl"):
        path = folder / f"mesh{suffix}"
        assert o3d.io.write_triangle_mesh(str(path), mesh)
        paths.append(path)
    path = folder / "mesh_as.ply"
    assert o3d.io.write_triangle_mesh(str(path), mesh)
    return [*paths, path]


def test_every_format_reads_into_the_unit_sphere(tmp_path):
    for path in write_formats(tmp_path):
        points = read_points(path, 256)
        assert points.shape == (256, 3), path
        assert points.norm(dim=1).max() == pytest.approx(1.0, abs=1e-5), path
        assert points.mean(dim=0).abs().max() < 0.2, path
    box = read_points(tmp_path / "mesh.obj", 2048)  # a sampled surface: points on all six faces of a box
    assert (box.abs().max(dim=0).values > 0.2).all()


def test_unreadable_files_are_skipped_and_counted(tmp_path):
    write_formats(tmp_path / "good")
    (tmp_path / "good" / "broken.ply").write_bytes(b"ply\nformat nonsense\n")
    (tmp_path / "good" / "empty.xyz").write_text("")
    data = PointCloudFolderDataModule(
        root=str(tmp_path / "good"), num_points=128, batch_size=5, num_workers=0, val_fraction=0.0
    )
    data.setup("fit")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sizes = [len(data.on_before_batch_transfer(b, 0).get("points", [])) for b in data.train_dataloader()]
    assert sum(sizes) == 8 and data.num_skipped == 2
    assert any("skipping unreadable file" in str(w.message) for w in caught)


def test_labels_from_folders_and_augmentation(tmp_path):
    write_formats(tmp_path / "a")
    write_formats(tmp_path / "b")
    data = PointCloudFolderDataModule(
        root=str(tmp_path), labeled=True, num_points=64, batch_size=64, num_workers=0, val_fraction=0.25, rotation="so3"
    )
    data.setup("fit")
    assert data.classes == ["a", "b"]
    train = data.on_before_batch_transfer(next(iter(data.train_dataloader())), 0)
    val = data.on_before_batch_transfer(next(iter(data.val_dataloader())), 0)
    assert set(train["label"].tolist()) | set(val["label"].tolist()) == {0, 1}
    assert val["points"].norm(dim=-1).amax(dim=1).sub(1).abs().max() < 1e-5  # validation: not augmented
    assert train["points"].norm(dim=-1).amax(dim=1).sub(1).abs().max() > 1e-3  # training: scaled and shifted


def test_shapes_are_labelled_primitives():
    data = ShapesDataModule(per_class=3, num_points=256, batch_size=8, augment=False)
    data.setup("fit")
    labels = torch.cat([data.train_set.labels, data.val_set.labels])
    assert torch.bincount(labels).tolist() == [3] * len(SHAPES)
    batch = next(iter(data.train_dataloader()))
    assert batch["points"].shape == (8, 256, 3)
    assert torch.allclose(batch["points"].norm(dim=-1).amax(dim=1), torch.ones(8), atol=1e-5)


def test_truncated_binary_ply_is_skipped_not_read_as_garbage(tmp_path):
    """open3d reads a truncated binary .ply as the declared count of NaN or ~1e304 points: such a cloud is refused."""
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.random.default_rng(0).random((500, 3))))
    whole = tmp_path / "whole.ply"
    assert o3d.io.write_point_cloud(str(whole), cloud, write_ascii=False)
    data = whole.read_bytes()
    (tmp_path / "truncated.ply").write_bytes(data[: len(data) // 3])
    ascii_whole = tmp_path / "ascii.ply"
    assert o3d.io.write_point_cloud(str(ascii_whole), cloud, write_ascii=True)
    lines = ascii_whole.read_text().splitlines()
    (tmp_path / "ascii.ply").write_text("\n".join(lines[: len(lines) // 2]) + "\n")
    with pytest.raises(ValueError, match="is truncated: its header declares 500 rows"):
        read_points(tmp_path / "ascii.ply", 64)
    with pytest.raises(ValueError, match="is truncated: its header declares 12000 bytes"):
        read_points(tmp_path / "truncated.ply", 64)
    module = PointCloudFolderDataModule(root=str(tmp_path), num_points=64, batch_size=4, num_workers=0, val_fraction=0)
    module.setup("fit")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batches = [module.on_before_batch_transfer(b, 0) for b in module.train_dataloader()]
    assert module.num_skipped == 2 and sum(len(b.get("points", [])) for b in batches) == 1
    assert all(torch.isfinite(b["points"]).all() for b in batches if "points" in b)


def test_normals_are_estimated_once_per_cloud_and_move_with_augmentation():
    """Normals come with the data, estimated when the set is made; augmented clouds carry their normals rotated and
    scaled with them, matching an estimate made afresh on the augmented cloud."""
    data = ShapesDataModule(per_class=2, num_points=512, batch_size=20, normals=True, rotation="so3", noise=0.0)
    data.setup("fit")
    batch = data.on_before_batch_transfer(next(iter(data.train_dataloader())), 0)
    points, normals = batch["points"], batch["normals"]
    assert normals.shape == (*points.shape[:2], 4)
    torch.testing.assert_close(normals[..., :3].norm(dim=-1), torch.ones(points.shape[:2]))
    fresh = point_normals(points)
    agreement = torch.nn.functional.cosine_similarity(normals[..., :3], fresh[..., :3], dim=-1).abs()
    assert agreement.median() > 0.98, agreement.median()


def test_a_normals_training_step_searches_no_neighbourhood(monkeypatch):
    """The normal target reads normals the data computed; a training step never calls the neighbourhood search."""
    from anymae.testing import tiny_model
    from anymae_pointcloud import NormalCurvatureTarget, PointGroupTokenizer
    from anymae_pointcloud import data as point_data

    calls = []
    original = point_data.estimate_normals
    monkeypatch.setattr(point_data, "estimate_normals", lambda *a, **k: calls.append(1) or original(*a, **k))
    module = ShapesDataModule(per_class=2, num_points=128, batch_size=8, normals=True)
    module.setup("fit")
    assert calls, "normals are estimated when the set is made"
    calls.clear()
    model = tiny_model(PointGroupTokenizer(num_groups=8, group_size=8, dim=16), NormalCurvatureTarget())
    quiet_trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=1).fit(model, module)
    assert not calls


def test_normal_target_without_normals_in_the_data_says_so():
    from anymae import ConfigError
    from anymae.testing import tiny_model
    from anymae_pointcloud import NormalCurvatureTarget, PointGroupTokenizer

    model = tiny_model(PointGroupTokenizer(num_groups=8, group_size=8, dim=16), NormalCurvatureTarget())
    with pytest.raises(ConfigError, match=r"neighbor_normals needs the batch entry 'normals'.*normals: true"):
        model({"points": torch.rand(2, 64, 3)})


def test_cached_normals_equal_the_estimate_the_target_made_at_every_step():
    """Without augmentation, the normals the data module caches per cloud and the tokenizer gathers for the decoded
    groups are what the normal target estimated at every step before they were cached: ``estimate_normals`` over the
    whole cloud at the points of the decoded groups, 16 neighbours (a normal's sign is arbitrary)."""
    import anymae
    from anymae_pointcloud import PointGroupTokenizer
    from anymae_pointcloud.ops import estimate_normals, gather_points

    data = ShapesDataModule(per_class=2, num_points=512, batch_size=20, normals=True, augment=False)
    data.setup("fit")
    batch = data.on_before_batch_transfer(next(iter(data.train_dataloader())), 0)
    tokenizer = PointGroupTokenizer(num_groups=32, group_size=16, dim=16)
    tokens = tokenizer(batch, frozenset({"neighbor_normals"}))
    mask = anymae.RandomMasker(mask_ratio=0.6)(tokens, generator=torch.Generator().manual_seed(0))
    cached = anymae.gather_tokens(tokens.provided["neighbor_normals"], mask.ids_decode)  # [B, M, k, 4]

    points = batch["points"]
    index = anymae.gather_tokens(tokenizer.group(points)[2], mask.ids_decode)  # [B, M, k] the decoded groups' points
    normals, variation = estimate_normals(points, query=gather_points(points, index).flatten(1, 2), k=16)
    normals, variation = normals.view(cached[..., :3].shape), variation.view(cached[..., 3].shape)

    assert cached.shape == (*mask.ids_decode.shape, 16, 4) and mask.ids_decode.shape[1] > 0
    cosine = (normals * cached[..., :3]).sum(dim=-1).abs()
    torch.testing.assert_close(cosine, torch.ones_like(cosine))
    torch.testing.assert_close(variation, cached[..., 3])


def test_point_arrays_read_as_point_mae_reads_shapenet_and_modelnet(tmp_path):
    """ShapeNet-55's .npy (8,192 x 3) and ModelNet40's resampled .txt (x,y,z,nx,ny,nz rows) give their x y z, sampled
    and normalised like every other format; whitespace-separated text too; a wrong shape is a skipped file."""
    rng = np.random.default_rng(0)
    cloud = rng.normal(size=(8192, 3)) * [3, 1, 0.5] + 7
    np.save(tmp_path / "shape.npy", cloud.astype(np.float32))
    normals = rng.normal(size=(8192, 3))
    np.savetxt(tmp_path / "airplane_0001.txt", np.hstack([cloud, normals]), delimiter=",", fmt="%.6f")
    np.savetxt(tmp_path / "scan.txt", cloud, fmt="%.6f")  # x y z, space-separated
    np.savetxt(tmp_path / "export.txt", cloud, fmt="%.6f", delimiter=",", header="x,y,z", comments="")  # a header
    for name in ("shape.npy", "airplane_0001.txt", "scan.txt", "export.txt"):
        torch.manual_seed(0)
        points = read_points(tmp_path / name, 1024)
        torch.manual_seed(0)
        expected = normalize(resample(torch.as_tensor(cloud, dtype=torch.float32), 1024))
        torch.testing.assert_close(points, expected, atol=1e-4, rtol=0), name
    np.save(tmp_path / "flat.npy", np.zeros(10))
    with pytest.raises(ValueError, match=r"expected \[N, >= 3\]"):
        read_points(tmp_path / "flat.npy", 64)


def test_the_point_mae_shapenet_config_trains_on_shapenet_55_as_published(tmp_path, capsys):
    """The paper-size config on ShapeNet-55's layout (shapenet_pc/*.npy named by ShapeNet-55/train.txt and test.txt),
    shrunk to a tiny model for one epoch: it reads the listed shapes only and trains."""
    from ..commands import fit

    pc, lists = tmp_path / "shapenet_pc", tmp_path / "ShapeNet-55"
    pc.mkdir()
    lists.mkdir()
    rng = np.random.default_rng(0)
    names = [f"0269115{i % 3}-{i:04x}.npy" for i in range(10)]
    for name in names:
        np.save(pc / name, rng.normal(size=(8192, 3)).astype(np.float32))
    (pc / "unlisted.npy").write_bytes(b"not an array: never read")
    (lists / "train.txt").write_text("\n".join(names[:7]) + "\n")
    (lists / "test.txt").write_text("\n".join(names[7:]) + "\n")
    overlay = {
        "trainer": {"max_epochs": 1, "precision": "32-true", "callbacks": [], "log_every_n_steps": 1},
        "model": {
            "tokenizer": {"init_args": {"num_groups": 8, "group_size": 8, "dim": 32}},
            "encoder": {"init_args": {"embed_dim": 32, "depth": 1, "num_heads": 2}},
            "decoder": {"init_args": {"embed_dim": 32, "depth": 1, "num_heads": 2}},
        },
        "data": {
            "init_args": {
                "root": str(pc),
                "file_list": str(lists / "train.txt"),
                "val_file_list": str(lists / "test.txt"),
                "num_points": 128,
                "batch_size": 4,
                "num_workers": 0,
            }
        },
    }
    run = fit("pointcloud/point_mae_shapenet.yaml", tmp_path / "run", overlay=overlay)
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert any(row.get("train/loss") for row in rows) and any(row.get("val/loss") for row in rows)
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert "unreadable" not in capsys.readouterr().out  # the unlisted file was never read
