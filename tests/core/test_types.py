import pytest
import torch

from anymae import GridLayout, MaskSpec, PointLayout, TokenBatch, gather_tokens, grid_coords


def test_grid_coords_are_row_major_last_axis_fastest():
    coords = grid_coords((2, 3))
    assert coords.tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
    assert grid_coords((2, 2, 2)).shape == (8, 3)


def test_from_noise_keeps_lowest_noise_and_restores_order():
    noise = torch.tensor([[0.9, 0.1, 0.5, 0.3], [0.2, 0.8, 0.6, 0.4]])
    spec = MaskSpec.from_noise(noise, num_keep=2)
    assert spec.ids_keep.tolist() == [[1, 3], [0, 3]]
    assert spec.mask.tolist() == [[True, False, True, False], [False, True, True, False]]
    assert torch.equal(spec.ids_decode, spec.ids_masked)
    order = torch.cat([spec.ids_keep, spec.ids_masked], dim=1)
    assert torch.equal(torch.gather(order, 1, spec.ids_restore), torch.arange(4).expand(2, -1))


def test_padding_is_never_visible_and_never_decoded_as_valid():
    padding = torch.tensor([[False, False, False, True], [False, False, False, False]])
    noise = torch.tensor([[0.9, 0.8, 0.7, 0.0], [0.1, 0.2, 0.3, 0.4]])  # padding has the lowest noise
    spec = MaskSpec.from_noise(noise, num_keep=2, padding_mask=padding)
    assert not torch.gather(padding, 1, spec.ids_keep).any()
    assert spec.decode_valid.tolist() == [[True, False], [True, True]]


def test_from_mask_needs_equal_counts_and_keeps_order():
    spec = MaskSpec.from_mask(torch.tensor([[False, False, True, True], [True, False, True, False]]))
    assert spec.ids_keep.tolist() == [[0, 1], [1, 3]]
    assert spec.ids_masked.tolist() == [[2, 3], [0, 2]]
    with pytest.raises(ValueError, match="same number"):
        MaskSpec.from_mask(torch.tensor([[False, True, True, True], [True, False, True, False]]))


def test_gather_tokens_and_positions():
    x = torch.arange(24.0).reshape(2, 4, 3)
    ids = torch.tensor([[3, 0], [1, 1]])
    assert gather_tokens(x, ids).tolist() == [[x[0, 3].tolist(), x[0, 0].tolist()], [x[1, 1].tolist()] * 2]
    batch = TokenBatch(x, GridLayout((2, 2)))
    assert batch.positions().shape == (2, 4, 2)
    points = torch.rand(2, 4, 3)
    assert torch.equal(TokenBatch(x, PointLayout(points)).positions(), points)


def test_sample_rng_is_seeded_and_leaves_the_global_state_alone():
    from anymae import EpochShuffleSampler, sample_rng, split_key

    state = torch.get_rng_state()
    with sample_rng(7):
        a = torch.rand(3)
    with sample_rng(7):
        b = torch.rand(3)
    assert torch.equal(a, b) and torch.equal(torch.get_rng_state(), state)
    sampler = EpochShuffleSampler(5, seed=1, sample_seeds=True)
    keys = list(sampler)
    assert sorted(split_key(k)[0] for k in keys) == list(range(5))
    assert keys == list(sampler) and len({seed for _, seed in keys}) == 5
    sampler.set_epoch(1)
    assert [seed for _, seed in sampler] != [seed for _, seed in keys]
