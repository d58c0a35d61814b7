"""CrossMAE's decoder: hidden tokens only cross-attend to the encoder's tokens, so without self-attention each is
predicted on its own; it trains, passes the decoder contract, and ignores padded keys."""

import pytest
import torch

import anymae
from anymae.testing import DecoderContract, build_context

from .toys import SeriesData, fit_and_compare, series_model, sinusoids


def run_decoder(decoder, latent, tokens, mask):
    """The decoder on the latents of ``mask``'s visible tokens, a class token first."""
    return decoder(anymae.EncoderOutput(latent, mask.ids_keep, 1), tokens, mask)


class TestCrossMAEDecoder(DecoderContract):
    component_class = anymae.CrossMAEDecoder
    init_args = {"embed_dim": 16, "depth": 1, "num_heads": 2}


class TestCrossMAEDecoderWithSelfAttention(DecoderContract):
    component_class = anymae.CrossMAEDecoder
    init_args = {"embed_dim": 16, "depth": 2, "num_heads": 2, "self_attention": True}


def decoder_and_inputs(self_attention, n=24, keep=6, padding=None, seed=0):
    torch.manual_seed(seed)
    decoder = anymae.CrossMAEDecoder(embed_dim=16, depth=2, num_heads=2, self_attention=self_attention)
    spec = anymae.TokenizerSpec("Series", 1, anymae.LayoutSpec("grid", 1, (n,), variable_length=True))
    decoder.build(build_context(spec, 5, embed_dim=12))
    decoder.eval()
    tokens = anymae.TokenBatch(torch.randn(2, n, 3), anymae.GridLayout((n,)), padding)
    noise = torch.rand(2, n, generator=torch.Generator().manual_seed(seed))
    mask = anymae.MaskSpec.from_noise(noise, keep, padding)
    latent = torch.randn(2, 1 + keep, 12)  # a class token first: a key like the visible tokens
    return decoder, tokens, mask, latent


def test_defaults_are_crossmae_vit_b():
    decoder = anymae.CrossMAEDecoder()
    assert (decoder.embed_dim, len(decoder.blocks), decoder.self_attention) == (512, 8, False)
    block = decoder.blocks[0]
    assert block.cross_attn.num_heads == 16 and block.self_attn is None and block.norm1.eps == 1e-6
    assert block.mlp.fc1.out_features == 4 * 512


def test_without_self_attention_each_query_is_predicted_on_its_own():
    decoder, tokens, mask, latent = decoder_and_inputs(self_attention=False)
    subset = mask.with_decode(mask.ids_decode[:, 3:9])
    with torch.no_grad():
        full, part = run_decoder(decoder, latent, tokens, mask), run_decoder(decoder, latent, tokens, subset)
        torch.testing.assert_close(part, full[:, 3:9])
        shuffled = mask.with_decode(mask.ids_decode.flip(1))  # order in, order out
        torch.testing.assert_close(run_decoder(decoder, latent, tokens, shuffled), full.flip(1))


def test_with_self_attention_queries_see_each_other():
    decoder, tokens, mask, latent = decoder_and_inputs(self_attention=True)
    subset = mask.with_decode(mask.ids_decode[:, 3:9])
    with torch.no_grad():
        full, part = run_decoder(decoder, latent, tokens, mask), run_decoder(decoder, latent, tokens, subset)
    assert not torch.allclose(part, full[:, 3:9], atol=1e-4)


def test_predictions_depend_on_the_visible_latents():
    decoder, tokens, mask, latent = decoder_and_inputs(self_attention=False)
    moved = latent.clone()
    moved[:, 2] += 1.0
    with torch.no_grad():
        assert not torch.allclose(run_decoder(decoder, latent, tokens, mask), run_decoder(decoder, moved, tokens, mask))


def test_padded_queries_are_ignored_by_self_attention():
    padding = torch.zeros(2, 24, dtype=torch.bool)
    padding[0, 16:] = True  # the first sample is 16 tokens long
    decoder, tokens, mask, latent = decoder_and_inputs(self_attention=True, padding=padding)
    real = ~torch.gather(padding, 1, mask.ids_decode)
    count = int(real.sum(dim=1).min())
    # the first `count` real decoded tokens of each row, then the same decode set with the padded ones dropped
    order = torch.argsort((~real).to(torch.int8), dim=1, stable=True)[:, :count]
    ids = torch.gather(mask.ids_decode, 1, order)
    with torch.no_grad():
        full = run_decoder(decoder, latent, tokens, mask)
        part = run_decoder(decoder, latent, tokens, mask.with_decode(ids, padding))
    torch.testing.assert_close(part[0], torch.gather(full, 1, order[..., None].expand(-1, -1, 5))[0])


def test_padded_keys_are_ignored_by_cross_attention():
    """Maskers never show the encoder padding, but a visible token marked as padding must still not be a key."""
    decoder, tokens, mask, latent = decoder_and_inputs(self_attention=False)
    padding = torch.zeros(2, 24, dtype=torch.bool).scatter(1, mask.ids_keep[:, :2], True)
    padded = anymae.TokenBatch(tokens.tokens, tokens.layout, padding)
    moved = latent.clone()
    moved[:, 1:3] = torch.randn(2, 2, 12) * 10  # the latents of the two padded visible tokens
    with torch.no_grad():
        same = run_decoder(decoder, latent, padded, mask), run_decoder(decoder, moved, padded, mask)
        torch.testing.assert_close(*same)
        assert not torch.allclose(run_decoder(decoder, latent, tokens, mask), run_decoder(decoder, moved, tokens, mask))


@pytest.mark.parametrize("self_attention", [False, True])
def test_in_a_model_with_padding_and_decoder_masking(self_attention):
    decoder = anymae.CrossMAEDecoder(embed_dim=16, depth=1, num_heads=2, self_attention=self_attention)
    masker = anymae.DualMasker(anymae.RandomMasker(mask_ratio=0.75), decoder_ratio=0.75, strategy="random")
    model = series_model(decoder=decoder, masker=masker)
    out = model({"series": sinusoids(4), "length": torch.tensor([32, 24, 16, 32])})
    assert torch.isfinite(out.loss) and out.pred.shape == (4, 2, model.target.dim_per_token)  # 0.25 of 8 tokens
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in decoder.parameters() if p.grad is not None)


def test_it_trains():
    torch.manual_seed(0)
    model = series_model(decoder=anymae.CrossMAEDecoder(embed_dim=16, depth=1, num_heads=2))
    data = SeriesData()
    before, after, _ = fit_and_compare(model, data, epochs=4)
    assert 0 < after < 0.8 * before, (before, after)
