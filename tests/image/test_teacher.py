"""Frozen teachers (an anymae checkpoint, an export folder, a timm model from a local weights file) and MR-MAE's
target: mimic the teacher's features on the visible tokens while the decoder reconstructs pixels."""

import pytest
import timm
import torch
from safetensors.torch import save_file

import anymae
from anymae.cli import main
from anymae.testing import config_roundtrip
from anymae_image import ImagePatchTokenizer

from ..core.toys import quiet_trainer


def image_model(target, patch=4, seed=0):
    torch.manual_seed(seed)
    return anymae.MaskedAutoencoder(
        tokenizer=ImagePatchTokenizer(image_size=16, patch_size=patch, in_chans=1),
        masker=anymae.RandomMasker(),
        encoder=anymae.ViTEncoder(embed_dim=24, depth=2, num_heads=2),
        decoder=anymae.MAEDecoder(embed_dim=16, depth=1, num_heads=2),
        target=target,
    )


def images(n=4, size=16, seed=0):
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def teacher_checkpoint(tmp_path_factory):
    """A teacher built by a previous fit (a tiny MAE on random images)."""
    root = tmp_path_factory.mktemp("teacher")
    model = image_model(anymae.PatchTarget())
    data = [{"image": images(seed=i)} for i in range(2)]
    trainer = quiet_trainer(max_epochs=1, enable_checkpointing=True, default_root_dir=root, limit_val_batches=0)
    trainer.fit(model, torch.utils.data.DataLoader(data, batch_size=None))
    return trainer.checkpoint_callback.best_model_path


def test_teacher_from_a_checkpoint_and_an_export_gives_the_encoders_features(teacher_checkpoint, tmp_path):
    batch = {"image": images()}
    expected = anymae.load_encoder(teacher_checkpoint)(batch).tokens[:, 1:]
    torch.testing.assert_close(anymae.Teacher(checkpoint=teacher_checkpoint).features(batch), expected)
    assert main(["export", teacher_checkpoint, "--out", str(tmp_path / "exported")]) == 0
    exported = anymae.Teacher(checkpoint=str(tmp_path / "exported"))
    torch.testing.assert_close(exported.features(batch), expected)
    layers = (
        anymae.load_encoder(teacher_checkpoint)
        .encoder(anymae.load_encoder(teacher_checkpoint).tokenizer(batch), layers=True)
        .layers
    )
    torch.testing.assert_close(anymae.Teacher(checkpoint=teacher_checkpoint, layer=1).features(batch), layers[1][:, 1:])


def test_teacher_from_a_local_timm_weights_file(tmp_path):
    kwargs = {"img_size": 16, "patch_size": 4, "in_chans": 1, "embed_dim": 32, "depth": 2, "num_heads": 2}
    torch.manual_seed(0)
    reference = timm.create_model("vit_tiny_patch16_224", pretrained=False, **kwargs).eval()
    save_file(reference.state_dict(), tmp_path / "vit.safetensors")
    teacher = anymae.Teacher(
        timm_model="vit_tiny_patch16_224", weights=str(tmp_path / "vit.safetensors"), timm_kwargs=kwargs
    )
    x = images()
    with torch.no_grad():
        torch.testing.assert_close(teacher.features({"image": x}), reference.forward_features(x)[:, 1:])
    assert teacher.dim == 32 and all(not p.requires_grad for p in teacher.net.parameters())
    torch.save(reference.state_dict(), tmp_path / "vit.pth")  # a .pth file too
    again = anymae.Teacher(timm_model="vit_tiny_patch16_224", weights=str(tmp_path / "vit.pth"), timm_kwargs=kwargs)
    torch.testing.assert_close(again.features({"image": x}), teacher.features({"image": x}))


def test_teacher_configuration_errors():
    with pytest.raises(anymae.ConfigError, match="exactly one of checkpoint"):
        anymae.Teacher()
    with pytest.raises(anymae.ConfigError, match="needs a local weights file"):
        anymae.Teacher(timm_model="vit_tiny_patch16_224")
    with pytest.raises(anymae.ConfigError, match="is not a file"):
        anymae.Teacher(timm_model="vit_tiny_patch16_224", weights="/nonexistent.safetensors")


def mrmae(teacher_checkpoint):
    return anymae.WeightedTarget(
        {
            "pixels": anymae.PatchTarget(),
            "teacher": anymae.TeacherFeatureTarget(anymae.Teacher(checkpoint=teacher_checkpoint)),
        }
    )


def test_mrmae_mimics_the_teacher_on_visible_tokens_and_reconstructs_pixels(teacher_checkpoint):
    model = image_model(mrmae(teacher_checkpoint))
    part = model.target.parts["teacher"]
    batch = {"image": images()}
    out = model(batch, generator=torch.Generator().manual_seed(0))
    # the teacher term: the student's visible latents through the head vs the whitened teacher features there
    teacher = anymae.load_encoder(teacher_checkpoint)(batch).tokens[:, 1:]
    wanted = torch.nn.functional.layer_norm(anymae.gather_tokens(teacher, out.mask.ids_keep), (24,), eps=1e-6)
    mimic = part.head(out.latent[:, 1:])
    torch.testing.assert_close(out.terms["teacher"], (mimic - wanted).pow(2).mean())
    torch.testing.assert_close(out.loss, out.terms["pixels"] + out.terms["teacher"])
    assert model.decoder.out_dim == 16  # the decoder predicts pixels only
    # the mimic loss trains the encoder, never the teacher
    out.terms["teacher"].backward()
    assert model.encoder.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in part.teacher.net.parameters())
    assert not any(key.startswith("target.parts.teacher.teacher") for key in model.state_dict())


def test_mrmae_trains_logs_each_part_and_reloads(teacher_checkpoint, tmp_path):
    model = image_model(mrmae(teacher_checkpoint))
    frozen = {k: v.clone() for k, v in model.target.parts["teacher"].teacher.net.state_dict().items()}
    data = [{"image": images(seed=i)} for i in range(3)]
    loader = torch.utils.data.DataLoader(data, batch_size=None)
    trainer = quiet_trainer(max_epochs=2, enable_checkpointing=True, default_root_dir=tmp_path)
    trainer.fit(model, loader, loader)
    metrics = trainer.callback_metrics
    assert {"train/loss_pixels", "train/loss_teacher", "val/loss_pixels", "val/loss_teacher"} <= set(metrics)
    for key, value in model.target.parts["teacher"].teacher.net.state_dict().items():
        torch.testing.assert_close(value, frozen[key])
    reloaded = anymae.MaskedAutoencoder.load_from_checkpoint(trainer.checkpoint_callback.best_model_path)
    assert isinstance(reloaded.target.parts["teacher"], anymae.TeacherFeatureTarget)
    config_roundtrip(model.target, anymae.Target)


def test_teacher_on_another_grid_fails_before_training(teacher_checkpoint):
    with pytest.raises(anymae.ConfigError, match="the teacher gives 16 tokens per sample and the tokenizer 4"):
        image_model(mrmae(teacher_checkpoint), patch=8)


def test_a_visible_only_target_needs_a_decoded_one_beside_it(teacher_checkpoint):
    part = anymae.TeacherFeatureTarget(anymae.Teacher(checkpoint=teacher_checkpoint))
    with pytest.raises(anymae.ConfigError, match="put it in a WeightedTarget"):
        image_model(part)
    with pytest.raises(anymae.ConfigError, match="needs at least one target the decoder predicts"):
        anymae.WeightedTarget({"teacher": part})


def test_hidden_teacher_features_are_a_decoder_target(teacher_checkpoint):
    target = anymae.TeacherFeatureTarget(anymae.Teacher(checkpoint=teacher_checkpoint), at="hidden", loss="cosine")
    model = image_model(target)
    assert model.decoder.out_dim == 24
    out = model({"image": images()}, generator=torch.Generator().manual_seed(0))
    cosine = torch.nn.functional.cosine_similarity(out.pred, out.target, dim=-1)
    torch.testing.assert_close(out.loss, (1 - cosine).mean())


def test_pixels_plus_hog_each_logged(tmp_path):
    from anymae_image import HOGTarget

    target = anymae.WeightedTarget({"pixels": anymae.PatchTarget(), "hog": HOGTarget(cell=4)}, weights={"hog": 0.5})
    model = image_model(target)
    out = model({"image": images()}, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.loss, out.terms["pixels"] + 0.5 * out.terms["hog"])


def test_a_missing_teacher_checkpoint_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.ckpt does not exist"):
        anymae.Teacher(checkpoint=str(tmp_path / "missing.ckpt"))
