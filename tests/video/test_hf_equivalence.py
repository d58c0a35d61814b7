"""Our VideoMAE computes what HuggingFace transformers' VideoMAEForPreTraining computes, given the same weights,
clips and mask (transformers is a test-only dependency)."""

import pytest
import torch

import anymae
from anymae_video import VideoTubeletTokenizer

transformers = pytest.importorskip("transformers")

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def build_pair(norm_pix: bool, frames=4, size=32, patch=8, tubelet=2):
    torch.manual_seed(0)
    config = transformers.VideoMAEConfig(
        image_size=size,
        patch_size=patch,
        num_channels=3,
        num_frames=frames,
        tubelet_size=tubelet,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=256,
        decoder_hidden_size=32,
        decoder_num_hidden_layers=2,
        decoder_num_attention_heads=4,
        decoder_intermediate_size=128,
        layer_norm_eps=1e-6,  # VideoMAE's value (transformers' default is 1e-12)
        qkv_bias=True,
        use_mean_pooling=False,  # pretraining: the encoder ends with its LayerNorm
        norm_pix_loss=norm_pix,
    )
    hf = transformers.VideoMAEForPreTraining(config).eval()
    ours = anymae.MaskedAutoencoder(
        tokenizer=VideoTubeletTokenizer(num_frames=frames, image_size=size, tubelet_size=tubelet, patch_size=patch),
        masker=anymae.TubeMasker(mask_ratio=0.9),
        encoder=anymae.ViTEncoder(
            embed_dim=64, depth=2, num_heads=4, class_token=False, pos_embed=anymae.SinCosPositionEmbedding(axes="flat")
        ),
        decoder=anymae.MAEDecoder(
            embed_dim=32, depth=2, num_heads=4, embed_bias=False, pos_embed=anymae.SinCosPositionEmbedding(axes="flat")
        ),
        target=anymae.PatchTarget(
            normalize="channel" if norm_pix else "none", input_mean=IMAGENET_MEAN, input_std=IMAGENET_STD
        ),
    ).eval()
    copy_weights(ours, hf)
    return ours, hf


@torch.no_grad()
def copy_weights(ours: anymae.MaskedAutoencoder, hf) -> None:
    """Copy every tensor of ours into HF's model, the fixed position tables included."""
    enc, dec = ours.encoder, ours.decoder
    emb = hf.videomae.embeddings
    conv = emb.patch_embeddings.projection
    d, c, t, ph, pw = conv.weight.shape  # our token embedding reads (t, p, p, C)-ordered tubelets
    conv.weight.copy_(enc.token_embed.weight.reshape(d, t, ph, pw, c).permute(0, 4, 1, 2, 3))
    conv.bias.copy_(enc.token_embed.bias)
    emb.position_embeddings = enc.pos_embed.table[None].clone()
    copy_blocks(enc.blocks, hf.videomae.encoder.layer)
    hf.videomae.layernorm.load_state_dict(enc.norm.state_dict())
    hf.encoder_to_decoder.weight.copy_(dec.embed.weight)
    hf.mask_token.copy_(dec.mask_token)
    hf.position_embeddings = dec.pos_embed.table[None].clone()
    copy_blocks(dec.blocks, hf.decoder.decoder_layers)
    hf.decoder.norm.load_state_dict(dec.norm.state_dict())
    hf.decoder.head.load_state_dict(dec.head.state_dict())
    # HF's decoder LayerNorm keeps torch's default eps (1e-5), not the config's: match it for the comparison.
    dec.norm.eps = hf.decoder.norm.eps


def copy_blocks(blocks, layers) -> None:
    for block, layer in zip(blocks, layers, strict=True):
        layer.layernorm_before.load_state_dict(block.norm1.state_dict())
        layer.layernorm_after.load_state_dict(block.norm2.state_dict())
        q, k, v = block.attn.qkv.weight.chunk(3)
        qb, kb, vb = block.attn.qkv.bias.chunk(3)
        kb.zero_()  # VideoMAE has q and v biases only (a key bias never changes attention: softmax is shift-invariant)
        attention = layer.attention.attention
        attention.query.weight.copy_(q)
        attention.query.bias.copy_(qb)
        attention.key.weight.copy_(k)
        attention.value.weight.copy_(v)
        attention.value.bias.copy_(vb)
        layer.attention.output.dense.load_state_dict(block.attn.proj.state_dict())
        layer.intermediate.dense.load_state_dict(block.mlp.fc1.state_dict())
        layer.output.dense.load_state_dict(block.mlp.fc2.state_dict())


@pytest.mark.parametrize("norm_pix", [True, False])
def test_same_loss_and_predictions_as_hf_videomae(norm_pix):
    ours, hf = build_pair(norm_pix)
    clips = torch.randn(3, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))  # [B, C, T, H, W]
    with torch.no_grad():
        mine = ours({"video": clips}, generator=torch.Generator().manual_seed(2))
        bool_masked_pos = mine.mask.mask
        theirs = hf(pixel_values=clips.transpose(1, 2), bool_masked_pos=bool_masked_pos)
    # HF predicts the hidden tubelets in grid order; we in mask.ids_decode order.
    order = torch.argsort(mine.mask.ids_decode, dim=1)
    torch.testing.assert_close(torch.gather(mine.pred, 1, order[..., None].expand_as(mine.pred)), theirs.logits)
    torch.testing.assert_close(mine.loss, theirs.loss, atol=1e-5, rtol=1e-5)
    tubes = bool_masked_pos.view(3, 2, 16)  # 2 time steps of 4 x 4 positions: the same positions hidden in both
    assert torch.equal(tubes[:, 0], tubes[:, 1])


def test_flat_table_is_videomaes():
    from transformers.models.videomae.modeling_videomae import get_sinusoid_encoding_table

    ours, _ = build_pair(norm_pix=True)
    torch.testing.assert_close(ours.encoder.pos_embed.table, get_sinusoid_encoding_table(32, 64)[0])
    torch.testing.assert_close(ours.decoder.pos_embed.table, get_sinusoid_encoding_table(32, 32)[0])
