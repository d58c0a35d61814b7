"""SimMIM's encoder with mask tokens and one-layer head, decoders on every token's latents, CrossMAE's feature mixing,
and targets that combine (each part's loss logged on its own)."""

import pytest
import torch

import anymae
from anymae.testing import DecoderContract, build_context, config_roundtrip

from .toys import SeriesData, SeriesTokenizer, quiet_trainer, series_model, sinusoids


def simmim(decoder=None, target=None, seed=0):
    torch.manual_seed(seed)
    return series_model(
        masker=anymae.RandomMasker(mask_ratio=0.6),
        encoder=anymae.ViTEncoder(embed_dim=24, depth=2, num_heads=2, mask_token=True),
        decoder=decoder or anymae.LinearDecoder(),
        target=target or anymae.PatchTarget(normalize="none", loss="l1"),
    )


def test_encoder_with_mask_tokens_never_sees_hidden_values():
    model = simmim().eval()
    batch = {"series": sinusoids(2, 2, 32)}
    noise = torch.rand(2, 8, generator=torch.Generator().manual_seed(1))
    out = model(batch, noise=noise)
    assert out.latent.shape == (2, 1 + 8, 24)  # every token, the class token first
    spoiled = batch["series"].clone().view(2, 2, 8, 4)
    hidden = out.mask.mask  # [B, 8]
    spoiled = torch.where(hidden[:, None, :, None], torch.randn_like(spoiled) * 100, spoiled).view(2, 2, 32)
    again = model({"series": spoiled}, noise=noise)
    torch.testing.assert_close(again.pred, out.pred)  # predictions come from visible values and positions only
    assert not torch.allclose(again.target, out.target)


def test_hidden_tokens_are_the_mask_token_plus_their_position():
    encoder = anymae.ViTEncoder(embed_dim=8, depth=1, num_heads=2, mask_token=True)
    encoder.build(build_context(anymae.TokenizerSpec("Grid", 8, anymae.LayoutSpec("grid", 1, (8,)))))
    tokens = anymae.TokenBatch(torch.randn(1, 8, 8), anymae.GridLayout((8,)))
    mask = torch.zeros(1, 8, dtype=torch.bool)
    mask[0, 3] = True
    x = encoder.embed(tokens, None, mask)[0, 1:]  # after the class token
    ids = torch.arange(8)[None]
    torch.testing.assert_close(x[3], encoder.mask_token[0, 0] + encoder.pos_embed(tokens, ids)[0, 3])
    torch.testing.assert_close(x[2], encoder.token_embed(tokens.tokens)[0, 2] + encoder.pos_embed(tokens, ids)[0, 2])


def test_simmim_head_is_one_linear_layer_on_each_hidden_tokens_latent():
    model = simmim().eval()
    out = model({"series": sinusoids(2, 2, 32)}, generator=torch.Generator().manual_seed(0))
    head = model.decoder.head
    assert [type(m) for m in model.decoder.modules()] == [anymae.LinearDecoder, torch.nn.Linear]
    expected = head(anymae.gather_tokens(out.latent[:, 1:], out.mask.ids_decode))
    torch.testing.assert_close(out.pred, expected)
    l1 = (out.pred - out.target).abs().mean()  # SimMIM's loss: mean absolute error over hidden values
    torch.testing.assert_close(out.loss, l1)


def test_simmim_trains():
    model = simmim()
    data = SeriesData()
    trainer = quiet_trainer(max_epochs=4, num_sanity_val_steps=0)
    trainer.validate(model, data, verbose=False)
    before = float(trainer.callback_metrics["val/loss"])
    trainer.fit(model, data)
    after = float(trainer.callback_metrics["val/loss"])
    assert 0 < after < 0.8 * before, (before, after)


def test_decoders_check_which_latents_they_read():
    with pytest.raises(anymae.ConfigError, match="LinearDecoder cannot decode from ViTEncoder's latents"):
        anymae.MaskedAutoencoder(
            tokenizer=SeriesTokenizer(),
            masker=anymae.RandomMasker(),
            encoder=anymae.ViTEncoder(embed_dim=24, depth=1, num_heads=2),
            decoder=anymae.LinearDecoder(),
            target=anymae.PatchTarget(),
        )
    model = simmim(decoder=anymae.WindowDecoder(window=2, embed_dim=8, depth=1, num_heads=2))  # reads either
    assert torch.isfinite(model({"series": sinusoids(2, 2, 32)}).loss)


def test_mae_decoder_on_every_tokens_latents_is_the_full_token_control():
    """An encoder with mask tokens under MAE's decoder: the decoder adds its positions to every latent and reads the
    hidden ones (benchmarks/bench.py's full-token control)."""
    model = simmim(decoder=anymae.MAEDecoder(embed_dim=12, depth=1, num_heads=2)).eval()
    batch = {"series": sinusoids(2, 2, 32)}
    out = model(batch, generator=torch.Generator().manual_seed(0))
    dec = model.decoder
    tokens = out.tokens
    ids = torch.arange(8)[None].expand(2, -1)
    x = dec.stem.embed(out.latent)
    x = torch.cat([x[:, :1], x[:, 1:] + dec.stem.pos_embed(tokens, ids)], dim=1)
    for block in dec.blocks:
        x = block(x)
    expected = dec.stem.head(dec.stem.norm(anymae.gather_tokens(x[:, 1:], out.mask.ids_decode)))
    torch.testing.assert_close(out.pred, expected)


@pytest.mark.parametrize(
    "decoder",
    [
        lambda: anymae.LinearDecoder(),
        lambda: anymae.MAEDecoder(embed_dim=12, depth=1, num_heads=2),
        lambda: anymae.CrossMAEDecoder(embed_dim=12, depth=1, num_heads=2),
        lambda: anymae.WindowDecoder(window=2, embed_dim=8, depth=1, num_heads=2),
    ],
    ids=["linear", "mae", "crossmae", "window"],
)
def test_every_trainable_parameter_takes_part_under_an_encoder_with_mask_tokens(decoder):
    """DDP refuses trainable parameters left out of the loss: a decoder's own mask token, unused when the encoder
    already put one at every hidden token, is frozen."""
    model = simmim(decoder=decoder())
    model({"series": sinusoids(4, 2, 32)}, generator=torch.Generator().manual_seed(0)).loss.backward()
    unused = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not unused, unused


def test_crossmae_decoder_reads_every_tokens_latents_too():
    model = simmim(decoder=anymae.CrossMAEDecoder(embed_dim=12, depth=1, num_heads=2))
    out = model({"series": sinusoids(2, 2, 32)}, generator=torch.Generator().manual_seed(0))
    assert out.pred.shape == (2, out.mask.ids_decode.shape[1], 8) and torch.isfinite(out.loss)


class TestLinearDecoder(DecoderContract):
    component_class = anymae.LinearDecoder
    init_args = {}

    def _setup(self, device):
        decoder, tokens, mask, encoded = super()._setup(device)
        # SimMIM's head reads every token's latent: give it one per token (the contract's latent covers the visible)
        b, _, d = encoded.latent.shape
        every = torch.randn(b, 1 + tokens.num_tokens, d, device=device)
        return decoder, tokens, mask, anymae.EncoderOutput(every, tokens.all_ids(), 1, every_token=True)


def test_encoder_mask_token_roundtrips_and_defaults_off():
    assert anymae.ViTEncoder().sees_all_tokens is False
    rebuilt = config_roundtrip(anymae.ViTEncoder(embed_dim=8, depth=1, num_heads=2, mask_token=True), anymae.Encoder)
    assert rebuilt.sees_all_tokens


# ------------------------------------------------------------------------------------------- CrossMAE's weight_fm
def crossmae_model(weight_fm, seed=0):
    torch.manual_seed(seed)
    return series_model(
        masker=anymae.RandomMasker(mask_ratio=0.75),
        encoder=anymae.ViTEncoder(embed_dim=24, depth=3, num_heads=2),
        decoder=anymae.CrossMAEDecoder(embed_dim=12, depth=2, num_heads=2, weight_fm=weight_fm),
    )


def test_weight_fm_gives_each_decoder_block_its_own_mix_of_encoder_layers():
    model = crossmae_model(weight_fm=True)
    decoder = model.decoder
    assert decoder.feature_mix.weight.shape == (2, 3 + 1)  # decoder blocks x (input + encoder blocks)
    assert len(decoder.feature_norms) == 2
    batch = {"series": sinusoids(2, 2, 32)}
    noise = torch.rand(2, 8, generator=torch.Generator().manual_seed(0))
    model.eval()
    with torch.no_grad():
        before = model(batch, noise=noise).pred
        decoder.feature_mix.weight[:, 0] += 1.0  # more of the encoder's input in every block's keys
        after = model(batch, noise=noise).pred
    assert not torch.allclose(before, after, atol=1e-4)


def test_weight_fm_on_the_last_layer_alone_is_the_plain_decoder():
    """Mixing weights that pick the last layer (which enters after the encoder's final norm) give the decoder without
    feature mixing (same weights otherwise; the per-block norms at their initial identity re-normalise a normalised
    vector)."""
    mixed, plain = crossmae_model(weight_fm=True), crossmae_model(weight_fm=False)
    plain.load_state_dict(mixed.state_dict(), strict=False)
    with torch.no_grad():
        mixed.decoder.feature_mix.weight.zero_()[:, -1] = 1.0
    batch = {"series": sinusoids(2, 2, 32)}
    noise = torch.rand(2, 8, generator=torch.Generator().manual_seed(0))
    mixed.eval(), plain.eval()
    torch.testing.assert_close(mixed(batch, noise=noise).pred, plain(batch, noise=noise).pred, atol=1e-5, rtol=1e-4)


def test_weight_fm_trains_every_parameter():
    """Every parameter takes part in the loss (DDP refuses unused ones): the encoder's final norm too."""
    model = crossmae_model(weight_fm=True)
    model({"series": sinusoids(4, 2, 32)}, generator=torch.Generator().manual_seed(0)).loss.backward()
    unused = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not unused, unused


def test_weight_fm_trains_and_its_mixing_weights_learn():
    model = crossmae_model(weight_fm=True)
    start = model.decoder.feature_mix.weight.detach().clone()
    trainer = quiet_trainer(max_epochs=2, limit_train_batches=4, limit_val_batches=1)
    trainer.fit(model, SeriesData(batch_size=8))
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert not torch.allclose(model.decoder.feature_mix.weight, start)


# ------------------------------------------------------------------------------------------------- WeightedTarget
def test_weighted_target_sums_weighted_parts_and_reports_each():
    target = anymae.WeightedTarget(
        {"norm": anymae.PatchTarget(normalize="patch"), "raw": anymae.PatchTarget(normalize="none", loss="l1")},
        weights={"raw": 0.5},
    )
    model = anymae.testing.tiny_model(SeriesTokenizer(), target=target)
    assert model.decoder.out_dim == 16  # the two targets' widths side by side
    out = model({"series": sinusoids(2, 2, 32)}, generator=torch.Generator().manual_seed(0))
    norm, raw = out.pred.split(8, dim=-1)
    t_norm, t_raw = out.target.split(8, dim=-1)
    expected_norm = (norm - t_norm).pow(2).mean()
    expected_raw = (raw - t_raw).abs().mean()
    torch.testing.assert_close(out.terms["norm"], expected_norm)
    torch.testing.assert_close(out.terms["raw"], expected_raw)
    torch.testing.assert_close(out.loss, expected_norm + 0.5 * expected_raw)
    token = target.token_loss(out.pred, out.target, out.mask)
    torch.testing.assert_close(token.mean(), out.loss)


def test_weighted_target_parts_are_logged_and_figures_use_the_pixel_part():
    target = anymae.WeightedTarget({"a": anymae.PatchTarget(), "b": anymae.PatchTarget(normalize="none")})
    model = anymae.testing.tiny_model(SeriesTokenizer(), target=target)
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1)
    trainer.fit(model, SeriesData(batch_size=4))
    logged = set(trainer.callback_metrics)
    assert {"train/loss_a", "train/loss_b", "val/loss_a", "val/loss_b"} <= logged
    shown = model.eval().reconstruct({"series": sinusoids(2, 2, 32)}, generator=torch.Generator().manual_seed(0))
    assert shown["reconstruction"].shape == (2, 2, 32)


def test_weighted_target_config_errors_name_the_problem():
    with pytest.raises(anymae.ConfigError, match=r"weights names \['c'\]"):
        anymae.WeightedTarget({"a": anymae.PatchTarget()}, weights={"c": 1.0})
    with pytest.raises(anymae.ConfigError, match=r"weights\.a"):
        anymae.WeightedTarget({"a": anymae.PatchTarget()}, weights={"a": -1.0})
    rebuilt = config_roundtrip(
        anymae.WeightedTarget({"a": anymae.PatchTarget(), "b": anymae.PatchTarget(loss="l1")}, {"b": 2.0}),
        anymae.Target,
    )
    assert rebuilt.weights == {"a": 1.0, "b": 2.0} and rebuilt.parts["b"].loss_kind == "l1"
