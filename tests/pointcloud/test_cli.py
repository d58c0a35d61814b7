"""The point-cloud configs train from the anymae command; the plugin is discovered."""

import pytest

from ..commands import assert_listed, fit, val_losses


def test_plugins_command_lists_the_point_cloud_components(plugins_listing):
    assert_listed(
        plugins_listing,
        "anymae-pointcloud 0.3.0 (plugin API 3)",
        "tokenizer: PointGroupTokenizer, VoxelPatchTokenizer",
        "target: ChamferTarget, NormalCurvatureTarget, OccupancyTarget",
    )


@pytest.mark.parametrize(
    ("config", "epochs"), [("point_mae_shapes", 4), ("voxel_mae_shapes", 3), ("normals_shapes", 2)]
)
def test_configs_train_with_falling_loss(config, epochs, tmp_path, capsys):
    run = fit(f"pointcloud/{config}.yaml", tmp_path, "--trainer.max_epochs", str(epochs), "--data.per_class", "16")
    losses = val_losses(run)
    assert len(losses) == epochs and losses[-1] < losses[0], losses
    if config != "normals_shapes":
        assert (run / "pointclouds" / "final.png").is_file()
        assert f"point clouds: {run / 'pointclouds' / 'final.png'}" in capsys.readouterr().out
