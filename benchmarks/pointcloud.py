"""Point-cloud tokenisation throughput: our batched FPS + kNN grouping beside open3d's FPS on the same clouds.

    python benchmarks/pointcloud.py [--batch 32]

At 1,024 points (64 groups of 32, Point-MAE's setting) and 8,192 points (512 groups of 32), prints clouds/s of
``farthest_point_sample`` alone, of FPS + kNN grouping (``PointGroupTokenizer.group``), and of open3d's
``farthest_point_down_sample`` (one cloud at a time, as it works), then the ratio.
"""

import argparse
import time

import numpy as np
import torch

from anymae_pointcloud import PointGroupTokenizer, farthest_point_sample


def clouds_per_second(fn, batch: int, repeats: int = 3) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return repeats * batch / (time.perf_counter() - start)


def run(batch: int = 32, device: str = "cpu") -> list[dict]:
    import open3d as o3d

    rows = []
    print(f"{'points':>8}{'groups':>8}{'FPS (ours)':>14}{'FPS+kNN (ours)':>16}{'FPS (open3d)':>14}{'ours/open3d':>13}")
    for n, groups in ((1024, 64), (8192, 512)):
        points = torch.rand(batch, n, 3, generator=torch.Generator().manual_seed(0)).to(device)
        tokenizer = PointGroupTokenizer(num_groups=groups, group_size=32)
        fps = clouds_per_second(lambda points=points, groups=groups: farthest_point_sample(points, groups), batch)
        grouping = clouds_per_second(lambda points=points, tokenizer=tokenizer: tokenizer.group(points), batch)
        clouds = [
            o3d.geometry.PointCloud(o3d.utility.Vector3dVector(p.cpu().numpy().astype(np.float64))) for p in points
        ]
        theirs = clouds_per_second(
            lambda clouds=clouds, groups=groups: [c.farthest_point_down_sample(groups) for c in clouds], batch
        )
        print(f"{n:>8}{groups:>8}{fps:>14,.0f}{grouping:>16,.0f}{theirs:>14,.0f}{fps / theirs:>12.2f}x")
        rows.append(
            {"points": n, "groups": groups, "fps_per_s": fps, "fps_knn_per_s": grouping, "open3d_fps_per_s": theirs}
        )
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    options = parser.parse_args()
    run(options.batch, options.device)
