"""Property-based tests of the point-cloud tokenizers: any cloud size (at least the groups need), batch and grid."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from anymae_pointcloud import PointGroupTokenizer, VoxelPatchTokenizer


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 3), points=st.integers(16, 200), groups=st.integers(1, 16), size=st.integers(1, 16))
def test_groups_cover_their_neighbourhoods(batch, points, groups, size):
    tokenizer = PointGroupTokenizer(num_groups=groups, group_size=size, dim=8).eval()
    cloud = torch.rand(batch, points, 3)
    tokens = tokenizer({"points": cloud}, frozenset({"neighborhoods"}))
    neighbourhoods = tokens.provided["neighborhoods"]
    assert tokens.tokens.shape == (batch, groups, 8) and neighbourhoods.shape == (batch, groups, size, 3)
    assert torch.isfinite(tokens.tokens).all()
    # every grouped point is a point of the cloud
    absolute = (neighbourhoods + tokens.layout.coords[:, :, None]).flatten(1, 2)
    assert (absolute[:, :, None] - cloud[:, None]).norm(dim=-1).amin(dim=-1).max() < 1e-6


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 3), points=st.integers(1, 300), patch=st.integers(1, 3), cells=st.integers(1, 4))
def test_voxel_tokens_count_the_occupied_voxels(batch, points, patch, cells):
    tokenizer = VoxelPatchTokenizer(grid_size=patch * cells, patch_size=patch)
    cloud = torch.rand(batch, points, 3) * 2.4 - 1.2  # some points outside the cube go to its border voxels
    tokens = tokenizer({"points": cloud})
    occupied = tokenizer.voxelize(cloud) > 0
    assert tokens.tokens.shape == (batch, cells**3, patch**3)
    assert torch.equal(tokens.tokens.sum(dim=(1, 2)), occupied.sum(dim=(1, 2, 3)).float())
