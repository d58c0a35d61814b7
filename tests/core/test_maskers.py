"""The masker library: exact counts, structure (tubes, blocks, cells, axes, colours), padding, decoder masking."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import anymae
from anymae import (
    BlockMasker,
    DualMasker,
    FilteredNoiseMasker,
    GridLayout,
    LargePatchMasker,
    LayoutSpec,
    NearestBlockMasker,
    PointLayout,
    SpectrogramMasker,
    TokenBatch,
    TubeMasker,
)
from anymae.testing import MaskerContract

from .toys import VideoTokenizer

FAST = settings(max_examples=30, deadline=None)


def grid(shape, batch=3, padding=None):
    return TokenBatch(torch.zeros(batch, math.prod(shape), 1), GridLayout(tuple(shape)), padding)


def draw(masker, tokens, seed=0):
    return masker(tokens, generator=torch.Generator().manual_seed(seed))


def shapes(rank_min=2, rank_max=3, side_min=2, side_max=12):
    return st.integers(rank_min, rank_max).flatmap(lambda r: st.tuples(*[st.integers(side_min, side_max)] * r))


# ------------------------------------------------------------------------------------------------------ contracts
class TestBlockMasker(MaskerContract):
    component_class = BlockMasker
    init_args = {"mask_ratio": 0.4, "min_block": 4}


class TestLargePatchMasker(MaskerContract):
    component_class = LargePatchMasker
    init_args = {"mask_ratio": 0.6, "scale": 2}

    def test_padding_is_never_visible(self):
        pytest.skip("refuses variable-length grids at build time")


class TestTubeMasker(MaskerContract):
    component_class = TubeMasker
    init_args = {"mask_ratio": 0.9}

    def test_padding_is_never_visible(self):
        pytest.skip("refuses variable-length grids at build time")


class TestSpectrogramMasker(MaskerContract):
    component_class = SpectrogramMasker
    init_args = {"mode": "time_frequency"}

    def make_tokens(self, kind, batch_size, device, padded=False):
        padding = None
        if padded:  # shorter recordings: whole time steps of padding at the end
            steps = torch.tensor([32, 20, 24, 32][:batch_size], device=device)
            padding = (torch.arange(32, device=device)[None, :, None] >= steps[:, None, None]).expand(-1, -1, 8)
            padding = padding.flatten(1)
        return TokenBatch(torch.zeros(batch_size, 256, 2, device=device), GridLayout((32, 8)), padding)


class TestFilteredNoiseMasker(MaskerContract):
    component_class = FilteredNoiseMasker
    init_args = {"color": "green", "bank_size": 8}


class TestDualMasker(MaskerContract):
    component_class = DualMasker
    init_args = {"masker": TubeMasker(mask_ratio=0.75), "decoder_ratio": 0.5}

    def test_padding_is_never_visible(self):
        pytest.skip("its tube masker refuses variable-length grids")


class TestNearestBlockMasker(MaskerContract):
    component_class = NearestBlockMasker
    init_args = {"mask_ratio": 0.6}


# ------------------------------------------------------------------------------------------------- exact counts
@FAST
@given(shape=shapes(), ratio=st.floats(0.1, 0.9), seed=st.integers(0, 10_000))
def test_every_grid_masker_keeps_its_exact_count(shape, ratio, seed):
    n = math.prod(shape)
    for masker, visible in (
        (anymae.RandomMasker(mask_ratio=ratio), int(n * (1 - ratio))),
        (BlockMasker(mask_ratio=ratio, min_block=2), int(n * (1 - ratio))),
        (FilteredNoiseMasker(mask_ratio=ratio, bank_size=4), int(n * (1 - ratio))),
        (NearestBlockMasker(mask_ratio=ratio), n - int(ratio * n)),
    ):
        if not 0 < visible < n:
            continue
        spec = draw(masker, grid(shape), seed)
        assert (spec.mask.sum(dim=1) == n - visible).all(), type(masker).__name__


def test_block_masker_takes_the_count_a_paper_states():
    """BEiT hides 75 of 196 patches, MaskFeat 78: as counts, exactly; a ratio of 0.4 would hide 79."""
    for count in (75, 78):
        spec = draw(BlockMasker(num_masked=count), grid((14, 14)), 0)
        assert (spec.mask.sum(dim=1) == count).all()
    assert (draw(BlockMasker(), grid((14, 14)), 0).mask.sum(dim=1) == 79).all()  # the default ratio, 0.4
    with pytest.raises(anymae.ConfigError, match="mask_ratio or num_masked, not both"):
        BlockMasker(mask_ratio=0.4, num_masked=75)
    with pytest.raises(anymae.ConfigError, match=r"num_masked \(64\) must be less than a sample's 64 tokens"):
        draw(BlockMasker(num_masked=64, min_block=2), grid((8, 8)), 0)


@FAST
@given(
    steps=st.integers(2, 8),
    height=st.integers(2, 10),
    width=st.integers(2, 10),
    ratio=st.floats(0.1, 0.95),
    seed=st.integers(0, 10_000),
)
def test_tubes_are_the_same_at_every_time_step(steps, height, width, ratio, seed):
    positions = height * width
    hidden = int(ratio * positions)
    if not 0 < hidden < positions:
        return
    spec = draw(TubeMasker(mask_ratio=ratio), grid((steps, height, width)), seed)
    frames = spec.mask.view(-1, steps, positions)
    assert (frames == frames[:, :1]).all()
    assert (frames[:, 0].sum(dim=1) == hidden).all()  # VideoMAE: int(ratio * H * W) per frame


@FAST
@given(shape=shapes(2, 3, 2, 12), seed=st.integers(0, 10_000))
def test_blocks_are_boxes_and_never_overshoot(shape, seed):
    tokens = grid(shape)
    masker = BlockMasker(mask_ratio=0.5, min_block=4)
    blocks = masker.blocks(tokens, torch.Generator().manual_seed(seed))
    assert (blocks.sum(dim=1) <= math.prod(shape) - masker.num_visible(tokens)).all()
    single = BlockMasker(mask_ratio=0.5, min_block=4, max_rounds=1).blocks(tokens, torch.Generator().manual_seed(seed))
    coords = anymae.grid_coords(shape).float()
    for row in single:  # one accepted block: exactly the box spanned by its corners
        if row.any():
            lo, hi = coords[row].min(dim=0).values, coords[row].max(dim=0).values
            assert row.sum() == (hi - lo + 1).prod()


@FAST
@given(cells=st.tuples(st.integers(2, 6), st.integers(2, 6)), scale=st.integers(1, 4), seed=st.integers(0, 10_000))
def test_large_patches_hide_whole_cells(cells, scale, seed):
    shape = (cells[0] * scale, cells[1] * scale)
    spec = draw(LargePatchMasker(mask_ratio=0.6, scale=scale), grid(shape), seed)
    per_cell = spec.mask.view(-1, cells[0], scale, cells[1], scale).float().mean(dim=(2, 4))
    assert ((per_cell == 0) | (per_cell == 1)).all()
    assert (per_cell.sum(dim=(1, 2)) == math.ceil(cells[0] * cells[1] * 0.6)).all()  # SimMIM's count


@FAST
@given(
    steps=st.integers(4, 40),
    bands=st.integers(2, 16),
    mode=st.sampled_from(["time", "frequency", "time_frequency"]),
    time_axis=st.sampled_from([0, 1]),
    seed=st.integers(0, 10_000),
)
def test_spectrogram_masks_follow_the_axes(steps, bands, mode, time_axis, seed):
    shape = (steps, bands) if time_axis == 0 else (bands, steps)
    masker = SpectrogramMasker(mode=mode, time_ratio=0.5, frequency_ratio=0.5, time_axis=time_axis)
    spec = draw(masker, grid(shape), seed)
    visible = (~spec.mask).view(-1, *shape)
    if time_axis == 1:
        visible = visible.transpose(1, 2)  # [B, time, frequency]
    kept_steps, kept_bands = visible.any(dim=2), visible.any(dim=1)
    # A token is visible exactly when its time step and its band are both kept: a product set.
    assert torch.equal(visible, kept_steps[:, :, None] & kept_bands[:, None, :])
    if mode == "time":
        assert kept_bands.all()
    if mode == "frequency":
        assert kept_steps.all()


def test_spectrogram_padding_is_whole_time_steps_and_never_visible():
    padding = torch.zeros(2, 40, 4, dtype=torch.bool)
    padding[1, 25:] = True
    spec = draw(SpectrogramMasker(mode="time", time_ratio=0.6), grid((40, 4), 2, padding.flatten(1)))
    assert spec.num_visible == int(25 * 0.4) * 4
    assert not torch.gather(padding.flatten(1), 1, spec.ids_keep).any()


def test_nearest_block_on_points_hides_the_nearest():
    coords = torch.rand(2, 64, 3)
    tokens = TokenBatch(torch.zeros(2, 64, 4), PointLayout(coords))
    spec = draw(NearestBlockMasker(mask_ratio=0.6), tokens)
    assert spec.num_visible == 64 - 38  # Point-MAE: int(0.6 * 64) hidden
    for b in range(2):  # the hidden set is a ball: every hidden point is nearer its centre than any visible one
        hidden, visible = coords[b][spec.mask[b]], coords[b][~spec.mask[b]]
        centre_candidates = hidden
        radius = torch.cdist(centre_candidates, hidden).max(dim=1).values
        outside = torch.cdist(centre_candidates, visible).min(dim=1).values
        assert bool((radius <= outside).any())


# ------------------------------------------------------------------------------------------------------ colours
def radial_power(masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean power spectrum of ±1 masks [S, H, W] and the radial frequency (cycles per token) of each bin."""
    signal = masks.float() * 2 - 1
    signal = signal - signal.mean(dim=(1, 2), keepdim=True)
    power = torch.fft.fft2(signal).abs().pow(2).mean(dim=0)
    fy, fx = torch.meshgrid(torch.fft.fftfreq(masks.shape[1]), torch.fft.fftfreq(masks.shape[2]), indexing="ij")
    return power, (fx**2 + fy**2).sqrt()


def band_share(color: str, low: float, high: float) -> float:
    masker = FilteredNoiseMasker(color=color, mask_ratio=0.75)
    spec = draw(masker, grid((28, 28), batch=256))
    power, radius = radial_power(spec.mask.view(-1, 28, 28))
    band = (radius >= low) & (radius < high)
    return (power[band].sum() / power.sum()).item()


def test_colours_have_the_spectra_the_paper_describes():
    """Masks thresholded from coloured noise keep its colour: most of red's power at low spatial frequency, blue's at
    high, green's in the middle band, and purple's (band-stop) away from it. (Measured: low-band share red 0.49,
    white 0.05; high-band share blue 0.47, white 0.37, red 0.06; mid-band share green 0.45, white 0.23, purple 0.17.)
    """
    colors = ("red", "green", "white", "blue", "purple")
    low = {c: band_share(c, 0.0, 0.12) for c in colors}
    mid = {c: band_share(c, 0.12, 0.3) for c in colors}
    high = {c: band_share(c, 0.45, 1.0) for c in colors}
    assert low["red"] > 5 * low["white"] and low["red"] > 5 * low["green"]  # red: low-pass
    assert high["blue"] > 1.15 * high["white"] > 3 * high["red"]  # blue: high-pass
    assert mid["green"] > 1.5 * mid["white"] > 1.5 * mid["purple"]  # green: band-pass; purple: band-stop
    assert low["green"] < 0.2 * low["red"] and high["green"] < 0.8 * high["white"]


# ------------------------------------------------------------------------------------------------ decoder masking
def test_running_cell_is_videomae_v2s_pattern():
    masker = DualMasker(masker=TubeMasker(mask_ratio=0.9), decoder_ratio=0.5)
    decoded = masker.decoded(grid((8, 4, 4), batch=1), torch.Generator().manual_seed(0)).view(8, 4, 4)
    dropped = ~decoded[:, :2, :2].reshape(8, 4)  # the first 2 x 2 cell, row-major, at each time step
    assert (dropped.sum(dim=1) == 2).all()
    for t in range(7):  # the queue shifts by one position per time step
        assert torch.equal(dropped[t + 1], dropped[t].roll(-1))
    assert torch.equal(decoded[:, :2, :2].repeat(1, 2, 2), decoded)  # tiled over the grid


def test_decoder_masking_loss_covers_only_the_decoded_hidden_tokens():
    torch.manual_seed(0)
    model = anymae.MaskedAutoencoder(
        tokenizer=VideoTokenizer(frames=8, size=16, tubelet=2, patch=4),
        masker=DualMasker(masker=TubeMasker(mask_ratio=0.75), decoder_ratio=0.5),
        encoder=anymae.ViTEncoder(embed_dim=24, depth=1, num_heads=2),
        decoder=anymae.MAEDecoder(embed_dim=12, depth=1, num_heads=2),
        target=anymae.PatchTarget(normalize="none"),
    )
    video = torch.randn(2, 1, 8, 16, 16)
    out = model({"video": video}, generator=torch.Generator().manual_seed(0))
    spec = out.mask
    n = out.tokens.num_tokens  # 4 x 4 x 4 = 64
    assert spec.ids_decode.shape == (2, n // 2)  # the decoder predicts half the grid, not the 48 hidden tokens
    in_loss = torch.zeros(2, n, dtype=torch.bool).scatter(1, spec.ids_decode, spec.decode_valid)
    assert torch.equal(in_loss, spec.mask & torch.zeros(2, n, dtype=torch.bool).scatter(1, spec.ids_decode, True))
    assert in_loss.sum() < spec.mask.sum()

    def loss_with(tokens):
        with torch.no_grad():
            target = model.target({}, out.tokens.with_tokens(tokens), spec)
            return anymae.masked_mean(model.target.token_loss(out.pred, target, spec), spec.decode_valid)

    base = loss_with(out.tokens.tokens)
    outside = out.tokens.tokens.clone()
    outside[~in_loss] += 100.0  # visible tokens and hidden tokens the decoder does not predict
    inside = out.tokens.tokens.clone()
    inside[in_loss] += 100.0
    assert torch.equal(loss_with(outside), base) and loss_with(inside) > base + 100


def test_decoder_masking_zero_ratio_is_plain_mae():
    tokens = grid((4, 4, 4))
    plain = draw(TubeMasker(mask_ratio=0.75), tokens)
    dual = draw(DualMasker(masker=TubeMasker(mask_ratio=0.75), decoder_ratio=0.0), tokens)
    assert torch.equal(plain.ids_decode, dual.ids_decode) and dual.decode_valid is None


# ------------------------------------------------------------------------------------------------ build-time checks
@pytest.mark.parametrize(
    ("masker", "layout", "message"),
    [
        (TubeMasker(), LayoutSpec("grid", 1, (16,)), "needs a grid of rank 2, 3"),
        (TubeMasker(), LayoutSpec("grid", 3, (4, 4, 4), variable_length=True), "variable-length"),
        (LargePatchMasker(scale=4), LayoutSpec("grid", 2, (14, 14)), r"scale \(4, 4\) does not divide"),
        (SpectrogramMasker(), LayoutSpec("points", 3), "cannot mask a points"),
        (DualMasker(masker=anymae.RandomMasker()), LayoutSpec("grid", 2, (7, 8)), "even grid sizes"),
    ],
)
def test_maskers_refuse_layouts_they_cannot_serve(masker, layout, message):
    with pytest.raises(anymae.ConfigError, match=message):
        masker.check_layout(layout)


def test_running_cell_ratio_must_fit_the_cell():
    with pytest.raises(anymae.ConfigError, match=r"allowed: 0\.25, 0\.5, 0\.75"):
        DualMasker(masker=TubeMasker(), decoder_ratio=0.3)
