"""ShiftContrastTarget: rolled token grids are torch.roll of each sample, the target refuses what it cannot shift in
one line, and beside pixels it trains the encoder towards features that find a shifted copy among the batch."""

import pytest
import torch

from anymae import (
    ConfigError,
    GridLayout,
    PatchTarget,
    ShiftContrastTarget,
    Target,
    TokenBatch,
    WeightedTarget,
    info_nce,
    roll_tokens,
)
from anymae.testing import tiny_model

from .toys import CoordTarget, PointTokenizer, SeriesTokenizer, VideoTokenizer


def shifted_pixels(shift: list[int], pixels: Target | None = None) -> WeightedTarget:
    return WeightedTarget({"pixels": pixels or PatchTarget(), "shift": ShiftContrastTarget(shift=shift)})


@pytest.mark.parametrize("shape", [(6,), (3, 4), (2, 3, 4)])
def test_roll_tokens_rolls_each_sample_by_its_own_shift(shape):
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(3, *shape, 5, generator=g)
    shifts = torch.randint(-5, 6, (3, len(shape)), generator=g)
    rolled = roll_tokens(TokenBatch(tokens.reshape(3, -1, 5), GridLayout(shape)), shifts)
    for sample in range(3):
        expected = torch.roll(tokens[sample], tuple(shifts[sample].tolist()), dims=tuple(range(len(shape))))
        torch.testing.assert_close(rolled.tokens[sample], expected.reshape(-1, 5), rtol=0, atol=0)
    assert rolled.layout == GridLayout(shape)  # the content moves, the positions stay


def test_padding_moves_with_its_tokens_and_sparse_grids_are_refused():
    tokens = torch.arange(8.0).reshape(2, 4, 1)
    padding = torch.tensor([[False, False, True, True], [False, False, False, True]])
    rolled = roll_tokens(TokenBatch(tokens, GridLayout((4,)), padding), torch.tensor([[1], [-1]]))
    assert rolled.tokens[..., 0].tolist() == [[3.0, 0.0, 1.0, 2.0], [5.0, 6.0, 7.0, 4.0]]
    assert rolled.padding_mask.tolist() == [[True, False, False, True], [False, False, True, False]]
    with pytest.raises(ValueError, match="whole grid"):
        roll_tokens(TokenBatch(tokens, GridLayout((8,), coords=torch.zeros(2, 4, 1))), torch.ones(2, 1))


def test_the_shift_is_one_entry_per_grid_axis():
    model = tiny_model(VideoTokenizer(frames=4, size=16, tubelet=2, patch=2), target=shifted_pixels([0, 2, 3]))
    assert model.target.parts["shift"].shift == (0, 2, 3)  # grid (2, 8, 8): time stays


@pytest.mark.parametrize(
    ("tokenizer", "shift", "message"),
    [
        (PointTokenizer(), [1], "shifts a whole grid of tokens; PointTokenizer gives"),
        (SeriesTokenizer(), [1, 1], "shift has 2 entries; SeriesTokenizer's grid \\(8,\\) has 1 axes"),
        (SeriesTokenizer(), [0], "moves nothing"),
    ],
)
def test_what_cannot_be_shifted_is_refused_at_build_naming_the_field(tokenizer, shift, message):
    target = shifted_pixels(shift, CoordTarget() if isinstance(tokenizer, PointTokenizer) else None)
    with pytest.raises(ConfigError, match=message):
        tiny_model(tokenizer, target=target)


def test_beside_pixels_the_term_is_logged_and_trains_the_encoder_towards_shift_invariant_features():
    torch.manual_seed(0)
    tokenizer = SeriesTokenizer(patch=4, channels=2, length=32)
    model = tiny_model(tokenizer, target=shifted_pixels([2]))
    shift = model.target.parts["shift"]
    g = torch.Generator().manual_seed(0)
    batches = [{"series": torch.randn(16, 2, 32, generator=g)} for _ in range(4)]

    def agreement() -> float:
        """InfoNCE between two shifted copies of held-out samples (lower: the copies find each other)."""
        model.eval()
        with torch.no_grad():
            tokens = tokenizer({"series": torch.randn(16, 2, 32, generator=torch.Generator().manual_seed(9))})
            views = [shift.pooled(roll_tokens(tokens, torch.full((16, 1), s))) for s in (-2, 2)]
        model.train()
        return float(info_nce(views[0], views[1], shift.temperature))

    before = agreement()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(60):
        out = model(batches[step % 4], generator=g)
        assert set(out.terms) == {"pixels", "shift"} and torch.isfinite(out.loss)
        optimizer.zero_grad()
        out.loss.backward()
        if step == 0:
            assert shift.projection[0].weight.grad.abs().sum() > 0  # the projection learns
            assert model.encoder.token_embed.weight.grad.abs().sum() > 0  # and so does the encoder
        optimizer.step()
    assert agreement() < 0.5 * before
