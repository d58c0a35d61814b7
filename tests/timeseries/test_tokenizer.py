"""Patching and its inverse, padding, missing values, forecasting masks, trajectory targets."""

import pytest
import torch

import anymae
from anymae import MaskSpec
from anymae.testing import build_context
from anymae_timeseries import ForecastMasker, SeriesPatchTokenizer, TrajectoryTarget

from ..core.toys import series_model


def series(b=3, c=2, length=40, seed=0):
    return torch.randn(b, c, length, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("mode", ["mixed", "independent"])
@pytest.mark.parametrize(("patch_len", "stride", "length"), [(8, None, 40), (8, 4, 40), (10, None, 40)])
def test_patching_and_its_inverse_are_exact(mode, patch_len, stride, length):
    tok = SeriesPatchTokenizer(channels=2, length=length, patch_len=patch_len, stride=stride, mode=mode)
    x = series(length=length)
    tokens = tok({"series": x})
    n = tok.num_patches(length)
    assert tokens.tokens.shape == ((3, n, patch_len * 2) if mode == "mixed" else (6, n, patch_len))
    back = tok.inverse(tokens)
    torch.testing.assert_close(back[..., :length], x)  # every step is covered: nothing is truncated
    if back.shape[-1] > length:  # a last partial patch is completed by repeating the last value
        assert torch.equal(back[..., length:], x[..., -1:].expand(-1, -1, back.shape[-1] - length))


def test_mixed_patches_are_step_then_channel():
    tok = SeriesPatchTokenizer(channels=2, length=8, patch_len=4)
    x = torch.arange(16.0).view(1, 2, 8)
    assert tok({"series": x}).tokens[0, 0].tolist() == [0, 8, 1, 9, 2, 10, 3, 11]


def test_variable_length_padding_stays_out_of_visible_set_and_loss():
    torch.manual_seed(0)
    tok = SeriesPatchTokenizer(channels=2, length=40, patch_len=8)
    model = anymae.MaskedAutoencoder(
        tokenizer=tok,
        masker=anymae.RandomMasker(mask_ratio=0.5),
        encoder=anymae.ViTEncoder(embed_dim=16, depth=1, num_heads=2),
        decoder=anymae.MAEDecoder(embed_dim=8, depth=1, num_heads=2),
        target=anymae.PatchTarget(normalize="none"),
    )
    x, lengths = series(), torch.tensor([40, 24, 17])
    out = model({"series": x, "length": lengths}, generator=torch.Generator().manual_seed(0))
    padding = out.tokens.padding_mask
    assert padding.sum(dim=1).tolist() == [0, 2, 2]  # 17 steps: 3 patches, the last completed by repetition
    assert not torch.gather(padding, 1, out.mask.ids_keep).any()
    garbage = x.clone()
    garbage[1, :, 24:] = 1e4
    garbage[2, :, 24:] = float("nan")
    again = model({"series": garbage, "length": lengths}, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(again.loss, out.loss)


def test_missing_values_make_their_patch_padding_and_revin_ignores_them():
    tok = SeriesPatchTokenizer(channels=1, length=32, patch_len=8, revin=True)
    x = torch.randn(2, 1, 32) * 5 + 3
    x[0, 0, 10] = float("nan")
    x[1, 0, 30] = float("inf")  # an infinite reading (a sensor's overflow) is missing too
    tokens = tok({"series": x})
    assert tokens.padding_mask.tolist() == [[False, True, False, False], [False, False, False, True]]
    assert torch.isfinite(tokens.tokens).all()
    for row in (0, 1):
        observed = tokens.tokens[row][~tokens.padding_mask[row]]
        assert observed.std() == pytest.approx(1.0, abs=0.2) and observed.mean().abs() < 0.3


def test_forecast_masker_hides_the_end_of_each_series():
    tok = SeriesPatchTokenizer(channels=1, length=64, patch_len=8)
    tokens = tok({"series": series(2, 1, 64), "length": torch.tensor([64, 48])})
    spec = ForecastMasker(horizon=2, context=3)(tokens)
    assert spec.ids_decode.tolist() == [[6, 7], [4, 5]]
    assert sorted(spec.ids_keep[0].tolist()) == [3, 4, 5] and sorted(spec.ids_keep[1].tolist()) == [1, 2, 3]
    assert spec.decode_valid is None or spec.decode_valid.all()


def test_trajectory_target_positions_and_displacements():
    tok = SeriesPatchTokenizer(channels=2, length=16, patch_len=4)
    target = TrajectoryTarget(displacement_weight=2.0)
    target.build(build_context(tok.spec))
    tracks = torch.cumsum(torch.ones(1, 2, 16), dim=-1)  # steps of 1 in x and y
    assert not tok({"series": tracks}).provided  # displacements only when asked for
    tokens = tok({"series": tracks}, frozenset({"displacements"}))
    spec = MaskSpec.from_mask(torch.tensor([[False, True, False, True]]))
    values = target({}, tokens, spec)
    assert values.shape == (1, 2, 16)
    assert values[0, 0, 8:].tolist() == [1.0] * 8  # displacements of a hidden segment
    pred = values.clone()
    pred[..., 8:] += 1  # displacements wrong by one
    assert anymae.masked_mean(target.token_loss(pred, values, spec), spec.decode_valid).item() == pytest.approx(2.0)
    with pytest.raises(
        anymae.ConfigError, match="TrajectoryTarget needs displacements from the tokenizer, which Series"
    ):
        series_model(target=TrajectoryTarget())  # the core's toy series tokenizer computes no displacements


def test_a_shorter_series_last_patch_repeats_its_last_value_not_the_batch_padding():
    tok = SeriesPatchTokenizer(channels=1, length=36, patch_len=6)
    series = torch.zeros(2, 1, 36)
    series[0, 0] = torch.arange(36.0)
    series[1, 0, :27] = torch.arange(1.0, 28.0)  # 27 steps, zero-padded to the batch's 36 by the collate
    tokens = tok({"series": series, "length": torch.tensor([36, 27])}, frozenset({"displacements"}))
    assert tokens.padding_mask[1].tolist() == [False] * 5 + [True]  # the patch from step 30 is padding
    assert tokens.tokens[1, 4].tolist() == [25.0, 26.0, 27.0, 27.0, 27.0, 27.0]  # completed, not [.., 0, 0, 0]
    assert tokens.provided["displacements"][1, 4].tolist() == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
