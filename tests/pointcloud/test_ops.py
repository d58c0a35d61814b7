"""FPS, kNN, Chamfer and normals against open3d and brute-force NumPy references."""

import numpy as np
import open3d as o3d
import pytest
import torch

from anymae_pointcloud import chamfer_distance, estimate_normals, farthest_point_sample, knn


def test_fps_picks_the_same_points_as_open3d():
    points = torch.rand(3, 500, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    index = farthest_point_sample(points, 32, start=0)
    for b in range(3):
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points[b].numpy()))
        theirs = np.asarray(cloud.farthest_point_down_sample(32, start_index=0).points)
        # open3d returns the chosen points in the cloud's order; we return them in the order chosen
        np.testing.assert_allclose(points[b, index[b].sort().values].numpy(), theirs)
        assert index[b, 0] == 0


def open3d_picks(points: torch.Tensor, count: int, start: int = 0) -> list[np.ndarray]:
    """The points open3d's ``farthest_point_down_sample`` keeps of each cloud (as float64, in the cloud's order)."""
    clouds = [o3d.geometry.PointCloud(o3d.utility.Vector3dVector(p.double().numpy())) for p in points]
    return [np.asarray(c.farthest_point_down_sample(count, start_index=start).points) for c in clouds]


@pytest.mark.parametrize(("n", "count"), [(1024, 64), (8192, 512)])  # Point-MAE's setting, and a larger cloud
def test_fps_in_float32_picks_the_same_points_as_open3d(n, count):
    points = torch.rand(2, n, 3, generator=torch.Generator().manual_seed(n))
    index = farthest_point_sample(points, count)
    assert index.shape == (2, count) and (index[:, 0] == 0).all()
    for b, theirs in enumerate(open3d_picks(points, count)):
        np.testing.assert_array_equal(points[b, index[b].sort().values].double().numpy(), theirs)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fps_breaks_ties_as_open3d(dtype):
    """Points on a small integer grid, many repeated: many candidates lie exactly as far, and open3d takes the first.
    1,000 points do not fill the argmax's chunks of 32, so its padding is exercised too."""
    grid = torch.randint(0, 6, (3, 1000, 3), generator=torch.Generator().manual_seed(0)).to(dtype)
    index = farthest_point_sample(grid, 100, start=7)
    assert (index[:, 0] == 7).all() and all(len(set(row.tolist())) == 100 for row in index)
    for b, theirs in enumerate(open3d_picks(grid, 100, start=7)):
        np.testing.assert_array_equal(grid[b, index[b].sort().values].double().numpy(), theirs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.gpu
def test_fps_on_cuda_picks_what_the_cpu_picks():
    points = torch.rand(4, 2000, 3, generator=torch.Generator().manual_seed(0))
    for dtype in (torch.float32, torch.float64):
        cpu = farthest_point_sample(points.to(dtype), 128, start=3)
        assert torch.equal(farthest_point_sample(points.to(dtype).cuda(), 128, start=3).cpu(), cpu)


def test_knn_matches_brute_force():
    rng = np.random.default_rng(1)
    points, query = rng.random((2, 200, 3)), rng.random((2, 10, 3))
    index = knn(torch.tensor(query), torch.tensor(points), 7).numpy()
    for b in range(2):
        distances = ((query[b][:, None] - points[b][None]) ** 2).sum(-1)
        np.testing.assert_array_equal(index[b], np.argsort(distances, axis=1)[:, :7])


@pytest.mark.parametrize("norm", ["l2", "l1"])
def test_chamfer_matches_brute_force(norm):
    rng = np.random.default_rng(2)
    a, b = rng.random((4, 20, 3)), rng.random((4, 30, 3))
    ours = chamfer_distance(torch.tensor(a), torch.tensor(b), norm).numpy()
    for i in range(4):
        d = ((a[i][:, None] - b[i][None]) ** 2).sum(-1)
        ab, ba = d.min(axis=1), d.min(axis=0)
        expected = ab.mean() + ba.mean() if norm == "l2" else (np.sqrt(ab).mean() + np.sqrt(ba).mean()) / 2
        assert ours[i] == pytest.approx(expected, rel=1e-6)
    assert chamfer_distance(torch.tensor(a), torch.tensor(a), norm).abs().max() < 1e-5


def test_normals_agree_with_open3d_up_to_sign():
    mesh = o3d.geometry.TriangleMesh.create_torus()
    o3d.utility.random.seed(0)
    cloud = mesh.sample_points_uniformly(number_of_points=2000)
    cloud.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(knn=16))
    points = torch.tensor(np.asarray(cloud.points))[None]
    normals, _ = estimate_normals(points, k=16)
    cosine = (normals[0] * torch.tensor(np.asarray(cloud.normals))).sum(-1).abs()
    assert cosine.mean() > 0.999 and cosine.min() > 0.98
    plane = torch.tensor(np.c_[np.random.default_rng(3).random((300, 2)), np.zeros(300)])[None]
    assert estimate_normals(plane, k=16)[1].abs().max() < 1e-9  # a plane has no surface variation


def test_knn_in_chunks_equals_one_distance_matrix():
    from anymae_pointcloud.ops import knn

    points = torch.rand(2, 300, 3, generator=torch.Generator().manual_seed(0))
    query = torch.rand(2, 77, 3, generator=torch.Generator().manual_seed(1))
    whole = torch.cdist(query, points).topk(8, dim=-1, largest=False).indices
    assert torch.equal(knn(query, points, 8, chunk=10), whole)
    assert torch.equal(knn(query, points, 8), whole)
