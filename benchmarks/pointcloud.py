"""Point-cloud speed: our batched FPS + kNN grouping beside open3d's FPS on the same clouds, and the training step of
the normal/curvature target with normals from the data (now) beside normals estimated in the step (before).

    python benchmarks/pointcloud.py [--batch 32]

At 1,024 points (64 groups of 32, Point-MAE's setting) and 8,192 points (512 groups of 32), prints clouds/s (the
fastest of 5 calls) of ``farthest_point_sample`` alone, of FPS + kNN grouping (``PointGroupTokenizer.group``), and of
open3d's ``farthest_point_down_sample`` (one cloud at a time, as it works), then the ratio. Then the seconds of a full
training step (forward, backward, AdamW) of ``examples/pointcloud/normals_shapes.yaml``'s model, steps of the two
variants interleaved: normals gathered from the batch, and the former target's work (a neighbourhood search over the
whole cloud and a PCA for every point of the decoded groups, at every step).
"""

import argparse
import statistics
import time

import numpy as np
import torch

import anymae
from anymae_pointcloud import NormalCurvatureTarget, PointGroupTokenizer, farthest_point_sample, point_normals
from anymae_pointcloud.ops import estimate_normals


def clouds_per_second(fn, batch: int, repeats: int = 5, device: str = "cpu") -> float:
    """Clouds per second of the fastest of ``repeats`` calls after a warm-up: on a shared machine the fastest run is
    the one least slowed by other work, for our code and open3d's alike."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return batch / best


def run(batch: int = 32, device: str = "cpu") -> list[dict]:
    import open3d as o3d

    rows = []
    print(f"clouds/s, batch {batch}, {device}" + (f", {torch.get_num_threads()} threads" if device == "cpu" else ""))
    print(f"{'points':>8}{'groups':>8}{'FPS (ours)':>14}{'FPS+kNN (ours)':>16}{'FPS (open3d)':>14}{'ours/open3d':>13}")
    for n, groups in ((1024, 64), (8192, 512)):
        points = torch.rand(batch, n, 3, generator=torch.Generator().manual_seed(0)).to(device)
        tokenizer = PointGroupTokenizer(num_groups=groups, group_size=32)
        fps = clouds_per_second(
            lambda points=points, groups=groups: farthest_point_sample(points, groups), batch, device=device
        )
        grouping = clouds_per_second(
            lambda points=points, tokenizer=tokenizer: tokenizer.group(points), batch, device=device
        )
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


class NormalsInTheStep(NormalCurvatureTarget):
    """The target as it was before plugin API 2: normals estimated over the whole cloud at every step."""

    def __init__(self) -> None:
        super().__init__()
        self.needs = frozenset({"neighborhoods", "neighbor_normals"})  # the groups, to find their points' normals

    def forward(self, batch, tokens, mask):
        points = batch["points"].float()
        groups = tokens.provided["neighborhoods"] + tokens.layout.coords.unsqueeze(2)  # [B, G, k, 3]
        query = anymae.gather_tokens(groups.flatten(2), mask.ids_decode).unflatten(-1, (-1, 3))  # [B, M, k, 3]
        normals, variation = estimate_normals(points, query.flatten(1, 2), 16)
        return torch.cat([normals, variation.unsqueeze(-1)], dim=-1).view(*query.shape[:3], 4).flatten(2)


def normal_target_step(
    batch: int = 32, points: int = 512, groups: int = 32, group_size: int = 16, steps: int = 10, device: str = "cpu"
) -> dict:
    """Median seconds of a training step with normals from the data and with normals estimated in the step."""
    clouds = torch.randn(batch, points, 3, generator=torch.Generator().manual_seed(0))
    clouds = clouds / clouds.norm(dim=-1).amax(dim=1)[:, None, None]
    data = {"points": clouds.to(device), "normals": point_normals(clouds).to(device)}
    models, optimizers = {}, {}
    for name, target in (("from data", NormalCurvatureTarget()), ("in the step", NormalsInTheStep())):
        torch.manual_seed(0)
        models[name] = anymae.MaskedAutoencoder(
            tokenizer=PointGroupTokenizer(num_groups=groups, group_size=group_size, dim=128),
            masker=anymae.RandomMasker(mask_ratio=0.6),
            encoder=anymae.ViTEncoder(embed_dim=96, depth=4, num_heads=4, class_token=False),
            decoder=anymae.MAEDecoder(embed_dim=96, depth=2, num_heads=4),
            target=target,
        ).to(device)
        optimizers[name] = torch.optim.AdamW(models[name].parameters(), lr=1e-3)
    times: dict[str, list[float]] = {name: [] for name in models}
    for step in range(steps + 1):
        for name, model in models.items():  # interleaved: machine drift hits both alike
            start = time.perf_counter()
            loss = model(data, generator=torch.Generator(device=device).manual_seed(step)).loss
            loss.backward()
            optimizers[name].step()
            optimizers[name].zero_grad()
            if device == "cuda":
                torch.cuda.synchronize()
            if step:  # the first step warms up
                times[name].append(time.perf_counter() - start)
    now, before = statistics.median(times["from data"]), statistics.median(times["in the step"])
    print(
        f"normal target step, batch {batch} x {points} points, {groups} groups of {group_size}: normals from the data "
        f"{now:.3f} s, "
        f"estimated in the step (before) {before:.3f} s: {before / now:.2f}x faster"
    )
    return {"from_data_s": now, "in_step_s": before}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    options = parser.parse_args()
    run(options.batch, options.device)
    normal_target_step(options.batch, device=options.device)  # examples/pointcloud/normals_shapes.yaml
    normal_target_step(options.batch, points=1024, groups=64, group_size=32, device=options.device)  # Point-MAE's
