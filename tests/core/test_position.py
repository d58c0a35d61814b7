import numpy as np
import pytest
import torch

import anymae
from anymae import GridLayout, LayoutSpec, TokenBatch
from anymae.model.position import sincos_embedding


def mae_2d_reference(dim: int, h: int, w: int) -> np.ndarray:
    """MAE's get_2d_sincos_pos_embed written out in numpy (grid[0] holds the w coordinate in MAE's meshgrid)."""

    def one_d(d, pos):
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    grid = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    return np.concatenate([one_d(dim // 2, grid[0]), one_d(dim // 2, grid[1])], axis=1)


def test_sincos_2d_matches_mae_for_non_square_grids():
    embed = anymae.SinCosPositionEmbedding()
    embed.build(32, LayoutSpec("grid", 2, (3, 5)))
    np.testing.assert_allclose(embed.table.numpy(), mae_2d_reference(32, 3, 5), atol=1e-6)


@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 4)])
def test_sincos_any_rank_distinct_rows(shape):
    embed = anymae.SinCosPositionEmbedding()
    embed.build(24, LayoutSpec("grid", len(shape), shape))
    n = int(np.prod(shape))
    assert embed.table.shape == (n, 24)
    assert torch.cdist(embed.table, embed.table).add(torch.eye(n)).min() > 1e-3


def test_sincos_follows_runtime_grid_shape_and_sparse_coords():
    embed = anymae.SinCosPositionEmbedding()
    embed.build(12, LayoutSpec("grid", 1, (4,)))
    ids = torch.tensor([[0, 5]])
    out = embed(TokenBatch(torch.zeros(1, 6, 2), GridLayout((6,))), ids)
    assert torch.allclose(out[0], sincos_embedding(torch.tensor([[0], [5]]), 12))
    coords = torch.tensor([[[0, 1], [2, 3]]])
    sparse = TokenBatch(torch.zeros(1, 2, 2), GridLayout((4, 4), coords))
    embed2 = anymae.SinCosPositionEmbedding()
    embed2.build(8, LayoutSpec("grid", 2, (4, 4)))
    assert torch.allclose(embed2(sparse, torch.tensor([[1]]))[0, 0], sincos_embedding(torch.tensor([2, 3]), 8))


def test_sincos_refuses_points_and_bad_dims():
    with pytest.raises(anymae.ConfigError, match="grid"):
        anymae.SinCosPositionEmbedding().build(12, LayoutSpec("points", 3))
    with pytest.raises(anymae.ConfigError, match="divisible by 6"):
        anymae.SinCosPositionEmbedding().build(16, LayoutSpec("grid", 3, (2, 2, 2)))


def test_mlp_embedding_on_points():
    embed = anymae.MLPPositionEmbedding(hidden_dim=8)
    embed.build(16, LayoutSpec("points", 3))
    coords = torch.rand(2, 5, 3)
    out = embed(TokenBatch(torch.zeros(2, 5, 4), anymae.PointLayout(coords)), torch.tensor([[0, 4], [1, 2]]))
    assert out.shape == (2, 2, 16)
    assert torch.allclose(out[0, 1], embed.mlp(coords[0, 4]))
