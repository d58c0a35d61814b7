"""The image encoder exported to timm computes the same features; it runs at another resolution."""

import pytest
import torch

import anymae
from anymae.cli import main
from anymae.testing import build_context
from anymae_image import ImagePatchTokenizer, create_timm_vit

from ..core.toys import quiet_trainer


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("image")
    torch.manual_seed(0)
    model = anymae.MaskedAutoencoder(
        tokenizer=ImagePatchTokenizer(image_size=(16, 24), patch_size=4, in_chans=3),
        masker=anymae.RandomMasker(),
        encoder=anymae.ViTEncoder(embed_dim=32, depth=2, num_heads=4),
        decoder=anymae.MAEDecoder(embed_dim=16, depth=1, num_heads=2),
        target=anymae.PatchTarget(),
    )
    data = [{"image": torch.randn(4, 3, 16, 24)} for _ in range(2)]
    trainer = quiet_trainer(max_epochs=1, enable_checkpointing=True, default_root_dir=root, limit_val_batches=0)
    trainer.fit(model, torch.utils.data.DataLoader(data, batch_size=None))
    return trainer.checkpoint_callback.best_model_path


def test_timm_export_loads_strictly_and_features_agree(checkpoint, tmp_path, capsys):
    out = tmp_path / "exported"
    assert main(["export", str(checkpoint), "--out", str(out), "--format", "timm"]) == 0
    assert "timm_vit.safetensors" in capsys.readouterr().out
    timm_vit = create_timm_vit(out)  # strict load_state_dict: every key matches
    ours = anymae.load_encoder(checkpoint)
    images = torch.randn(2, 3, 16, 24)
    with torch.no_grad():
        torch.testing.assert_close(
            timm_vit.forward_features(images), ours({"image": images}).tokens, atol=1e-5, rtol=1e-5
        )
        torch.testing.assert_close(timm_vit(images), ours({"image": images}).pooled, atol=1e-5, rtol=1e-5)


def test_unknown_export_format_is_refused(checkpoint, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["export", str(checkpoint), "--out", str(tmp_path), "--format", "onnx"])
    assert "unknown format onnx; installed: hf, timm" in capsys.readouterr().err


def test_encoder_runs_at_another_resolution(checkpoint):
    encoder = anymae.load_encoder(checkpoint)
    out = encoder({"image": torch.randn(2, 3, 32, 32)})  # trained at 16 x 24: the sin-cos table follows the grid
    assert out.tokens.shape == (2, 1 + 64, 32)


def test_digits_probe_config_runs_from_a_checkpoint_and_from_random_init(digits_run, tmp_path):
    """The shipped evaluation configs run end to end, on the shared digits run's checkpoint."""
    root = digits_run / "runs" / "teacher"
    ckpt = next(root.rglob("*.ckpt"))
    results = tmp_path / "rows.csv"
    for protocol, name in (("knn", "knn_digits"), ("probe", "probe_digits"), ("finetune", "finetune_digits")):
        args = [
            protocol,
            "--config",
            f"examples/image/{name}.yaml",
            "--model.encoder.checkpoint",
            str(ckpt),
            "--compare-random",
            "--results",
            str(results),
            "--trainer.default_root_dir",
            str(tmp_path),
            "--trainer.logger",
            "false",
            "--trainer.enable_checkpointing",
            "false",
        ]
        if protocol != "knn":
            args += ["--trainer.max_epochs", "2"]
        assert main(args) == 0
    rows = results.read_text().splitlines()
    assert len(rows) == 1 + 6 and all(",digits," in row for row in rows[1:])


def test_timm_export_without_a_class_token(tmp_path):
    from anymae.evaluation import PretrainedEncoder
    from anymae.evaluation.export import export_encoder
    from anymae_image import TimmViTExporter

    tokenizer = ImagePatchTokenizer(image_size=16, patch_size=4, in_chans=1)
    vit = anymae.ViTEncoder(embed_dim=16, depth=1, num_heads=2, class_token=False)
    vit.build(build_context(tokenizer.spec))
    encoder = PretrainedEncoder(tokenizer, vit).eval()
    export_encoder(encoder, tmp_path)
    TimmViTExporter().export(encoder, tmp_path)
    images = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(create_timm_vit(tmp_path)(images), encoder({"image": images}).pooled)


def test_cached_and_live_feature_probes_agree(tmp_path):
    """The probe on features computed once equals the probe running the frozen encoder on every batch (the digits
    have no augmentation), to the same accuracy on a fixed seed."""
    from anymae.cli.evaluate import run_protocol

    root = tmp_path / "run"
    args = ["fit", "--config", "examples/image/mae_tiny_digits.yaml", "--trainer.max_epochs", "1"]
    args += ["--trainer.limit_train_batches", "3", "--trainer.callbacks", "[]", "--trainer.default_root_dir", str(root)]
    args += ["--trainer.enable_progress_bar", "false"]
    assert main(args) == 0
    ckpt = str(next(root.rglob("*.ckpt")))
    common = ["--config", "examples/image/probe_digits.yaml", "--model.encoder.checkpoint", ckpt]
    common += ["--trainer.max_epochs", "8", "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path)]
    cached = run_protocol("probe", common)
    live = run_protocol("probe", [*common, "--model.cache_features", "false"])
    assert cached["data"] == live["data"] == "digits"
    assert abs(cached["value"] - live["value"]) <= 1 / 180  # at most one of the 180 held-out digits differs
