"""Published image MAE weights read as they are shipped (facebookresearch/mae ``.pth``, timm state dicts, HuggingFace
ViTMAE folders), and our MAE written as a HuggingFace ViTMAE folder.

Every reference is built here with random weights and saved in the published layout; what we read is compared with
an independent computation on the same weights: timm's ``forward_features`` for the encoder, transformers'
``ViTMAEForPreTraining`` loss for the same masking noise for a whole MAE (fp32, to 1e-5)."""

import json

import pytest
import torch

import anymae
from anymae import ConfigError
from anymae.model.published import open_weights, read_weights
from anymae_image import (
    HFViTMAEExporter,
    HFViTMAEReader,
    ImagePatchTokenizer,
    MAECheckpointReader,
    TimmViTReader,
    vit_num_heads,
)

transformers = pytest.importorskip("transformers")
timm = pytest.importorskip("timm")
safetensors_torch = pytest.importorskip("safetensors.torch")

READERS = (MAECheckpointReader, TimmViTReader, HFViTMAEReader)
TOL = {"atol": 1e-5, "rtol": 1e-5}


# ----------------------------------------------------------------------------------------------------- references
def images(batch=2, channels=3, size=32):
    return torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(1))


def noise(batch=2, tokens=16):
    return torch.rand(batch, tokens, generator=torch.Generator().manual_seed(2))


def mae_table(side, dim):
    """MAE's fixed table with its zero class-token row, as transformers builds it for pretrained ViTMAE checkpoints
    (an independent implementation of MAE's get_2d_sincos_pos_embed)."""
    from transformers.models.vit_mae.modeling_vit_mae import build_2d_sinusoidal_position_embedding

    table = build_2d_sinusoidal_position_embedding(side, side, embed_dim=dim)
    half = dim // 2
    table = torch.cat([table[:, half:], table[:, :half]], dim=-1)  # MAE's [w | h] layout, as HF rotates it
    return torch.cat([torch.zeros(1, dim), table])[None]


@torch.no_grad()
def perturb(module, seed=0):
    """Random weights everywhere (biases and norms too); matrices at 1 / sqrt(fan-in), so that attention is far from
    uniform and a wrong head count or a swapped q/k/v changes the result."""
    generator = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        if p.dim() >= 2 and p.shape[-1] > 1:
            p.copy_(torch.randn(p.shape, generator=generator) * p[0].numel() ** -0.5)
        else:
            p.add_(0.1 * torch.randn(p.shape, generator=generator))
    return module


def hf_config(norm_pix=False, hidden=64, heads=4, decoder_hidden=32, decoder_heads=4, **kwargs):
    return transformers.ViTMAEConfig(
        image_size=32,
        patch_size=8,
        num_channels=3,
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        decoder_hidden_size=decoder_hidden,
        decoder_num_hidden_layers=2,
        decoder_num_attention_heads=decoder_heads,
        decoder_intermediate_size=4 * decoder_hidden,
        layer_norm_eps=1e-6,
        norm_pix_loss=norm_pix,
        mask_ratio=0.75,
        **kwargs,
    )


@torch.no_grad()
def hf_mae(config, seed=0, learned_pos=False):
    """A random ViTMAEForPreTraining with MAE's fixed tables (or, ``learned_pos``, a random encoder table)."""
    model = perturb(transformers.ViTMAEForPreTraining(config), seed).eval()
    side = config.image_size // config.patch_size
    emb = model.vit.embeddings.position_embeddings
    emb.copy_(torch.randn(emb.shape) * 0.1 if learned_pos else mae_table(side, config.hidden_size))
    model.decoder.decoder_pos_embed.copy_(mae_table(side, config.decoder_hidden_size))
    return model


@torch.no_grad()
def hf_features(vit, pixels):
    """ViTMAEModel's features of every patch, in grid order (mask ratio 0, ascending noise)."""
    ratio, vit.config.mask_ratio = vit.config.mask_ratio, 0.0
    try:
        tokens = vit.embeddings.patch_embeddings.num_patches
        order = torch.arange(tokens, dtype=torch.float32).expand(pixels.shape[0], -1)
        return vit(pixel_values=pixels, noise=order).last_hidden_state
    finally:
        vit.config.mask_ratio = ratio


def mae_names(hf_state):
    """transformers' ViTMAEForPreTraining state dict (its module names) under facebookresearch/mae's names."""
    state = {}
    renames = {
        "vit.embeddings.cls_token": "cls_token",
        "vit.embeddings.position_embeddings": "pos_embed",
        "vit.embeddings.patch_embeddings.projection": "patch_embed.proj",
        "vit.layernorm": "norm",
        "decoder.decoder_embed": "decoder_embed",
        "decoder.mask_token": "mask_token",
        "decoder.decoder_pos_embed": "decoder_pos_embed",
        "decoder.decoder_norm": "decoder_norm",
        "decoder.decoder_pred": "decoder_pred",
    }
    layer = {"layernorm_before": "norm1", "layernorm_after": "norm2", "attention.o_proj": "attn.proj"}
    layer |= {"mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}
    for key, value in hf_state.items():
        for theirs, ours in renames.items():
            if key == theirs or key.startswith(theirs + "."):
                state[ours + key[len(theirs) :]] = value.clone()
    for stack, blocks in (("vit.layers", "blocks"), ("decoder.decoder_layers", "decoder_blocks")):
        i = 0
        while f"{stack}.{i}.layernorm_before.weight" in hf_state:
            at = f"{stack}.{i}."
            for theirs, ours in layer.items():
                for kind in ("weight", "bias"):
                    state[f"{blocks}.{i}.{ours}.{kind}"] = hf_state[f"{at}{theirs}.{kind}"].clone()
            for kind in ("weight", "bias"):
                qkv = [hf_state[f"{at}attention.{p}_proj.{kind}"] for p in "qkv"]
                state[f"{blocks}.{i}.attn.qkv.{kind}"] = torch.cat(qkv)
            i += 1
    return state


def timm_vit(width=128, heads=2, **kwargs):
    return timm.create_model(
        "vit_base_patch16_224",
        pretrained=False,
        img_size=32,
        patch_size=8,
        embed_dim=width,
        depth=2,
        num_heads=heads,
        **kwargs,
    ).eval()


def detected_by(path):
    """The one reader that recognises ``path`` (none other may)."""
    file = open_weights(path)
    found = [reader for reader in READERS if reader().detect(file)]
    assert len(found) == 1, f"{path}: detected by {found}"
    return found[0]


def whole_model(imported):
    """Our MaskedAutoencoder built from an import's parts, its weights loaded (every tokenizer/encoder/decoder
    tensor from the file)."""
    model = anymae.MaskedAutoencoder.from_config(imported.parts)
    missing, unexpected = model.load_state_dict(imported.state, strict=False)
    assert not unexpected
    assert not [k for k in missing if k.startswith(("tokenizer.", "encoder.", "decoder."))], missing
    return model.eval()


def max_diff(a, b):
    return (a - b).abs().max().item()


def assert_encoder_gives_timm_features(path, reference, label: str) -> None:
    """The encoder anymae loads from ``path`` gives the tokens timm's ``forward_features`` gives on ``images()``."""
    x = images()
    with torch.no_grad():
        features = anymae.load_encoder(path)({"image": x}).tokens
        expected = reference.forward_features(x)
    print(f"{label}: feature diff {max_diff(features, expected):.2e}")
    torch.testing.assert_close(features, expected, **TOL)


# ---------------------------------------------------------------------------------------------- facebookresearch/mae
@pytest.mark.parametrize("norm_pix", [False, True])
def test_mae_visualize_pth_gives_hf_loss_and_timm_features(tmp_path, norm_pix):
    """A full MAE ``.pth`` (``mae_visualize_vit_*``'s layout): width 128 and decoder width 64 with 2 heads each, so
    the head rule (64 per head in the encoder, 32 in the decoder) is what makes the loss match."""
    hf = hf_mae(hf_config(norm_pix, hidden=128, heads=2, decoder_hidden=64, decoder_heads=2))
    state = mae_names(hf.state_dict())
    contents = {"model": state}
    if norm_pix:  # a training checkpoint that records its arguments as a plain dict
        contents["args"] = {"norm_pix_loss": True, "mask_ratio": 0.75}
    path = tmp_path / "mae_visualize_vit_tiny.pth"
    torch.save(contents, path)
    assert detected_by(path) is MAECheckpointReader

    imported = read_weights(path)  # the registered readers
    assert imported.source.startswith("facebookresearch/mae")
    assert imported.parts["encoder"]["init_args"]["num_heads"] == 2
    assert imported.parts["decoder"]["init_args"]["num_heads"] == 2
    assert imported.parts["target"]["init_args"]["normalize"] == ("patch" if norm_pix else "none")
    assert any(item.startswith("pos_embed: MAE's fixed") for item in imported.left_out)
    assert any(item.startswith("decoder_pos_embed: MAE's fixed") for item in imported.left_out)
    assert imported.missing == []

    x = images()
    model = whole_model(imported)
    with torch.no_grad():
        mine = model({"image": x}, noise=noise())
        theirs = hf(pixel_values=x, noise=noise())
    assert torch.equal(mine.mask.mask, theirs.mask.bool())
    print(f"mae full pth: loss diff {abs(mine.loss.item() - theirs.loss.item()):.2e}")
    torch.testing.assert_close(mine.loss, theirs.loss, **TOL)

    reference = timm_vit(num_classes=0)
    reference.load_state_dict({k: v for k, v in state.items() if not k.startswith(("decoder", "mask_token"))})
    assert_encoder_gives_timm_features(path, reference, "mae full pth")


def test_mae_pretrain_pth_encoder_features_equal_timm(tmp_path):
    """``mae_pretrain_vit_*.pth``: the encoder only, MAE's fixed table stored with its class-token row."""
    reference = perturb(timm_vit(num_classes=0), seed=3)
    with torch.no_grad():
        reference.pos_embed.copy_(mae_table(4, 128))
    path = tmp_path / "mae_pretrain_vit_tiny.pth"
    torch.save({"model": reference.state_dict()}, path)
    assert detected_by(path) is MAECheckpointReader
    imported = read_weights(path)
    assert set(imported.parts) == {"tokenizer", "encoder"}
    assert imported.parts["tokenizer"]["init_args"] == {"image_size": 32, "patch_size": 8, "in_chans": 3}
    assert "pos_embed" not in imported.parts["encoder"]["init_args"]  # recomputed
    assert imported.missing == ["decoder: the file holds the encoder only"]

    assert_encoder_gives_timm_features(path, reference, "mae pretrain pth")


def test_head_rule_for_published_widths():
    assert [vit_num_heads(w) for w in (192, 384, 768, 1024, 1280)] == [3, 6, 12, 16, 16]
    with pytest.raises(ConfigError, match="num_heads"):
        vit_num_heads(100)


def test_reader_with_given_heads(tmp_path):
    reference = perturb(timm_vit(width=128, heads=4, num_classes=0), seed=4)
    path = tmp_path / "vit.safetensors"
    safetensors_torch.save_file(reference.state_dict(), path)
    imported = TimmViTReader(num_heads=4).read(open_weights(path))
    assert imported.parts["encoder"]["init_args"]["num_heads"] == 4


# ----------------------------------------------------------------------------------------------------------- timm
@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_timm_classifier_features_equal_timm_and_head_left_out(tmp_path, suffix):
    """A timm ViT classifier: a learned pos_embed (its class-token row added to the class token) and a head."""
    reference = perturb(timm_vit(num_classes=10), seed=5)
    path = tmp_path / f"vit{suffix}"
    if suffix == ".pth":
        torch.save(reference.state_dict(), path)
    else:
        safetensors_torch.save_file(reference.state_dict(), path)
    assert detected_by(path) is TimmViTReader
    imported = read_weights(path)
    assert imported.source.startswith("timm")
    assert "head.*: a classifier head ([10, 128])" in imported.left_out
    pos = imported.parts["encoder"]["init_args"]["pos_embed"]
    assert pos["class_path"] == "anymae.LearnedPositionEmbedding"

    assert_encoder_gives_timm_features(path, reference, f"timm {suffix}")


def test_timm_avg_pool_fc_norm_gives_timms_pooled_feature(tmp_path):
    """timm's ``global_pool="avg"``: no norm of the tokens, a LayerNorm of their mean (``ViTEncoder(fc_norm=True)``)."""
    reference = perturb(timm_vit(num_classes=0, global_pool="avg", fc_norm=True)).eval()
    path = tmp_path / "vit_avg.safetensors"
    safetensors_torch.save_file(reference.state_dict(), path)
    assert read_weights(path).parts["encoder"]["init_args"]["fc_norm"] is True
    x = images()
    with torch.no_grad():
        features = anymae.load_encoder(path)({"image": x})
        torch.testing.assert_close(features.pooled, reference(x), **TOL)  # timm pools the patch tokens' mean
        torch.testing.assert_close(features.tokens, reference.forward_features(x), **TOL)


def test_timm_layer_scale_is_refused_by_name(tmp_path):
    reference = timm_vit(num_classes=0, init_values=1e-5)
    path = tmp_path / "vit_ls.safetensors"
    safetensors_torch.save_file(reference.state_dict(), path)
    with pytest.raises(ConfigError, match=r"ls1\.gamma"):
        read_weights(path)


# ---------------------------------------------------------------------------------------------------- HuggingFace
def legacy_names(hf_state):
    """The names of the checkpoints on the Hub (transformers 4): vit.encoder.layer.N.attention.attention.query..."""
    renames = {
        "attention.q_proj": "attention.attention.query",
        "attention.k_proj": "attention.attention.key",
        "attention.v_proj": "attention.attention.value",
        "attention.o_proj": "attention.output.dense",
        "mlp.fc1": "intermediate.dense",
        "mlp.fc2": "output.dense",
    }
    state = {}
    for key, value in hf_state.items():
        key = key.replace("vit.layers.", "vit.encoder.layer.")
        for new, old in renames.items():
            key = key.replace(f".{new}.", f".{old}.")
        state[key] = value.contiguous()
    return state


def save_hf(model, folder, layout):
    """``save_pretrained`` (what transformers 5 writes), its module names in a ``pytorch_model.bin``, or the Hub's
    names in a ``model.safetensors``."""
    if layout == "save_pretrained":
        model.save_pretrained(folder)
        return
    folder.mkdir()
    model.config.save_pretrained(folder)
    if layout == "module_names_bin":
        torch.save(model.state_dict(), folder / "pytorch_model.bin")
    else:
        safetensors_torch.save_file(legacy_names(model.state_dict()), folder / "model.safetensors", {"format": "pt"})


@pytest.mark.parametrize(
    ("layout", "norm_pix"),
    [("save_pretrained", True), ("module_names_bin", False), ("hub_names_safetensors", True)],
)
def test_hf_vitmae_for_pretraining_gives_its_loss_and_features(tmp_path, layout, norm_pix):
    hf = hf_mae(hf_config(norm_pix), seed=6)
    folder = tmp_path / "hf"
    save_hf(hf, folder, layout)
    assert detected_by(folder) is HFViTMAEReader
    imported = read_weights(folder)
    assert imported.source.startswith("HuggingFace ViTMAEForPreTraining")
    assert imported.parts["encoder"]["init_args"]["norm_eps"] == 1e-6
    assert imported.parts["target"]["init_args"]["normalize"] == ("patch" if norm_pix else "none")

    x = images()
    model = whole_model(imported)
    with torch.no_grad():
        mine = model({"image": x}, noise=noise())
        theirs = hf(pixel_values=x, noise=noise())
    print(f"hf {layout}: loss diff {abs(mine.loss.item() - theirs.loss.item()):.2e}")
    torch.testing.assert_close(mine.loss, theirs.loss, **TOL)
    with torch.no_grad():
        features = anymae.load_encoder(folder)({"image": x}).tokens
    expected = hf_features(hf.vit, x)
    print(f"hf {layout}: feature diff {max_diff(features, expected):.2e}")
    torch.testing.assert_close(features, expected, **TOL)


def test_hf_vitmae_model_with_a_learned_table(tmp_path):
    """ViTMAEModel (no decoder, no "vit." prefix); a table that is not MAE's, with a non-zero class-token row."""
    hf = hf_mae(hf_config(), seed=7, learned_pos=True)
    folder = tmp_path / "hf_model"
    hf.vit.save_pretrained(folder)
    assert detected_by(folder) is HFViTMAEReader
    imported = read_weights(folder)
    assert imported.source.startswith("HuggingFace ViTMAEModel")
    assert "decoder" not in imported.parts
    x = images()
    with torch.no_grad():
        features = anymae.load_encoder(folder)({"image": x}).tokens
    expected = hf_features(hf.vit, x)
    print(f"hf ViTMAEModel: feature diff {max_diff(features, expected):.2e}")
    torch.testing.assert_close(features, expected, **TOL)


@pytest.mark.parametrize(
    ("change", "match"),
    [({"hidden_size": 96}, "hidden_size 96"), ({"hidden_act": "gelu_new"}, "gelu_new"), ({}, None)],
)
def test_hf_config_that_does_not_fit_is_refused(tmp_path, change, match):
    hf = hf_mae(hf_config(), seed=8)
    folder = tmp_path / "hf"
    hf.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **change}))
    if match is None:
        (folder / "config.json").unlink()  # the weights alone: the sizes are not there
        with pytest.raises(ConfigError, match=r"config\.json"):
            read_weights(folder / "model.safetensors")
        return
    with pytest.raises(ConfigError, match=match):
        read_weights(folder)


# ------------------------------------------------------------------------------------------------ not our formats
@pytest.mark.parametrize(
    "state",
    [
        {  # a CLIP-like text tower
            "token_embedding.weight": torch.randn(100, 16),
            "positional_embedding": torch.randn(8, 16),
            "transformer.resblocks.0.attn.in_proj_weight": torch.randn(48, 16),
            "transformer.resblocks.0.attn.out_proj.weight": torch.randn(16, 16),
            "ln_final.weight": torch.ones(16),
            "text_projection": torch.randn(16, 16),
        },
        {"alpha": torch.zeros(3), "beta.gamma": torch.ones(2, 2)},
        {  # a video ViT: a 3-D patch embedding
            "patch_embed.proj.weight": torch.randn(16, 3, 2, 8, 8),
            "pos_embed": torch.randn(1, 33, 16),
            "blocks.0.attn.qkv.weight": torch.randn(48, 16),
        },
    ],
    ids=["clip_text", "random_keys", "video_vit"],
)
def test_other_files_are_not_detected(tmp_path, state):
    path = tmp_path / "other.pth"
    torch.save({"model": state}, path)
    file = open_weights(path)
    assert not any(reader().detect(file) for reader in READERS)
    with pytest.raises(ConfigError, match="no known weights format"):
        read_weights(path, readers=READERS)


# ---------------------------------------------------------------------------------------------- export to HF
def our_mae(norm_pix=True, image_size=32, class_token=True, target=None, decoder=None, pos_embed=None, masker=None):
    torch.manual_seed(0)
    model = anymae.MaskedAutoencoder(
        tokenizer=ImagePatchTokenizer(image_size=image_size, patch_size=8, in_chans=3),
        masker=masker or anymae.RandomMasker(mask_ratio=0.75),
        encoder=anymae.ViTEncoder(embed_dim=64, depth=2, num_heads=4, class_token=class_token, pos_embed=pos_embed),
        decoder=decoder or anymae.MAEDecoder(embed_dim=32, depth=2, num_heads=4),
        target=target or anymae.PatchTarget(normalize="patch" if norm_pix else "none"),
    )
    return perturb(model, seed=9).eval()


@pytest.mark.parametrize(
    ("norm_pix", "learned"), [(True, False), (False, True)], ids=["sincos_norm_pix", "learned_pixels"]
)
def test_hf_export_round_trip(tmp_path, norm_pix, learned):
    pos = anymae.LearnedPositionEmbedding(init="trunc_normal") if learned else None
    ours = our_mae(norm_pix, pos_embed=pos)
    exporter = HFViTMAEExporter()
    assert exporter.reads == "model"
    exporter.check(ours)
    written = exporter.export(ours, tmp_path / "hf")
    assert sorted(p.name for p in written) == ["config.json", "model.safetensors"]

    hf = transformers.ViTMAEForPreTraining.from_pretrained(tmp_path / "hf").eval()
    x = images()
    with torch.no_grad():
        mine = ours({"image": x}, noise=noise())
        theirs = hf(pixel_values=x, noise=noise())
        features = anymae.PretrainedEncoder(ours.tokenizer, ours.encoder)({"image": x}).tokens
    print(f"export ({'learned' if learned else 'sincos'}): loss diff {abs(mine.loss.item() - theirs.loss.item()):.2e}")
    torch.testing.assert_close(mine.loss, theirs.loss, **TOL)
    expected = hf_features(hf.vit, x)
    print(f"export: feature diff {max_diff(features, expected):.2e}")
    torch.testing.assert_close(features, expected, **TOL)

    # and read back by our reader: the same model
    again = whole_model(read_weights(tmp_path / "hf"))
    with torch.no_grad():
        torch.testing.assert_close(again({"image": x}, noise=noise()).loss, mine.loss, **TOL)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image_size": (32, 48)}, "square"),
        ({"class_token": False}, "class token"),
        ({"target": anymae.PatchTarget(normalize="channel")}, "normalize='channel'"),
        ({"decoder": anymae.CrossMAEDecoder(embed_dim=32, depth=1, num_heads=4)}, "not an MAEDecoder"),
        ({"masker": anymae.BlockMasker(mask_ratio=0.5, min_block=2)}, "uniformly at random"),
    ],
    ids=["non_square", "no_class_token", "channel_norm", "crossmae_decoder", "block_masker"],
)
def test_hf_export_refuses_what_vitmae_cannot_compute(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HFViTMAEExporter().check(our_mae(**kwargs))


def test_hf_export_needs_the_whole_model():
    ours = our_mae()
    with pytest.raises(ValueError, match="whole MaskedAutoencoder"):
        HFViTMAEExporter().check(anymae.PretrainedEncoder(ours.tokenizer, ours.encoder))


# ------------------------------------------------------------------------------- continuing pretraining from a file
def test_continuing_pretraining_on_digits_starts_from_the_imported_loss(tmp_path, capsys):
    """``anymae fit --config examples/image/mae_tiny_digits.yaml --model.init_from <mae_visualize-format .pth>``: the
    file holds an MAE on 32 x 32 grey images in 4 x 4 patches (HF's ViTMAEForPreTraining, random weights, saved under
    MAE's names; MAE's 64 features per encoder head, 32 per decoder head), the demo's encoder widened to match; the
    first training step's loss is HF's loss on the same digits batch and mask, and the command trains from there."""
    from pathlib import Path

    import yaml

    from anymae.cli import main
    from anymae.config import instantiate_component
    from anymae.training.module import mask_seed

    root = Path(__file__).resolve().parents[2]
    demo = yaml.safe_load((root / "examples/image/mae_tiny_digits.yaml").read_text())
    config = transformers.ViTMAEConfig(
        image_size=32, patch_size=4, num_channels=1, hidden_size=128, num_hidden_layers=4, num_attention_heads=2,
        intermediate_size=512, decoder_hidden_size=64, decoder_num_hidden_layers=2, decoder_num_attention_heads=2,
        decoder_intermediate_size=256, layer_norm_eps=1e-6, norm_pix_loss=True, mask_ratio=0.75,
    )  # fmt: skip
    hf = hf_mae(config)
    path = tmp_path / "mae_visualize_vit_demo.pth"
    torch.save({"model": mae_names(hf.state_dict())}, path)

    sizes = {"embed_dim": 128, "num_heads": 2}
    demo["model"]["encoder"]["init_args"] |= sizes
    demo["model"]["decoder"]["init_args"]["num_heads"] = 2
    model = anymae.MaskedAutoencoder.from_config({**demo["model"], "init_from": str(path)}).eval()
    assert "init_from: facebookresearch/mae" in capsys.readouterr().out
    data = instantiate_component(demo["data"], __import__("lightning.pytorch").pytorch.LightningDataModule)
    data.setup("fit")
    batch = data.on_before_batch_transfer(next(iter(data.train_dataloader())), 0)
    noise = torch.rand(64, 64, generator=torch.Generator().manual_seed(mask_seed(0, 0, 0, 0)))
    with torch.no_grad():
        mine = model({"image": batch["image"]}, noise=noise)
        theirs = hf(pixel_values=batch["image"], noise=noise)
        first = model({"image": batch["image"]}, generator=torch.Generator().manual_seed(mask_seed(0, 0, 0, 0)))
    torch.testing.assert_close(mine.loss, theirs.loss, **TOL)

    args = ["fit", "--config", str(root / "examples/image/mae_tiny_digits.yaml"), "--model.init_from", str(path)]
    args += ["--model.encoder.init_args.embed_dim", "128", "--model.encoder.init_args.num_heads", "2"]
    args += ["--model.decoder.init_args.num_heads", "2"]
    args += ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"]
    args += ["--trainer.log_every_n_steps", "1", "--trainer.callbacks", "[]", "--trainer.enable_progress_bar", "false"]
    assert main([*args, "--trainer.default_root_dir", str(tmp_path / "run")]) == 0
    assert "decoder, encoder loaded" in capsys.readouterr().out
    rows = (tmp_path / "run/lightning_logs/version_0/metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    logged = [
        float(r.split(",")[header.index("train/loss")]) for r in rows[1:] if r.split(",")[header.index("train/loss")]
    ]
    assert logged[0] == pytest.approx(first.loss.item(), rel=1e-5)  # the first step scores the imported model


def test_the_commands_read_a_published_file(tmp_path, capsys):
    """``anymae embed`` and ``anymae knn`` take an MAE ``.pth`` as they take our checkpoints; a data module whose
    samples the file's tokenizer cannot read is one line."""
    import numpy as np

    from anymae.cli import main

    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    vit = timm.create_model(
        "vit_base_patch16_224", pretrained=False, img_size=32, patch_size=4, embed_dim=128, depth=2, num_heads=2
    )
    path = tmp_path / "mae_pretrain_vit_tiny.pth"
    torch.save({"model": vit.state_dict()}, path)
    embed = ["embed", "--config", str(root / "examples/image/mae_tiny_digits.yaml"), "--checkpoint", str(path)]
    embed += ["--out", str(tmp_path / "digits.npz"), "--splits", "val"]
    assert main(embed) == 2
    assert "tokenizer cannot read the val samples: expected images [B, 3, H, W]" in capsys.readouterr().err
    assert main([*embed, "--data.init_args.in_chans", "3"]) == 0
    features = np.load(tmp_path / "digits.npz")["val_features"]
    assert features.shape == (180, 128)
    knn = ["knn", "--config", str(root / "examples/image/knn_digits.yaml"), "--model.encoder.checkpoint", str(path)]
    knn += ["--data.init_args.data.init_args.in_chans", "3", "--results", str(tmp_path / "rows.csv")]
    assert main([*knn, "--trainer.default_root_dir", str(tmp_path)]) == 0
    assert str(path) in (tmp_path / "rows.csv").read_text()


def test_a_teacher_from_a_published_file_gives_its_features(tmp_path):
    """``anymae.Teacher(checkpoint=<MAE .pth>)``: the frozen teacher of a feature target computes timm's features of
    the same weights (its prefix token left out)."""
    vit = perturb(timm_vit(num_classes=0))
    path = tmp_path / "mae_pretrain_vit_tiny.pth"
    torch.save({"model": vit.state_dict()}, path)
    teacher = anymae.Teacher(checkpoint=str(path))
    x = images()
    with torch.no_grad():
        torch.testing.assert_close(teacher.features({"image": x}), vit.forward_features(x)[:, 1:], **TOL)


def test_a_timm_avg_pool_encoder_exports_back_to_timm(tmp_path):
    """Read with fc_norm, written with fc_norm: the timm model rebuilt from the export gives the same pooled feature."""
    from anymae_image import TimmViTExporter, create_timm_vit

    reference = perturb(timm_vit(num_classes=0, global_pool="avg", fc_norm=True)).eval()
    safetensors_torch.save_file(reference.state_dict(), tmp_path / "avg.safetensors")
    encoder = anymae.load_encoder(tmp_path / "avg.safetensors")
    TimmViTExporter().check(encoder)
    TimmViTExporter().export(encoder, tmp_path)
    x = images()
    with torch.no_grad():
        torch.testing.assert_close(create_timm_vit(tmp_path)(x), reference(x), **TOL)


def test_anymae_export_format_hf_from_a_fit_checkpoint(digits_run, tmp_path):
    """``anymae export <fit checkpoint> --out DIR --format hf``: transformers loads the folder and computes our loss
    for the same noise (the demo's MAE on grey 32 x 32 digits)."""
    from anymae.cli import main

    checkpoint = digits_run / "runs/teacher/lightning_logs/version_0/checkpoints/last.ckpt"
    assert main(["export", str(checkpoint), "--out", str(tmp_path / "hf"), "--format", "hf"]) == 0
    hf = transformers.ViTMAEForPreTraining.from_pretrained(tmp_path / "hf").eval()
    ours = anymae.MaskedAutoencoder.load_from_checkpoint(checkpoint).eval()
    x, z = images(channels=1), noise(tokens=64)
    with torch.no_grad():
        torch.testing.assert_close(ours({"image": x}, noise=z).loss, hf(pixel_values=x, noise=z).loss, **TOL)


def test_anymae_convert_of_a_published_file(tmp_path, capsys):
    """``anymae convert mae_visualize-format.pth --out DIR``: the folder holds encoder, decoder and config with the
    file's sizes, says what it mapped and left out, and the model it rebuilds computes HF's loss."""
    from anymae.cli import main

    hf = hf_mae(hf_config(False, hidden=128, heads=2, decoder_hidden=64, decoder_heads=2))
    torch.save({"model": mae_names(hf.state_dict())}, tmp_path / "mae_visualize_vit_tiny.pth")
    assert main(["convert", str(tmp_path / "mae_visualize_vit_tiny.pth"), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert (
        "tensors mapped (decoder, encoder)" in out and "encoder: ViTEncoder(embed_dim=128, depth=2, num_heads=2" in out
    )
    assert "left out: pos_embed: MAE's fixed" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "config.yaml",
        "decoder.safetensors",
        "encoder.safetensors",
    ]
    model = anymae.load_model(tmp_path / "out")
    with torch.no_grad():
        torch.testing.assert_close(
            model({"image": images()}, noise=noise()).loss, hf(pixel_values=images(), noise=noise()).loss, **TOL
        )
