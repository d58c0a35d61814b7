"""The point-cloud components pass the core's contracts."""

from anymae.testing import DataModuleContract, TargetContract, TokenizerContract
from anymae_pointcloud import (
    ChamferTarget,
    NormalCurvatureTarget,
    OccupancyTarget,
    PointGroupTokenizer,
    ShapesDataModule,
    VoxelPatchTokenizer,
)


class TestPointGroupTokenizer(TokenizerContract):
    component_class = PointGroupTokenizer
    init_args = {"num_groups": 16, "group_size": 8, "dim": 32}

    def make_target(self):
        return ChamferTarget()


class TestVoxelPatchTokenizer(TokenizerContract):
    component_class = VoxelPatchTokenizer
    init_args = {"grid_size": 8, "patch_size": 2}

    def make_target(self):
        return OccupancyTarget()


class TestChamferTarget(TargetContract):
    component_class = ChamferTarget

    def make_tokenizer(self):
        return PointGroupTokenizer(num_groups=16, group_size=8, dim=32)


class TestNormalCurvatureTarget(TestChamferTarget):
    component_class = NormalCurvatureTarget
    init_args = {"curvature_weight": 0.5}


class TestOccupancyTarget(TargetContract):
    component_class = OccupancyTarget

    def make_tokenizer(self):
        return VoxelPatchTokenizer(grid_size=8, patch_size=2)

    def perfect_prediction(self, target):
        return target * 40 - 20  # confident logits on the right side


class TestShapesDataModule(DataModuleContract):
    component_class = ShapesDataModule
    init_args = {"per_class": 2, "num_points": 128, "batch_size": 8}

    def make_tokenizer(self):
        return PointGroupTokenizer(num_groups=16, group_size=8, dim=32)

    def make_target(self):
        return ChamferTarget()


class TestOccupancyCountsTarget(TargetContract):
    """Counts mode needs the tokenizer's "counts" property (no data): the model builds and trains with it."""

    component_class = OccupancyTarget
    init_args = {"mode": "counts"}

    def make_tokenizer(self):
        return VoxelPatchTokenizer(grid_size=8, patch_size=2, counts=True)


def test_counts_mode_needs_a_counting_tokenizer():
    import pytest

    from anymae import ConfigError
    from anymae.testing import tiny_model

    with pytest.raises(ConfigError, match="OccupancyTarget needs counts from the tokenizer, which VoxelPatchTokenizer"):
        tiny_model(VoxelPatchTokenizer(grid_size=8, patch_size=2), OccupancyTarget(mode="counts"))
