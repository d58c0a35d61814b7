"""The point-cloud configs train from the anymae command; the plugin is discovered."""

import csv
from pathlib import Path

import pytest

from anymae.cli import main

ROOT = Path(__file__).resolve().parents[2]


def val_losses(run: Path) -> list[float]:
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    return [float(r["val/loss"]) for r in rows if r.get("val/loss")]


def test_plugins_command_lists_the_point_cloud_components(plugins_listing):
    assert plugins_listing.returncode == 0, plugins_listing.stderr
    out = plugins_listing.stdout
    assert "anymae-pointcloud 0.3.0 (plugin API 3)" in out
    assert "tokenizer: PointGroupTokenizer, VoxelPatchTokenizer" in out
    assert "target: ChamferTarget, NormalCurvatureTarget, OccupancyTarget" in out


@pytest.mark.parametrize(
    ("config", "epochs"), [("point_mae_shapes", 4), ("voxel_mae_shapes", 3), ("normals_shapes", 2)]
)
def test_configs_train_with_falling_loss(config, epochs, tmp_path, capsys):
    args = [
        "fit",
        "--config",
        str(ROOT / "examples" / "pointcloud" / f"{config}.yaml"),
        "--trainer.max_epochs",
        str(epochs),
        "--trainer.default_root_dir",
        str(tmp_path),
        "--trainer.enable_progress_bar",
        "false",
        "--data.per_class",
        "16",
    ]
    assert main(args) == 0
    run = tmp_path / "lightning_logs" / "version_0"
    losses = val_losses(run)
    assert len(losses) == epochs and losses[-1] < losses[0], losses
    if config != "normals_shapes":
        assert (run / "pointclouds" / "final.png").is_file()
        assert f"point clouds: {run / 'pointclouds' / 'final.png'}" in capsys.readouterr().out
