"""The local-window decoder: windowed attention is full attention under the equivalent block mask, shifted windows
carry information across window borders, and it serves grids of rank 1 to 3."""

import pytest
import torch

import anymae
from anymae.model.types import grid_coords
from anymae.testing import build_context

from .toys import VideoTokenizer, series_model, sinusoids


def grid_context(layout, encoder_dim=8, target_dim=4):
    return build_context(anymae.TokenizerSpec("Grid", 1, layout), target_dim, embed_dim=encoder_dim)


def run_decoder(decoder, latent, tokens, mask):
    """The decoder on the latents of ``mask``'s visible tokens, a class token first."""
    return decoder(anymae.EncoderOutput(latent, mask.ids_keep, 1), tokens, mask)


def decoder_and_inputs(shape, window, shift=True, depth=2, hidden=0.75, seed=0):
    torch.manual_seed(seed)
    layout = anymae.LayoutSpec("grid", len(shape), tuple(shape))
    decoder = anymae.WindowDecoder(window=window, shift=shift, embed_dim=24, depth=depth, num_heads=2)
    decoder.build(grid_context(layout, 12, 5))
    decoder.eval()
    n = int(torch.tensor(shape).prod())
    tokens = anymae.TokenBatch(torch.zeros(2, n, 1), anymae.GridLayout(tuple(shape)))
    noise = torch.rand(2, n, generator=torch.Generator().manual_seed(seed))
    mask = anymae.MaskSpec.from_noise(noise, n - int(hidden * n))
    latent = torch.randn(2, 1 + mask.num_visible, 12)  # a class token first: the local decoder drops it
    return decoder, tokens, mask, latent


def reference(decoder, tokens, mask, latent):
    """The same blocks over the whole grid in row-major order, each with a [N, N] mask allowing attention between
    cells of the same (shifted) window only: what the windowed decoder must equal."""
    shape = tokens.layout.shape
    x = decoder.stem.embed(latent[:, 1:])
    b, n, d = x.shape[0], tokens.num_tokens, x.shape[-1]
    grid = torch.zeros(b, n, d)
    grid = grid.scatter(
        1, mask.ids_keep[..., None].expand(-1, -1, d), x + decoder.stem.pos_embed(tokens, mask.ids_keep)
    )
    decoded = decoder.stem.mask_token + decoder.stem.pos_embed(tokens, mask.ids_decode)
    grid = grid.scatter(1, mask.ids_decode[..., None].expand(-1, -1, d), decoded)
    valid = torch.zeros(b, n, dtype=torch.bool).scatter(1, mask.ids_keep, True).scatter(1, mask.ids_decode, True)
    coords = grid_coords(shape)
    window = torch.tensor(decoder.window)
    for i, block in enumerate(decoder.blocks):
        ids = (coords + torch.tensor(decoder.offsets(i, shape))) // window  # [N, rank]: each cell's window
        same = (ids[:, None] == ids[None]).all(-1)  # [N, N]
        allowed = same[None] & valid[:, None, :]
        allowed = allowed | ~allowed.any(-1, keepdim=True)
        grid = block(grid, attn_mask=allowed[:, None])
        grid = torch.where(valid[..., None], grid, 0.0)
    out = torch.gather(grid, 1, mask.ids_decode[..., None].expand(-1, -1, d))
    return decoder.stem.head(decoder.stem.norm(out))


@pytest.mark.parametrize(
    ("shape", "window"), [((8, 8), 4), ((16, 6), (4, 2)), ((10,), 4), ((4, 6, 6), (2, 3, 3)), ((5, 7), 4)]
)
def test_windowed_attention_is_full_attention_under_the_block_mask(shape, window):
    decoder, tokens, mask, latent = decoder_and_inputs(shape, window, depth=3)
    with torch.no_grad():
        torch.testing.assert_close(run_decoder(decoder, latent, tokens, mask), reference(decoder, tokens, mask, latent))


def test_shifts_are_swins():
    """A shift of 1 on 4-cell windows puts the first border after cell 0 (Swin's roll by -1), not after cell 2."""
    decoder = decoder_and_inputs((8, 8), 4, shift=(1, 1))[0]
    coords = grid_coords((8, 8))
    ids = (coords + torch.tensor(decoder.offsets(1, (8, 8)))) // 4
    assert ids[0].tolist() == [0, 0] and ids[1].tolist() == [0, 1] and ids[4].tolist() == [0, 1]
    assert ids[5].tolist() == [0, 2]


def test_shifted_windows_reach_across_window_borders():
    """Cells (0, 3) and (0, 4) of an 8 x 8 grid lie in different 4 x 4 windows: without shifting no depth connects
    them; with it, two blocks do."""
    for shift, connected in ((False, False), (True, True)):
        decoder, tokens, mask, latent = decoder_and_inputs((8, 8), 4, shift=shift, hidden=0.5)
        keep, decode = mask.ids_keep[0].tolist(), mask.ids_decode[0].tolist()
        pairs = [(a, b) for a in keep for b in decode if a // 8 == b // 8 and a % 8 == 3 and b % 8 == 4]
        pairs += [(a, b) for a in keep for b in decode if a // 8 == b // 8 and a % 8 == 4 and b % 8 == 3]
        assert pairs, "the mask left no pair across the border"
        a, b = pairs[0]
        latent.requires_grad_(True)
        out = run_decoder(decoder, latent, tokens, mask)
        out[0, decode.index(b)].sum().backward()
        reached = bool(latent.grad[0, 1 + keep.index(a)].abs().sum() > 0)
        assert reached == connected


def test_window_must_fit_the_grid_rank():
    layout = anymae.LayoutSpec("grid", 2, (8, 8))
    with pytest.raises(anymae.ConfigError, match="3 sizes for a rank-2 grid"):
        anymae.WindowDecoder(window=(2, 2, 2), embed_dim=16, num_heads=2).build(grid_context(layout))
    with pytest.raises(anymae.ConfigError, match="rank 1 to 3"):
        anymae.WindowDecoder(embed_dim=16, num_heads=2).build(grid_context(anymae.LayoutSpec("points", 3)))


def test_audio_mae_shifts_along_time_only():
    decoder, tokens, mask, latent = decoder_and_inputs((16, 8), 4, shift=(2, 0), depth=3)
    assert decoder.shifts(1, (16, 8)) == (2, 0) and decoder.shifts(2, (16, 8)) == (0, 0)
    with torch.no_grad():
        torch.testing.assert_close(run_decoder(decoder, latent, tokens, mask), reference(decoder, tokens, mask, latent))


def test_in_a_model_with_padding_and_with_decoder_masking():
    series = series_model(decoder=anymae.WindowDecoder(window=2, embed_dim=16, depth=2, num_heads=2))
    batch = {"series": sinusoids(4), "length": torch.tensor([32, 24, 16, 32])}
    out = series(batch)
    assert torch.isfinite(out.loss) and out.pred.shape[::2] == (4, series.target.dim_per_token)
    video = anymae.MaskedAutoencoder(
        tokenizer=VideoTokenizer(frames=4, size=8, tubelet=2, patch=2),
        masker=anymae.DualMasker(anymae.TubeMasker(mask_ratio=0.75), decoder_ratio=0.5),
        encoder=anymae.ViTEncoder(embed_dim=24, depth=1, num_heads=2),
        decoder=anymae.WindowDecoder(window=(1, 2, 2), embed_dim=24, depth=2, num_heads=2),
        target=anymae.PatchTarget(normalize="none"),
    )
    out = video(video.tokenizer.example_batch(2))
    assert torch.isfinite(out.loss) and out.pred.shape[1] == 16  # half of the 2 x 4 x 4 grid is decoded


def test_the_shared_decoder_arguments_are_forwarded_recorded_and_listed():
    """WindowDecoder declares window and shift; the transformer's arguments come from StemDecoder through **kwargs,
    and every reader of a constructor sees them all: pydantic's checks, the recorded config and the parameter list."""
    from anymae.config import component_config, init_parameters, instantiate_component

    decoder = anymae.WindowDecoder(window=2, embed_dim=32, num_heads=4)
    config = component_config(decoder)
    assert config["init_args"]["window"] == 2 and config["init_args"]["embed_dim"] == 32
    assert config["init_args"]["depth"] == 8  # the parent's default, recorded too
    rebuilt = instantiate_component(config, anymae.Decoder)
    assert isinstance(rebuilt, anymae.WindowDecoder) and component_config(rebuilt) == config
    names = [p.name for p in init_parameters(anymae.WindowDecoder)]
    assert names[:2] == ["window", "shift"] and {"embed_dim", "depth", "norm_eps"} <= set(names)
    with pytest.raises(anymae.ConfigError, match=r"WindowDecoder\.num_heads: Input should be greater than 0"):
        anymae.WindowDecoder(num_heads=0)


def test_arguments_forwarded_through_two_constructors_are_all_recorded():
    """AeonDataModule forwards **kwargs to the series base, which forwards its own **kwargs to DataModule: the
    recorded config holds every level's arguments, and rebuilds the same module."""
    from anymae.config import component_config, init_parameters

    aeon = pytest.importorskip("anymae_timeseries")
    data = aeon.AeonDataModule(name="GunPoint", window=50, batch_size=5)
    recorded = component_config(data)["init_args"]
    assert recorded["name"] == "GunPoint" and recorded["window"] == 50  # own, and the series base's
    assert recorded["batch_size"] == 5 and recorded["num_workers"] == 0 and recorded["seed"] == 0  # DataModule's
    assert "kwargs" not in recorded
    assert {"name", "window", "batch_size", "seed"} <= {p.name for p in init_parameters(aeon.AeonDataModule)}
    with pytest.raises(anymae.ConfigError, match=r"batch_size: Input should be greater than 0"):
        aeon.AeonDataModule(name="GunPoint", batch_size=0)


def test_decoder_stochastic_depth_rises_over_the_blocks_as_point_maes():
    """Point-MAE's decoder drops paths at rates rising from 0 to 0.1 over its 4 blocks; off by default (MAE), and
    refused for blocks without it (CrossMAE's cross-attention blocks)."""
    from timm.layers import DropPath

    decoder = anymae.MAEDecoder(embed_dim=32, depth=4, num_heads=4, drop_path_rate=0.1)
    rates = [b.drop_path1.drop_prob if isinstance(b.drop_path1, DropPath) else 0.0 for b in decoder.blocks]
    assert rates == pytest.approx([0.0, 0.1 / 3, 0.2 / 3, 0.1])
    assert all(b.drop_path1 is not b.drop_path2 for b in decoder.blocks[1:])
    assert not any(isinstance(b.drop_path1, DropPath) for b in anymae.MAEDecoder(embed_dim=32, num_heads=4).blocks)
    with pytest.raises(anymae.ConfigError, match=r"CrossMAEDecoder\.drop_path_rate: its blocks have no stochastic"):
        anymae.CrossMAEDecoder(embed_dim=32, num_heads=4, drop_path_rate=0.1)
    model = series_model(decoder=anymae.MAEDecoder(embed_dim=32, depth=2, num_heads=4, drop_path_rate=0.5))
    batch = {"series": sinusoids(4)}

    def loss():  # the same mask each time: only dropped paths can change it
        with torch.no_grad():
            return model(batch, generator=torch.Generator().manual_seed(0)).loss

    model.train()
    torch.manual_seed(0)
    assert len({float(loss()) for _ in range(4)}) > 1  # paths dropped at random while training
    model.eval()
    assert float(loss()) == float(loss())  # and none in evaluation
