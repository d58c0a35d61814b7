"""Published VideoMAE weights are read as they are shipped, from local files (MCG-NJU VideoMAE / VideoMAE V2 ``.pth``,
HuggingFace folders), and give the features and the loss of the model they come from; our video MAE is written as
HuggingFace's ``VideoMAEForPreTraining`` and computes the same loss there. The reference models are transformers'
with random weights (transformers is a test-only dependency); the ``.pth`` files are written with MCG-NJU's key names
from a reference model's weights."""

import json

import pytest
import torch

import anymae
from anymae.model.published import open_weights
from anymae_video import HFVideoMAEExporter, HFVideoMAEReader, VideoMAEReader, VideoTubeletTokenizer

transformers = pytest.importorskip("transformers")

FRAMES, SIZE, PATCH, TUBELET = 4, 32, 8, 2
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TOL = 1e-5  # float32


def hf_config(**overrides) -> "transformers.VideoMAEConfig":
    sizes = {
        "image_size": SIZE,
        "patch_size": PATCH,
        "num_frames": FRAMES,
        "tubelet_size": TUBELET,
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 256,
        "decoder_hidden_size": 32,
        "decoder_num_hidden_layers": 2,
        "decoder_num_attention_heads": 4,
        "decoder_intermediate_size": 128,
        "layer_norm_eps": 1e-6,
        "use_mean_pooling": False,
        "norm_pix_loss": True,
    }
    return transformers.VideoMAEConfig(**{**sizes, **overrides})


@torch.no_grad()
def randomized(model, seed: int = 0):
    """Every weight moved off its initial value (HF starts biases at 0 and LayerNorms at 1, which would hide a swap)."""
    generator = torch.Generator().manual_seed(seed)
    for parameter in model.parameters():
        parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
    return model.eval()


@pytest.fixture(scope="module")
def clips() -> torch.Tensor:
    return torch.randn(2, 3, FRAMES, SIZE, SIZE, generator=torch.Generator().manual_seed(1))  # [B, C, T, H, W]


def tube_mask(batch: int = 2, hidden: int = 12) -> torch.Tensor:
    """``[B, N]``: the same ``hidden`` of the 16 positions hidden at both time steps (VideoMAE's tube masking)."""
    generator = torch.Generator().manual_seed(3)
    spatial = (SIZE // PATCH) ** 2
    rows = [torch.randperm(spatial, generator=generator) < hidden for _ in range(batch)]
    return torch.stack(rows).repeat(1, FRAMES // TUBELET)


def reference_features(hf, clips: torch.Tensor) -> torch.Tensor:
    base = getattr(hf, "videomae", hf)
    with torch.no_grad():
        return base(pixel_values=clips.transpose(1, 2)).last_hidden_state


def reference_loss(hf, clips: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return hf(pixel_values=clips.transpose(1, 2), bool_masked_pos=mask).loss


def our_features(path, clips: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return anymae.load_encoder(path)({"video": clips}).tokens


def our_model(path) -> anymae.MaskedAutoencoder:
    """The whole model a file describes: its parts built, their weights loaded strictly."""
    imported = anymae.read_weights(path)
    model = anymae.MaskedAutoencoder.from_config(imported.parts)
    model.load_state_dict(imported.state, strict=True)
    return model.eval()


def our_loss(model: anymae.MaskedAutoencoder, clips: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model({"video": clips}, mask=mask).loss


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a - b).abs().max().item()


# ------------------------------------------------------------------------------------------------ HuggingFace folders
@pytest.mark.parametrize("layout", ["safetensors", "bin"])
def test_hf_pretraining_folder_gives_the_features_and_loss_of_videomae_for_pretraining(tmp_path, clips, layout):
    hf = randomized(transformers.VideoMAEForPreTraining(hf_config()))
    if layout == "safetensors":  # as transformers writes it: q_bias/v_bias, "qv_bias" in config.json
        hf.save_pretrained(tmp_path)
    else:  # a .bin under the names transformers 5 holds (query.bias, value.bias), an older config ("qkv_bias")
        torch.save(hf.state_dict(), tmp_path / "pytorch_model.bin")
        config = hf.config.to_dict()
        config["qkv_bias"] = config.pop("qv_bias")
        config["architectures"] = ["VideoMAEForPreTraining"]
        (tmp_path / "config.json").write_text(json.dumps(config))
    imported = anymae.read_weights(tmp_path)
    assert imported.source.startswith("HuggingFace VideoMAEForPreTraining")
    assert {"tokenizer", "encoder", "decoder", "target", "masker"} <= set(imported.parts)
    assert max_diff(our_features(tmp_path, clips), reference_features(hf, clips)) < TOL
    mask = tube_mask()
    # HF's decoder norm uses eps 1e-5 whatever layer_norm_eps says (the reader says so in `missing`)
    assert any("decoder.norm eps" in line for line in imported.missing)
    assert abs(our_loss(our_model(tmp_path), clips, mask) - reference_loss(hf, clips, mask)) < TOL


def test_hf_encoder_folders(tmp_path, clips):
    hf = randomized(transformers.VideoMAEModel(hf_config()))
    hf.save_pretrained(tmp_path / "model")
    imported = anymae.read_weights(tmp_path / "model")
    assert "decoder" not in imported.parts and any(line.startswith("decoder") for line in imported.missing)
    assert max_diff(our_features(tmp_path / "model", clips), reference_features(hf, clips)) < TOL

    classifier = randomized(transformers.VideoMAEForVideoClassification(hf_config(num_labels=5)))
    classifier.save_pretrained(tmp_path / "classifier")
    assert any(item.startswith("classifier.") for item in anymae.read_weights(tmp_path / "classifier").left_out)
    assert max_diff(our_features(tmp_path / "classifier", clips), reference_features(classifier, clips)) < TOL

    pooled = randomized(transformers.VideoMAEForVideoClassification(hf_config(num_labels=5, use_mean_pooling=True)))
    pooled.save_pretrained(tmp_path / "pooled")  # no final LayerNorm on the tokens; fc_norm of their mean
    assert anymae.read_weights(tmp_path / "pooled").parts["encoder"]["init_args"]["fc_norm"] is True
    with torch.no_grad():
        expected = pooled.fc_norm(reference_features(pooled, clips).mean(dim=1))  # what its classifier reads
        features = anymae.load_encoder(tmp_path / "pooled")({"video": clips})
    assert max_diff(features.tokens, reference_features(pooled, clips)) < TOL
    assert max_diff(features.pooled, expected) < 5 * TOL  # HF's fc_norm eps is 1e-5, ours layer_norm_eps (said)
    assert any(line.startswith("fc_norm eps") for line in anymae.read_weights(tmp_path / "pooled").missing)


# ------------------------------------------------------------------------------------- MCG-NJU VideoMAE (and V2) .pth
def mcg_reference():
    """An HF model standing for MCG-NJU's: 64-wide heads (the .pth files do not store the count) and LayerNorm eps
    1e-6 everywhere, the decoder's final norm included."""
    config = hf_config(
        hidden_size=128,
        num_attention_heads=2,
        intermediate_size=512,
        decoder_hidden_size=64,
        decoder_num_attention_heads=1,
        decoder_intermediate_size=256,
    )
    hf = randomized(transformers.VideoMAEForPreTraining(config), seed=4)
    hf.decoder.norm.eps = 1e-6
    return hf


def mcg_blocks(hf_state: dict, theirs: str, ours: str) -> dict:
    """HF's layers under MCG-NJU's ``modeling_finetune.Block`` names."""
    out, i = {}, 0
    while f"{theirs}.{i}.layernorm_before.weight" in hf_state:
        src, dst = f"{theirs}.{i}", f"{ours}.{i}"
        attention = f"{src}.attention.attention"
        out[f"{dst}.attn.qkv.weight"] = torch.cat(
            [hf_state[f"{attention}.{n}.weight"] for n in ("query", "key", "value")]
        )
        out[f"{dst}.attn.q_bias"] = hf_state[f"{attention}.query.bias"]
        out[f"{dst}.attn.v_bias"] = hf_state[f"{attention}.value.bias"]
        names = {
            "layernorm_before": "norm1",
            "layernorm_after": "norm2",
            "attention.output.dense": "attn.proj",
            "intermediate.dense": "mlp.fc1",
            "output.dense": "mlp.fc2",
        }
        for a, b in names.items():
            out[f"{dst}.{b}.weight"], out[f"{dst}.{b}.bias"] = (
                hf_state[f"{src}.{a}.weight"],
                hf_state[f"{src}.{a}.bias"],
            )
        i += 1
    return out


def mcg_encoder(hf_state: dict, prefix: str) -> dict:
    conv = "videomae.embeddings.patch_embeddings.projection"
    return {
        f"{prefix}patch_embed.proj.weight": hf_state[f"{conv}.weight"],
        f"{prefix}patch_embed.proj.bias": hf_state[f"{conv}.bias"],
        **mcg_blocks(hf_state, "videomae.encoder.layer", f"{prefix}blocks"),
        f"{prefix}norm.weight": hf_state["videomae.layernorm.weight"],
        f"{prefix}norm.bias": hf_state["videomae.layernorm.bias"],
    }


def mcg_pretraining(hf_state: dict) -> dict:
    """``PretrainVisionTransformer.state_dict()`` of MCG-NJU VideoMAE (and of VideoMAE V2: the same layout)."""
    return {
        **mcg_encoder(hf_state, "encoder."),
        "encoder_to_decoder.weight": hf_state["encoder_to_decoder.weight"],
        "mask_token": hf_state["mask_token"],
        **mcg_blocks(hf_state, "decoder.decoder_layers", "decoder.blocks"),
        **{f"decoder.{k}": hf_state[f"decoder.{k}"] for k in ("norm.weight", "norm.bias", "head.weight", "head.bias")},
    }


@pytest.mark.parametrize("nesting", ["model", "module"])  # VideoMAE saves under "model"; V2's distilled under "module"
def test_videomae_pretraining_checkpoint(tmp_path, clips, nesting):
    hf = mcg_reference()
    path = tmp_path / "checkpoint-799.pth"
    torch.save({nesting: mcg_pretraining(hf.state_dict()), "epoch": 799}, path)
    imported = anymae.read_weights(path)
    assert imported.source.startswith("MCG-NJU VideoMAE / VideoMAE V2 pretraining checkpoint")
    tokenizer = imported.parts["tokenizer"]["init_args"]
    assert (tokenizer["num_frames"], tokenizer["image_size"]) == (16, 224)  # not stored: VideoMAE's, said in missing
    assert (tokenizer["tubelet_size"], tokenizer["patch_size"]) == (TUBELET, PATCH)
    assert imported.parts["encoder"]["init_args"]["num_heads"] == 2
    assert imported.parts["decoder"]["init_args"]["num_heads"] == 1
    assert any(line.startswith("num_frames and image_size") for line in imported.missing)
    # the fixed 1-D table follows each token's index: 4 x 32 x 32 clips read as VideoMAE built for them reads them
    assert max_diff(our_features(path, clips), reference_features(hf, clips)) < TOL
    mask = tube_mask()
    assert abs(our_loss(our_model(path), clips, mask) - reference_loss(hf, clips, mask)) < TOL


def test_videomae_checkpoint_with_its_training_arguments(tmp_path, clips):
    """Where the checkpoint keeps the script's arguments (as a dict: VideoMAE's own argparse.Namespace is refused by
    the weights-only load), the clip size, the masking (V2's dual masking) and the target come from them."""
    hf = mcg_reference()
    args = {"num_frames": FRAMES, "input_size": SIZE, "mask_type": "tube", "mask_ratio": 0.9}
    args |= {"decoder_mask_ratio": 0.5, "decoder_mask_type": "run_cell", "normlize_target": True}
    torch.save({"model": mcg_pretraining(hf.state_dict()), "args": args}, tmp_path / "v2.pth")
    imported = anymae.read_weights(tmp_path / "v2.pth")
    tokenizer = imported.parts["tokenizer"]["init_args"]
    assert (tokenizer["num_frames"], tokenizer["image_size"]) == (FRAMES, SIZE)
    assert not any(line.startswith(("num_frames", "masker")) for line in imported.missing)
    masker = imported.parts["masker"]
    assert masker["class_path"] == "anymae.DualMasker" and masker["init_args"]["decoder_ratio"] == 0.5
    mask = tube_mask()
    assert abs(our_loss(our_model(tmp_path / "v2.pth"), clips, mask) - reference_loss(hf, clips, mask)) < TOL


def test_videomae_encoder_checkpoints(tmp_path, clips):
    hf = mcg_reference()
    state = {**mcg_encoder(hf.state_dict(), ""), "head.weight": torch.randn(7, 128), "head.bias": torch.zeros(7)}
    torch.save({"module": state}, tmp_path / "finetuned.pth")
    imported = anymae.read_weights(tmp_path / "finetuned.pth")
    assert "decoder" not in imported.parts and imported.left_out == ["head.*: a classifier head (7 classes)"]
    assert max_diff(our_features(tmp_path / "finetuned.pth", clips), reference_features(hf, clips)) < TOL

    table = torch.stack([torch.arange(32.0)] * 128, dim=1) / 10000 ** (torch.arange(128) // 2 * 2 / 128)
    table[:, 0::2], table[:, 1::2] = table[:, 0::2].sin(), table[:, 1::2].cos()  # VideoMAE's fixed table, stored
    torch.save({"model": {**state, "pos_embed": table[None]}}, tmp_path / "table.pth")
    assert any(item.startswith("pos_embed") for item in anymae.read_weights(tmp_path / "table.pth").left_out)
    torch.save({"model": {**state, "pos_embed": torch.randn(1, 32, 128)}}, tmp_path / "learned.pth")
    with pytest.raises(anymae.ConfigError, match="learned position table"):
        anymae.read_weights(tmp_path / "learned.pth")

    pooled = {k: v for k, v in state.items() if not k.startswith("norm.")}  # use_mean_pooling: fc_norm, no norm
    fc = torch.randn(128, generator=torch.Generator().manual_seed(5)), torch.randn(128)
    torch.save({"model": {**pooled, "fc_norm.weight": fc[0], "fc_norm.bias": fc[1]}}, tmp_path / "p.pth")
    hf.videomae.layernorm = torch.nn.Identity()  # the blocks' output, as the fine-tuned VideoMAE pools it
    expected = torch.nn.functional.layer_norm(reference_features(hf, clips).mean(dim=1), (128,), *fc, eps=1e-6)
    with torch.no_grad():
        assert max_diff(anymae.load_encoder(tmp_path / "p.pth")({"video": clips}).pooled, expected) < TOL

    scaled = {**state, "blocks.0.gamma_1": torch.ones(128), "blocks.0.gamma_2": torch.ones(128)}
    torch.save({"model": scaled}, tmp_path / "scaled.pth")
    with pytest.raises(anymae.ConfigError, match="gamma_1"):
        anymae.read_weights(tmp_path / "scaled.pth")


def test_formats_are_told_apart(tmp_path):
    hf = transformers.VideoMAEModel(hf_config())
    hf.save_pretrained(tmp_path / "hf")
    torch.save({"model": mcg_encoder(mcg_reference().state_dict(), "")}, tmp_path / "mcg.pth")
    mae_st = {"cls_token": torch.zeros(1, 1, 8), "patch_embed.proj.weight": torch.zeros(8, 3, 2, 4, 4)}
    torch.save({"model": mae_st}, tmp_path / "mae_st.pth")
    for path, reader in [(tmp_path / "hf", HFVideoMAEReader), (tmp_path / "mcg.pth", VideoMAEReader)]:
        file = open_weights(path)
        assert [r.format for r in (HFVideoMAEReader, VideoMAEReader) if r().detect(file)] == [reader.format]
    file = open_weights(tmp_path / "mae_st.pth")  # MAE-ST: a class token, separate q/k/v
    assert not VideoMAEReader().detect(file) and not HFVideoMAEReader().detect(file)


def test_vit_g_mlp_ratio_is_kept_exactly():
    from anymae_video.published import _mlp_ratio

    for hidden, width in [(6144, 1408), (3072, 768), (5120, 1280), (1536, 384)]:
        assert int(width * _mlp_ratio(hidden, width)) == hidden


# ------------------------------------------------------------------------------------------------------ HF export
def build_ours(norm_pix: bool = True, **changes) -> anymae.MaskedAutoencoder:
    parts = {
        "tokenizer": VideoTubeletTokenizer(num_frames=FRAMES, image_size=SIZE, tubelet_size=TUBELET, patch_size=PATCH),
        "masker": anymae.TubeMasker(mask_ratio=0.9),
        "encoder": anymae.ViTEncoder(
            embed_dim=64, depth=2, num_heads=4, class_token=False, pos_embed=anymae.SinCosPositionEmbedding(axes="flat")
        ),
        "decoder": anymae.MAEDecoder(
            embed_dim=32, depth=2, num_heads=4, embed_bias=False, pos_embed=anymae.SinCosPositionEmbedding(axes="flat")
        ),
        "target": anymae.PatchTarget(
            normalize="channel" if norm_pix else "none", input_mean=IMAGENET_MEAN, input_std=IMAGENET_STD
        ),
    }
    torch.manual_seed(0)
    return randomized(anymae.MaskedAutoencoder(**{**parts, **changes}), seed=5)


@pytest.mark.parametrize("norm_pix", [True, False])
def test_export_to_hf_videomae_for_pretraining_gives_the_same_loss(tmp_path, clips, norm_pix):
    ours = build_ours(norm_pix)
    exporter = HFVideoMAEExporter()
    exporter.check(ours)
    exporter.export(ours, tmp_path)
    hf, info = transformers.VideoMAEForPreTraining.from_pretrained(tmp_path, output_loading_info=True)
    assert not any(info.values()), info  # every weight read, none left over
    mask = tube_mask()
    # HF's decoder norm computes with eps 1e-5, ours with 1e-6: the only difference
    assert abs(our_loss(ours, clips, mask) - reference_loss(hf.eval(), clips, mask)) < TOL
    # and back: the folder read as a published one gives our model again
    assert max_diff(our_features(tmp_path, clips), reference_features(hf, clips)) < TOL
    assert abs(our_loss(our_model(tmp_path), clips, mask) - our_loss(ours, clips, mask)) < TOL


def flat() -> anymae.SinCosPositionEmbedding:
    return anymae.SinCosPositionEmbedding(axes="flat")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda: {"encoder": anymae.ViTEncoder(embed_dim=64, depth=1, num_heads=4, pos_embed=flat())}, "class token"),
        (lambda: {"encoder": anymae.ViTEncoder(embed_dim=66, depth=1, num_heads=6, class_token=False)}, "sin-cos"),
        (
            lambda: {"decoder": anymae.MAEDecoder(embed_dim=32, depth=1, num_heads=4, pos_embed=flat())},
            "without a bias",
        ),
        (
            lambda: {"decoder": anymae.MAEDecoder(embed_dim=32, norm_eps=1e-5, embed_bias=False, pos_embed=flat())},
            "epsilon",
        ),
        (lambda: {"target": anymae.PatchTarget(normalize="patch")}, "normalised per channel"),
        (lambda: {"target": anymae.PatchTarget(normalize="channel")}, "ImageNet"),
    ],
)
def test_export_refuses_what_hf_videomae_cannot_represent(change, message):
    with pytest.raises(ValueError, match=message):
        HFVideoMAEExporter().check(build_ours(**change()))


# ------------------------------------------------------------------------------------------------------ timm export
def test_timm_export_of_a_video_encoder(tmp_path, clips):
    """``anymae export --format timm`` for a video encoder: timm's 2-D ViT, built by ``timm.create_model`` and loaded
    strictly, reads the clip laid out as an image (tubelet frames as channels, tubelets stacked) and gives our
    tokens and pooled features."""
    from anymae_video import TimmVideoViTExporter, create_timm_video_vit

    hf = randomized(transformers.VideoMAEForPreTraining(hf_config()))
    hf.save_pretrained(tmp_path / "hf")
    encoder = anymae.load_encoder(tmp_path / "hf")
    TimmVideoViTExporter().check(encoder)
    TimmVideoViTExporter().export(encoder, tmp_path)
    timm_vit = create_timm_video_vit(tmp_path)
    with torch.no_grad():
        ours = encoder({"video": clips})
        assert max_diff(timm_vit.forward_features(clips), ours.tokens) < TOL
        assert max_diff(timm_vit(clips), ours.pooled) < TOL
