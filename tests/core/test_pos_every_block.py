"""Point-MAE's transformers add the position embedding to every block's input (``x = block(x + pos)``); the encoder
and decoder option does the same, and off it changes nothing."""

import torch

import anymae
from anymae.testing import build_context

from .toys import SeriesTokenizer, series_model, sinusoids


def manual_encoder(encoder, tokens, ids_keep):
    x = encoder.token_embed(anymae.gather_tokens(tokens.tokens, ids_keep))
    pos = encoder.pos_embed(tokens, ids_keep).expand(x.shape[0], -1, -1)
    x = torch.cat([encoder.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
    pos = torch.cat([torch.zeros_like(pos[:, :1]), pos], dim=1)
    for block in encoder.blocks:
        x = block(x + pos)
    return encoder.norm(x)


def test_encoder_adds_positions_before_every_block():
    torch.manual_seed(0)
    encoder = anymae.ViTEncoder(embed_dim=16, depth=3, num_heads=2, pos_every_block=True)
    encoder.build(build_context(SeriesTokenizer().spec))
    encoder.eval()
    tokens = SeriesTokenizer()({"series": sinusoids(2, 2, 32)})
    ids_keep = torch.tensor([[0, 3, 5], [1, 2, 7]])
    mask = anymae.MaskSpec.from_mask(torch.ones(2, 8, dtype=torch.bool).scatter(1, ids_keep, False))
    latent = encoder(tokens, mask).latent
    torch.testing.assert_close(latent, manual_encoder(encoder, tokens, ids_keep))
    layers = encoder(tokens, mask, layers=True).layers
    assert len(layers) == 4 and torch.equal(
        layers[0][:, 1:], encoder.token_embed(anymae.gather_tokens(tokens.tokens, ids_keep))
    )
    once = anymae.ViTEncoder(embed_dim=16, depth=3, num_heads=2)
    once.build(build_context(SeriesTokenizer().spec))
    once.load_state_dict(encoder.state_dict())
    assert not torch.allclose(once.eval()(tokens, mask).latent, latent, atol=1e-4)


def test_decoder_adds_positions_before_every_block():
    torch.manual_seed(0)
    decoder = anymae.MAEDecoder(embed_dim=16, depth=2, num_heads=2, pos_every_block=True)
    decoder.build(build_context(SeriesTokenizer().spec, 5, embed_dim=12))
    decoder.eval()
    tokens = SeriesTokenizer()({"series": sinusoids(2, 2, 32)})
    mask = anymae.MaskSpec.from_noise(torch.rand(2, 8, generator=torch.Generator().manual_seed(0)), 3)
    latent = torch.randn(2, 1 + 3, 12)
    x = decoder.stem.embed(latent)
    ids = torch.cat([mask.ids_keep, mask.ids_decode], 1)
    body = torch.cat([x[:, 1:], decoder.stem.mask_token.expand(2, mask.ids_decode.shape[1], -1)], 1)
    pos = torch.cat([torch.zeros(2, 1, 16), decoder.stem.pos_embed(tokens, ids).expand(2, -1, -1)], 1)
    x = torch.cat([x[:, :1], body], 1)
    for block in decoder.blocks:
        x = block(x + pos)
    expected = decoder.stem.head(decoder.stem.norm(x[:, 1 + 3 :]))
    torch.testing.assert_close(decoder(anymae.EncoderOutput(latent, mask.ids_keep, 1), tokens, mask), expected)


def test_a_model_with_positions_every_block_trains_a_step():
    model = series_model(
        encoder=anymae.ViTEncoder(embed_dim=16, depth=2, num_heads=2, pos_every_block=True),
        decoder=anymae.MAEDecoder(embed_dim=8, depth=1, num_heads=2, pos_every_block=True),
    )
    out = model({"series": sinusoids(4, 2, 32)}, generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    assert torch.isfinite(out.loss) and model.encoder.pos_embed is not None
