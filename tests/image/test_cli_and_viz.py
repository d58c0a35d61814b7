"""The image plugin end to end: discovered through its entry point, the example config trains from the real
``anymae`` command, a bad value exits with one line, and reconstruction grids are written."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import anymae
from anymae.cli import main
from anymae.cli.fit import AnymaeCLI
from anymae_image import DigitsDataModule, ImagePatchTokenizer, ReconstructionGrid, save_reconstruction_grid

from ..commands import assert_listed
from ..core.toys import quiet_trainer

ROOT = Path(__file__).resolve().parents[2]
ANYMAE = [sys.executable, "-m", "anymae.cli"]
# Each example's header shows the command that runs it; pretraining configs are parsed and built here, evaluation
# configs (anymae knn/probe/finetune) run end to end in test_export.py, overlays below, the suite at the end.
EXAMPLES = sorted(
    p
    for p in (ROOT / "examples").rglob("*.yaml")
    if "anymae fit --config" in p.read_text() and "masking" not in p.parts
)
EVALUATIONS = sorted(
    p
    for p in (ROOT / "examples").rglob("*.yaml")
    if re.search(r"anymae (knn|probe|finetune|retrieval) ", p.read_text())
)
OVERLAYS = sorted((ROOT / "examples" / "image" / "masking").glob("*.yaml"))


def run(args, cwd):
    env = {**os.environ, "ANYMAE_STRICT_PLUGINS": "1"}
    return subprocess.run([*ANYMAE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_plugins_command_lists_the_installed_image_plugin(plugins_listing):
    assert_listed(
        plugins_listing,
        "anymae-image 0.3.0 (plugin API 3): anymae_image.plugin",
        "tokenizer: ImagePatchTokenizer",
        "datamodule: DigitsDataModule, ImageFolderDataModule",
        "callback: ReconstructionGrid",
        "masker: RandomMasker",
    )


def test_example_config_trains_from_the_command_line(tmp_path, monkeypatch, capsys):
    config = ROOT / "examples" / "image" / "mae_tiny_digits.yaml"
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", str(config), "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "3"]
    assert main([*args, "--trainer.enable_progress_bar", "false"]) == 0
    out = capsys.readouterr().out
    run_dir = Path("lightning_logs") / "version_0"
    assert f"reconstructions: {tmp_path / run_dir / 'reconstructions' / 'final.png'}" in out
    assert (run_dir / "reconstructions" / "final.png").is_file()
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("*.ckpt"))[-1] == "last.ckpt"
    assert "checkpoint: " in out


def test_bad_mask_ratio_exits_nonzero_with_one_line(tmp_path, monkeypatch, capsys):
    config = ROOT / "examples" / "image" / "mae_tiny_digits.yaml"
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "--config", str(config), "--model.masker.mask_ratio", "1.5"]) == 2
    assert capsys.readouterr().err.strip() == (
        "anymae: error: model.masker.mask_ratio: Input should be less than 1 (got 1.5)"
    )
    assert not (tmp_path / "lightning_logs").exists()


@pytest.mark.parametrize("config", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_parses_and_builds(config, request, monkeypatch):
    anymae.get_plugins()

    def zeros(tensor, *args, **kwargs):  # what is checked is the parse, the build and the dry run, not the weights:
        with torch.no_grad():  # drawing a paper-size ViT's random weights costs seconds, zeros cost nothing
            return tensor.zero_()

    for name in ("uniform_", "normal_", "trunc_normal_", "xavier_uniform_", "kaiming_uniform_"):
        monkeypatch.setattr(torch.nn.init, name, zeros)
    if "anymae.Teacher" in config.read_text():  # its teacher comes from a previous fit, in the working folder
        monkeypatch.chdir(request.getfixturevalue("digits_run"))
    args = ["--config", str(config), "--trainer.logger", "false"]
    if "accelerator: gpu" in config.read_text() and not torch.cuda.is_available():  # multi-GPU examples, on a CPU
        args += ["--trainer.strategy", "auto", "--trainer.accelerator", "cpu", "--trainer.precision", "32-true"]
        args += ["--trainer.devices", "1", "--trainer.num_nodes", "1"]
    cli = AnymaeCLI(args=args, run=False)
    assert isinstance(cli.model, anymae.MaskedAutoencoder)
    first = config.read_text().splitlines()[0]
    assert first.startswith("# ") and "arxiv.org" in config.read_text()  # each example names its paper


def test_reconstruction_grid_every_n_epochs_and_at_the_end(tmp_path):
    dm = DigitsDataModule(image_size=16, batch_size=32)
    model = anymae.MaskedAutoencoder(
        tokenizer=ImagePatchTokenizer(image_size=16, patch_size=4, in_chans=1),
        masker=anymae.RandomMasker(),
        encoder=anymae.ViTEncoder(embed_dim=16, depth=1, num_heads=2),
        decoder=anymae.MAEDecoder(embed_dim=8, depth=1, num_heads=2),
        target=anymae.PatchTarget(),
    )
    grid = ReconstructionGrid(every_n_epochs=1, num_images=4)
    quiet_trainer(max_epochs=2, limit_train_batches=2, callbacks=[grid], default_root_dir=tmp_path).fit(model, dm)
    folder = tmp_path / "reconstructions"
    assert sorted(p.name for p in folder.iterdir()) == ["epoch=0000.png", "epoch=0001.png", "final.png"]
    with Image.open(folder / "final.png") as image:
        # 4 rows of 3 images of 16 px with 2 px padding
        assert image.size == (3 * 18 + 2, 4 * 18 + 2)


def test_grid_shows_hidden_patches_gray_and_visible_ones_unchanged(tmp_path):
    images = torch.rand(1, 1, 8, 8)
    hidden = torch.zeros_like(images)
    hidden[..., :4, :] = 1
    path = save_reconstruction_grid(
        {"input": images, "masked": images * (1 - hidden), "reconstruction": images, "hidden": hidden},
        tmp_path / "g.png",
    )
    with Image.open(path) as image:
        pixels = torch.tensor(np.asarray(image.convert("L")), dtype=torch.float32)  # [12, 32]: 3 images, 2 px pad
    masked = pixels[2:10, 12:20]  # second image of the row
    assert torch.allclose(masked[:4], torch.full((4, 8), masked[0, 0].item()))  # uniform gray
    assert torch.allclose(masked[4:], pixels[6:10, 2:10], atol=1)  # visible part unchanged


@pytest.mark.parametrize("overlay", OVERLAYS, ids=[p.name for p in OVERLAYS])
def test_masking_overlays_train_on_the_digits_demo(overlay, tmp_path):
    """Each masker family's overlay, on top of the demo config, names its paper and runs a fast_dev_run."""
    assert "arxiv.org" in overlay.read_text()
    base = ROOT / "examples" / "image" / "mae_tiny_digits.yaml"
    args = [
        "fit",
        "--config",
        str(base),
        "--config",
        str(overlay),
        "--trainer.fast_dev_run",
        "true",
        "--trainer.default_root_dir",
        str(tmp_path),
        "--trainer.enable_progress_bar",
        "false",
    ]
    assert main(args) == 0


def test_every_example_is_covered_and_the_suite_points_at_real_configs():
    import yaml

    suites = [ROOT / "examples" / name / "suite.yaml" for name in (".", "multimodal", "transfer")]
    covered = set(EXAMPLES) | set(EVALUATIONS) | set(OVERLAYS) | set(suites)
    assert covered == set((ROOT / "examples").rglob("*.yaml"))
    for suite in suites:
        for entry in yaml.safe_load(suite.read_text()):
            for config in [entry["pretrain"], *entry["protocols"].values()]:
                assert (ROOT / config).is_file(), config
