"""Audio-MAE's published files (facebookresearch/AudioMAE ``pretrained.pth``, ``finetuned.pth``) read by the audio
plugin, and spectrogram encoders exported to timm.

The repository is not on PyPI: the files are built here with its exact key names, shapes and nesting (``{"model":
state_dict}``) from random weights at a tiny size (width 128: 2 heads of 64; 2 blocks; 64 frames x 128 mel bins in
16 x 16 patches, a 4 x 8 grid), and what anymae makes of them is compared with a forward pass written here from the
raw tensors with plain torch ops and timm's ``Block``.
"""

from functools import partial

import pytest
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block
from torch import nn

import anymae
from anymae_audio import AudioMAEReader, SpectrogramPatchTokenizer, TimmAudioViTExporter, create_timm_audio_vit

WIDTH, DEPTH, FRAMES, MELS, PATCH = 128, 2, 64, 128, 16
DECODER_WIDTH, DECODER_DEPTH, DECODER_HEADS = 64, 2, 16
TOLERANCE = 1e-5


def randomised(module: nn.Module, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """``module``'s state dict with every parameter drawn anew: norms' weights around 1, matrices scaled by their
    fan-in (activations stay of order 1, so fp32 rounding stays far below the tolerance), small biases."""
    state = {}
    for name, value in module.state_dict().items():
        noise = torch.randn(value.shape, generator=generator)
        if value.dim() == 2:
            state[name] = noise * 0.5 / value.shape[1] ** 0.5
        elif ".norm" in f".{name}" and name.endswith("weight"):
            state[name] = 1 + 0.1 * noise
        else:
            state[name] = 0.02 * noise
    return state


def vit_block(dim: int, heads: int) -> Block:
    return Block(dim, heads, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6))


def audiomae_state(decoder: str | None = "swin_v2", finetuned: bool = False, stride: int = PATCH, seed: int = 0):
    """An Audio-MAE state dict under its own names: the pretraining model (``decoder``: ``"swin_v2"`` the local
    decoder as shipped, ``"swin_v1"`` a Swin V1 local decoder, ``"vit"`` the global one) or a fine-tuned ViT."""
    g = torch.Generator().manual_seed(seed)
    # Audio-MAE's overlapping patches (stride 10) over 1024 frames x 128 bins: a 101 x 12 grid
    n = (FRAMES // PATCH) * (MELS // PATCH) if stride == PATCH else 101 * 12
    state = {
        "cls_token": torch.randn(1, 1, WIDTH, generator=g) * 0.02,
        "pos_embed": torch.randn(1, n + 1, WIDTH, generator=g) * 0.5,  # its class row too: folded into cls_token
        "patch_embed.proj.weight": torch.randn(WIDTH, 1, PATCH, PATCH, generator=g) * 0.05,
        "patch_embed.proj.bias": torch.randn(WIDTH, generator=g) * 0.05,
    }
    for i in range(DEPTH):
        state |= {f"blocks.{i}.{k}": v for k, v in randomised(vit_block(WIDTH, WIDTH // 64), g).items()}
    norm = "fc_norm" if finetuned else "norm"
    state |= {f"{norm}.weight": 1 + torch.randn(WIDTH, generator=g) * 0.1, f"{norm}.bias": torch.randn(WIDTH) * 0.1}
    if finetuned:
        state |= {"head.weight": torch.randn(527, WIDTH, generator=g), "head.bias": torch.zeros(527)}
    if decoder is None:
        return state
    d = DECODER_WIDTH
    table = torch.randn(1, n + 1, d, generator=g) * 0.5
    table[:, 0] = 0  # the class row of Audio-MAE's sin-cos table
    state |= {
        "decoder_embed.weight": torch.randn(d, WIDTH, generator=g) * 0.05,
        "decoder_embed.bias": torch.randn(d, generator=g) * 0.05,
        "mask_token": torch.randn(1, 1, d, generator=g) * 0.02,
        "decoder_pos_embed": table,
        "decoder_norm.weight": 1 + torch.randn(d, generator=g) * 0.1,
        "decoder_norm.bias": torch.randn(d, generator=g) * 0.1,
        "decoder_pred.weight": torch.randn(PATCH * PATCH, d, generator=g) * 0.05,
        "decoder_pred.bias": torch.randn(PATCH * PATCH, generator=g) * 0.05,
    }
    for i in range(DECODER_DEPTH):
        block = randomised(vit_block(d, DECODER_HEADS), g)
        if decoder == "swin_v2":  # AudioMAE's timm_patch SwinTransformerBlock (timm's swin_transformer_v2_cr)
            block |= {
                "attn.meta_mlp.fc1.weight": torch.randn(384, 2, generator=g),
                "attn.meta_mlp.fc1.bias": torch.randn(384, generator=g),
                "attn.meta_mlp.fc2.weight": torch.randn(DECODER_HEADS, 384, generator=g),
                "attn.meta_mlp.fc2.bias": torch.randn(DECODER_HEADS, generator=g),
                "attn.tau": torch.ones(DECODER_HEADS),
            }
        elif decoder == "swin_v1":  # timm's SwinTransformerBlock of old, with its persistent index buffer
            block |= {
                "attn.relative_position_bias_table": torch.randn(49, DECODER_HEADS, generator=g),
                "attn.relative_position_index": torch.zeros(16, 16, dtype=torch.long),
            }
        state |= {f"decoder_blocks.{i}.{k}": v for k, v in block.items()}
    return state


def save(tmp_path, state, name="pretrained.pth"):
    path = tmp_path / name
    torch.save({"model": state, "epoch": 32}, path)
    return path


def fbank(batch=2, frames=FRAMES, seed=1):
    return torch.randn(batch, 1, frames, MELS, generator=torch.Generator().manual_seed(seed))


def reference_blocks(state, prefix, depth, dim, heads):
    blocks = nn.ModuleList(vit_block(dim, heads) for _ in range(depth))
    blocks.load_state_dict({k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)})
    return blocks.eval()


def reference_embed(state, x, stride=PATCH):
    """Audio-MAE's ``patch_embed`` and ``pos_embed`` (its ``forward_encoder`` before masking)."""
    tokens = F.conv2d(x, state["patch_embed.proj.weight"], state["patch_embed.proj.bias"], stride=stride)
    return tokens.flatten(2).transpose(1, 2) + state["pos_embed"][:, 1:]


def reference_encoder(state, tokens, final_norm=True):
    """Class token (with its position), the blocks, the final norm."""
    cls = (state["cls_token"] + state["pos_embed"][:, :1]).expand(tokens.shape[0], -1, -1)
    x = torch.cat([cls, tokens], dim=1)
    for block in reference_blocks(state, "blocks.", DEPTH, WIDTH, WIDTH // 64):
        x = block(x)
    return F.layer_norm(x, (WIDTH,), state["norm.weight"], state["norm.bias"], 1e-6) if final_norm else x


def max_diff(a, b):
    return (a - b).abs().max().item()


def test_pretraining_file_features_equal_audio_mae_encoder(tmp_path):
    state = audiomae_state()
    path = save(tmp_path, state)
    encoder = anymae.load_encoder(path)
    x = fbank()
    with torch.no_grad():
        ours = encoder({"fbank": x}).tokens
        reference = reference_encoder(state, reference_embed(state, x))
    diff = max_diff(ours, reference)
    print(f"Audio-MAE encoder features: max |diff| = {diff:.2e}")
    assert ours.shape == (2, 1 + 32, WIDTH) and diff < TOLERANCE
    assert isinstance(encoder.tokenizer, SpectrogramPatchTokenizer)
    assert encoder.tokenizer.layout.shape == (4, 8) and encoder.encoder.blocks[0].attn.num_heads == 2


def test_local_swin_v2_decoder_is_left_out_and_said_so(tmp_path):
    path = save(tmp_path, audiomae_state("swin_v2"))
    imported = anymae.read_weights(path)
    assert imported.source.startswith("facebookresearch/AudioMAE pretraining checkpoint (local Swin V2 decoder")
    assert imported.left_out == [
        f"decoder_blocks.*: {DECODER_DEPTH * 17} tensors of Audio-MAE's local decoder, {DECODER_DEPTH} Swin V2 "
        "blocks (AudioMAE's timm_patch/swin_transformer.py): post-norm (x + norm(attn(x))), scaled cosine attention "
        "with a learned temperature per head (attn.tau) and a position bias from an MLP of log-spaced relative "
        "coordinates (attn.meta_mlp.*); WindowDecoder's blocks are pre-norm ViT blocks with dot-product attention "
        "and no position bias, so none of these weights apply"
    ]
    assert imported.missing == [
        "decoder.blocks.*: left as initialised (Audio-MAE's Swin V2 blocks do not map); the decoder's stem "
        "(decoder_embed, mask_token, decoder_pos_embed, decoder_norm, decoder_pred) is read, and its 4 x 4 windows "
        "shifted by (2, 0) on odd blocks are Audio-MAE's (no_shift is not stored)"
    ]
    decoder = imported.parts["decoder"]
    assert decoder["class_path"] == "anymae.WindowDecoder"
    args = decoder["init_args"]
    assert (args["window"], args["shift"], args["num_heads"], args["depth"]) == ([4, 4], [2, 0], 16, DECODER_DEPTH)
    assert not any(k.startswith("decoder.blocks.") for k in imported.state)
    # the whole model builds from the file; its decoder stem is the file's, its blocks fresh
    model = anymae.MaskedAutoencoder.from_config(imported.parts)
    lines = anymae.init_weights(model, path)
    assert any("left out of the file: decoder_blocks.*" in line for line in lines)
    torch.testing.assert_close(model.decoder.stem.head.weight, imported.state["decoder.stem.head.weight"])
    with pytest.raises(anymae.ConfigError, match="lacks"):
        anymae.load_model(path)


def test_swin_v1_decoder_maps_all_but_its_position_bias(tmp_path):
    imported = anymae.read_weights(save(tmp_path, audiomae_state("swin_v1")))
    assert imported.left_out == [
        f"decoder_blocks.*.attn.relative_position_bias_table: Swin's learned relative position bias (49 offsets x 16 "
        f"heads in each of {DECODER_DEPTH} blocks); WindowDecoder's attention has no position bias",
        "decoder_blocks.*.attn.relative_position_index, attn_mask: buffers derived from the window, not weights",
    ]
    assert "decoder.blocks.1.attn.qkv.weight" in imported.state
    model = anymae.MaskedAutoencoder.from_config(imported.parts)
    model.load_state_dict(imported.state, strict=False)
    assert not [k for k in model.state_dict() if k.startswith("decoder.") and k not in imported.state]


def reference_loss(state, x, mask):
    """Audio-MAE's ``forward`` with the global decoder for a given mask (True = hidden): encoder on the visible
    patches, decoder on all, norm-pix MSE on the hidden ones."""
    b = x.shape[0]
    tokens = reference_embed(state, x)
    keep = tokens[~mask].reshape(b, -1, WIDTH)
    latent = reference_encoder(state, keep)
    d = F.linear(latent, state["decoder_embed.weight"], state["decoder_embed.bias"])
    full = state["mask_token"].expand(b, mask.shape[1], -1).clone()
    full[~mask] = d[:, 1:].reshape(-1, DECODER_WIDTH)
    h = torch.cat([d[:, :1], full], dim=1) + state["decoder_pos_embed"]
    for block in reference_blocks(state, "decoder_blocks.", DECODER_DEPTH, DECODER_WIDTH, DECODER_HEADS):
        h = block(h)
    h = F.layer_norm(h, (DECODER_WIDTH,), state["decoder_norm.weight"], state["decoder_norm.bias"], 1e-6)
    pred = F.linear(h, state["decoder_pred.weight"], state["decoder_pred.bias"])[:, 1:]
    h_, w_ = x.shape[2] // PATCH, x.shape[3] // PATCH
    target = torch.einsum("nchpwq->nhwpqc", x.reshape(b, 1, h_, PATCH, w_, PATCH)).reshape(b, h_ * w_, -1)
    target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6) ** 0.5
    loss = ((pred - target) ** 2).mean(-1)
    return (loss * mask).sum() / mask.sum()


def test_global_decoder_loss_equals_audio_mae_loss(tmp_path):
    state = audiomae_state("vit")
    path = save(tmp_path, state)
    imported = anymae.read_weights(path)
    assert imported.left_out == [] and imported.missing == []
    assert imported.parts["decoder"]["class_path"] == "anymae.MAEDecoder"
    model = anymae.load_model(path)
    x = fbank()
    n = 32
    noise = torch.rand(2, n, generator=torch.Generator().manual_seed(3))
    hidden = torch.zeros(2, n, dtype=torch.bool).scatter(1, noise.argsort(dim=1)[:, int(n * 0.2) :], True)
    with torch.no_grad():
        ours = model({"fbank": x}, mask=hidden).loss
        reference = reference_loss(state, x, hidden)
    diff = max_diff(ours, reference)
    print(
        f"Audio-MAE loss (global decoder): ours {ours.item():.6f}, reference {reference.item():.6f}, |diff| {diff:.2e}"
    )
    assert diff < TOLERANCE


def test_finetuned_file_keeps_the_blocks_and_says_what_differs(tmp_path):
    state = audiomae_state(None, finetuned=True)
    path = save(tmp_path, state, "finetuned.pth")
    imported = anymae.read_weights(path)
    assert imported.left_out == ["head.*: a classifier head (527 classes); anymae reads the encoder's features"]
    assert imported.missing[0].startswith("encoder.norm: the file has no per-token final norm")
    assert imported.missing[1] == "decoder: the file holds the encoder only"
    assert set(imported.parts) == {"tokenizer", "encoder"}
    encoder = anymae.load_encoder(path)
    x = fbank()
    with torch.no_grad():
        tokens = encoder.tokenizer({"fbank": x})
        hidden = encoder.encoder(tokens, layers=True).layers[-1]  # the last block's output, before the norm
        reference = reference_encoder(state, reference_embed(state, x), final_norm=False)
        pooled = encoder.encoder.norm(hidden[:, 1:].mean(dim=1))  # Audio-MAE's global pool: fc_norm(mean)
        reference_pooled = F.layer_norm(
            reference[:, 1:].mean(1), (WIDTH,), state["fc_norm.weight"], state["fc_norm.bias"], 1e-6
        )
    print(f"Audio-MAE fine-tuned blocks: max |diff| = {max_diff(hidden, reference):.2e}")
    assert max_diff(hidden, reference) < TOLERANCE and max_diff(pooled, reference_pooled) < TOLERANCE


def test_overlapping_patches_of_audio_mae_fine_tuning(tmp_path):
    state = audiomae_state(None, stride=10)
    path = save(tmp_path, state)
    encoder = anymae.load_encoder(path)
    assert (encoder.tokenizer.stride, encoder.tokenizer.target_length, encoder.tokenizer.layout.shape) == (
        10,
        1024,
        (101, 12),
    )
    x = fbank(1, frames=1024)
    with torch.no_grad():
        diff = max_diff(encoder({"fbank": x}).tokens, reference_encoder(state, reference_embed(state, x, stride=10)))
    print(f"Audio-MAE overlapping patches (101 x 12): max |diff| = {diff:.2e}")
    assert diff < TOLERANCE


def test_files_that_cannot_be_mapped_say_what(tmp_path):
    state = audiomae_state(None)
    state["pos_embed"] = state["pos_embed"][:, :30]  # 29 positions: no grid over 128 mel bins
    with pytest.raises(anymae.ConfigError, match="pos_embed holds 29 patch positions"):
        anymae.read_weights(save(tmp_path, state))
    state = audiomae_state(None)
    del state["norm.weight"], state["norm.bias"]
    with pytest.raises(anymae.ConfigError, match=r"without a final norm \(norm.\* or fc_norm.\*\)"):
        anymae.read_weights(save(tmp_path, state))
    rgb = audiomae_state(None)
    rgb["patch_embed.proj.weight"] = rgb["patch_embed.proj.weight"].expand(-1, 3, -1, -1).contiguous()
    file = anymae.WeightsFile(tmp_path, {"model": rgb})
    assert not AudioMAEReader().detect(file)  # three channels: an image MAE, not Audio-MAE


@pytest.mark.parametrize("source", ["audiomae", "fresh"])
def test_timm_export_gives_our_features(tmp_path, source):
    if source == "audiomae":
        encoder = anymae.load_encoder(save(tmp_path, audiomae_state(None)))
    else:  # an encoder of ours, with the fixed sin-cos table
        vit = anymae.ViTEncoder(embed_dim=WIDTH, depth=DEPTH, num_heads=2)
        tokenizer = SpectrogramPatchTokenizer(target_length=FRAMES, num_mel_bins=MELS)
        vit.build(anymae.BuildContext(tokenizer.spec, vit))
        encoder = anymae.PretrainedEncoder(tokenizer, vit).eval()
    exporter = TimmAudioViTExporter()
    exporter.check(encoder)
    out = tmp_path / "export"
    out.mkdir()
    exporter.export(encoder, out)
    model = create_timm_audio_vit(out)
    x = fbank()
    with torch.no_grad():
        diff = max_diff(model.forward_features(x), encoder({"fbank": x}).tokens)
    print(f"timm export ({source}): max |diff| = {diff:.2e}")
    assert diff < TOLERANCE


def test_timm_export_refuses_overlapping_patches():
    tokenizer = SpectrogramPatchTokenizer(target_length=66, num_mel_bins=36, stride=10)
    vit = anymae.ViTEncoder(embed_dim=64, depth=1, num_heads=1)
    vit.build(anymae.BuildContext(tokenizer.spec, vit))
    with pytest.raises(ValueError, match="non-overlapping"):
        TimmAudioViTExporter().check(anymae.PretrainedEncoder(tokenizer, vit))
